"""The Feast feature repository: feature_store.yaml (SQLite), feature_store.redis.yaml and definitions.py."""

"""The platform API: patients, wound assessments, booking, commerce and payments (FastAPI, SQLAlchemy 2)."""

"""Kubeflow pipelines (kfp v2): validate the data, build features, train, evaluate and register the models."""

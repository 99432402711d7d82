"""MLflow models-from-code: each file defines a pyfunc and ends in mlflow.models.set_model (no pickling)."""

"""Imports every domain's models, so that Base.metadata holds the whole schema (Alembic, tests)."""

from platform_api.assessments import models as assessments_models
from platform_api.audit import models as audit_models
from platform_api.auth import models as auth_models
from platform_api.db import Base
from platform_api.patients import models as patients_models

__all__ = ["Base", "assessments_models", "audit_models", "auth_models", "patients_models"]

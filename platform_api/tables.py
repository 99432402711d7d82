"""Imports every domain's models, so that Base.metadata holds the whole schema (Alembic, tests)."""

from platform_api.audit import models as audit_models
from platform_api.auth import models as auth_models
from platform_api.db import Base
from platform_api.patients import models as patients_models

__all__ = ["Base", "audit_models", "auth_models", "patients_models"]

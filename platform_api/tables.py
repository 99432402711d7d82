"""Imports every domain's models, so that Base.metadata holds the whole schema (Alembic, tests)."""

from platform_api.assessments import models as assessments_models
from platform_api.audit import models as audit_models
from platform_api.auth import models as auth_models
from platform_api.booking import models as booking_models
from platform_api.commerce import models as commerce_models
from platform_api.db import Base
from platform_api.patients import models as patients_models
from platform_api.payments import models as payments_models

__all__ = ["Base", "assessments_models", "audit_models", "auth_models", "booking_models", "commerce_models",
           "patients_models", "payments_models"]

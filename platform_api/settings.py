"""The API's one settings object, read from the environment once (`get_settings`).

Local mode (the default) runs on embedded parts: a SQLite file, a local object folder, the sandbox payment
provider and development secrets. Any other mode refuses to start with a default secret.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "local-development-secret-change-me-0123456789"
DEV_WEBHOOK_SECRET = "whsec_local_development"


class Settings(BaseSettings):
    """Everything the API reads from its environment (prefix COHERENCY_API_, except DATABASE_URL)."""

    model_config = SettingsConfigDict(env_prefix="COHERENCY_API_", extra="ignore", populate_by_name=True)

    mode: Literal["local", "production"] = "local"
    database_url: str = Field("sqlite:///.platform/platform.db", validation_alias="DATABASE_URL")
    secret_key: str = DEV_SECRET
    access_token_minutes: int = Field(15, gt=0)
    refresh_token_days: int = Field(7, gt=0)
    # object storage: a local folder, or any fsspec URL (s3://bucket/prefix with the s3 extra)
    storage_url: str = ".platform/objects"
    serving_url: str = "http://127.0.0.1:8080"
    serving_model: str = "coherency"
    serving_timeout_s: float = Field(600.0, gt=0)
    max_upload_mb: float = Field(64.0, gt=0)
    token_rate_limit: int = Field(10, gt=0, description="password attempts per client address per minute")
    redis_url: str | None = None  # rate-limit counters shared between workers; in-process when unset
    payment_provider: Literal["sandbox", "stripe"] = "sandbox"
    stripe_api_key: str | None = None
    webhook_secret: str = DEV_WEBHOOK_SECRET
    idempotency_ttl_hours: float = Field(24.0, gt=0, description="how long an Idempotency-Key is remembered; "
                                                                 "after that it is new again (Stripe: 24 h)")
    payment_lease_s: float = Field(60.0, ge=4, description="how long an unfinished payment step (its key, its "
                                                           "intent or refund) is left to the request running it "
                                                           "before a retry may take it over")
    default_currency: str = Field("EUR", pattern="^[A-Z]{3}$")

    @model_validator(mode="after")
    def _no_default_secrets_outside_local(self) -> Settings:
        if self.mode != "local":
            defaults = [name for name, value in (("COHERENCY_API_SECRET_KEY", self.secret_key),
                                                 ("COHERENCY_API_WEBHOOK_SECRET", self.webhook_secret))
                        if value in (DEV_SECRET, DEV_WEBHOOK_SECRET)]
            if defaults:
                raise ValueError(f"{', '.join(defaults)} still hold the development default; set real secrets "
                                 f"in the environment before running in {self.mode} mode")
            if len(self.secret_key) < 32:
                raise ValueError("COHERENCY_API_SECRET_KEY must be at least 32 characters")
        if self.payment_provider == "stripe" and not self.stripe_api_key:
            raise ValueError("COHERENCY_API_PAYMENT_PROVIDER=stripe needs COHERENCY_API_STRIPE_API_KEY")
        return self

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)


@lru_cache
def get_settings() -> Settings:
    """The settings of this process, read from the environment on first use."""
    return Settings()

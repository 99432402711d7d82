"""Sign-in, refresh rotation, TOTP, roles and the rate limit on /auth/token."""

from __future__ import annotations

import pyotp
import pytest

from platform_api.auth import ratelimit
from platform_api.auth.models import Role
from platform_api.errors import RateLimited
from platform_api.settings import Settings
from tests.platform_api.conftest import PASSWORD


def sign_in(client, email, password=PASSWORD, **extra):
    return client.post("/auth/token", data={"username": email, "password": password, **extra})


def test_password_flow_gives_tokens_that_open_the_api(client, make_user):
    user = make_user(Role.clinician)
    tokens = sign_in(client, user.email).json()
    assert tokens["token_type"] == "bearer"
    me = client.get("/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200 and me.json()["email"] == user.email
    assert "password" not in me.text


def test_wrong_password_and_unknown_email_answer_alike(client, make_user):
    user = make_user()
    wrong = sign_in(client, user.email, "not the password")
    unknown = sign_in(client, "nobody@example.org")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"error": "wrong email or password", "code": "unauthorized"}


def test_refresh_token_works_once(client, make_user):
    tokens = sign_in(client, make_user().email).json()
    first = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert first.status_code == 200 and first.json()["access_token"]
    again = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert again.status_code == 401
    assert client.post("/auth/refresh", json={"refresh_token": tokens["access_token"]}).status_code == 401


def test_missing_or_forged_token_is_401(client, auth, make_user):
    assert client.get("/auth/me").status_code == 401
    forged = client.get("/auth/me", headers={"Authorization": "Bearer abc.def.ghi"})
    assert forged.status_code == 401 and forged.json()["code"] == "unauthorized"


def test_totp_second_factor_for_staff(client, auth, make_user):
    user = make_user(Role.clinician)
    setup = client.post("/auth/totp/setup", headers=auth(user)).json()
    assert setup["otpauth_uri"].startswith("otpauth://totp/")
    assert client.post("/auth/totp/enable", json={"code": "000000"}, headers=auth(user)).status_code == 422
    code = pyotp.TOTP(setup["secret"]).now()
    assert client.post("/auth/totp/enable", json={"code": code}, headers=auth(user)).json()["totp_enabled"]
    assert sign_in(client, user.email).status_code == 401
    assert sign_in(client, user.email, totp_code=pyotp.TOTP(setup["secret"]).now()).status_code == 200


def test_patients_cannot_enrol_a_second_factor(client, auth, make_user, make_patient):
    patient_user = make_user(Role.patient, make_patient())
    assert client.post("/auth/totp/setup", headers=auth(patient_user)).status_code == 403


def test_only_admins_create_users(client, auth, make_user, make_patient):
    body = {"email": "new@example.org", "password": "long enough pw", "role": "caregiver"}
    assert client.post("/users", json=body, headers=auth(make_user(Role.clinician))).status_code == 403
    admin = make_user(Role.admin)
    created = client.post("/users", json=body, headers=auth(admin))
    assert created.status_code == 201 and created.json()["role"] == "caregiver"
    assert client.post("/users", json=body, headers=auth(admin)).status_code == 409
    no_patient = client.post("/users", json={**body, "email": "p@example.org", "role": "patient"}, headers=auth(admin))
    assert no_patient.status_code == 422


def test_token_route_is_rate_limited(app, client, make_user, settings):
    from platform_api.deps import app_settings

    app.dependency_overrides[app_settings] = lambda: settings.model_copy(update={"token_rate_limit": 3})
    ratelimit.counter_for.cache_clear()
    codes = [sign_in(client, "nobody@example.org").status_code for _ in range(5)]
    assert codes[:3] == [401, 401, 401] and codes[3:] == [429, 429]
    ratelimit.counter_for.cache_clear()


@pytest.mark.redis
def test_redis_counter_is_shared_between_counters():
    url = "redis://127.0.0.1:6379/0"
    first, second = ratelimit.RedisWindowCounter(url), ratelimit.RedisWindowCounter(url)
    key = f"test-{id(first)}"
    ratelimit.check(first, key, limit=2)
    ratelimit.check(second, key, limit=2)
    with pytest.raises(RateLimited):
        ratelimit.check(first, key, limit=2)


def test_default_secrets_are_refused_outside_local_mode():
    with pytest.raises(ValueError, match="development default"):
        Settings(mode="production")
    Settings(mode="production", secret_key="x" * 40, webhook_secret="whsec_" + "y" * 30)

"""What `make run` shows of the platform API once serving is up: a demo clinician and patient, one scan submitted
through the API (which calls the serving API), and what the platform does with the result: the stored assessment,
the recommended dressings and the suggested next appointment.

Everything goes over HTTP as a client would, except the bootstrap accounts and catalogue, which an operator
makes with `coherency users create` and the admin routes; they are made here in-process the same way.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import httpx
import typer

DEMO_PASSWORD = "demo-password-local-only"  # local mode only: outside it the API refuses development secrets
CLINICIAN, ADMIN = "clinician@coherency.local", "admin@coherency.local"
# a small catalogue, one or two products per dressing type (prices in cents)
CATALOGUE = [("FOAM-10", "Silicone foam 10x10 cm", "foam", "10x10 cm", False, 450),
             ("ALG-10", "Calcium alginate 10x10 cm", "alginate", "10x10 cm", False, 520),
             ("HCOL-10", "Hydrocolloid 10x10 cm", "hydrocolloid", "10x10 cm", False, 380),
             ("HGEL-15", "Amorphous hydrogel 15 g", "hydrogel", "15 g", False, 610),
             ("FILM-10", "Transparent film 10x12 cm", "film", "10x12 cm", False, 150),
             ("AG-10", "Silver alginate 10x10 cm", "antimicrobial", "10x10 cm", True, 1290)]


def ensure_accounts(database_url: str) -> None:
    """The demo admin and clinician, made once (what `coherency users create` does)."""
    from platform_api.auth import service
    from platform_api.auth.models import Role
    from platform_api.db import session_factory, upgrade
    from platform_api.errors import Conflict

    upgrade(database_url)
    for email, role in ((ADMIN, Role.admin), (CLINICIAN, Role.clinician)):
        with session_factory(database_url)() as session, contextlib.suppress(Conflict):  # made by an earlier run
            service.create(session, email=email, password=DEMO_PASSWORD, role=role, display_name="Demo")


def run_demo(api_url: str, scan_stem: Path, feature_key: str | None) -> None:
    """Submit one scan (PLY + photo + camera + metadata files named after `scan_stem`) through the API."""
    with httpx.Client(base_url=api_url, timeout=600) as api:
        admin, clinician = _sign_in(api, ADMIN), _sign_in(api, CLINICIAN)
        _stock_catalogue(api, admin)
        _open_diary(api, clinician)
        patient = _post(api, "/patients", clinician, json={"given_name": "Demo", "family_name": "Patient",
                                                          "birth_date": "1954-06-21", "sex": "female"})
        wound = _post(api, f"/patients/{patient['id']}/wounds", clinician,
                      json={"etiology": "diabetic_foot_ulcer", "body_site": "plantar forefoot",
                            "onset_date": (datetime.now(UTC) - timedelta(weeks=6)).date().isoformat(),
                            **({"feature_key": feature_key} if feature_key else {})})
        assessment = _submit(api, clinician, wound["id"], scan_stem)
        dressings = _get(api, f"/wounds/{wound['id']}/dressings", clinician)
        follow_up = _get(api, f"/wounds/{wound['id']}/follow-up", clinician)
    typer.echo(summary(api_url, patient, assessment, dressings, follow_up))


def _sign_in(api: httpx.Client, email: str) -> dict[str, str]:
    tokens = _checked(api.post("/auth/token", data={"username": email, "password": DEMO_PASSWORD}))
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def _stock_catalogue(api: httpx.Client, admin: dict[str, str]) -> None:
    known = {p["sku"] for p in _get(api, "/products", admin)}
    for sku, name, kind, size, rx, price in CATALOGUE:
        if sku not in known:
            _post(api, "/products", admin, json={"sku": sku, "name": name, "dressing_type": kind, "size": size,
                                                 "prescription_only": rx, "price_minor": price, "on_hand": 200})


def _open_diary(api: httpx.Client, clinician: dict[str, str]) -> None:
    """Mornings of the next three weeks in 30-minute slots; days already open are left as they are."""
    today = datetime.now(UTC).date()
    for day in (today + timedelta(days=n) for n in range(1, 22)):
        start = datetime.combine(day, time(9), tzinfo=UTC)
        response = api.post("/availability", headers=clinician,
                            json={"starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=3)).isoformat(),
                                  "slot_minutes": 30})
        if response.status_code != 409:  # 409: that morning is open already
            _checked(response)


def _submit(api: httpx.Client, clinician: dict[str, str], wound_id: str, stem: Path) -> dict:
    files = {"scan": (f"{stem.name}.ply", Path(f"{stem}.ply").read_bytes(), "application/octet-stream"),
             "photo": (f"{stem.name}.png", Path(f"{stem}.png").read_bytes(), "image/png"),
             "camera": ("camera.json", Path(f"{stem}.camera.json").read_bytes(), "application/json")}
    return _checked(api.post(f"/wounds/{wound_id}/scans", headers=clinician, files=files,
                             data={"metadata": json.dumps(scan_metadata(stem))}))


def scan_metadata(stem: Path) -> dict:
    """What the clinician's app sends with the scan: the device and body site from the phantom's metadata (its
    patient and wound ids are the phantom generator's, not the platform's; the API refuses unknown fields), taken
    now, and the exudate the clinician saw."""
    phantom = json.loads(Path(f"{stem}.meta.json").read_text())
    return {**{key: phantom[key] for key in ("device", "body_site") if key in phantom}, "exudate": "moderate"}


def summary(api_url: str, patient: dict, assessment: dict, dressings: dict, follow_up: dict) -> str:
    """The demo's result as text: assessment, dressings with reasons, the next appointment."""
    numbers = ", ".join(f"{name} {assessment[name]:.2f}" for name in ("area_cm2", "volume_cm3", "max_depth_mm")
                        if assessment.get(name) is not None) or "not measured"
    p_heal = assessment.get("p_heal_12w")
    report = f"{api_url}/assessments/{assessment['id']}/report.html"
    lines = [f"platform API {api_url} (docs {api_url}/docs): patient {patient['id']}",
             f"  assessment {assessment['id']}: {numbers}; P(heal in 12 weeks) "
             f"{'-' if p_heal is None else f'{p_heal:.2f}'}; report {report}"]
    for advice in dressings.get("recommendations", [])[:3]:
        products = ", ".join(p["name"] for p in advice.get("products", [])[:2]) or "none in stock"
        lines.append(f"  dressing {advice['dressing_type']}: {'; '.join(advice['reasons'])} ({products})")
    slot = follow_up.get("next_slot")
    lines.append(f"  follow-up every {follow_up['interval_days']} days ({'; '.join(follow_up['reasons'])}); next "
                 f"appointment: {slot['starts_at'] if slot else 'no open slot in the care team diary'}")
    return "\n".join(lines)


def _get(api: httpx.Client, path: str, headers: dict[str, str]):
    return _checked(api.get(path, headers=headers))


def _post(api: httpx.Client, path: str, headers: dict[str, str], **kwargs):
    return _checked(api.post(path, headers=headers, **kwargs))


def _checked(response: httpx.Response):
    if response.is_error:
        raise RuntimeError(f"{response.request.method} {response.request.url.path}: {response.status_code} "
                           f"{response.text[:300]}")
    return response.json()

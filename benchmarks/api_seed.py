"""The benchmark's database: a fresh PostgreSQL database, migrated, seeded with one clinician's care team, open
slots, carts and assessments (benchmarks/api.py)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from itertools import count

import psycopg
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from platform_api.assessments.models import Assessment, Scan
from platform_api.auth import service as users
from platform_api.auth.models import Role
from platform_api.booking.models import Slot
from platform_api.commerce.models import CartItem, Inventory, Product
from platform_api.db import engine_for, new_id, session_factory, upgrade
from platform_api.patients.models import CareAssignment, Patient, Wound

SERVERS = ("api", "bare")  # each server gets its own slots and carts
SLOT, SLOT_NUMBER = timedelta(minutes=15), count()  # slots follow one another from a week ahead
SLOT_CLOCK = datetime.now(UTC).replace(microsecond=0) + timedelta(days=7)



@contextmanager
def database(admin_url: str) -> Iterator[str]:
    """A new PostgreSQL database's URL, dropped afterwards (exit 2 when the server cannot be reached)."""
    name = f"coherency_bench_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as e:
        print(f"error: PostgreSQL at {make_url(admin_url).render_as_string()}: {str(e).strip().splitlines()[0]}",
              file=sys.stderr)
        sys.exit(2)
    try:
        yield str(make_url(admin_url).set(database=name))
    finally:
        engine_for.cache_clear()
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate(url: str) -> None:
    """The schema as the migrations make it."""
    upgrade(url)
    engine_for(url).dispose()


def seed(url: str, counts: dict[str, int]) -> tuple[str, dict[str, dict[str, list]]]:
    """A clinician and, for each server, the requests of each route: a slot per booking, a cart per checkout,
    assessments to read; the rows are made with the project's models, each patient on the clinician's care team."""
    makers = {"booking": bookings, "order": orders, "assessment": assessment_reads}
    with session_factory(url)() as session:
        user = users.create(session, email="bench@example.org", password="benchmark-password", role=Role.clinician)
        plans = {server: {route: makers[route](session, user.id, n) for route, n in counts.items()}
                 for server in SERVERS}
        session.commit()
    engine_for(url).dispose()
    return user.id, plans


def care_team(session, user_id: str, n: int) -> list[str]:
    """n new patients, each with the clinician on their care team."""
    ids = [new_id() for _ in range(n)]
    session.execute(insert(Patient), [{"id": i, "given_name": "Bench", "family_name": f"Patient {k}",
                                       "birth_date": date(1950, 1, 1), "sex": "unknown"} for k, i in enumerate(ids)])
    session.execute(insert(CareAssignment), [{"patient_id": i, "user_id": user_id} for i in ids])
    return ids


def bookings(session, user_id: str, n: int) -> list:
    """n open slots of the clinician's, one per booking request, for 50 patients in turn."""
    patients = care_team(session, user_id, min(n, 50))
    starts = [SLOT_CLOCK + SLOT * next(SLOT_NUMBER) for _ in range(n)]
    slots = [{"id": new_id(), "provider_id": user_id, "starts_at": t, "ends_at": t + SLOT} for t in starts]
    session.execute(insert(Slot), slots)
    return [("POST", "/appointments", {"slot_id": slot["id"], "patient_id": patients[k % len(patients)],
                                       "reason": "benchmark follow-up"}) for k, slot in enumerate(slots)]


def orders(session, user_id: str, n: int) -> list:
    """A product with plenty of stock and n patients with it in their cart, one checkout request each."""
    product = Product(sku=f"BENCH-{uuid.uuid4().hex[:8]}", name="Benchmark foam dressing", dressing_type="foam",
                      size="10x10 cm", price_minor=1250, currency="EUR")
    product.inventory = Inventory(on_hand=100_000_000)
    session.add(product)
    session.flush()
    patients = care_team(session, user_id, n)
    session.execute(insert(CartItem), [{"patient_id": p, "product_id": product.id, "quantity": 2,
                                        "added_by": user_id} for p in patients])
    return [("POST", f"/patients/{p}/orders", None) for p in patients]


def assessment_reads(session, user_id: str, n: int) -> list:
    """20 patients with a wound of 5 assessed scans each; n reads of those 100 assessments in turn."""
    ids = [a for patient in care_team(session, user_id, 20) for a in assessed_wound(session, user_id, patient)]
    return [("GET", f"/assessments/{ids[k % len(ids)]}", None) for k in range(n)]


def assessed_wound(session, user_id: str, patient_id: str) -> list[str]:
    """A wound of the patient with five weekly scans, each assessed (plain values; a reply of about 2 kB)."""
    wound = Wound(id=new_id(), patient_id=patient_id, etiology="diabetic_foot_ulcer", body_site="left heel",
                  onset_date=date(2025, 1, 6))
    scans = [Scan(id=new_id(), wound_id=wound.id, patient_id=patient_id, uploaded_by=user_id,
                  captured_at=datetime(2025, 2, 3, 10, tzinfo=UTC) + timedelta(weeks=week),
                  scan_key=f"scans/{wound.id}/{week}.ply", scan_format="ply", scan_bytes=1_200_000,
                  scan_sha256="0" * 64, scan_metadata={"exudate": "low"}, status="assessed") for week in range(5)]
    assessments = [assessment_of(scan, area=6.0 - week) for week, scan in enumerate(scans)]
    session.add(wound)
    session.flush()
    session.add_all(scans)
    session.flush()
    session.add_all(assessments)
    session.flush()
    return [a.id for a in assessments]


def assessment_of(scan: Scan, area: float) -> Assessment:
    p_heal = round(1.1 - area / 10, 2)
    reply = {"area_cm2": area, "volume_cm3": area / 4, "outline": [[i / 10, (i % 7) / 10] for i in range(100)],
             "tissue": {"granulation": 0.7, "slough": 0.2, "necrotic": 0.1}, "flags": [],
             "models": {"points": "3", "gbm": "2"}, "prognosis": {"p_gbm": p_heal}}
    return Assessment(id=new_id(), scan_id=scan.id, wound_id=scan.wound_id, patient_id=scan.patient_id,
                      captured_at=scan.captured_at, area_cm2=area, volume_cm3=area / 4, max_depth_mm=3.0,
                      tissue=reply["tissue"], exudate="low", p_heal_12w=p_heal, flags=[],
                      model_versions=reply["models"], result=reply)



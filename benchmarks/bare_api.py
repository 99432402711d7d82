"""The baseline of benchmarks/api.py: the platform API's booking, checkout and assessment-read routes as a bare
FastAPI app that sends the same SQL, in the same order, with the same round trips and writes (statements logged
from the real routes), as plain text through one SQLAlchemy engine with the API's pool settings
(platform_api/db.py engine_for): no JWT (the bearer token is the user id), no Pydantic, no ORM.

Run by the benchmark: DATABASE_URL=postgresql://... uvicorn benchmarks.bare_api:app
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime

from fastapi import FastAPI, Request, Response
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection

URL = "postgresql+psycopg://" + os.environ.get("DATABASE_URL", "postgresql://127.0.0.1/test").split("://", 1)[1]
engine = create_engine(URL, pool_size=20, max_overflow=60, pool_pre_ping=True, hide_parameters=True)
app = FastAPI()


def sql(statement: str):
    return text(" ".join(statement.split()))


USER = sql("SELECT email, password_hash, role, patient_id, display_name, totp_secret, totp_enabled, is_active, id,"
           " created_at FROM users WHERE id = :id")
PATIENT = sql("""SELECT id FROM patients WHERE id = :id AND EXISTS (SELECT * FROM care_assignments
    WHERE care_assignments.patient_id = patients.id AND care_assignments.user_id = :user_id)""")
CARE = sql("SELECT id FROM care_assignments WHERE patient_id = :patient_id AND user_id = :user_id")
SLOT = sql("SELECT provider_id, starts_at, ends_at, status, id, created_at FROM slots WHERE id = :id")
TAKE = sql("UPDATE slots SET status = 'booked' WHERE id = :id AND status = 'open'")
APPOINTMENT = sql("""INSERT INTO appointments (slot_id, patient_id, wound_id, provider_id, starts_at, ends_at, status,
    reason, booked_by, cancelled_at, cancelled_by, id, created_at) VALUES (:slot_id, :patient_id, :wound_id,
    :provider_id, :starts_at, :ends_at, :status, :reason, :booked_by, NULL, NULL, :id, :created_at)""")
AUDIT = sql("""INSERT INTO audit_records (actor_id, actor_role, action, resource_type, resource_id, patient_id,
    client, method, path, id, created_at) VALUES (:actor_id, :actor_role, :action, :resource_type, :resource_id,
    :patient_id, :client, :method, :path, :id, :created_at)""")
CART = sql("""SELECT cart_items.quantity, products.id, products.sku, products.name, products.dressing_type,
    products.prescription_only, products.price_minor, products.currency, products.active
    FROM cart_items JOIN products ON products.id = cart_items.product_id
    WHERE cart_items.patient_id = :patient_id ORDER BY products.id""")
ORDER = sql("""INSERT INTO orders (patient_id, placed_by, status, total_minor, currency, paid_at, cancelled_at, id,
    created_at) VALUES (:patient_id, :placed_by, 'pending_payment', :total_minor, :currency, NULL, NULL, :id,
    :created_at)""")
STOCK = sql("""UPDATE inventory SET on_hand = (on_hand - :quantity), updated_at = :now
    WHERE product_id = :product_id AND on_hand >= :quantity""")
LINE = sql("""INSERT INTO order_lines (order_id, product_id, sku, name, quantity, unit_price_minor, prescription_id,
    id, created_at) VALUES (:order_id, :product_id, :sku, :name, :quantity, :unit_price_minor, NULL, :id,
    :created_at)""")
EMPTY_CART = sql("DELETE FROM cart_items WHERE patient_id = :patient_id")
ASSESSMENT = sql("""SELECT scan_id, wound_id, patient_id, captured_at, area_cm2, volume_cm3, max_depth_mm,
    mean_depth_mm, perimeter_cm, length_cm, width_cm, surface_area_cm2, tissue, exudate, p_heal_12w,
    weeks_to_closure, flags, model_versions, data_version, result, id, created_at FROM assessments WHERE id = :id""")


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message


def reply(status: int, body: dict) -> Response:
    content = json.dumps(body, default=str, separators=(",", ":"))  # compact, as FastAPI's JSONResponse
    return Response(content, status_code=status, media_type="application/json")


async def answer(request: Request, work, *args) -> Response:
    """`work(user_id, client, *args)` in the threadpool (as FastAPI runs a sync route), its refusal as JSON."""
    from starlette.concurrency import run_in_threadpool

    user_id = request.headers.get("authorization", "").removeprefix("Bearer ")
    client = request.client.host if request.client else "unknown"
    try:
        return await run_in_threadpool(work, user_id, client, request.method, request.url.path, *args)
    except Refused as e:
        return reply(e.status, {"error": e.message})


def caller(conn: Connection, user_id: str):
    user = conn.execute(USER, {"id": user_id}).one_or_none()
    if user is None or not user.is_active:
        raise Refused(401, "unknown user")
    return user


def visible_patient(conn: Connection, user, patient_id: str) -> None:
    """The same lookup as patients.service.require_visible_patient for a clinician (the benchmark's caller)."""
    if conn.execute(PATIENT, {"id": patient_id, "user_id": user.id}).one_or_none() is None:
        raise Refused(404, f"no patient {patient_id}")


def can_see(conn: Connection, user, patient_id: str) -> bool:
    return conn.execute(CARE, {"patient_id": patient_id, "user_id": user.id}).first() is not None


def audit(conn: Connection, user, action: str, kind: str, resource_id: str, patient_id: str, *where) -> None:
    client, method, path = where
    conn.execute(AUDIT, {"actor_id": user.id, "actor_role": user.role, "action": action, "resource_type": kind,
                         "resource_id": resource_id, "patient_id": patient_id, "client": client[:64],
                         "method": method, "path": path[:300], "id": str(uuid.uuid4()), "created_at": now()})


def now() -> datetime:
    return datetime.now(UTC)


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/appointments")
async def book_route(request: Request) -> Response:
    return await answer(request, book, json.loads(await request.body()))


def book(user_id: str, client: str, method: str, path: str, body: dict) -> Response:
    with engine.connect() as conn:
        user = caller(conn, user_id)
        visible_patient(conn, user, body["patient_id"])
        slot = conn.execute(SLOT, {"id": body["slot_id"]}).one_or_none()
        if slot is None or slot.starts_at <= now():
            raise Refused(404 if slot is None else 422, "no such open slot")
        if conn.execute(TAKE, {"id": slot.id}).rowcount != 1:
            raise Refused(409, "slot already booked")
        appointment = {"id": str(uuid.uuid4()), "slot_id": slot.id, "patient_id": body["patient_id"],
                       "wound_id": body.get("wound_id"), "provider_id": slot.provider_id, "starts_at": slot.starts_at,
                       "ends_at": slot.ends_at, "status": "booked", "reason": body.get("reason"),
                       "booked_by": user.id, "created_at": now()}
        conn.execute(APPOINTMENT, appointment)
        audit(conn, user, "create", "appointment", appointment["id"], body["patient_id"], client, method, path)
        conn.commit()
    return reply(201, {**appointment, "cancelled_at": None})


@app.post("/patients/{patient_id}/orders")
async def checkout_route(request: Request, patient_id: str) -> Response:
    return await answer(request, checkout, patient_id)


def checkout(user_id: str, client: str, method: str, path: str, patient_id: str) -> Response:
    with engine.connect() as conn:
        user = caller(conn, user_id)
        visible_patient(conn, user, patient_id)
        items = conn.execute(CART, {"patient_id": patient_id}).all()
        if not items:
            raise Refused(422, "the cart is empty")
        order = {"id": str(uuid.uuid4()), "patient_id": patient_id, "placed_by": user.id, "currency": items[0].currency,
                 "total_minor": sum(i.quantity * i.price_minor for i in items), "created_at": now()}
        conn.execute(ORDER, order)
        conn.execute(EMPTY_CART, {"patient_id": patient_id})
        audit(conn, user, "create", "order", order["id"], patient_id, client, method, path)
        lines = []
        for item in items:
            lines.append({"order_id": order["id"], "product_id": item.id, "sku": item.sku, "name": item.name,
                          "quantity": item.quantity, "unit_price_minor": item.price_minor, "id": str(uuid.uuid4()),
                          "created_at": now()})
            conn.execute(LINE, lines[-1])
        for item in items:  # stock last, as the API takes it (its rows stay locked until the commit only)
            if conn.execute(STOCK, {"quantity": item.quantity, "now": now(), "product_id": item.id}).rowcount != 1:
                raise Refused(409, f"out of stock: {item.name}")
        conn.commit()
    return reply(201, {**order, "status": "pending_payment", "lines": lines, "paid_at": None, "cancelled_at": None})


@app.get("/assessments/{assessment_id}")
async def assessment_route(request: Request, assessment_id: str) -> Response:
    return await answer(request, read_assessment, assessment_id)


def read_assessment(user_id: str, client: str, method: str, path: str, assessment_id: str) -> Response:
    with engine.connect() as conn:
        user = caller(conn, user_id)
        row = conn.execute(ASSESSMENT, {"id": assessment_id}).one_or_none()
        if row is None or not can_see(conn, user, row.patient_id):
            raise Refused(404, f"no assessment {assessment_id}")
        audit(conn, user, "read", "assessment", row.id, row.patient_id, client, method, path)
        conn.commit()
    return reply(200, row._asdict())

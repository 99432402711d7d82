"""Prescriptions of dressings: written and revoked by a clinician on the patient's care team, and drawn on by
checkouts of prescription-only products (one conditional UPDATE per line, so two checkouts cannot both take
the last of a prescription)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Row, or_, select, update
from sqlalchemy.orm import Session

from platform_api.audit.service import add_recorded, record, record_read
from platform_api.auth.models import Role, User
from platform_api.commerce.models import Prescription, Product
from platform_api.commerce.schemas import PrescriptionCreate
from platform_api.db import utcnow
from platform_api.errors import Conflict, Forbidden, Invalid, NotFound
from platform_api.patients.service import visible_patient

if TYPE_CHECKING:
    from platform_api.deps import Caller

NO_SYNC = {"synchronize_session": False}


def _require_prescriber(caller: Caller) -> None:
    # an admin sees every patient but treats none; caregivers and patients do not prescribe
    if caller.role != Role.clinician:
        raise Forbidden("only a clinician on the patient's care team may write or revoke prescriptions")


def create(session: Session, *, caller: Caller, patient_id: str, data: PrescriptionCreate) -> Prescription:
    """A clinician on the care team prescribes a product, or any product of a dressing type."""
    visible_patient(session, caller=caller, patient_id=patient_id)
    _require_prescriber(caller)
    if data.product_id is not None and session.get(Product, data.product_id) is None:
        raise Invalid(f"no product {data.product_id}")
    if data.valid_until <= utcnow():
        raise Invalid("valid_until must be in the future")
    prescription = Prescription(patient_id=patient_id, prescriber_id=caller.user.id, **data.model_dump())
    return add_recorded(session, caller=caller, row=prescription, resource_type="prescription",
                        patient_id=patient_id)


def list_for_patient(session: Session, *, caller: Caller, patient_id: str) -> list[Prescription]:
    """The patient's prescriptions, newest first, revoked and expired ones included."""
    visible_patient(session, caller=caller, patient_id=patient_id)
    found = list(session.scalars(select(Prescription).where(Prescription.patient_id == patient_id)
                                 .order_by(Prescription.created_at.desc(), Prescription.id)))
    record_read(session, caller=caller, resource_type="prescription", resource_id=None, patient_id=patient_id)
    return found


def revoke(session: Session, *, caller: Caller, prescription_id: str) -> Prescription:
    """Stop a prescription; orders already placed on it stand."""
    prescription = session.get(Prescription, prescription_id)
    if prescription is None:
        raise NotFound(f"no prescription {prescription_id}")
    try:
        visible_patient(session, caller=caller, patient_id=prescription.patient_id)
    except NotFound as e:
        raise NotFound(f"no prescription {prescription_id}") from e
    _require_prescriber(caller)
    revoked = session.execute(update(Prescription).where(Prescription.id == prescription_id,
                                                         Prescription.revoked_at.is_(None))
                              .values(revoked_at=utcnow(), revoked_by=caller.user.id), execution_options=NO_SYNC)
    if revoked.rowcount != 1:
        raise Conflict(f"prescription {prescription_id} is revoked already")
    record(session, caller=caller, action="update", resource_type="prescription", resource_id=prescription_id,
           patient_id=prescription.patient_id)
    session.commit()
    session.refresh(prescription)
    return prescription


def draw(session: Session, *, patient_id: str, product: Product | Row, quantity: int) -> str:
    """Take `quantity` from a valid clinician's prescription covering this product (a Product or a row with its
    id, dressing_type, name and sku); its id. No commit.

    Valid: not revoked, not expired, written for this patient by a clinician, naming the product or its
    dressing type, with enough left. A prescription of the product itself is used before one of its type.
    """
    candidates = session.scalars(
        select(Prescription.id).join(User, User.id == Prescription.prescriber_id)
        .where(Prescription.patient_id == patient_id, User.role == Role.clinician,
               Prescription.revoked_at.is_(None), Prescription.valid_until > utcnow(),
               or_(Prescription.product_id == product.id, Prescription.dressing_type == product.dressing_type))
        .order_by(Prescription.product_id.is_(None), Prescription.valid_until, Prescription.id)).all()
    for prescription_id in candidates:
        # the same conditions again in the UPDATE: a revoke or another checkout may have come in between
        taken = session.execute(
            update(Prescription).where(Prescription.id == prescription_id, Prescription.revoked_at.is_(None),
                                       Prescription.valid_until > utcnow(),
                                       Prescription.dispensed + quantity <= Prescription.quantity)
            .values(dispensed=Prescription.dispensed + quantity), execution_options=NO_SYNC)
        if taken.rowcount == 1:
            return prescription_id
    if candidates:
        raise Invalid(f"{product.name} ({product.sku}) needs a prescription: the patient's valid prescriptions "
                      f"for it have fewer than {quantity} left")
    raise Invalid(f"{product.name} ({product.sku}) needs a prescription: the patient has no valid prescription "
                  "for it from a clinician")


def give_back(session: Session, *, prescription_id: str, quantity: int) -> None:
    """Return what a cancelled order took from a prescription. No commit."""
    session.execute(update(Prescription).where(Prescription.id == prescription_id)
                    .values(dispensed=Prescription.dispensed - quantity), execution_options=NO_SYNC)

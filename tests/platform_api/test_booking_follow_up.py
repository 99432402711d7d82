"""The follow-up cadence: the pure rule (prognosis thresholds, the 4-week area trend, the fallbacks) and
GET /wounds/{id}/follow-up, which applies it to the wound's assessments and finds the care team's next slot."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from platform_api.assessments.models import Assessment, Scan
from platform_api.auth.models import Role
from platform_api.booking.cadence import area_reduction, cadence
from platform_api.booking.models import Slot, SlotStatus
from platform_api.db import utcnow

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)


@pytest.mark.parametrize(("p_heal", "days"), [(0.0, 7), (0.49, 7), (0.5, 14), (0.79, 14), (0.8, 28), (1.0, 28)])
def test_prognosis_sets_the_interval(p_heal, days):
    rule = cadence(assessed=True, p_heal_12w=p_heal, area_reduction=0.9)  # a prognosis outranks the trend
    assert (rule.interval_days, rule.basis) == (days, "prognosis")


@pytest.mark.parametrize(("reduction", "days"), [(-0.3, 7), (0.0, 7), (0.49, 7), (0.5, 14), (1.0, 14)])
def test_without_prognosis_the_area_trend_sets_it(reduction, days):
    for p_heal in (None, math.nan):
        rule = cadence(assessed=True, p_heal_12w=p_heal, area_reduction=reduction)
        assert (rule.interval_days, rule.basis) == (days, "area_trend")
        assert any("Sheehan" in reason for reason in rule.reasons)


def test_without_prognosis_or_trend_or_assessment_it_is_weekly():
    assert cadence(assessed=True, p_heal_12w=None, area_reduction=None).basis == "no_trend"
    never = cadence(assessed=False, p_heal_12w=0.95, area_reduction=0.9)
    assert (never.interval_days, never.basis) == (7, "no_assessment")
    assert "no assessment" in never.reasons[0]


@pytest.mark.parametrize(("points", "expected"), [
    ([(0, 10.0), (28, 4.0)], 0.6),
    ([(0, 10.0), (35, 12.0)], -0.2),  # the wound grew
    ([(0, 10.0), (7, 8.0), (35, 6.0)], 0.25),  # the latest area 4 to 8 weeks before the latest one
    ([(0, 10.0), (20, 4.0)], None),  # under 4 weeks of history
    ([(0, 10.0), (70, 4.0)], None),  # the reference is too old to say anything about the last 4 weeks
    ([(0, 0.0), (28, 4.0)], None),
    ([], None),
])
def test_area_reduction_over_four_weeks(points, expected):
    reduction = area_reduction((T0 + timedelta(days=d), area) for d, area in reversed(points))
    assert reduction == (None if expected is None else pytest.approx(expected))


# ---------------------------------------------------------------------------------------------- through the API


@pytest.fixture
def assess(session, world):
    """Add an assessment of the patient's wound `days_ago`, with only the fields the cadence reads."""

    def add(days_ago: float, *, p_heal: float | None = None, area: float | None = None) -> Assessment:
        captured = utcnow() - timedelta(days=days_ago)
        scan = Scan(wound_id=world.wound.id, patient_id=world.patient.id, uploaded_by=world.clinician.id,
                    captured_at=captured, scan_key="scans/x/scan.ply", scan_format="ply", scan_bytes=10,
                    scan_sha256="0" * 64, status="assessed")
        session.add(scan)
        session.flush()
        assessment = Assessment(scan_id=scan.id, wound_id=world.wound.id, patient_id=world.patient.id,
                                captured_at=captured, area_cm2=area, p_heal_12w=p_heal, result={},
                                model_versions={}, flags=[])
        session.add(assessment)
        session.commit()
        return assessment

    return add


@pytest.fixture
def slot_at(session):
    def add(provider, starts_at: datetime, status: SlotStatus = SlotStatus.open) -> Slot:
        slot = Slot(provider_id=provider.id, starts_at=starts_at, ends_at=starts_at + timedelta(minutes=30),
                    status=status)
        session.add(slot)
        session.commit()
        return slot

    return add


def follow_up(client, auth, user, wound) -> dict:
    response = client.get(f"/wounds/{wound.id}/follow-up", headers=auth(user))
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize(("p_heal", "days", "risk"), [(0.3, 7, "high risk"), (0.65, 14, "moderate"),
                                                      (0.9, 28, "low risk")])
def test_follow_up_from_the_latest_prognosis(client, auth, world, assess, slot_at, make_user, p_heal, days, risk):
    assess(60, p_heal=0.99 - p_heal)  # an older prognosis, which must not count
    latest = assess(2, p_heal=p_heal)
    due = latest.captured_at + timedelta(days=days)
    outsider = make_user(Role.clinician)
    slot_at(world.clinician, due - timedelta(days=1, hours=1))  # before the day before due
    slot_at(outsider, due - timedelta(hours=20))  # not on the care team
    slot_at(world.clinician, due - timedelta(hours=12), SlotStatus.booked)
    chosen = slot_at(world.caregiver, due - timedelta(hours=3))
    slot_at(world.clinician, due + timedelta(days=1))
    answer = follow_up(client, auth, world.patient_user, world.wound)
    assert (answer["interval_days"], answer["basis"], answer["latest_assessment_id"]) == (days, "prognosis", latest.id)
    assert datetime.fromisoformat(answer["due_at"]) == due
    assert risk in answer["reasons"][0]
    assert answer["next_slot"]["id"] == chosen.id and answer["next_slot"]["provider_id"] == world.caregiver.id


@pytest.mark.parametrize(("latest_area", "days"), [(6.0, 7), (4.0, 14)])
def test_follow_up_falls_back_to_the_area_trend(client, auth, world, assess, latest_area, days):
    assess(40, area=10.0, p_heal=0.95)
    assess(5, area=latest_area)
    answer = follow_up(client, auth, world.clinician, world.wound)
    assert (answer["interval_days"], answer["basis"]) == (days, "area_trend")
    assert any("Sheehan" in reason for reason in answer["reasons"])
    assert answer["next_slot"] is None


def test_follow_up_without_a_trend_is_weekly_and_overdue(client, auth, world, assess, slot_at):
    latest = assess(10, area=3.0)  # one measurement, no prognosis: due 3 days ago
    slot_at(world.clinician, utcnow() - timedelta(hours=1))  # past: not bookable
    tomorrow = slot_at(world.clinician, utcnow() + timedelta(days=1))
    answer = follow_up(client, auth, world.caregiver, world.wound)
    assert (answer["interval_days"], answer["basis"]) == (7, "no_trend")
    assert datetime.fromisoformat(answer["due_at"]) == latest.captured_at + timedelta(days=7)
    assert any("overdue" in reason for reason in answer["reasons"])
    assert answer["next_slot"]["id"] == tomorrow.id


def test_follow_up_without_any_assessment(client, auth, world):
    before = utcnow()
    answer = follow_up(client, auth, world.clinician, world.wound)
    assert (answer["interval_days"], answer["basis"], answer["latest_assessment_id"]) == (7, "no_assessment", None)
    assert "no assessment" in answer["reasons"][0]
    assert before <= datetime.fromisoformat(answer["due_at"]) <= utcnow()
    assert answer["next_slot"] is None


def test_follow_up_only_for_those_who_may_see_the_wound(client, auth, world):
    for outsider in (world.other_user, world.other_clinician):
        response = client.get(f"/wounds/{world.wound.id}/follow-up", headers=auth(outsider))
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert client.get(f"/wounds/{world.wound.id}/follow-up").status_code == 401
    assert follow_up(client, auth, world.admin, world.wound)["wound_id"] == world.wound.id

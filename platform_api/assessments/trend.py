"""A wound's course: its measurements over time and the percent area reduction (PAR) from the baseline.

PAR = 100 (A0 - A) / A0, A0 the area of the first assessment that has one. Sheehan et al. (Diabetes Care 2003,
26:1879) found that diabetic foot ulcers reduced by less than 50% at 4 weeks rarely heal by 12 weeks, so the
summary gives the reduction at week 4 once an assessment lies near it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from platform_api.assessments.models import Assessment
from platform_api.assessments.schemas import TrendPoint, TrendRead, TrendSummary
from platform_api.assessments.service import wound_assessments
from platform_api.audit.service import record_read
from platform_api.patients.service import visible_wound

if TYPE_CHECKING:
    from platform_api.deps import Caller

FOUR_WEEKS = timedelta(weeks=4)
# a visit this close to day 28 counts as the week-4 visit (weekly clinics rarely land on the day)
WEEK_4_WINDOW = timedelta(days=4)
SHEEHAN_PAR = 50.0


def read_trend(session: Session, *, caller: Caller, wound_id: str) -> TrendRead:
    """The wound's trend (audited as a read of its assessments)."""
    wound = visible_wound(session, caller=caller, wound_id=wound_id)
    result = trend(wound.id, wound_assessments(session, wound_id=wound.id))
    record_read(session, caller=caller, resource_type="assessment", resource_id=None, patient_id=wound.patient_id)
    return result


def trend(wound_id: str, assessments: Sequence[Assessment]) -> TrendRead:
    """Each assessment's size and PAR, oldest first, and the summary; `assessments` in capture order."""
    measured = [a for a in assessments if a.area_cm2 is not None]
    baseline_area = measured[0].area_cm2 if measured else None
    points = [TrendPoint(assessment_id=a.id, captured_at=a.captured_at, area_cm2=a.area_cm2,
                         volume_cm3=a.volume_cm3, max_depth_mm=a.max_depth_mm,
                         area_reduction_pct=reduction(baseline_area, a.area_cm2)) for a in assessments]
    return TrendRead(wound_id=wound_id, points=points, summary=summary(points))


def reduction(baseline_area: float | None, area: float | None) -> float | None:
    """Percent area reduction from the baseline; None without both areas or with a zero baseline."""
    if baseline_area is None or area is None or baseline_area <= 0:
        return None
    return 100.0 * (baseline_area - area) / baseline_area


def summary(points: list[TrendPoint]) -> TrendSummary:
    """Baseline, latest, PAR, weeks between them, and the week-4 PAR with Sheehan's 50% rule."""
    measured = [p for p in points if p.area_cm2 is not None]
    if not measured:
        return TrendSummary(baseline=None, latest=None, area_reduction_pct=None, weeks_since_baseline=None,
                            area_reduction_4w_pct=None, on_track_4w=None)
    baseline, latest = measured[0], measured[-1]
    week_4 = week_4_point(measured)
    par_4w = None if week_4 is None else week_4.area_reduction_pct
    return TrendSummary(baseline=baseline, latest=latest, area_reduction_pct=latest.area_reduction_pct,
                        weeks_since_baseline=(latest.captured_at - baseline.captured_at) / timedelta(weeks=1),
                        area_reduction_4w_pct=par_4w, on_track_4w=None if par_4w is None else par_4w >= SHEEHAN_PAR)


def week_4_point(measured: list[TrendPoint]) -> TrendPoint | None:
    """The measured assessment nearest to 4 weeks after the baseline, if one lies within WEEK_4_WINDOW of it."""
    target = measured[0].captured_at + FOUR_WEEKS
    near = [p for p in measured[1:] if abs(p.captured_at - target) <= WEEK_4_WINDOW]
    return min(near, key=lambda p: abs(p.captured_at - target)) if near else None

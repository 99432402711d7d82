"""The follow-up cadence rule: how soon a wound should be seen again, from the prognosis of its latest assessment
or, without one, from its 4-week area trend. Pure functions (no database), so the rule is tested on its own."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

HIGH_RISK_BELOW = 0.5  # p_heal_12w under this: high risk of not healing within 12 weeks
LOW_RISK_FROM = 0.8  # p_heal_12w at or over this: low risk; between the two: moderate
WEEKLY_DAYS, FORTNIGHTLY_DAYS, FOUR_WEEKLY_DAYS = 7, 14, 28
# Sheehan et al. 2003 (Diabetes Care 26:1879): under 50% area reduction at 4 weeks predicts non-healing at 12
TREND_MIN_REDUCTION = 0.5
TREND_WEEKS = 4
TREND_MAX_WEEKS = 8  # an older reference area says little about the last 4 weeks

Basis = Literal["prognosis", "area_trend", "no_trend", "no_assessment"]


@dataclass(frozen=True)
class Cadence:
    interval_days: int
    basis: Basis
    reasons: tuple[str, ...]


def cadence(*, assessed: bool, p_heal_12w: float | None, area_reduction: float | None) -> Cadence:
    """The follow-up interval: by prognosis when there is one, else by the 4-week area trend, else weekly."""
    if not assessed:
        return Cadence(WEEKLY_DAYS, "no_assessment", ("no assessment of this wound yet: see it now, then weekly",))
    if p_heal_12w is not None and math.isfinite(p_heal_12w):
        return _by_prognosis(p_heal_12w)
    if area_reduction is not None and math.isfinite(area_reduction):
        return _by_trend(area_reduction)
    return Cadence(WEEKLY_DAYS, "no_trend", (
        f"no prognosis on the latest assessment and no area measured {TREND_WEEKS} to {TREND_MAX_WEEKS} weeks "
        "before the latest one: weekly until the trend is known",))


def _by_prognosis(p: float) -> Cadence:
    if p < HIGH_RISK_BELOW:
        return Cadence(WEEKLY_DAYS, "prognosis", (
            f"high risk of non-healing: p_heal_12w {p:.2f} < {HIGH_RISK_BELOW}: weekly",))
    if p < LOW_RISK_FROM:
        return Cadence(FORTNIGHTLY_DAYS, "prognosis", (
            f"moderate risk: p_heal_12w {p:.2f} between {HIGH_RISK_BELOW} and {LOW_RISK_FROM}: every 14 days",))
    return Cadence(FOUR_WEEKLY_DAYS, "prognosis", (
        f"low risk: p_heal_12w {p:.2f} >= {LOW_RISK_FROM}: every 28 days",))


def _by_trend(reduction: float) -> Cadence:
    if reduction < TREND_MIN_REDUCTION:
        return Cadence(WEEKLY_DAYS, "area_trend", (
            "no prognosis on the latest assessment",
            f"area reduction over {TREND_WEEKS} weeks {reduction:.0%} < {TREND_MIN_REDUCTION:.0%}, which predicts "
            "non-healing at 12 weeks (Sheehan 2003): weekly"))
    return Cadence(FORTNIGHTLY_DAYS, "area_trend", (
        "no prognosis on the latest assessment",
        f"area reduction over {TREND_WEEKS} weeks {reduction:.0%} >= {TREND_MIN_REDUCTION:.0%}, on track to heal "
        "(Sheehan 2003): every 14 days"))


def area_reduction(areas: Iterable[tuple[datetime, float]]) -> float | None:
    """The fraction of wound area lost since the latest area measured 4 to 8 weeks before the latest one (negative:
    the wound grew); None without such a pair."""
    points = sorted(areas)
    if not points:
        return None
    latest_at, latest_area = points[-1]
    earlier = [area for at, area in points
               if latest_at - timedelta(weeks=TREND_MAX_WEEKS) <= at <= latest_at - timedelta(weeks=TREND_WEEKS)]
    if not earlier or earlier[-1] <= 0:
        return None
    return (earlier[-1] - latest_area) / earlier[-1]

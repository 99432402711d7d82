"""Which dressing types suit a wound, from the numbers of its latest assessment: a pure function of named
thresholds, so the rules can be read, tested and argued with in one place.

The rules follow common wound-bed-preparation practice (TIME: tissue, infection, moisture, edge): fill deep
cavities, absorb heavy exudate and keep occlusive or moisture-donating dressings off it, debride slough and
necrosis autolytically, treat signs of infection with an antimicrobial (and nothing occlusive), and protect
shallow, dry, epithelialising wounds. It is decision support; the treating clinician decides.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from platform_api.commerce.models import DressingType as T

DEEP_CAVITY_MM = 5.0  # deeper than this, a cavity needs filling (dead space collects exudate)
SHALLOW_MM = 2.0  # at most this deep, a wound is superficial
DEBRIDEMENT_SHARE = 0.25  # slough + necrotic area fraction from which autolytic debridement is indicated
EPITHELIALISING_SHARE = 0.5  # epithelialising area fraction from which the wound is closing
HEAVY_EXUDATE = frozenset({"heavy"})
MODERATE_EXUDATE = frozenset({"moderate"})
LOW_EXUDATE = frozenset({"none", "low"})
INFECTION_WORDS = ("infect",)  # matches infection, infected, suspected_infection in flags and metadata keys
INFECTED_VALUES = ("infect", "suspected infect", "suspected_infect")
NEGATIVE = frozenset({"no", "none", "false", "0", "absent"})
STRONG, USEFUL, FALLBACK = 3, 2, 1
FIRST = 6  # more than any other rules add up to: an infection is treated before anything else


@dataclass(frozen=True)
class Findings:
    """What the rules read from one assessment (None: not measured)."""

    max_depth_mm: float | None = None
    exudate: str | None = None
    tissue: dict[str, float] = field(default_factory=dict)  # tissue class -> area fraction (0..1)
    infection: bool = False


@dataclass(frozen=True)
class Advice:
    dressing_type: T
    score: int
    reasons: tuple[str, ...]


@dataclass
class _Tally:
    score: dict[T, int] = field(default_factory=lambda: defaultdict(int))
    reasons: dict[T, list[str]] = field(default_factory=lambda: defaultdict(list))
    avoid: dict[T, list[str]] = field(default_factory=lambda: defaultdict(list))

    def use(self, types: tuple[T, ...], points: int, reason: str) -> None:
        for kind in types:
            self.score[kind] += points
            self.reasons[kind].append(reason)

    def shun(self, types: tuple[T, ...], reason: str) -> None:
        for kind in types:
            self.avoid[kind].append(reason)


def recommend(findings: Findings) -> tuple[list[Advice], list[Advice]]:
    """The dressing types to use, best first, and those to avoid, each with its reasons."""
    tally = _Tally()
    for rule in (_depth, _exudate, _debridement, _infection, _closing):
        rule(findings, tally)
    if not tally.score:
        tally.use((T.foam,), FALLBACK, "no specific indication: a foam protects and absorbs moderately")
    avoid = [Advice(kind, 0, tuple(tally.avoid[kind])) for kind in T if kind in tally.avoid]
    # an avoided type stays avoided whatever else speaks for it: the safety reason wins
    use = [Advice(kind, tally.score[kind], tuple(tally.reasons[kind])) for kind in T
           if tally.score[kind] > 0 and kind not in tally.avoid]
    use.sort(key=lambda advice: -advice.score)  # stable: ties keep the DressingType order
    return use, avoid


def _depth(f: Findings, tally: _Tally) -> None:
    if f.max_depth_mm is not None and f.max_depth_mm > DEEP_CAVITY_MM:
        tally.use((T.alginate, T.foam), USEFUL, f"deep cavity ({f.max_depth_mm:.1f} mm > {DEEP_CAVITY_MM:g} mm): "
                                                 "fill the dead space with an alginate rope or a foam filler")
        tally.shun((T.film,), "a film cannot fill a cavity and traps exudate in it")


def _exudate(f: Findings, tally: _Tally) -> None:
    if f.exudate in HEAVY_EXUDATE:
        tally.use((T.alginate, T.foam), STRONG, "heavy exudate: an absorbent alginate or foam")
        tally.shun((T.film, T.hydrogel), "heavy exudate: a film or hydrogel would macerate the wound edge")
    elif f.exudate in MODERATE_EXUDATE:
        tally.use((T.foam,), USEFUL, "moderate exudate: a foam absorbs it and keeps the bed moist")
        tally.use((T.alginate,), FALLBACK, "moderate exudate: an alginate absorbs it")


def _debridement(f: Findings, tally: _Tally) -> None:
    share = f.tissue.get("slough", 0.0) + f.tissue.get("necrotic", 0.0)
    if share >= DEBRIDEMENT_SHARE:
        tally.use((T.hydrogel,), STRONG, f"slough and necrosis cover {share:.0%} (>= {DEBRIDEMENT_SHARE:.0%}): "
                                         "a hydrogel for autolytic debridement")


def _infection(f: Findings, tally: _Tally) -> None:
    if f.infection:
        tally.use((T.antimicrobial,), FIRST, "signs of infection: an antimicrobial dressing (silver, iodine "
                                                  "or PHMB), alongside a clinical review")
        tally.shun((T.film, T.hydrocolloid), "signs of infection: no occlusive dressing")


def _closing(f: Findings, tally: _Tally) -> None:
    shallow = f.max_depth_mm is not None and f.max_depth_mm <= SHALLOW_MM
    epithelialising = f.tissue.get("epithelialising", 0.0) >= EPITHELIALISING_SHARE
    if shallow and epithelialising and f.exudate in LOW_EXUDATE:
        tally.use((T.film, T.hydrocolloid), USEFUL, f"shallow (<= {SHALLOW_MM:g} mm), epithelialising, little "
                                                     "exudate: a film or hydrocolloid protects the new epithelium")


def has_infection_signs(flags: list | None, metadata: dict | None) -> bool:
    """Whether the assessment's flags or the scan's metadata say the wound is (suspected) infected."""
    codes = [str(flag.get("code", "")) if isinstance(flag, dict) else str(flag) for flag in flags or []]
    # {"infection": true}, {"infected": "yes"} or {"status": "infected"}; {"infection": false} says the opposite
    said = [key for key, value in (metadata or {}).items() if value and str(value).lower() not in NEGATIVE]
    said += [value for value in (metadata or {}).values()  # a value says so only on its own ("no infection" not)
             if isinstance(value, str) and value.lower().startswith(INFECTED_VALUES)]
    return any(word in text.lower() for text in codes + said for word in INFECTION_WORDS)

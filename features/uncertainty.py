"""95% intervals for the measurements, from the scan's own noise, point density, skin fit and outline.

Every interval is the estimate +- Z95 * sqrt(sum of variance terms). A term is either a standard error
(noise averaged over the points that carry a number, the skin fit's standard error) or a systematic error
known only by its bound b, counted as a uniform error on [-b, b], variance b^2 / 3 (the GUM's rectangular
distribution). The terms, per number:

- area: the outline's random placement along its length, its common offset, and its placement beside
  gaps in the data (features.resolution);
- volume: the skin's height over the opening (its fit's standard error, and its systematic error over a
  patch: the RMS of held-out ring sectors' median prediction errors, features.surface), the area terms times
  the bed depth there, the band beside steep walls whose points range noise throws sideways, the bed noise;
- max depth: the skin's height there, the local fit's standard error, and the bias of the chosen local fit:
  what the growing-neighbourhood rule admits, or its move from the smallest fit (or to the one that
  disagreed) extrapolated to no neighbourhood (a cone's tip flattened; features.deepest), the larger;
- the noise terms (bed noise, the local fit's error, the skin's standard error for the volume) are scaled
  by the design effect: how much noise neighbouring points share (upsampled depth rasters; features.noise),
  which averaging cannot remove;
- perimeter, length, width: the outline's placement at the ends, and how much each number moves when the
  outline is smoothed once more (corners rounded, wiggles ironed out), extrapolated to no smoothing; for the
  width also the spread across the chords nearly as long as the longest, any of which noise could pick;
  and for both, how far the wound-labelled points reach beyond them (a spike, lobe or piece too thin for the
  outline's kernel, which the longest chord or the width of a ragged edge may end on; features.resolution).

The constants below are the model's only free numbers. Those marked "calibrated" were fitted on the
analytic shapes of tests/features/analytic.py (default seed) and phantom seed 404 alone, then checked on
other seeds of both; the rest follow from the geometry as their comments say.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.deepest import ICI_THRESHOLD
from features.resolution import OutlineProbe

Z95 = 1.96
# Random outline placement error, in point spacings, independent every spacing along the outline: the
# skin-density kernel holds only a handful of points at the edge (judged, not fitted; it matters little).
PLACEMENT = 0.5
OFFSET = 0.1  # calibrated: common offset of the whole outline, in spacings (edge pixels lean to one surface)
GAP_SHARE = 2.0  # across a gap the edge may lie anywhere: a bound of the gap's full width, twice the probe
CHORD_EXTRAPOLATION = 1.5  # calibrated: bound on a chord error per unit of its drop under extra smoothing
PERIMETER_EXTRAPOLATION = 1.0  # calibrated: the same for the perimeter
WALL_BAND = 0.7  # calibrated: the band beside a wall whose bed may read shallow, in range-noise units
# share of the held-out-sector skin error that reaches the deepest point (inherited; the volume uses the
# sectors' median errors instead, which need no share)
MODEL_SHARE = 0.5


@dataclass
class Evidence:
    """What the engine learned about the scan that bounds its errors (SI units)."""

    noise: float
    skin_std: float
    skin_model: float
    max_depth_std: float
    edge_depth: float
    max_depth_shift: float = 0.0  # chosen local fit's move from the smallest, extrapolated (features.deepest)
    max_depth_location: float = 0.0  # how much shallower the uncertainly located spot may read (features.deepest)
    spacing: float = 0.0
    n_wound: int = 0
    design_effect: float = 1.0  # neighbouring points share noise: a local mean's variance is this times sigma^2/k
    skin_bias: float = 0.0  # held-out sectors' median skin error, RMS over sectors (features.surface)
    outline: OutlineProbe | None = None


def _interval(value: float, std: float) -> list[float]:
    return [max(value - Z95 * std, 0.0), value + Z95 * std]


def _rss(*terms: float) -> float:
    return float(np.sqrt(np.sum(np.square(terms))))


def _bound(b: float) -> float:
    """Standard uncertainty of a systematic error known only to lie within +-b."""
    return abs(b) / np.sqrt(3.0)


def intervals(report: dict, ev: Evidence) -> dict:
    """A [low, high] 95% interval for every number in the report (same units as the report)."""
    probe = ev.outline or OutlineProbe(0.0, 0.0, 0.0, 0.0, 0.0)
    area, perim = report["area_cm2"] * 1e-4, report["perimeter_cm"] * 1e-2
    placement = float(np.hypot(_outline_terms(perim, ev.spacing), _gap_term(probe)))
    sd = {
        "area_cm2": placement * 1e4,
        "volume_cm3": _volume_sd(report, ev, probe) * 1e6,
        "max_depth_mm": _max_depth_sd(ev) * 1e3,
        "perimeter_cm": _outline_sd(ev.spacing, 2 * np.pi, PERIMETER_EXTRAPOLATION * probe.perimeter_shift) * 1e2,
        "length_cm": _rss(_outline_sd(ev.spacing, 2.0, CHORD_EXTRAPOLATION * probe.length_shift),
                          _bound(probe.length_beyond)) * 1e2,
        "width_cm": _rss(_outline_sd(ev.spacing, 2.0, CHORD_EXTRAPOLATION * probe.width_shift),
                         _bound(probe.width_spread), _bound(probe.width_beyond)) * 1e2,
        "surface_area_cm2": np.hypot(placement, 0.05 * report["surface_area_cm2"] * 1e-4) * 1e4,
    }
    rel_volume = sd["volume_cm3"] / max(report["volume_cm3"], 1e-12)
    rel_area = sd["area_cm2"] / max(report["area_cm2"], 1e-12)
    sd["mean_depth_mm"] = report["mean_depth_mm"] * np.hypot(rel_volume, rel_area)
    out = {name: _interval(report[name], float(s)) for name, s in sd.items()}
    if report.get("tissue"):
        out["tissue"] = _tissue_intervals(report["tissue"], ev, placement / max(area, 1e-12))
    return out


def _outline_terms(perimeter: float, spacing: float) -> float:
    """Area error from where the outline lies where it is sampled: random along it, and a common offset."""
    random = PLACEMENT * spacing * np.sqrt(perimeter * spacing)  # perimeter / spacing independent stretches
    return float(np.hypot(random, OFFSET * spacing * perimeter))


def _gap_term(probe: OutlineProbe) -> float:
    """Area error where the outline crosses gaps in the data (a shadow behind a rim, a dropout)."""
    return _bound(GAP_SHARE * probe.gap_area)


def _volume_sd(report: dict, ev: Evidence, probe: OutlineProbe) -> float:
    area, perim = report["area_cm2"] * 1e-4, report["perimeter_cm"] * 1e-2
    # The skin's height error over the opening: its fit's standard error (which counts the ring's points as
    # independent, hence the design effect) and its systematic error over a patch, as seen when predicting
    # held-out sectors of the ring. Per point that error hides under the noise; per sector it does not.
    skin = np.hypot(ev.skin_std * np.sqrt(ev.design_effect), ev.skin_bias)
    bed_noise = ev.noise * area * np.sqrt(ev.design_effect / max(ev.n_wound, 1))  # noise averaged over the bed
    # Range noise scatters a wall's points sideways over the bed. The bed fit weighs them down
    # (features.fields.height_weights), but what of them remains may make it read shallow in a band about
    # the noise wide beside the outline (a one-sided error, bounded here).
    wall = _bound(WALL_BAND * ev.noise * perim * ev.edge_depth)
    # Moving a sampled outline moves bed as deep as the bed at the outline; across a gap the true edge
    # may lie a gap's width away, past the wall, where the bed is as deep as the wound on average.
    outline = _outline_terms(perim, ev.spacing) * ev.edge_depth
    gap = _gap_term(probe) * report["mean_depth_mm"] * 1e-3
    return _rss(area * skin, outline, gap, wall, bed_noise)


def _max_depth_sd(ev: Evidence) -> float:
    """Skin height, fit error, and the bias of the chosen neighbourhood.

    The growing-neighbourhood rule keeps a larger fit while it agrees with the smaller ones to within
    ICI_THRESHOLD standard errors, so it can let through a bias that large (a flattened tip); where the
    chosen fit's move from the smallest one, extrapolated to a fit of no size, is larger, it bounds the bias.
    """
    skin = np.hypot(ev.skin_std, MODEL_SHARE * ev.skin_model)
    fit = ev.max_depth_std * np.sqrt(ev.design_effect)  # the fit's error counts points as independent
    bias = max(abs(ev.max_depth_shift), ICI_THRESHOLD * fit)
    return _rss(skin, fit, _bound(bias), _bound(ev.max_depth_location))


def _outline_sd(spacing: float, offset_gain: float, smoothing_bound: float) -> float:
    """A number read off the outline: placement at its two ends, common offset, and smoothing.

    Args:
        offset_gain: how much the number grows when the whole outline moves out by one metre (2 for a
            chord, 2 pi for a perimeter).
        smoothing_bound: how far smoothing may have moved the number: its drop under one more smoothing
            pass, extrapolated back to no smoothing (corners rounded off, wiggles ironed out).
    """
    ends = np.sqrt(2.0) * PLACEMENT * spacing
    return _rss(ends, offset_gain * OFFSET * spacing, _bound(smoothing_bound))


def _tissue_intervals(shares: dict[str, float], ev: Evidence, edge_share: float) -> dict[str, list[float]]:
    # neighbouring points share a tissue patch, so the effective sample is far smaller than the count
    n_eff = max(ev.n_wound / 10.0, 1.0)
    out = {}
    for name, p in shares.items():
        p = min(max(p, 0.0), 1.0)  # a share summed from areas can round a hair past 1 (then sqrt of < 0)
        s = np.hypot(np.sqrt(p * (1 - p) / n_eff), edge_share * p)
        out[name] = [max(p - Z95 * s, 0.0), min(p + Z95 * s, 1.0)]
    return out

"""95% intervals for the measurements, from the scan's own noise, point density and skin fit.

Each number's standard error combines the error sources that move it:
- the outline's position, known to about a fraction of the point spacing (density);
- the reconstructed skin's height over the opening: the fit's own standard error plus the model error seen
  when the skin is predicted across held-out sectors of the ring (fit);
- the range noise averaged over the points that carry a number (noise);
- a small relative floor for what the discretisation itself can do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Z95 = 1.96
# Outline position error as a fraction of the point spacing: the 0.5-contour of labelled points lies
# within half a spacing of the true edge, and the error is correlated along the outline.
BOUNDARY_FRACTION = 0.3
MODEL_SHARE = 0.5  # share of the held-out-sector error that reaches the middle of the opening


@dataclass
class Evidence:
    """What the engine learned about the scan that bounds its errors (SI units)."""

    noise: float
    skin_std: float
    skin_model: float
    max_depth_std: float
    edge_depth: float
    spacing: float = 0.0
    n_wound: int = 0


def _interval(value: float, std: float) -> list[float]:
    return [max(value - Z95 * std, 0.0), value + Z95 * std]


def intervals(report: dict, ev: Evidence) -> dict:
    """A [low, high] 95% interval for every number in the report (same units as the report)."""
    area = report["area_cm2"] * 1e-4
    perim = report["perimeter_cm"] * 1e-2
    volume = report["volume_cm3"] * 1e-6
    boundary = BOUNDARY_FRACTION * ev.spacing
    skin = np.hypot(ev.skin_std, MODEL_SHARE * ev.skin_model)  # height error of the skin over the opening
    bed_noise = ev.noise * area / np.sqrt(max(ev.n_wound, 1))  # noise averaged over the bed points
    sd = {
        "area_cm2": np.hypot(perim * boundary, 0.005 * area) * 1e4,
        "perimeter_cm": np.hypot(2 * np.pi * boundary, 0.02 * perim) * 1e2,
        "length_cm": np.hypot(2 * boundary, 0.01 * report["length_cm"] * 1e-2) * 1e2,
        "width_cm": np.hypot(2 * boundary, 0.01 * report["width_cm"] * 1e-2) * 1e2,
        "volume_cm3": _rss(area * skin, perim * boundary * ev.edge_depth, bed_noise, 0.01 * volume) * 1e6,
        "max_depth_mm": _rss(skin, ev.max_depth_std, 0.02 * report["max_depth_mm"] * 1e-3) * 1e3,
        "surface_area_cm2": np.hypot(perim * boundary, 0.05 * report["surface_area_cm2"] * 1e-4) * 1e4,
    }
    rel_volume = sd["volume_cm3"] / max(report["volume_cm3"], 1e-12)
    rel_area = sd["area_cm2"] / max(report["area_cm2"], 1e-12)
    sd["mean_depth_mm"] = report["mean_depth_mm"] * np.hypot(rel_volume, rel_area)
    out = {name: _interval(report[name], float(s)) for name, s in sd.items()}
    if report.get("tissue"):
        out["tissue"] = _tissue_intervals(report["tissue"], ev, perim * boundary / max(area, 1e-12))
    return out


def _rss(*terms: float) -> float:
    return float(np.sqrt(np.sum(np.square(terms))))


def _tissue_intervals(shares: dict[str, float], ev: Evidence, edge_share: float) -> dict[str, list[float]]:
    # neighbouring points share a tissue patch, so the effective sample is far smaller than the count
    n_eff = max(ev.n_wound / 10.0, 1.0)
    out = {}
    for name, p in shares.items():
        s = np.hypot(np.sqrt(p * (1 - p) / n_eff), edge_share * p)
        out[name] = [max(p - Z95 * s, 0.0), min(p + Z95 * s, 1.0)]
    return out

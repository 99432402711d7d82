"""Readable tables for the command line: one measurement, or measurements against phantom truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

NUMBERS = [
    ("area_cm2", "area", "cm²"), ("volume_cm3", "volume", "cm³"), ("max_depth_mm", "max depth", "mm"),
    ("mean_depth_mm", "mean depth", "mm"), ("perimeter_cm", "perimeter", "cm"), ("length_cm", "length", "cm"),
    ("width_cm", "width", "cm"), ("surface_area_cm2", "bed surface", "cm²"),
]
CHECKED = ["area_cm2", "volume_cm3", "max_depth_mm", "perimeter_cm", "length_cm", "width_cm"]


def measurement_table(result: dict) -> str:
    """The report of one scan as aligned text."""
    lines = [f"{'measure':<12} {'value':>9}  {'95% interval':<20} unit"]
    for key, label, unit in NUMBERS:
        lo, hi = result["uncertainty"][key]
        lines.append(f"{label:<12} {result[key]:>9.3f}  [{lo:7.3f}, {hi:7.3f}]   {unit}")
    if result.get("tissue"):
        shares = ", ".join(f"{k} {100 * v:.0f}%" for k, v in result["tissue"].items() if v > 0)
        lines.append(f"{'tissue':<12} {shares}")
    q = result["quality"]
    lines.append(f"quality: {q['points']} points, {q['wound_points']} wound, spacing {q['spacing_mm']:.2f} mm, "
                 f"noise {q['noise_mm']:.2f} mm, skin fit {q['skin_fit_rms_mm']:.2f} mm ({q['skin_model']})")
    lines += [f"warning: {w}" for w in q["warnings"]]
    return "\n".join(lines)


def compare_folder(folder: Path, profile: str = "demo") -> dict:
    """Measure each phantom in `folder`, print truth against measurement, return the error summary."""
    from features.io import ScanError, read_scan
    from features.measure import MeasureSettings, measure
    from features.params import load_params

    truths = sorted(Path(folder).glob("*.truth.json"))
    if not truths:
        raise ScanError(f"{folder}: no *.truth.json files; make phantoms with 'coherency data phantoms'")
    settings = MeasureSettings.from_params(load_params("measure", profile))
    rows = []
    header = f"{'scan':<14}" + "".join(f"{k.split('_')[0] + ' true/meas':>22}" for k in CHECKED)
    print(header)
    for truth_path in truths:
        name = truth_path.name.removesuffix(".truth.json")
        truth = json.loads(truth_path.read_text())
        result = measure(read_scan(truth_path.with_name(name + ".ply"), settings.max_points), settings)
        rows.append((truth, result))
        print(f"{name:<14}" + "".join(f"{truth[k]:>10.2f} /{result[k]:>9.2f}" for k in CHECKED))
    summary = summarise(rows)
    print("median |error| %: " + ", ".join(f"{k} {v:.1f}" for k, v in summary["median_abs_error_pct"].items()))
    print(f"95% intervals cover the truth in {100 * summary['coverage']:.0f}% of cases")
    return summary


def summarise(rows: list[tuple[dict, dict]]) -> dict:
    """Median absolute relative error per number and the intervals' coverage."""
    errors = {k: [abs(r[k] - t[k]) / t[k] for t, r in rows if t[k] > 0] for k in CHECKED}
    inside = [r["uncertainty"][k][0] <= t[k] <= r["uncertainty"][k][1] for t, r in rows for k in CHECKED]
    return {
        "scans": len(rows),
        "median_abs_error_pct": {k: 100 * float(np.median(v)) for k, v in errors.items() if v},
        "coverage": float(np.mean(inside)),
    }

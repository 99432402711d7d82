"""Measurement-engine speed: per-stage time and peak memory at 100k, 500k and 2M points.

Compares the engine's total time with Open3D's own voxel downsample + normal estimation on the same
cloud (the floor any Open3D-based pipeline pays). Prints a table; writes results/bench_measure.json.
Run with `make bench` (never part of `make test`).
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from features.io import Scan
from features.measure import MeasureSettings, measure
from features.preprocess import downsample_and_normals, point_spacing, voxel_for

SIZES = (100_000, 500_000, 2_000_000)


def limb_wound_scan(n_points: int, seed: int = 0) -> Scan:
    """A bowl wound (radius 15 mm, depth 6 mm) on a limb (radius 50 mm) sampled with about n_points."""
    rng = np.random.default_rng(seed)
    half_u, half_v, limb = 0.035, 0.05, 0.05
    spacing = np.sqrt(4 * half_u * half_v / n_points)
    u, v = (a.ravel() for a in np.meshgrid(np.arange(-half_u, half_u, spacing), np.arange(-half_v, half_v, spacing)))
    r = np.hypot(u, v)
    inside = r < 0.015
    depth = np.where(inside, 0.006 * (1 - (r / 0.015) ** 2), 0.0)
    angle = u / limb
    radial = limb - depth + rng.normal(0, 4e-4, u.size)
    points = np.column_stack([radial * np.sin(angle), v, radial * np.cos(angle) - limb])
    points = points @ Rotation.random(random_state=seed).as_matrix().T + [0.1, -0.05, 0.3]
    return Scan(points, label=inside.astype(np.uint8))


def run_size(n_points: int, repeats: int) -> dict:
    scan = limb_wound_scan(n_points)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = measure(scan)
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    traced = measure(scan)["quality"]
    tracemalloc.stop()
    # the floor reduces to the engine's own target with the engine's own voxel rule
    target = MeasureSettings().target_points
    spacing = point_spacing(scan.points)
    voxel = voxel_for(scan.points, target, spacing) if len(scan) > target else spacing
    floor = []
    for _ in range(repeats):
        start = time.perf_counter()
        downsample_and_normals(scan.points, voxel)
        floor.append(time.perf_counter() - start)
    total, floor_s = float(np.median(times)), float(np.median(floor))
    return {"points": len(scan), "total_s": total, "stage_ms": result["quality"]["stage_ms"],
            "stage_peak_mib": traced["stage_peak_mib"], "open3d_floor_s": floor_s, "ratio_to_floor": total / floor_s,
            "area_cm2": result["area_cm2"], "volume_cm3": result["volume_cm3"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("results/bench_measure.json"))
    args = parser.parse_args()
    rows = [run_size(n, args.repeats) for n in args.sizes]
    print(f"{'points':>9} {'total s':>8} {'floor s':>8} {'ratio':>6}  stages ms (peak MiB)")
    for row in rows:
        stages = ", ".join(f"{k} {v:.0f} ({row['stage_peak_mib'][k]:.0f})" for k, v in row["stage_ms"].items())
        timing = f"{row['total_s']:>8.3f} {row['open3d_floor_s']:>8.3f} {row['ratio_to_floor']:>6.2f}"
        print(f"{row['points']:>9} {timing}  {stages}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "measure", "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

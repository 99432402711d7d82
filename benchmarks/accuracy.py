"""Measurement-engine accuracy: median error and interval coverage per number on phantom sets, true labels.

Each set is SEED:TEXTURE:N (texture procedural or photo; photo drapes the FUSeg masks of data/photos and is
skipped when they are not imported). Phantoms with fewer than 300 wound points are left out, as the issue's
thresholds are for scans with a few hundred. Prints one row per set, the maximum depth's signed median per
depth profile, and writes results/bench_accuracy.json. Never part of `make test`.
Run: .venv/bin/python -P benchmarks/accuracy.py [--sets 404:procedural:48 505:photo:24 ...]
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from coherency.report import CHECKED
from features.phantoms.texture import photos_available

DEFAULT_SETS = ("404:procedural:48", "808:procedural:16", "909:procedural:16", "1111:procedural:16",
                "505:photo:24", "606:photo:24")
MIN_WOUND_POINTS = 300
PHOTOS = "data/photos"


def measure_one(job: tuple[int, str, int]) -> tuple[dict, dict] | None:
    """(truth, report) of phantom `index` of the set, or None when it has too few wound points."""
    from features.measure import measure
    from features.phantoms import PhantomConfig, make_phantom

    seed, texture, index = job
    config = PhantomConfig(texture=texture, photos_dir=PHOTOS if texture == "photo" else None)
    phantom = make_phantom(index, config, seed=seed)
    if phantom.truth["generator"]["wound_points"] < MIN_WOUND_POINTS:
        return None
    return phantom.truth, measure(phantom.scan)


def summarise(rows: list[tuple[dict, dict]]) -> dict:
    """Median |relative error| and coverage per number, and the max depth's signed median per profile."""
    out = {"scans": len(rows), "median_abs_error_pct": {}, "coverage": {}, "max_depth_signed_pct": {}}
    for key in CHECKED:
        out["median_abs_error_pct"][key] = 100 * float(np.median([abs(r[key] / t[key] - 1) for t, r in rows]))
        out["coverage"][key] = float(np.mean([r["uncertainty"][key][0] <= t[key] <= r["uncertainty"][key][1]
                                              for t, r in rows]))
    for profile in sorted({t["generator"]["profile"] for t, _ in rows}):
        signed = [r["max_depth_mm"] / t["max_depth_mm"] - 1 for t, r in rows if t["generator"]["profile"] == profile]
        out["max_depth_signed_pct"][profile] = 100 * float(np.median(signed))
    return out


def run_set(spec: str, pool: ProcessPoolExecutor) -> dict | None:
    seed, texture, n = spec.split(":")
    if texture not in ("procedural", "photo"):
        raise SystemExit(f"set {spec!r}: texture must be procedural or photo")
    if texture == "photo" and not photos_available(PHOTOS):
        print(f"{spec}: skipped, no photos in {PHOTOS} (coherency data import-photos DIR)")
        return None
    rows = [r for r in pool.map(measure_one, [(int(seed), texture, i) for i in range(int(n))]) if r]
    return {"set": spec, **summarise(rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(DEFAULT_SETS), help="SEED:TEXTURE:N each")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("results/bench_accuracy.json"))
    args = parser.parse_args()
    print(f"{'set':<20} {'scans':>5}  " + "  ".join(f"{k.split('_')[0]:>13}" for k in CHECKED)
          + "   (median |error| %, coverage %)")
    results = []
    with ProcessPoolExecutor(args.workers) as pool:
        for spec in args.sets:
            result = run_set(spec, pool)
            if result is None:
                continue
            results.append(result)
            cells = [f"{result['median_abs_error_pct'][k]:5.1f} ({100 * result['coverage'][k]:3.0f})" for k in CHECKED]
            print(f"{spec:<20} {result['scans']:>5}  " + "  ".join(f"{c:>13}" for c in cells), flush=True)
    for result in results:
        profiles = ", ".join(f"{p} {v:+.1f}%" for p, v in result["max_depth_signed_pct"].items())
        print(f"{result['set']:<20} max depth signed median by profile: {profiles}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "accuracy", "sets": results}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

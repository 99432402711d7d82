"""Data-quality speed: build the checked tables of a data folder and run every suite on them.

Prints one line per suite (rows, expectations, seconds) and writes results/bench_quality.json.
Never part of `make test`. Run: .venv/bin/python benchmarks/quality.py [--data data] [--reports DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def run(data: Path, reports: Path) -> dict:
    start = time.perf_counter()
    from features.quality import DataQualityError, load_tables, validate, validate_data

    imported = time.perf_counter()
    tables = load_tables(data)  # validate_data builds them again below: the two are timed apart
    built = time.perf_counter()
    suites = {}
    for name, frame in tables.items():
        lap = time.perf_counter()
        result = validate(name, frame)
        suites[name] = {"rows": result.rows, "expectations": result.evaluated, "success": result.success,
                        "seconds": time.perf_counter() - lap}
    checked = time.perf_counter()
    try:
        summary = validate_data(data, reports)
    except DataQualityError as e:
        summary = {"error": str(e)}
    end = time.perf_counter()
    return {"data": str(data), "import_seconds": imported - start, "tables_seconds": built - imported,
            "suites_seconds": checked - built, "validate_data_seconds": end - checked,
            "validate_data_summary_seconds": summary.get("seconds"), "suites": suites,
            "success": summary.get("success", False)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--reports", type=Path, default=None, help="report folder (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        result = run(args.data, args.reports or Path(scratch))
    print(f"{'suite':32s} {'rows':>8s} {'checks':>6s} {'seconds':>8s}")
    for name, suite in result["suites"].items():
        verdict = "" if suite["success"] else "  FAILED"
        print(f"{name:32s} {suite['rows']:8,d} {suite['expectations']:6d} {suite['seconds']:8.2f}{verdict}")
    print(f"import {result['import_seconds']:.1f} s, tables {result['tables_seconds']:.1f} s, "
          f"suites {result['suites_seconds']:.1f} s; validate_data end to end {result['validate_data_seconds']:.1f} s")
    out = Path("results") / "bench_quality.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

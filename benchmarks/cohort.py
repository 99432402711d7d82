"""Cohort and feature store speed: simulate, oracle, write tables, Feast apply, materialize, retrieval.

Also prints the cohort's summary (censoring, 12-week healing) and the oracle's and Sheehan's AUROC, the
reference lines of the prognosis report. Writes results/bench_cohort.json. Never part of `make test`.
Run: .venv/bin/python benchmarks/cohort.py [--patients 2000] [--online sqlite|redis]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path

import pandas as pd
from sklearn.metrics import roc_auc_score

from features.cohort import CohortConfig, oracle_table, simulate_cohort, write_cohort, write_feature_tables


class Timer:
    """Named wall-clock laps."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}

    def lap(self, name: str, start: float) -> float:
        now = time.perf_counter()
        self.laps[name] = now - start
        return now


def cohort_summary(cohort, oracle: pd.DataFrame) -> dict:
    """Censoring and healing proportions, and AUROC on the observed 12-week labels with a week-4 area."""
    o = cohort.outcomes
    known = o["healed_12w"].notna().to_numpy() & oracle["par4"].notna().to_numpy()
    y = o["healed_12w"].to_numpy()[known]
    scores = ("oracle_p12_first_visit", "oracle_p12_week4", "par4", "sheehan_p12")
    return {"patients": len(cohort.patients), "wounds": len(cohort.wounds), "visits": len(cohort.visits),
            "healed_12w_observed": float(o["healed_12w"].mean()),
            "healed_12w_true": float(cohort.truth["healed_12w"].mean()),
            "label_unknown": float(o["healed_12w"].isna().mean()),
            "lost_to_follow_up": float(o["lost_to_follow_up"].mean()), "healed_by_end": float(o["healed"].mean()),
            "auroc": {s: float(roc_auc_score(y, oracle[s].to_numpy()[known])) for s in scores},
            "healed_12w_by_etiology": cohort.truth.groupby(cohort.wounds["etiology"])["healed_12w"].mean().to_dict()}


def run(patients: int, online: str, work: Path) -> dict:
    timer, start = Timer(), time.perf_counter()
    cohort = simulate_cohort(CohortConfig(n_patients=patients))
    start = timer.lap("simulate", start)
    oracle = oracle_table(cohort)
    start = timer.lap("oracle", start)
    write_cohort(cohort, work / "cohort")
    write_feature_tables(cohort, work / "features" / "tables")
    start = timer.lap("write_parquet", start)
    import feast  # noqa: F401  (its imports take seconds: timed apart)

    from features import store as feature_store

    start = timer.lap("import_feast", start)
    project = f"coherency_bench_{uuid.uuid4().hex[:8]}"
    store = feature_store.open_store(data_dir=work / "features", online=online, project=project)
    feature_store.apply(store)
    start = timer.lap("apply", start)
    rows = pd.read_parquet(work / "features" / "tables" / "entity_rows.parquet")
    try:
        feature_store.materialize(store, rows["event_timestamp"].max().to_pydatetime())
        start = timer.lap("materialize", start)
        frame = feature_store.training_frame(store, rows, "prognosis_sequence_v1")
        start = timer.lap("historical_retrieval", start)
        feature_store.online_features(store, list(rows["wound_id"].unique()[:100]), "prognosis_gbm_v1")
        timer.lap("online_read_100", start)
    finally:
        if online == "redis":
            store.teardown()  # leave nothing in the shared Redis
    summary = cohort_summary(cohort, oracle)
    summary.update(seconds=timer.laps, online=online, training_rows=len(frame),
                   simulate_apply_materialize_s=sum(timer.laps[k] for k in ("simulate", "write_parquet", "apply",
                                                                              "materialize")))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--online", choices=("sqlite", "redis"), default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        result = run(args.patients, args.online, Path(work))
    print(f"{'step':<34}{'seconds':>8}")
    for step, seconds in result["seconds"].items():
        print(f"{step:<34}{seconds:>8.2f}")
    print(f"{'simulate+write+apply+materialize':<34}{result['simulate_apply_materialize_s']:>8.2f}")
    print(f"{result['patients']} patients, {result['wounds']} wounds, {result['visits']} visits; healed by week 12: "
          f"{result['healed_12w_observed']:.3f} observed, {result['healed_12w_true']:.3f} true; label unknown "
          f"{result['label_unknown']:.3f}; lost to follow-up {result['lost_to_follow_up']:.3f}")
    print("AUROC (observed labels, wounds with a week-4 area): "
          + ", ".join(f"{k} {v:.3f}" for k, v in result["auroc"].items()))
    out = Path("results")
    out.mkdir(exist_ok=True)
    (out / "bench_cohort.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Prognosis models on a fresh cohort: training time, and AUROC / Brier / ECE beside Sheehan's rule and the oracle.

Simulates the cohort (docs/cohort.md), trains XGBoost and the visit Transformer through Feast with the default
settings (the proposed params.yaml `gbm`, `sequence` and `prognosis` sections), fuses them and evaluates on the
test patients. Writes results/bench_prognosis.json. Never part of `make test`.
Run: .venv/bin/python -P benchmarks/prognosis.py [--patients 2000] [--seed 2026]
(-P: benchmarks/models.py would otherwise shadow the models package.)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from features.cohort import CohortConfig, generate_cohort
from models.gbm import GBMConfig
from models.lit.visits import SequenceTrainParams
from models.prognosis import PrognosisSplit, train_prognosis


def run(patients: int, seed: int, work: Path) -> dict:
    start = time.perf_counter()
    generate_cohort(CohortConfig(n_patients=patients, seed=seed), work / "cohort", work / "features" / "tables")
    metrics = train_prognosis(work, work / "models", PrognosisSplit(), GBMConfig(), SequenceTrainParams(),
                              enable_progress_bar=False, enable_model_summary=False)
    metrics["wall_seconds"] = time.perf_counter() - start
    metrics["patients"] = patients
    return metrics


def print_table(metrics: dict) -> None:
    print(f"{'week':<6}{'model':<17}{'n':>5}{'AUROC':>8}{'± se':>7}{'Brier':>8}{'ECE':>7}")
    for key in (k for k in metrics if k.startswith("week_")):
        for name, m in metrics[key]["models"].items():
            print(f"{key[5:]:<6}{name:<17}{m['n']:>5}{m['auroc']:>8.3f}{m['auroc_se']:>7.3f}{m['brier']:>8.3f}"
                  f"{m['ece']:>7.3f}")
    print(f"week-4 percent area reduction (continuous) AUROC: {metrics['week_4']['par4_auroc']:.3f}")
    print("weeks to closure, Harrell's C: "
          + ", ".join(f"{k} {v:.3f}" for k, v in metrics["weeks_to_closure_c_index"].items()))
    print("training seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in metrics["training_seconds"].items())
          + f"; whole run {metrics['wall_seconds']:.1f} s (simulate, Feast retrieval, train, evaluate)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as work:
        metrics = run(args.patients, args.seed, Path(work))
    print_table(metrics)
    out = Path("results")
    out.mkdir(exist_ok=True)
    (out / "bench_prognosis.json").write_text(json.dumps(metrics, indent=2, default=float))


if __name__ == "__main__":
    main()

"""Synthetic wound cohort for prognosis: a documented generative model, censoring and its exact oracle.

docs/cohort.md states the model. `generate_cohort` is the entry point the CLI and the pipeline call.
"""

from __future__ import annotations

from pathlib import Path

from features.cohort.model import CohortConfig, HealingModel
from features.cohort.oracle import healing_probability, oracle_table, summarise_visits
from features.cohort.simulate import Cohort, simulate_cohort, write_cohort
from features.cohort.tables import feature_tables, write_feature_tables

__all__ = ["Cohort", "CohortConfig", "HealingModel", "feature_tables", "generate_cohort", "healing_probability",
           "oracle_table", "simulate_cohort", "summarise_visits", "write_cohort", "write_feature_tables"]


def generate_cohort(config: CohortConfig, cohort_dir: str | Path, tables_dir: str | Path) -> Cohort:
    """Simulate, write the cohort and its oracle under cohort_dir and the Feast tables under tables_dir."""
    cohort = simulate_cohort(config)
    write_cohort(cohort, cohort_dir)
    oracle_table(cohort).to_parquet(Path(cohort_dir) / "oracle.parquet", index=False)
    write_feature_tables(cohort, tables_dir)
    return cohort

"""Prognosis training and evaluation from a data folder: XGBoost, the visit Transformer, and their fusion.

data_dir is what `coherency data cohort --out DIR` writes: DIR/features/tables (Feast's parquet tables, read
through the feature store) and DIR/cohort/oracle.parquet (the oracle and Sheehan's rule: evaluation only, never a
model input). Every model sees the same patient split; the fusion is fitted on the validation patients and
everything is reported on the test patients, per prediction week, beside Sheehan's rule and the oracle.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.params import from_section
from models.ensemble import fit_prognosis_fusion, fuse_prognosis
from models.evaluate import CALIBRATION_BINS, auroc, concordance_index, prognosis_report
from models.gbm import GBMConfig, GBMPrognosis, fit_gbm, load_gbm, predict_healing, predict_weeks, save_gbm

if TYPE_CHECKING:
    from models.lit.visits import SequenceTrainParams, VisitPrognosis

SLICES = ("etiology", "body_site")
LABELS = ["wound_id", "patient_id", "healed_12w", "weeks_to_closure", "censored", *SLICES]
# what the cohort's oracle table offers at each landmark: {week: {report name: column}}
REFERENCES = {0: {"oracle": "oracle_p12_first_visit"}, 4: {"sheehan": "sheehan_p12", "oracle": "oracle_p12_week4"}}
METRICS_FILE = "prognosis_metrics.json"
SEQUENCE_CHECKPOINT = "sequence-best.ckpt"  # written by models.lit.visits.train_visit_model


@dataclass(frozen=True)
class PrognosisSplit:
    """The `prognosis` section of params.yaml: the patient split every prognosis model shares."""

    seed: int = 2026
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    calibration_bins: int = CALIBRATION_BINS

    def __post_init__(self) -> None:
        if min(self.val_fraction, self.test_fraction) <= 0 or self.val_fraction + self.test_fraction >= 1:
            raise ValueError("prognosis: val_fraction and test_fraction must be > 0 with a sum below 1")
        if self.calibration_bins < 1:
            raise ValueError(f"prognosis.calibration_bins must be at least 1, got {self.calibration_bins}")

    @classmethod
    def from_params(cls, section: dict) -> PrognosisSplit:
        return from_section(cls, section, "prognosis")

    def of(self, patient_ids: pd.Series) -> np.ndarray:
        from models.data.visits import patient_split

        return patient_split(patient_ids, self.seed, self.val_fraction, self.test_fraction)


def feature_frames(data_dir: str | Path, weeks: tuple[int, ...] | None) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Point-in-time training frames through Feast: first-visit rows (GBM) and, given weeks, the sequences."""
    from features.store import apply, open_store, training_frame

    store = open_store(data_dir=Path(data_dir) / "features")
    apply(store)  # idempotent; the registry lives in the data folder
    rows = pd.read_parquet(Path(data_dir) / "features" / "tables" / "entity_rows.parquet")
    first = training_frame(store, rows[rows["prediction_week"] == 0], "prognosis_gbm_v1")
    if weeks is None:
        return first, None
    from models.data.visits import prediction_rows

    return first, training_frame(store, prediction_rows(rows, weeks), "prognosis_sequence_v1")


def wound_table(data_dir: str | Path, first_visit: pd.DataFrame, split: PrognosisSplit) -> pd.DataFrame:
    """One row per wound: labels, slices, split and the oracle / Sheehan columns (for evaluation only)."""
    table = first_visit[LABELS].assign(split=split.of(first_visit["patient_id"]))
    oracle = pd.read_parquet(Path(data_dir) / "cohort" / "oracle.parquet")
    return table.merge(oracle, on="wound_id", how="left", validate="one_to_one")


def add_gbm(table: pd.DataFrame, first_visit: pd.DataFrame, model: GBMPrognosis) -> None:
    """Add p_gbm (12-week probability) and weeks_gbm (AFT weeks to closure) to the wound table."""
    table["p_gbm"], table["weeks_gbm"] = predict_healing(model, first_visit), predict_weeks(model, first_visit)


def add_sequence(table: pd.DataFrame, sequences: pd.DataFrame, model: VisitPrognosis) -> None:
    """Add p_seq_w{week}, p_hazard_w{week} and rmst_seq_w{week} per prediction week to the wound table."""
    from models.data.visits import encode_sequences
    from models.lit.visits import predict_visits

    predicted = pd.DataFrame(predict_visits(model, encode_sequences(sequences))).assign(
        wound_id=sequences["wound_id"].to_numpy(), week=sequences["prediction_week"].to_numpy())
    for week, rows in predicted.groupby("week"):
        rows = rows.set_index("wound_id").reindex(table["wound_id"])
        table[f"p_seq_w{week}"] = rows["p_healed_12w"].to_numpy()
        table[f"p_hazard_w{week}"] = rows["p_closed_by_horizon"].to_numpy()
        table[f"rmst_seq_w{week}"] = rows["restricted_mean_weeks"].to_numpy()


def fit_sequence(sequences: pd.DataFrame, params: SequenceTrainParams, split: PrognosisSplit, out_dir: Path,
                 **trainer_overrides) -> VisitPrognosis:
    """The Transformer trained on the train patients, stopped early on the validation patients."""
    from models.data.visits import VisitDataModule
    from models.lit.visits import train_visit_model

    data = VisitDataModule(sequences, params.batch_size, split.seed, split.val_fraction, split.test_fraction)
    return train_visit_model(data, out_dir, params, **trainer_overrides)


def add_fusion(table: pd.DataFrame, weeks: tuple[int, ...]) -> dict[int, dict]:
    """Fit one fusion per prediction week on the validation wounds; add p_ens_w{week}; returns the coefficients."""
    val = (table["split"] == "val") & table["healed_12w"].notna()
    fusions = {}
    for week in weeks:
        params = fit_prognosis_fusion(table.loc[val, "p_gbm"], table.loc[val, f"p_seq_w{week}"],
                                      table.loc[val, "healed_12w"])
        table[f"p_ens_w{week}"] = fuse_prognosis(params, table["p_gbm"], table[f"p_seq_w{week}"])
        fusions[week] = params.to_dict()
    return fusions


def evaluate_table(table: pd.DataFrame, weeks: tuple[int, ...], bins: int) -> dict:
    """Metrics on the test wounds at every prediction week, and censored concordance of the time predictions."""
    test = table[table["split"] == "test"]
    slices = {name: test[name].to_numpy() for name in SLICES}
    report: dict = {}
    for week in sorted(set(weeks) | set(REFERENCES)):
        models = {"gbm": "p_gbm", "sequence": f"p_seq_w{week}", "sequence_hazard": f"p_hazard_w{week}",
                  "ensemble": f"p_ens_w{week}"}
        columns = {name: c for name, c in {**models, **REFERENCES.get(week, {})}.items() if c in test}
        if set(columns) & set(models):
            predictions = {name: test[c].to_numpy(float) for name, c in columns.items()}
            report[f"week_{week}"] = prognosis_report(test["healed_12w"].to_numpy(float), predictions, slices, bins)
    if "week_4" in report:  # the rule's score before it is cut at 50%
        rows = test["healed_12w"].notna() & test["par4"].notna()
        report["week_4"]["par4_auroc"] = auroc(test.loc[rows, "healed_12w"], test.loc[rows, "par4"])
    times = {"gbm": "weeks_gbm", **{f"sequence_w{w}": f"rmst_seq_w{w}" for w in weeks}}
    report["weeks_to_closure_c_index"] = {
        name: concordance_index(test["weeks_to_closure"], ~test["censored"].astype(bool), test[c])
        for name, c in times.items() if c in test}
    return report


def train_prognosis(data_dir: str | Path, out_dir: str | Path, split: PrognosisSplit, gbm: GBMConfig | None = None,
                    sequence: SequenceTrainParams | None = None, **trainer_overrides) -> dict:
    """Train the given models (either or both), fuse them when both are there, evaluate, write the files.

    Writes into out_dir the XGBoost JSON models, the Transformer checkpoint (SEQUENCE_CHECKPOINT), fusion.json and
    prognosis_metrics.json; returns the metrics.
    """
    if gbm is None and sequence is None:
        raise ValueError("train at least one of gbm and sequence")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    weeks = sequence.prediction_weeks if sequence is not None else ()
    first_visit, sequences = feature_frames(data_dir, weeks or None)
    table = wound_table(data_dir, first_visit, split)
    rows = table["split"].to_numpy()
    seconds = {}
    if sequence is not None:  # first: Lightning warns about checkpointing into a folder that holds files
        start = time.perf_counter()
        network = fit_sequence(sequences, sequence, split, out_dir, **trainer_overrides)
        seconds["sequence"] = time.perf_counter() - start
        add_sequence(table, sequences, network)
    if gbm is not None:
        start = time.perf_counter()
        boosters = fit_gbm(first_visit[rows == "train"], first_visit[rows == "val"], gbm)
        seconds["gbm"] = time.perf_counter() - start
        save_gbm(boosters, out_dir, gbm)
        add_gbm(table, first_visit, boosters)
    metrics = {"training_seconds": seconds,
               "params": {name: asdict(p) for name, p in (("gbm", gbm), ("sequence", sequence)) if p}}
    return {**metrics, **fuse_and_report(table, weeks, split, out_dir)}


def fuse_and_report(table: pd.DataFrame, weeks: tuple[int, ...], split: PrognosisSplit, out_dir: Path) -> dict:
    """Fit the fusion when both models' predictions are in the table, evaluate, write fusion.json and the metrics."""
    metrics: dict = {"split": asdict(split),
                     "wounds": {name: int(n) for name, n in table["split"].value_counts().items()}}
    if "p_gbm" in table and weeks:
        metrics["fusion"] = add_fusion(table, weeks)
        (out_dir / "fusion.json").write_text(json.dumps(metrics["fusion"], indent=2))
    metrics.update(evaluate_table(table, weeks, split.calibration_bins))
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2, default=float))
    return metrics


def evaluate_saved(data_dir: str | Path, gbm_dir: str | Path, sequence_checkpoint: str | Path, out_dir: str | Path,
                   split: PrognosisSplit, weeks: tuple[int, ...] | None = None) -> dict:
    """Fuse and evaluate models trained apart (the pipeline's parallel training steps), on the same split.

    weeks: the Transformer's prediction weeks (default models.data.visits.PREDICTION_WEEKS).
    """
    from models.data.visits import PREDICTION_WEEKS
    from models.lit.visits import VisitPrognosis

    weeks = tuple(weeks or PREDICTION_WEEKS)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    first_visit, sequences = feature_frames(data_dir, weeks)
    table = wound_table(data_dir, first_visit, split)
    add_gbm(table, first_visit, load_gbm(gbm_dir))
    add_sequence(table, sequences, VisitPrognosis.load_from_checkpoint(sequence_checkpoint, map_location="cpu"))
    return fuse_and_report(table, weeks, split, out_dir)


def train_from_params(which: str, data_dir: str | Path, out_dir: str | Path, profile: str = "demo",
                      params_path: str | Path = "params.yaml", **trainer_overrides) -> dict:
    """Entry point for `coherency train gbm|sequence|prognosis` and the pipeline: params.yaml sections
    `prognosis`, `gbm` and `sequence` (profile applied) -> train_prognosis. "prognosis" trains both and fuses."""
    from features.params import load_params
    from models.lit.visits import SequenceTrainParams

    if which not in ("gbm", "sequence", "prognosis"):
        raise ValueError(f"which must be gbm, sequence or prognosis, not {which!r}")
    split = PrognosisSplit.from_params(load_params("prognosis", profile, params_path))
    gbm = GBMConfig.from_params(load_params("gbm", profile, params_path)) if which != "sequence" else None
    sequence = (SequenceTrainParams.from_params(load_params("sequence", profile, params_path))
                if which != "gbm" else None)
    return train_prognosis(data_dir, out_dir, split, gbm, sequence, **trainer_overrides)

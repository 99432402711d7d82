"""XGBoost prognosis on first-visit features (Feast `prognosis_gbm_v1`): healed within 12 weeks, and weeks to closure.

Weeks to closure use XGBoost's accelerated-failure-time objective (`survival:aft`) rather than `survival:cox`:
AFT takes interval-censored labels, which is what a visit schedule gives (a closure seen at the visit of week w
happened after the previous visit, week w - s, with s the patient's visit interval; a wound still open at its last
visit, week c, closes some time after c), and it predicts a time in weeks directly, while Cox fits right-censored
times only and predicts a relative hazard that needs a separately estimated baseline to become a time.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb

from features.cohort.model import ETIOLOGIES, ETIOLOGY_PRIORS
from features.params import from_section

BODY_SITES = tuple(sorted({site for prior in ETIOLOGY_PRIORS.values() for site in prior.sites}))
AFT_DISTRIBUTIONS = ("normal", "logistic", "extreme")
MODEL_FILES = {"classifier": "gbm_healed_12w.json", "survival": "gbm_weeks_to_closure.json"}


@dataclass(frozen=True)
class GBMConfig:
    """Boosting settings shared by the two models (the `gbm` section of params.yaml)."""

    rounds: int = 600  # most trees; early stopping on the validation split picks fewer
    early_stopping_rounds: int = 40
    learning_rate: float = 0.03
    max_depth: int = 3
    min_child_weight: float = 5.0
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    reg_lambda: float = 1.0
    aft_distribution: str = "normal"  # log closure time ~ this distribution around the tree prediction
    aft_sigma: float = 1.0  # its scale on the log-weeks axis
    threads: int = 1  # on a shared 2-core machine 2 threads ran 30x slower than 1 (OpenMP spin-waits)
    seed: int = 2026

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.early_stopping_rounds < 1 or self.max_depth < 1 or self.threads < 1:
            raise ValueError("gbm: rounds, early_stopping_rounds, max_depth and threads must be at least 1")
        if not 0 < self.learning_rate <= 1:
            raise ValueError(f"gbm.learning_rate must lie in (0, 1], got {self.learning_rate}")
        for name in ("subsample", "colsample_bytree"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"gbm.{name} must lie in (0, 1], got {getattr(self, name)}")
        if self.min_child_weight < 0 or self.reg_lambda < 0 or self.aft_sigma <= 0:
            raise ValueError("gbm: min_child_weight and reg_lambda must be >= 0 and aft_sigma > 0")
        if self.aft_distribution not in AFT_DISTRIBUTIONS:
            raise ValueError(f"gbm.aft_distribution must be one of {AFT_DISTRIBUTIONS}, got {self.aft_distribution!r}")

    @classmethod
    def from_params(cls, section: dict) -> GBMConfig:
        return from_section(cls, section, "gbm")

    def booster_params(self) -> dict:
        """xgboost.train parameters common to both objectives."""
        return {"eta": self.learning_rate, "max_depth": self.max_depth, "min_child_weight": self.min_child_weight,
                "subsample": self.subsample, "colsample_bytree": self.colsample_bytree, "lambda": self.reg_lambda,
                "tree_method": "hist", "nthread": self.threads, "seed": self.seed}


@dataclass(frozen=True)
class GBMPrognosis:
    """The two boosters: P(healed within 12 weeks) and the AFT model of weeks to closure."""

    classifier: xgb.Booster
    survival: xgb.Booster


def gbm_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Numeric model inputs from a `prognosis_gbm_v1` frame (HbA1c stays NaN: XGBoost learns where missing goes)."""
    columns = {
        "age": frame["age"], "female": frame["sex"] == "F", "diabetes": frame["diabetes"], "hba1c": frame["hba1c"],
        "abi": frame["abi"], "smoker": frame["smoker"], "bmi": frame["bmi"],
        "visit_interval_weeks": frame["visit_interval_weeks"], "infection": frame["infection"],
        "duration_weeks": frame["duration_weeks"], "log_area_cm2": np.log(frame["area_cm2"].astype(float)),
        "log_depth_mm": np.log(frame["depth_mm"].astype(float)),
        "log_volume_cm3": np.log(frame["volume_cm3"].astype(float)),
        **{f"etiology_{e}": frame["etiology"] == e for e in ETIOLOGIES},
        **{f"site_{s}": frame["body_site"] == s for s in BODY_SITES},
    }
    return pd.DataFrame(columns).astype(np.float32)


def closure_interval(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """AFT label bounds in weeks: (w - visit interval, w] when closure was seen at week w, [c, inf) if censored."""
    weeks = frame["weeks_to_closure"].to_numpy(float)
    censored = frame["censored"].to_numpy(bool)
    lower = np.where(censored, weeks, np.maximum(weeks - frame["visit_interval_weeks"].to_numpy(float), 0.0))
    return lower, np.where(censored, np.inf, weeks)


def _fit(params: dict, train: xgb.DMatrix, val: xgb.DMatrix, config: GBMConfig) -> xgb.Booster:
    return xgb.train(params, train, num_boost_round=config.rounds, evals=[(val, "val")],
                     early_stopping_rounds=config.early_stopping_rounds, verbose_eval=False)


def _known_label(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["healed_12w"].notna()]


def fit_gbm(train: pd.DataFrame, val: pd.DataFrame, config: GBMConfig) -> GBMPrognosis:
    """Fit both boosters on first-visit rows; the validation rows decide when to stop adding trees."""
    labelled = [_known_label(f) for f in (train, val)]
    train_cls, val_cls = (xgb.DMatrix(gbm_features(f), label=f["healed_12w"].to_numpy(float)) for f in labelled)
    classifier = _fit({**config.booster_params(), "objective": "binary:logistic", "eval_metric": "logloss"},
                      train_cls, val_cls, config)
    train_aft, val_aft = (xgb.DMatrix(gbm_features(f)) for f in (train, val))
    for matrix, f in ((train_aft, train), (val_aft, val)):
        lower, upper = closure_interval(f)
        matrix.set_float_info("label_lower_bound", lower)
        matrix.set_float_info("label_upper_bound", upper)
    survival = _fit({**config.booster_params(), "objective": "survival:aft", "eval_metric": "aft-nloglik",
                     "aft_loss_distribution": config.aft_distribution,
                     "aft_loss_distribution_scale": config.aft_sigma}, train_aft, val_aft, config)
    return GBMPrognosis(classifier, survival)


def _best(booster: xgb.Booster, frame: pd.DataFrame) -> np.ndarray:
    """Predictions from the trees up to the early-stopping round."""
    rounds = (0, booster.best_iteration + 1) if "best_iteration" in booster.attributes() else (0, 0)
    return booster.predict(xgb.DMatrix(gbm_features(frame)), iteration_range=rounds).astype(float)


def predict_healing(model: GBMPrognosis, frame: pd.DataFrame) -> np.ndarray:
    """P(healed within 12 weeks) per row of a `prognosis_gbm_v1` frame."""
    return _best(model.classifier, frame)


def predict_weeks(model: GBMPrognosis, frame: pd.DataFrame) -> np.ndarray:
    """Predicted weeks to closure (the AFT location: the median time under the fitted distribution)."""
    return _best(model.survival, frame)


def save_gbm(model: GBMPrognosis, out_dir: str | Path, config: GBMConfig) -> dict[str, Path]:
    """Both boosters in XGBoost's JSON model format, and the config beside them; returns {name: path}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / file for name, file in MODEL_FILES.items()}
    model.classifier.save_model(paths["classifier"])
    model.survival.save_model(paths["survival"])
    paths["config"] = out_dir / "gbm_config.json"
    paths["config"].write_text(json.dumps(asdict(config), indent=2))
    return paths


def load_gbm(model_dir: str | Path) -> GBMPrognosis:
    """The boosters written by save_gbm (feature names and the early-stopping round travel in the JSON)."""
    boosters = {}
    for name, file in MODEL_FILES.items():
        boosters[name] = xgb.Booster()
        boosters[name].load_model(Path(model_dir) / file)
    return GBMPrognosis(**boosters)

"""Model evaluation, pure functions returning dicts (numpy in; no I/O, no model code).

Sections: prognosis (discrimination, Brier score, calibration, censored concordance, per-slice reports).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

# ------------------------------------------------------------------------------------------------ prognosis

CALIBRATION_BINS = 10
CONCORDANCE_CHUNK = 2048  # rows per block of the pairwise comparison: (chunk, N) booleans at a time


def _binary(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"labels and predictions must be 1-D of one length, got {y.shape} and {p.shape}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1 (drop unknown labels first)")
    if not np.isfinite(p).all():
        raise ValueError("predictions must be finite")
    return y, p


def auroc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counted half; NaN for one class."""
    y, score = _binary(y, score)
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(score)  # average ranks: ties count half (Mann-Whitney U)
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def auroc_standard_error(area: float, positives: int, negatives: int) -> float:
    """Hanley & McNeil (Radiology 1982) standard error of an AUROC from its value and the class counts."""
    q1, q2 = area / (2 - area), 2 * area**2 / (1 + area)
    variance = (area * (1 - area) + (positives - 1) * (q1 - area**2) + (negatives - 1) * (q2 - area**2))
    return float(np.sqrt(max(variance, 0.0) / (positives * negatives)))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared difference between predicted probability and outcome."""
    y, p = _binary(y, p)
    return float(np.mean((p - y) ** 2))


def reliability_table(y: np.ndarray, p: np.ndarray, bins: int = CALIBRATION_BINS) -> list[dict]:
    """Per equal-width probability bin: its edges, count, mean prediction and observed rate (empty bins left out)."""
    y, p = _binary(y, p)
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)  # p = 1 goes in the last bin
    table = []
    for b in np.unique(which):
        inside = which == b
        table.append({"lower": float(edges[b]), "upper": float(edges[b + 1]), "n": int(inside.sum()),
                      "mean_predicted": float(p[inside].mean()), "observed": float(y[inside].mean())})
    return table


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Count-weighted mean |observed rate - mean prediction| over equal-width bins."""
    table = reliability_table(y, p, bins)
    n = sum(row["n"] for row in table)
    return float(sum(row["n"] * abs(row["observed"] - row["mean_predicted"]) for row in table) / n)


def binary_metrics(y: np.ndarray, p: np.ndarray, bins: int = CALIBRATION_BINS) -> dict:
    """AUROC (with its standard error), Brier score, ECE and the reliability table of one predictor."""
    y, p = _binary(y, p)
    area, positives = auroc(y, p), int(y.sum())
    se = auroc_standard_error(area, positives, len(y) - positives) if np.isfinite(area) else float("nan")
    return {"n": len(y), "prevalence": float(y.mean()), "auroc": area, "auroc_se": se, "brier": brier(y, p),
            "ece": expected_calibration_error(y, p, bins), "reliability": reliability_table(y, p, bins)}


def compare_predictors(y: np.ndarray, predictions: dict[str, np.ndarray], bins: int = CALIBRATION_BINS) -> dict:
    """binary_metrics of every predictor, on the same rows."""
    return {name: binary_metrics(y, p, bins) for name, p in predictions.items()}


def slice_metrics(y: np.ndarray, predictions: dict[str, np.ndarray], slices: dict[str, np.ndarray]) -> dict:
    """AUROC and Brier score of every predictor within each value of each slicing variable (e.g. etiology).

    Returns {slice name: {value: {"n", "prevalence", predictor: {"auroc", "brier"}}}}; AUROC is NaN in a
    slice holding one outcome only.
    """
    y = np.asarray(y, dtype=float)
    report: dict[str, dict] = {}
    for name, values in slices.items():
        values = np.asarray(values)
        if values.shape != y.shape:
            raise ValueError(f"slice {name!r} has {values.shape} values for {y.shape} labels")
        report[name] = {}
        for value in sorted(set(values.tolist())):
            inside = values == value
            row: dict = {"n": int(inside.sum()), "prevalence": float(y[inside].mean())}
            for predictor, p in predictions.items():
                p = np.asarray(p, dtype=float)
                row[predictor] = {"auroc": auroc(y[inside], p[inside]), "brier": brier(y[inside], p[inside])}
            report[name][str(value)] = row
    return report


def concordance_index(weeks: np.ndarray, closed: np.ndarray, predicted_weeks: np.ndarray) -> float:
    """Harrell's C for censored times: among pairs where one wound is known to close first, the share in
    which it also has the shorter predicted time (ties in prediction count half).

    A pair (i, j) is comparable when i's closure was seen and either weeks_i < weeks_j, or weeks_i == weeks_j
    and j was still open then (censored).
    """
    weeks, predicted = np.asarray(weeks, dtype=float), np.asarray(predicted_weeks, dtype=float)
    closed = np.asarray(closed, dtype=bool)
    if not (weeks.shape == closed.shape == predicted.shape) or weeks.ndim != 1:
        raise ValueError("weeks, closed and predicted_weeks must be 1-D of one length")
    if np.isnan(predicted).any():
        raise ValueError("predicted weeks must not be NaN (inf is allowed: never within the horizon)")
    concordant = comparable = 0.0
    for start in range(0, len(weeks), CONCORDANCE_CHUNK):
        rows = slice(start, start + CONCORDANCE_CHUNK)
        first = weeks[rows, None] < weeks[None, :]  # (chunk, N)
        first |= (weeks[rows, None] == weeks[None, :]) & ~closed[None, :]
        first &= closed[rows, None]
        shorter = predicted[rows, None] < predicted[None, :]
        tied = predicted[rows, None] == predicted[None, :]
        comparable += first.sum()
        concordant += (first & shorter).sum() + 0.5 * (first & tied).sum()
    return float(concordant / comparable) if comparable else float("nan")


def prognosis_report(y: np.ndarray, predictions: dict[str, np.ndarray], slices: dict[str, np.ndarray],
                     bins: int = CALIBRATION_BINS) -> dict:
    """Every predictor's metrics on the rows where the label and every prediction are known, overall and per slice."""
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(y) & np.logical_and.reduce([np.isfinite(np.asarray(p, dtype=float)) for p in
                                                   predictions.values()])
    kept = {name: np.asarray(p, dtype=float)[keep] for name, p in predictions.items()}
    return {"n": int(keep.sum()), "models": compare_predictors(y[keep], kept, bins),
            "slices": slice_metrics(y[keep], kept, {name: np.asarray(v)[keep] for name, v in slices.items()})}

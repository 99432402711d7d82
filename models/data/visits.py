"""Visit sequences for the prognosis Transformer, from the Feast `prognosis_sequence_v1` training frame.

One sample per (wound, prediction week): the risk factors and the visits up to the prediction time (the
point-in-time lookup already truncates the history lists). Train / validation / test are split by patient.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from features.cohort.model import ETIOLOGIES, ETIOLOGY_PRIORS

PREDICTION_WEEKS = (0, 2, 4)
BODY_SITES = tuple(sorted({site for prior in ETIOLOGY_PRIORS.values() for site in prior.sites}))
SPLITS = ("train", "val", "test")
STATIC_NAMES = ("age_decades", "female", "diabetes", "hba1c_above_7", "abi", "abi_below_0_9", "smoker",
                "bmi_above_30", "fortnightly", "infection", "log2_duration",
                *(f"etiology_{e}" for e in ETIOLOGIES), *(f"site_{s}" for s in BODY_SITES))
VISIT_NAMES = ("week", "weeks_since_previous", "log_area", "log_area_change", "closed", "log_depth", "log_volume",
               "log2_weeks_since_onset", "area_reduction")
# floors before taking logs: a closed wound records 0 cm², 0 mm, 0 cm³
AREA_FLOOR_CM2, DEPTH_FLOOR_MM, VOLUME_FLOOR_CM3 = 0.05, 0.1, 1e-3


def patient_split(patient_ids, seed: int, val_fraction: float, test_fraction: float) -> np.ndarray:
    """'train', 'val' or 'test' per row, from a hash of (seed, patient): stable whatever else is in the cohort."""
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise ValueError(f"need val_fraction, test_fraction >= 0 with a sum below 1, got {val_fraction}, "
                         f"{test_fraction}")
    ids = pd.Series(patient_ids).astype(str)
    uniform = {p: int.from_bytes(hashlib.blake2b(f"{seed}:{p}".encode(), digest_size=8).digest(), "big") / 2**64
               for p in ids.unique()}
    u = ids.map(uniform).to_numpy()
    return np.where(u < test_fraction, "test", np.where(u < test_fraction + val_fraction, "val", "train"))


def prediction_rows(entity_rows: pd.DataFrame, weeks: tuple[int, ...] = PREDICTION_WEEKS) -> pd.DataFrame:
    """Entity rows at each prediction week: the end of the first visit's day plus 7 * week days."""
    first = entity_rows[entity_rows["prediction_week"] == 0]
    frames = [first.assign(event_timestamp=first["event_timestamp"] + pd.Timedelta(days=7 * w), prediction_week=w)
              for w in weeks]
    return pd.concat(frames, ignore_index=True)


def static_features(frame: pd.DataFrame) -> np.ndarray:
    """(N, S) float32 risk factors, centred and scaled by hand (HbA1c: 0 for non-diabetics, who have none)."""
    diabetes = frame["diabetes"].to_numpy(float)
    abi = frame["abi"].to_numpy(float)
    columns = [(frame["age"].to_numpy(float) - 65.0) / 10.0, (frame["sex"] == "F").to_numpy(float), diabetes,
               np.where(diabetes > 0, np.nan_to_num(frame["hba1c"].to_numpy(float) - 7.0), 0.0),
               (abi - 1.0) / 0.2, (abi < 0.9).astype(float), frame["smoker"].to_numpy(float),
               (frame["bmi"].to_numpy(float) - 30.0) / 5.0, (frame["visit_interval_weeks"] == 2).to_numpy(float),
               frame["infection"].to_numpy(float), np.log2(frame["duration_weeks"].to_numpy(float) / 8.0)]
    columns += [(frame["etiology"] == e).to_numpy(float) for e in ETIOLOGIES]
    columns += [(frame["body_site"] == s).to_numpy(float) for s in BODY_SITES]
    return np.stack(columns, axis=1).astype(np.float32)


def padded_lists(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Lists of varying length -> (N, L) float values (NaN after each list's end) and the (N, L) padding mask."""
    lengths = column.map(lambda v: 0 if v is None or np.ndim(v) == 0 else len(v)).to_numpy()
    if len(lengths) == 0 or (lengths < 1).any():
        raise ValueError("every sequence needs at least its first visit (was a row looked up before it?)")
    flat = np.concatenate(column.to_list()).astype(float)
    rows = np.repeat(np.arange(len(column)), lengths)
    slots = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    values = np.full((len(column), lengths.max()), np.nan)
    values[rows, slots] = flat
    return values, np.arange(lengths.max())[None, :] >= lengths[:, None]


def visit_features(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(N, L, F) float32 per-visit features (zero at padding) and the (N, L) padding mask (True: no visit)."""
    week, padding = padded_lists(frame["week_history"])
    area = padded_lists(frame["area_history"])[0]
    closed = area <= 0.0
    log_area = np.log(np.maximum(area, AREA_FLOOR_CM2))
    since_previous = np.diff(week, axis=1, prepend=week[:, :1])
    onset = frame["duration_weeks"].to_numpy(float)[:, None] + week
    reduction = np.clip(1.0 - area / area[:, :1], -2.0, 1.0)
    features = np.stack([week / 12.0, since_previous / 2.0, log_area, log_area - log_area[:, :1], closed,
                         np.log(np.maximum(padded_lists(frame["depth_history"])[0], DEPTH_FLOOR_MM)),
                         np.log(np.maximum(padded_lists(frame["volume_history"])[0], VOLUME_FLOOR_CM3)),
                         np.log2(np.maximum(onset, 0.5) / 8.0), reduction], axis=-1)  # (N, L, F)
    return np.where(padding[..., None], 0.0, features).astype(np.float32), padding


@dataclass(frozen=True)
class VisitArrays:
    """Encoded samples: inputs, labels and what evaluation needs to group them."""

    static: np.ndarray  # (N, S) float32
    visits: np.ndarray  # (N, L, F) float32
    padding: np.ndarray  # (N, L) bool, True where there is no visit
    healed_12w: np.ndarray  # (N,) float32, NaN where unknown
    weeks_to_closure: np.ndarray  # (N,) int64: closure visit week, or last visit week when censored
    closed: np.ndarray  # (N,) bool: closure seen (False: censored at weeks_to_closure)
    prediction_week: np.ndarray  # (N,) int64

    def tensors(self, rows: np.ndarray | slice = slice(None)) -> tuple[torch.Tensor, ...]:
        """(static, visits, padding, healed_12w, weeks_to_closure, closed) as tensors for `rows`."""
        return tuple(torch.from_numpy(np.ascontiguousarray(a[rows])) for a in (
            self.static, self.visits, self.padding, self.healed_12w, self.weeks_to_closure, self.closed))


def encode_sequences(frame: pd.DataFrame) -> VisitArrays:
    """The Transformer's inputs and labels from a `prognosis_sequence_v1` training frame."""
    visits, padding = visit_features(frame)
    return VisitArrays(static_features(frame), visits, padding, frame["healed_12w"].to_numpy(np.float32),
                       frame["weeks_to_closure"].to_numpy(np.int64), ~frame["censored"].to_numpy(bool),
                       frame["prediction_week"].to_numpy(np.int64))


class VisitDataModule(pl.LightningDataModule):
    """Samples of a training frame split by patient into train / val / test (deterministic per seed)."""

    def __init__(self, frame: pd.DataFrame, batch_size: int = 128, seed: int = 2026, val_fraction: float = 0.15,
                 test_fraction: float = 0.15) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.frame, self.batch_size, self.seed = frame.reset_index(drop=True), batch_size, seed
        self.split = patient_split(self.frame["patient_id"], seed, val_fraction, test_fraction)
        self.arrays = encode_sequences(self.frame)

    @property
    def static_features(self) -> int:
        return self.arrays.static.shape[1]

    @property
    def visit_features(self) -> int:
        return self.arrays.visits.shape[2]

    def rows(self, split: str) -> np.ndarray:
        """Indexes into the frame of one split."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return np.flatnonzero(self.split == split)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = TensorDataset(*self.arrays.tensors(self.rows(split)))
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, generator=generator)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

"""The prognosis bundle as an MLflow pyfunc: XGBoost, the visit Transformer and their fusion, loaded together.

Input: the point-in-time feature frames of models.prognosis.feature_frames, as one DataFrame per call with a
`frame` column saying which rows are first-visit rows ("first_visit") and which are visit sequences
("sequence"). Output: per wound, the XGBoost probability and, where sequences are given, the fused one.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd


class PrognosisBundle(mlflow.pyfunc.PythonModel):
    """Healing-within-12-weeks probability from first-visit features and visit sequences."""

    def load_context(self, context) -> None:
        from models.gbm import load_gbm
        from models.lit.visits import VisitPrognosis

        self.gbm = load_gbm(context.artifacts["gbm"])
        self.sequence = VisitPrognosis.load_from_checkpoint(context.artifacts["sequence"], map_location="cpu")
        fusion = json.loads(Path(context.artifacts["fusion"]).read_text())
        self.fusion = {int(week): coef for week, coef in fusion.items()}

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from models.ensemble import PrognosisFusion, fuse_prognosis
        from models.prognosis import add_gbm, add_sequence

        first = model_input[model_input["frame"] == "first_visit"].drop(columns="frame").reset_index(drop=True)
        table = first[["wound_id"]].copy()
        add_gbm(table, first, self.gbm)
        sequences = model_input[model_input["frame"] == "sequence"].drop(columns="frame").reset_index(drop=True)
        if len(sequences):
            add_sequence(table, sequences, self.sequence)
            for week, coef in self.fusion.items():
                if f"p_seq_w{week}" in table:
                    table[f"p_ens_w{week}"] = fuse_prognosis(PrognosisFusion(**coef), table["p_gbm"],
                                                             table[f"p_seq_w{week}"])
        return table


mlflow.models.set_model(PrognosisBundle())

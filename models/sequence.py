"""A small Transformer encoder over a wound's visit sequence, with a static risk-factor token.

Two heads: the logit of healing within 12 weeks, and discrete-time hazard logits over weeks 1..horizon
(P(closure in week j | open through week j - 1)), which models/lit/visits.py fits with censoring.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class SequenceConfig:
    """Hyperparameters of VisitTransformer; feature counts come from models/data/visits.py."""

    static_features: int
    visit_features: int
    d_model: int = 32
    heads: int = 4
    layers: int = 2
    feedforward: int = 64
    dropout: float = 0.1
    max_visits: int = 32  # longest sequence the visit-index embedding covers
    horizon_weeks: int = 24  # hazard bins: weeks 1..horizon (the cohort's follow-up)

    def __post_init__(self) -> None:
        positive = ("static_features", "visit_features", "d_model", "heads", "layers", "feedforward",
                    "max_visits", "horizon_weeks")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"sequence.{name} must be at least 1, got {getattr(self, name)}")
        if self.d_model % self.heads:
            raise ValueError(f"sequence.d_model ({self.d_model}) must be a multiple of heads ({self.heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"sequence.dropout must lie in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return asdict(self)


class VisitTransformer(nn.Module):
    """(static risk factors, visit sequence, padding mask) -> (12-week logit, weekly hazard logits)."""

    def __init__(self, config: SequenceConfig) -> None:
        super().__init__()
        self.config = c = config
        self.static_in = nn.Linear(c.static_features, c.d_model)
        self.visit_in = nn.Linear(c.visit_features, c.d_model)
        # which visit a token is (order); the visit's week is an input feature, so time gaps are seen too
        self.visit_index = nn.Embedding(c.max_visits, c.d_model)
        layer = nn.TransformerEncoderLayer(c.d_model, c.heads, c.feedforward, c.dropout, batch_first=True,
                                           norm_first=True)
        # nested tensors are not used with norm_first layers; saying so avoids a warning
        self.encoder = nn.TransformerEncoder(layer, c.layers, norm=nn.LayerNorm(c.d_model),
                                             enable_nested_tensor=False)
        self.healing_head = nn.Sequential(nn.Linear(2 * c.d_model, c.d_model), nn.GELU(), nn.Linear(c.d_model, 1))
        self.hazard_head = nn.Sequential(nn.Linear(2 * c.d_model, c.d_model), nn.GELU(),
                                         nn.Linear(c.d_model, c.horizon_weeks))

    def forward(self, static: torch.Tensor, visits: torch.Tensor,
                padding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """static (B, S), visits (B, L, F), padding (B, L) True where no visit -> logit (B,), hazards (B, H).

        Every sequence needs at least one real visit, at its start (padding only after the last visit).
        """
        batch, length, _ = visits.shape
        if length > self.config.max_visits:
            raise ValueError(f"{length} visits exceed max_visits={self.config.max_visits}")
        positions = torch.arange(length, device=visits.device)
        tokens = torch.cat([self.static_in(static).unsqueeze(1),  # (B, 1, D)
                            self.visit_in(visits) + self.visit_index(positions)], dim=1)  # (B, 1 + L, D)
        mask = torch.cat([padding.new_zeros(batch, 1), padding], dim=1)  # (B, 1 + L): the static token is real
        encoded = self.encoder(tokens, src_key_padding_mask=mask)  # (B, 1 + L, D)
        last = (~padding).sum(dim=1)  # index of the last real visit in the token sequence (static token at 0)
        pooled = torch.cat([encoded[:, 0], encoded[torch.arange(batch, device=visits.device), last]], dim=1)  # (B, 2D)
        return self.healing_head(pooled).squeeze(1), self.hazard_head(pooled)

"""PointNet++ per-point segmentation: wound vs skin and tissue class, in plain PyTorch.

Set abstraction with farthest-point sampling and ball query, feature propagation by 3-nearest
interpolation, two heads. Written for throughput on CPUs as well as GPUs:

- one farthest-point sampling per cloud: farthest-point order is greedy, so the centroids of every coarser
  level are a prefix of the first level's order (the same points a sampling per level would choose);
- neighbour search by `topk` on batched distance matrices, never a full sort, no host sync;
- the first linear layer of every block is applied to the points before they are gathered (it is linear:
  W [x_j - c, f_j] = W [x_j, f_j] - W [c, 0]), so it runs once per point instead of once per neighbour, and
  in feature propagation once per coarse point before interpolation;
- the global feature's term is computed once per cloud and broadcast to the points.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

XYZ = 3  # the first three input channels are the chunk-normalised coordinates
DISTANCE_BLOCK = 1 << 21  # entries of a distance block in neighbour searches (8 MB in float32)


@dataclass(frozen=True)
class PointNetConfig:
    """Hyperparameters of `PointNetSegmenter`; radii are in chunk units (a chunk fits the unit sphere)."""

    in_channels: int = 13
    strides: tuple[int, ...] = (4, 4, 4)  # each set-abstraction level keeps 1/stride of the points
    radii: tuple[float, ...] = (0.1, 0.2, 0.4)
    neighbours: tuple[int, ...] = (32, 32, 32)
    sa_channels: tuple[tuple[int, ...], ...] = ((32, 32, 64), (64, 64, 128), (128, 128, 256))
    fp_channels: tuple[tuple[int, ...], ...] = ((256, 256), (256, 128), (128, 128))  # coarsest level first
    head_channels: int = 128
    wound_classes: int = 2
    tissue_classes: int = 5
    dropout: float = 0.3

    def __post_init__(self) -> None:
        levels = len(self.strides)
        if levels < 1:
            raise ValueError("pointnet: at least one set-abstraction level is needed")
        for name in ("radii", "neighbours", "sa_channels", "fp_channels"):
            if len(getattr(self, name)) != levels:
                raise ValueError(f"pointnet.{name} needs one entry per level ({levels}), got {getattr(self, name)}")
        if self.in_channels < XYZ:
            raise ValueError(f"pointnet.in_channels must be at least 3 (xyz first), got {self.in_channels}")
        _require_positive("strides", self.strides, minimum=2)
        _require_positive("neighbours", self.neighbours)
        if any(not r > 0 for r in self.radii):
            raise ValueError(f"pointnet.radii must all be > 0, got {self.radii}")
        for name in ("sa_channels", "fp_channels"):
            for widths in getattr(self, name):
                _require_positive(name, widths)
        _require_positive("head/classes", (self.head_channels, self.wound_classes, self.tissue_classes))
        if not 0 <= self.dropout < 1:
            raise ValueError(f"pointnet.dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def from_dict(cls, values: dict) -> PointNetConfig:
        """Build from a params.yaml-style mapping (lists become tuples)."""
        tuples = {k: tuple(tuple(x) if isinstance(x, list | tuple) else x for x in v)
                  for k, v in values.items() if isinstance(v, list | tuple)}
        return cls(**{**values, **tuples})


def _require_positive(name: str, values: tuple, minimum: int = 1) -> None:
    if not values or any(not isinstance(v, int) or v < minimum for v in values):
        raise ValueError(f"pointnet.{name} must be integers >= {minimum}, got {values}")


# ---------------------------------------------------------------------------------------------- geometry


def gather_points(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """values (B, N, C) picked by index (B, ...) -> (B, ..., C), as one flat index_select."""
    batch, n, channels = values.shape
    offset = torch.arange(batch, device=index.device).view(batch, *([1] * (index.dim() - 1))) * n
    flat = values.reshape(batch * n, channels).index_select(0, (index + offset).reshape(-1))  # (B*..., C)
    return flat.view(*index.shape, channels)


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, S, 3) x (B, N, 3) -> (B, S, N) squared Euclidean distances, always in float32.

    One batched matmul of augmented coordinates, [a, |a|^2, 1] . [-2 b, 1, |b|^2], writes the matrix in a
    single pass; autocast is off because bf16 would scramble the ranks of near neighbours.
    """
    with torch.autocast(a.device.type, enabled=False):
        a, b = a.float(), b.float()
        a_aug = torch.cat([a, (a * a).sum(-1, keepdim=True), torch.ones_like(a[..., :1])], dim=-1)  # (B, S, 5)
        b_aug = torch.cat([-2.0 * b, torch.ones_like(b[..., :1]), (b * b).sum(-1, keepdim=True)], dim=-1)  # (B, N, 5)
        return torch.bmm(a_aug, b_aug.transpose(1, 2))


@torch.no_grad()
def farthest_point_sample(xyz: torch.Tensor, n_samples: int) -> torch.Tensor:
    """(B, N, 3) -> (B, n_samples) indices in farthest-point order, starting from point 0.

    Loops over the samples, not the points; every step stays on the device (no .item(), no data-dependent
    shapes), so a GPU never waits for the host.
    """
    batch, n, _ = xyz.shape
    planes = xyz.permute(2, 0, 1).contiguous()  # (3, B, N): one coordinate per plane, for contiguous ops
    flat = planes.view(3, batch * n)
    first_of_cloud = torch.arange(batch, device=xyz.device) * n
    chosen = torch.zeros(batch, n_samples, dtype=torch.long, device=xyz.device)
    nearest = torch.full((batch, n), float("inf"), dtype=xyz.dtype, device=xyz.device)
    current = torch.zeros(batch, dtype=torch.long, device=xyz.device)
    dist, delta = torch.empty_like(nearest), torch.empty_like(nearest)
    for i in range(n_samples):
        chosen[:, i] = current
        centre = flat[:, first_of_cloud + current].unsqueeze(-1)  # (3, B, 1)
        torch.sub(planes[0], centre[0], out=dist).mul_(dist)
        for axis in (1, 2):
            torch.sub(planes[axis], centre[axis], out=delta)
            dist.addcmul_(delta, delta)
        torch.minimum(nearest, dist, out=nearest)
        current = nearest.argmax(-1)
    return chosen


@torch.no_grad()
def nearest_neighbours(queries: torch.Tensor, points: torch.Tensor, k: int,
                       ordered: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared distances and indices (B, S, k) of the k nearest points (B, N, 3) to each query (B, S, 3).

    `topk` on distance blocks of about DISTANCE_BLOCK entries: a block stays in cache and in the
    allocator's reused memory, where one (B, S, N) matrix would be written out and page-faulted afresh.
    """
    rows = max(DISTANCE_BLOCK // (queries.shape[0] * points.shape[1]), 1)
    found = [squared_distances(queries[:, start:start + rows], points).topk(k, dim=-1, largest=False, sorted=ordered)
             for start in range(0, queries.shape[1], rows)]
    return torch.cat([d for d, _ in found], dim=1), torch.cat([i for _, i in found], dim=1)


@torch.no_grad()
def ball_query(centres: torch.Tensor, points: torch.Tensor, radius: float, k: int) -> torch.Tensor:
    """(B, S, 3), (B, N, 3) -> (B, S, k): the k nearest points within `radius`, padded with the nearest one."""
    dist, index = nearest_neighbours(centres, points, min(k, points.shape[1]))
    return torch.where(dist > radius * radius, index[..., :1], index)


@torch.no_grad()
def three_nn_weights(points: torch.Tensor, coarse: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (B, N, 3) of each point's 3 nearest coarse points and inverse-distance weights (B, N, 3)."""
    dist, index = nearest_neighbours(points, coarse, min(3, coarse.shape[1]), ordered=False)
    weight = 1.0 / (dist.clamp_min(0.0) + 1e-8)  # rounding can leave a tiny negative distance
    return index, weight / weight.sum(-1, keepdim=True)


# ---------------------------------------------------------------------------------------------- blocks


class PointMLP(nn.Module):
    """Shared (Linear, BatchNorm, ReLU) layers on the last axis of a (..., C) tensor."""

    def __init__(self, widths: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out in itertools.pairwise(widths):
            layers += [nn.Linear(c_in, c_out, bias=False), nn.BatchNorm1d(c_out), nn.ReLU(inplace=True)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])  # (M, C): BatchNorm1d over every point (and neighbour)
        return self.layers(flat).view(*x.shape[:-1], -1)


class NormReLU(nn.Module):
    """BatchNorm then ReLU on the last axis of a (..., C) tensor."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.norm(x.reshape(-1, x.shape[-1]))).view(x.shape)  # (M, C) -> (..., C)


class SetAbstraction(nn.Module):
    """Group the neighbours of each centroid, run a shared MLP on them, max-pool."""

    def __init__(self, in_channels: int, widths: tuple[int, ...], radius: float) -> None:
        super().__init__()
        self.radius = radius
        self.first = nn.Linear(XYZ + in_channels, widths[0], bias=False)
        self.first_act = NormReLU(widths[0])
        self.rest = PointMLP(widths)

    def forward(self, xyz: torch.Tensor, features: torch.Tensor, centres: torch.Tensor,
                neighbours: torch.Tensor) -> torch.Tensor:
        """xyz (B, N, 3), features (B, N, C), centres (B, S, 3), neighbours (B, S, K) -> (B, S, C_out)."""
        per_point = self.first(torch.cat([xyz / self.radius, features], dim=-1))  # (B, N, C1)
        per_centre = (centres / self.radius) @ self.first.weight[:, :XYZ].T  # (B, S, C1)
        grouped = gather_points(per_point, neighbours) - per_centre.unsqueeze(2)  # (B, S, K, C1)
        return self.rest(self.first_act(grouped)).amax(dim=2)  # (B, S, C_out)


class FeaturePropagation(nn.Module):
    """Interpolate coarse features onto finer points, add the finer level's skip features, shared MLP."""

    def __init__(self, coarse_channels: int, skip_channels: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.coarse = nn.Linear(coarse_channels, widths[0], bias=False)
        self.skip = nn.Linear(skip_channels, widths[0], bias=False)
        self.first_act = NormReLU(widths[0])
        self.rest = PointMLP(widths)

    def forward(self, coarse: torch.Tensor, skip: torch.Tensor, index: torch.Tensor,
                weight: torch.Tensor) -> torch.Tensor:
        """coarse (B, S, C), skip (B, N, C_skip), index/weight (B, N, 3) -> (B, N, C_out)."""
        projected = self.coarse(coarse)  # (B, S, C1): projected before interpolation, S < N rows
        neighbours = gather_points(projected, index)  # (B, N, 3, C1)
        mixed = self.skip(skip)  # (B, N, C1)
        for j in range(index.shape[-1]):  # three fused multiply-adds beat a (B, N, 3, C1) product and sum
            mixed = mixed.addcmul(neighbours[:, :, j], weight[:, :, j:j + 1].to(neighbours.dtype))
        return self.rest(self.first_act(mixed))


# ---------------------------------------------------------------------------------------------- network


class PointNetSegmenter(nn.Module):
    """(B, N, in_channels) chunk features -> wound logits (B, N, 2) and tissue logits (B, N, 5)."""

    def __init__(self, config: PointNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or PointNetConfig()
        skip = [config.in_channels - XYZ] + [w[-1] for w in config.sa_channels]
        self.down = nn.ModuleList(SetAbstraction(skip[i], config.sa_channels[i], config.radii[i])
                                  for i in range(len(config.strides)))
        coarse = [skip[-1]] + [w[-1] for w in config.fp_channels[:-1]]
        self.up = nn.ModuleList(FeaturePropagation(coarse[j], skip[-2 - j], config.fp_channels[j])
                                for j in range(len(config.strides)))
        self.head_point = nn.Linear(config.fp_channels[-1][-1], config.head_channels, bias=False)
        self.head_global = nn.Linear(skip[-1], config.head_channels, bias=False)
        self.head_act = NormReLU(config.head_channels)
        self.wound = nn.Linear(config.head_channels, config.wound_classes)
        self.tissue = nn.Linear(config.head_channels, config.tissue_classes)

    def level_sizes(self, n_points: int) -> list[int]:
        """Points per level, input first: each level keeps 1/stride (at least one point)."""
        sizes = [n_points]
        for stride in self.config.strides:
            sizes.append(max(sizes[-1] // stride, 1))
        return sizes

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 3 or x.shape[-1] != self.config.in_channels:
            raise ValueError(f"expected (B, N, {self.config.in_channels}) features, got {tuple(x.shape)}")
        sizes = self.level_sizes(x.shape[1])
        xyz = [x[..., :XYZ].contiguous()]
        order = farthest_point_sample(xyz[0], sizes[1])  # (B, S1); coarser levels are its prefixes
        xyz += [gather_points(xyz[0], order[:, :s]) for s in sizes[1:]]  # each (B, S_l, 3)
        features = [x[..., XYZ:]]
        cfg = self.config
        for level, block in enumerate(self.down):
            neighbours = ball_query(xyz[level + 1], xyz[level], cfg.radii[level], cfg.neighbours[level])
            features.append(block(xyz[level], features[level], xyz[level + 1], neighbours))
        h = features[-1]
        for j, block in enumerate(self.up):
            fine = len(self.up) - 1 - j
            index, weight = three_nn_weights(xyz[fine], xyz[fine + 1])
            h = block(h, features[fine], index, weight)
        global_term = self.head_global(features[-1].amax(dim=1))  # (B, H): once per cloud
        h = self.head_act(self.head_point(h) + global_term.unsqueeze(1))  # (B, N, H)
        if self.training and cfg.dropout > 0:
            # one mask per cloud and channel: drops whole features, and costs B x H random draws, not B x N x H
            h = h * F.dropout(h.new_ones(h.shape[0], 1, h.shape[2]), cfg.dropout)
        return self.wound(h), self.tissue(h)

"""The measurement engine: a labelled scan in, wound area, volume, depth, outline and tissue out.

Steps: reduce and clean the cloud; reconstruct the intact skin from the periwound ring (features.surface);
build the wound-fraction field on a (u, v) grid in the skin's frame and take its 0.5-contour as the outline
(features.fields, features.outline); estimate the bed by local regression of wound points; integrate.
Names, units and definitions are those of docs/scan-format.md.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from features import noise as range_noise
from features import outline, preprocess
from features.deepest import max_depth
from features.fields import Grid, harmonic_fill, height_weights, local_fit, wound_vote
from features.io import TISSUE_CLASSES, Scan, ScanError
from features.opening import opening_field
from features.resolution import probe_outline
from features.stopwatch import Stopwatch
from features.surface import SkinSurface, fit_skin, periwound_ring
from features.uncertainty import Evidence, intervals

UNSEEN_REACH = 2.0  # spacings: opening nodes farther than this from every wound point were not seen
REFINE = 2  # area and volume are integrated on a grid this many times finer than the point spacing


class MeasureError(ScanError):
    """The scan is readable but cannot be measured; the message says why."""


@dataclass(frozen=True)
class MeasureSettings:
    """Engine tunables; mirrors the `measure` section of params.yaml."""

    max_points: int = 5_000_000
    target_points: int = 150_000
    min_wound_points: int = 30
    sparse_wound_points: int = 300
    ring_mm: tuple[float, float] = (1.5, 14.0)
    outlier_neighbours: int = 16
    outlier_std: float = 3.0

    @classmethod
    def from_params(cls, section: dict) -> MeasureSettings:
        known = {f.name for f in fields(cls)}
        values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in section.items() if k in known}
        return cls(**values)


@dataclass
class _Cloud:
    points: np.ndarray
    wound: np.ndarray  # bool
    tissue: np.ndarray | None
    spacing: float
    warnings: list[str]
    uv_wound: np.ndarray | None = None  # wound points in the skin frame, set once the skin is known
    noise: float = 0.0
    design_effect: float = 1.0  # variance of a local mean over sigma^2 / k (features.noise)
    unseen_share: float = 0.0  # of the opening, no wound point near: filled, not measured


def measure(scan: Scan, settings: MeasureSettings | None = None) -> dict:
    """Measure the wound in a labelled scan; returns the JSON-ready report."""
    settings = settings or MeasureSettings()
    _check_labels(scan, settings)
    clock = Stopwatch()
    with clock.stage("prepare"):
        cloud = _prepare(scan, settings)
    with clock.stage("skin"):
        surface, ring_coverage = _reconstruct_skin(cloud, settings)
        uv, rel, keep = _to_skin_frame(cloud, surface)
        cloud.uv_wound = uv[cloud.wound]
        skin_uv, skin_rel = uv[~cloud.wound & keep], rel[~cloud.wound & keep]
        cloud.noise = range_noise.local_noise(skin_uv, skin_rel, surface)
        cloud.design_effect = range_noise.design_effect(skin_uv, skin_rel, surface, cloud.spacing)
    with clock.stage("outline"):
        grid = Grid.around(uv[cloud.wound & keep], margin=max(4e-3, 6 * cloud.spacing), step=cloud.spacing)
        vote = wound_vote(grid, uv[keep], cloud.wound[keep])
        field = opening_field(grid, uv[keep], cloud.wound[keep], surface, vote)
        min_area = max(2e-6, 20 * cloud.spacing**2)
        contours = outline.outline_contours(field, grid, min_area)
        if not contours:
            raise MeasureError("the wound points do not form a region large enough to measure; check the labels")
        fine, mask = _opening_mask(field, grid, min_area)
    with clock.stage("integrate"):
        report, evidence = _integrate(cloud, surface, uv, rel, fine, mask, contours)
        _warn(cloud, settings, ring_coverage, len(contours))
        evidence.spacing, evidence.n_wound = cloud.spacing, int(cloud.wound.sum())
        evidence.design_effect = cloud.design_effect
        report["uncertainty"] = intervals(report, evidence)
    report["outline"] = outline.world_outline(surface, contours)
    report["quality"] = _quality(scan, cloud, surface)
    report["quality"]["stage_ms"] = {k: round(v, 1) for k, v in clock.ms.items()}
    if clock.peak_mib:
        report["quality"]["stage_peak_mib"] = {k: round(v, 1) for k, v in clock.peak_mib.items()}
    return report


def _check_labels(scan: Scan, settings: MeasureSettings) -> None:
    if scan.label is None:
        raise MeasureError("the scan has no 'label' property; label wound points 1 and skin 0 (or segment it first)")
    n_wound = int((scan.label == 1).sum())
    if n_wound < settings.min_wound_points:
        raise MeasureError(f"the scan has {n_wound} wound points (label 1); at least {settings.min_wound_points} "
                           "are needed to measure")
    if n_wound == len(scan.label):
        raise MeasureError("every point is labelled wound; the scan needs intact skin around the wound")


def _prepare(scan: Scan, settings: MeasureSettings) -> _Cloud:
    """Voxel-reduce large scans and remove statistical outliers."""
    warnings: list[str] = []
    # only the wound and its periwound skin are measured: dropping the rest first keeps the resolution
    # at the wound when a large scan has to be reduced (scans are densest near the camera's aim)
    scan = preprocess.crop_around(scan, scan.label == 1, margin=2.2 * settings.ring_mm[1] * 1e-3)
    spacing = preprocess.point_spacing(scan.points)
    if len(scan) > settings.target_points:
        scan = preprocess.voxel_reduce(scan, preprocess.voxel_for(scan.points, settings.target_points, spacing))
    kept = preprocess.statistical_inliers(scan.points, settings.outlier_neighbours, settings.outlier_std)
    scan = scan.subset(kept)
    wound = scan.label == 1
    if wound.sum() < settings.min_wound_points:
        raise MeasureError("after removing outliers too few wound points remain; the wound labels look scattered")
    return _Cloud(scan.points, wound, scan.tissue, preprocess.point_spacing(scan.points), warnings)


def _reconstruct_skin(cloud: _Cloud, settings: MeasureSettings) -> tuple[SkinSurface, float]:
    """Fit the intact skin to the periwound ring; also return the ring's angular coverage (0..1)."""
    wound, skin = cloud.points[cloud.wound], cloud.points[~cloud.wound]
    if len(skin) < 20:
        raise MeasureError("fewer than 20 intact-skin points; the scan needs skin around the wound")
    ring = periwound_ring(wound, skin, cloud.spacing, settings.ring_mm)
    if ring is None:
        raise MeasureError("too little intact skin around the wound to reconstruct the skin surface")
    surface = fit_skin(ring, wound)
    local = surface.to_local(ring)
    centre = surface.to_local(wound).mean(axis=0)
    angles = np.arctan2(local[:, 1] - centre[1], local[:, 0] - centre[0])
    coverage = len(np.unique(np.floor((angles + np.pi) / (2 * np.pi) * 16).astype(int) % 16)) / 16
    return surface, coverage


def _to_skin_frame(cloud: _Cloud, surface: SkinSurface) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, v), height relative to the skin, and the points plausible for the outline (not background)."""
    local = surface.to_local(cloud.points)
    uv = local[:, :2]
    rel = local[:, 2] - surface.height(uv)
    band = max(5e-3, 6 * surface.rms)
    keep = np.where(cloud.wound, (rel > -0.08) & (rel < band), np.abs(rel) < band)
    return uv, rel, keep


def _opening_mask(field: np.ndarray, grid: Grid, min_area: float) -> tuple[Grid, np.ndarray]:
    """Opening mask on the refined grid, small stray regions removed."""
    fine = grid.refine(REFINE)
    coords = np.meshgrid(np.arange(fine.nu) / REFINE, np.arange(fine.nv) / REFINE, indexing="ij")
    fine_field = ndimage.map_coordinates(field, coords, order=1, mode="nearest")  # bilinear
    mask = fine_field >= 0.5
    regions, count = ndimage.label(mask)
    sizes = ndimage.sum(mask, regions, index=np.arange(1, count + 1)) * fine.step**2
    return fine, np.isin(regions, 1 + np.flatnonzero(sizes >= min_area))


def _integrate(cloud: _Cloud, surface: SkinSurface, uv: np.ndarray, rel: np.ndarray, fine: Grid,
               mask: np.ndarray, contours: list[np.ndarray]) -> tuple[dict, Evidence]:
    """Area, volume, depths and outline measures from the opening nodes and the bed points."""
    nodes = fine.nodes()[mask.ravel()]
    jac = np.sqrt(1.0 + (surface.gradient(nodes) ** 2).sum(axis=1))
    cell = fine.step**2
    w_uv, w_rel = uv[cloud.wound], rel[cloud.wound]
    tree = cKDTree(w_uv)
    noise = max(cloud.noise, 0.1e-3)
    bed, bed_grad = local_fit(nodes, w_uv, w_rel, k=24, quadratic=True, noise=noise, tree=tree,
                              weights=height_weights(w_uv, w_rel))
    seen = tree.query(nodes, workers=-1)[0] <= UNSEEN_REACH * cloud.spacing
    cloud.unseen_share = float(1.0 - seen.mean())
    # vertical gap between skin and bed; integrates exactly to the volume between graphs
    depth_v, bed_grad = _fill_unseen(fine, mask, -bed, bed_grad, seen)
    depth_n = depth_v / jac  # along the skin normal (first order)
    foot = 1.0 / np.clip(1.0 - _curvature_sum(surface, nodes, fine.step) * depth_n, 0.3, 3.0)
    area = float(jac.sum() * cell)
    volume = float(depth_v.sum() * cell)
    deepest = max_depth(fine, mask, w_uv, w_rel, noise, surface, cloud.spacing)
    centre = (nodes * jac[:, None]).sum(axis=0) / jac.sum()
    length, width = outline.length_width(surface, contours, centre)
    edge_depth = _outline_depth(contours, w_uv, w_rel, tree)
    report = {
        "area_cm2": area * 1e4,
        "volume_cm3": volume * 1e6,
        "max_depth_mm": deepest.depth * 1e3,
        "mean_depth_mm": float((depth_n * jac * foot).sum() / (jac * foot).sum()) * 1e3,
        "perimeter_cm": outline.perimeter(surface, contours) * 1e2,
        "length_cm": length * 1e2,
        "width_cm": width * 1e2,
        "surface_area_cm2": float(np.sqrt(1.0 + (bed_grad**2).sum(axis=1)).sum() * cell) * 1e4,
        "tissue": _tissue_fractions(cloud, nodes, jac),
    }
    skin_std_at_centre = surface.height_std(centre[None, :])[0]
    evidence = Evidence(noise=noise, skin_std=float(skin_std_at_centre), skin_model=_model_error(surface),
                        skin_bias=surface.cv_bias,
                        max_depth_std=deepest.std, max_depth_shift=deepest.scale_shift,
                        max_depth_location=deepest.location_loss, edge_depth=edge_depth,
                        outline=probe_outline(surface, contours, centre, w_uv, cloud.spacing))
    return report, evidence


def _fill_unseen(fine: Grid, mask: np.ndarray, depth: np.ndarray, bed_grad: np.ndarray,
                 seen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Depth and bed slope at the opening nodes no wound point is near (a rim's shadow, a dropout).

    A local fit would extrapolate its quadric there; instead the depth runs harmonically from the bed
    that was seen to the outline, where the skin begins (see features.fields.harmonic_fill).
    """
    if seen.all():
        return depth, bed_grad
    full, known, unknown = np.zeros(mask.shape), np.zeros(mask.shape, bool), np.zeros(mask.shape, bool)
    full[mask], known[mask], unknown[mask] = depth, seen, ~seen
    filled = harmonic_fill(full, known, unknown)
    slope = np.column_stack([g[mask] for g in np.gradient(filled, fine.step)])
    bed_grad = np.where(seen[:, None], bed_grad, -slope)  # the bed's height falls as the depth grows
    return filled[mask], bed_grad


def _curvature_sum(surface: SkinSurface, nodes: np.ndarray, h: float) -> np.ndarray:
    """kappa1 + kappa2 of the skin (positive where convex), from the divergence of the unit gradient."""
    def unit_grad(p):
        g = surface.gradient(p)
        return g / np.sqrt(1.0 + (g**2).sum(axis=1))[:, None]

    step_u, step_v = np.array([h, 0.0]), np.array([0.0, h])
    du = unit_grad(nodes + step_u) - unit_grad(nodes - step_u)
    dv = unit_grad(nodes + step_v) - unit_grad(nodes - step_v)
    return -(du[:, 0] + dv[:, 1]) / (2 * h)


def _outline_depth(contours: list[np.ndarray], w_uv, w_rel, tree) -> float:
    """Mean bed depth just inside the outline: how much a boundary shift changes the volume."""
    pts = np.vstack(contours)
    h, _ = local_fit(pts, w_uv, w_rel, k=16, tree=tree)
    return float(np.mean(np.maximum(-h, 0.0)))


def _model_error(surface: SkinSurface) -> float:
    """Skin-prediction error beyond the noise, seen when predicting held-out sectors of the ring."""
    return float(np.sqrt(max(surface.cv_rms**2 - surface.rms**2, 0.0)))


def _tissue_fractions(cloud: _Cloud, nodes: np.ndarray, jac: np.ndarray) -> dict[str, float] | None:
    """Area share of the opening per tissue class, each node taking its nearest wound points' majority."""
    if cloud.tissue is None:
        return None
    local = cloud.tissue[cloud.wound]
    _, idx = cKDTree(cloud.uv_wound).query(nodes, k=min(5, len(local)), workers=-1)
    votes = np.zeros((len(nodes), len(TISSUE_CLASSES)))
    np.add.at(votes, (np.repeat(np.arange(len(nodes)), idx.shape[1] if idx.ndim > 1 else 1),
                      local[idx].ravel().astype(int)), 1.0)
    share = np.bincount(votes.argmax(axis=1), weights=jac, minlength=len(TISSUE_CLASSES)) / jac.sum()
    return {name: float(share[code]) for code, name in TISSUE_CLASSES.items()}


def _warn(cloud: _Cloud, settings: MeasureSettings, coverage: float, regions: int) -> None:
    w = cloud.warnings
    if cloud.wound.sum() < settings.sparse_wound_points:
        w.append(f"sparse: only {int(cloud.wound.sum())} wound points; intervals are wide")
    if coverage < 14 / 16:
        w.append("wound at the scan's edge: intact skin is missing on one side, so the outline may be cut "
                 "and the skin surface extrapolated")
    if cloud.unseen_share > 0.02:
        w.append(f"holes in the bed: {100 * cloud.unseen_share:.0f}% of the opening has no wound points (a rim's "
                 "shadow or a dropout); depth and volume are interpolated there")
    if regions > 1:
        w.append(f"{regions} separate wound regions; the measurements are their totals")


def _quality(scan: Scan, cloud: _Cloud, surface: SkinSurface) -> dict:
    return {
        "points": len(scan),
        "wound_points": int((scan.label == 1).sum()),
        "spacing_mm": cloud.spacing * 1e3,
        "noise_mm": cloud.noise * 1e3,
        "skin_fit_rms_mm": surface.rms * 1e3,
        "skin_model": f"polynomial height field, degree {surface.degree}",
        "unseen_share": cloud.unseen_share,
        "warnings": cloud.warnings,
    }


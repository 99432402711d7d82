"""The monitored row of one inference: cheap scan statistics (inputs) and the assessment's outputs (predictions).

Inputs are chosen so that each drift the service must notice moves at least one column: another sensor (point
count, spacing, extent, local range noise), other skin tones (CIELAB colour of the skin-coloured points), a new
body site (the metadata's body_site and the skin's curvature). Point statistics come from a fixed-size subsample
and small patches, so a 500k-point scan costs milliseconds, not seconds. No patient identifier ever enters a row:
metadata is read through an allow-list.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.spatial import ConvexHull

from features.io import Scan

SUBSAMPLE = 2048  # points the colour and shape statistics are computed on
MIN_SKIN_POINTS = 30
SKIN_HUE, SKIN_CHROMA = (20.0, 90.0), (10.0, 40.0)  # CIELAB skin locus, degrees and chroma units
SLAB_M, PATCH_M = 7e-3, 5e-3  # half-widths: the slab through the skin, the noise patches cut from it (> noise)
PATCHES, MIN_PATCH_POINTS = 6, 20
SLAB_POINTS, PATCH_POINTS = 5_000, 400  # denser slabs and patches are thinned at random
TRIMS = 2  # refits of the skin quadric without its outliers
METADATA_COLUMNS = ("body_site", "device")  # the only metadata kept: no ids, names, dates
NUMERIC_INPUTS = ("points", "extent_mm", "spacing_mm", "noise_mm", "skin_fraction", "curvature_major",
                  "curvature_minor", "shape_misfit_mm", "skin_l", "skin_a", "skin_b", "skin_l_spread")
INPUT_COLUMNS = NUMERIC_INPUTS + METADATA_COLUMNS
PREDICTION_COLUMNS = ("wound_fraction", "area_cm2", "volume_cm3", "max_depth_mm", "segmentation_confidence",
                      "prognosis_p12w")
# D65 sRGB -> XYZ, and the reference white
_RGB_TO_XYZ = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
_WHITE = np.array([0.95047, 1.0, 1.08883])


def inference_row(scan: Scan, result: Mapping | None, metadata: Mapping | None) -> dict:
    """The input statistics of `scan`, the allowed metadata and the prediction outputs of `result`."""
    meta = metadata or {}
    row: dict = dict(scan_statistics(scan))
    row.update({key: _text(meta.get(key)) for key in METADATA_COLUMNS})
    row.update(prediction_outputs(result or {}))
    return row


def scan_statistics(scan: Scan) -> dict[str, float | int | None]:
    """Count, size, skin colour, skin curvature, point spacing and range noise of a scan.

    Scans hold the background behind the limb too, often most of their points: colour and shape are taken
    from the skin-coloured points of a subsample, spacing and noise from small full-density patches of them.
    """
    points = np.asarray(scan.points, float)
    n = len(points)
    # seeded by the size: the same scan always gives the same row
    sub = np.unique(np.random.default_rng(n).integers(0, n, SUBSAMPLE)) if n > SUBSAMPLE else np.arange(n)
    xyz = points[sub]
    lab = None if scan.colors is None else rgb_to_lab(scan.colors[sub])
    skin = np.ones(len(sub), bool) if lab is None else skin_mask(lab)
    stats: dict[str, float | int | None] = {"points": n, "extent_mm": float(np.ptp(xyz, axis=0).max() * 1e3),
                                            "skin_fraction": None if lab is None else float(skin.mean())}
    if skin.sum() < MIN_SKIN_POINTS:  # no skin-like colours: describe the whole scan rather than nothing
        skin[:] = True
    stats.update(_colour(None if lab is None else lab[skin]))
    stats.update(_global_shape(xyz[skin]))
    stats.update(_local_geometry(scan, xyz[skin]))
    return stats


def skin_mask(lab: np.ndarray) -> np.ndarray:
    """Points whose colour lies in the skin locus: hue 20-90 degrees, chroma 10-40 (any lightness).

    Every skin tone sits there; grey, blue and green drapes, granulation, slough and epithelium do not, and
    only the odd point of a cream wall does.
    """
    hue = np.degrees(np.arctan2(lab[:, 2], lab[:, 1]))
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    return (hue >= SKIN_HUE[0]) & (hue <= SKIN_HUE[1]) & (chroma >= SKIN_CHROMA[0]) & (chroma <= SKIN_CHROMA[1])


def _local_geometry(scan: Scan, skin_xyz: np.ndarray) -> dict[str, float | None]:
    """Point spacing (1 / sqrt(points per m^2)) and range noise (robust residual of a local quadric) of the skin.

    Both need the scan at full density, which a subsample lacks: one pass over the scan keeps a slab through the
    skin and small patches are cut from it. Dense scans are thinned at random (the density counts the thinning),
    so the cost stays a few milliseconds whatever the point count.
    """
    if len(skin_xyz) == 0:
        return {"spacing_mm": None, "noise_mm": None}
    x0 = float(np.median(skin_xyz[:, 0]))
    in_slab = np.flatnonzero(np.abs(scan.points[:, 0] - x0) < SLAB_M)
    rng = np.random.default_rng(len(in_slab))
    keep = min(1.0, SLAB_POINTS / max(len(in_slab), 1))
    slab = scan.points[in_slab[rng.random(len(in_slab)) < keep] if keep < 1 else in_slab]  # (S, 3)
    seeds = skin_xyz[np.abs(skin_xyz[:, 0] - x0) < SLAB_M - PATCH_M]
    seeds = seeds[rng.permutation(len(seeds))[:PATCHES]]
    density, noise = [], []
    for seed in seeds:
        patch = slab[np.all(np.abs(slab - seed) < PATCH_M, axis=1)]
        thin = min(1.0, PATCH_POINTS / max(len(patch), 1))
        patch = patch[rng.random(len(patch)) < thin] if thin < 1 else patch
        if len(patch) >= MIN_PATCH_POINTS:
            _, resid, uv = _quadric(patch)
            noise.append(_robust_sigma(resid))
            density.append(len(patch) / (keep * thin) / ConvexHull(uv).volume)  # a 2-D hull's volume: its area
    if not noise:
        return {"spacing_mm": None, "noise_mm": None}
    return {"spacing_mm": float(np.median(density)) ** -0.5 * 1e3, "noise_mm": float(np.median(noise)) * 1e3}


def _quadric(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Height-field quadric w(u, v) in the points' principal frame: (6,) coefficients, residuals, (M, 2) u, v."""
    centred = xyz - xyz.mean(axis=0)
    axes = np.linalg.svd(centred, full_matrices=False)[2]  # rows: principal directions, the normal last
    u, v, w = (centred @ axes.T).T
    design = np.stack([u * u, u * v, v * v, u, v, np.ones_like(u)], axis=1)  # (M, 6)
    coef = np.linalg.lstsq(design, w, rcond=None)[0]
    return coef, w - design @ coef, np.stack([u, v], axis=1)


def _robust_sigma(resid: np.ndarray) -> float:
    """1.4826 MAD: the standard deviation for Gaussian noise, unmoved by a few stray points."""
    return float(1.4826 * np.median(np.abs(resid - np.median(resid))))


def _global_shape(xyz: np.ndarray) -> dict[str, float | None]:
    """Principal curvatures (1/m, by magnitude) of one quadric fitted to the skin, and its RMS misfit.

    A flat shin has both near 0, a limb one, a heel two: the body site's shape, which a wound of a few
    square centimetres barely changes.
    """
    if len(xyz) < MIN_SKIN_POINTS:
        return {"curvature_major": None, "curvature_minor": None, "shape_misfit_mm": None}
    for _ in range(TRIMS):  # drop what does not lie on the skin: background that passed the colour test
        coef, resid, _ = _quadric(xyz)
        xyz = xyz[np.abs(resid) <= max(3.0 * _robust_sigma(resid), 1e-3)]
    coef, resid, _ = _quadric(xyz)
    misfit = float(np.sqrt(np.mean(resid**2)))
    hessian = np.array([[2 * coef[0], coef[1]], [coef[1], 2 * coef[2]]])
    major, minor = sorted(np.abs(np.linalg.eigvalsh(hessian)), reverse=True)
    return {"curvature_major": float(major), "curvature_minor": float(minor), "shape_misfit_mm": misfit * 1e3}


def _colour(lab: np.ndarray | None) -> dict[str, float | None]:
    """Median CIELAB colour of the skin and its L* interquartile range."""
    if lab is None or len(lab) == 0:
        return {"skin_l": None, "skin_a": None, "skin_b": None, "skin_l_spread": None}
    low, high = np.percentile(lab[:, 0], [25, 75])
    l_star, a_star, b_star = np.median(lab, axis=0)
    return {"skin_l": float(l_star), "skin_a": float(a_star), "skin_b": float(b_star),
            "skin_l_spread": float(high - low)}


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 sRGB -> (N, 3) CIELAB (D65): L* 0..100 tracks skin lightness perceptually."""
    c = np.asarray(rgb, float) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    t = (linear @ _RGB_TO_XYZ.T) / _WHITE
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)


def prediction_outputs(result: Mapping) -> dict[str, float | None]:
    """The outputs watched for prediction drift; None where the assessment has no value."""
    segmentation = result.get("segmentation") or {}
    points, wound = segmentation.get("points"), segmentation.get("wound_points")
    prognosis = result.get("prognosis") or {}
    return {
        "wound_fraction": None if not points or wound is None else wound / points,
        "area_cm2": _number(result.get("area_cm2")),
        "volume_cm3": _number(result.get("volume_cm3")),
        "max_depth_mm": _number(result.get("max_depth_mm")),
        "segmentation_confidence": _number(segmentation.get("mean_confidence")),
        # the first-visit model's 12-week probability: present for every prognosis, unlike the fused ones
        "prognosis_p12w": _number(prognosis.get("p_gbm")),
    }


def _number(value: object) -> float | None:
    """A finite float, or None."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _text(value: object) -> str | None:
    """A categorical value as text, None when absent."""
    return None if value is None else str(value)

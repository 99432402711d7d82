"""Held-out analytic wound scans with closed-form truth, for checking the measurement engine.

Written apart from features/phantoms on purpose (no shared code, no shared sensor model), so a test that
passes here shows the engine is not tuned to its own generator. Three shapes:

- spherical cap cut into flat skin (opening radius a, depth h);
- cylindrical trough cut along a cylindrical limb (limb radius R, trough radius rho at distance c, length L);
- cylindrical crater with vertical walls and a flat bed in flat skin (radius a, depth h).

Surfaces are sampled about uniformly by area (one jittered point per `spacing` square of an area-preserving
parametrisation), labelled 1 on bed and walls, 0 on skin, then given normal noise, small holes, far
outliers and a random rigid pose. Geometry is in millimetres; the returned Scan is in metres. Where the
nominal skin (a 2a + 40 mm square; the limb within 60 degrees and 25 mm of the trough ends) would give fewer
than MIN_POINTS at a coarse spacing, the skin is extended, never the wound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import integrate
from scipy.spatial import cKDTree

from features.io import Scan

LIMB_HALF_ANGLE = math.radians(60.0)  # the limb skin covers |angle from +z| <= this
MIN_POINTS = 20_000  # skin is extended beyond its nominal size until the scan has about this many points
N_OUTLIERS = 10


@dataclass(frozen=True)
class Sampling:
    """How a shape is turned into points: spacing and noise in mm; `pose` picks the rigid pose only."""

    spacing_mm: float
    noise_mm: float
    seed: int
    pose: int = 0


@dataclass(frozen=True)
class Cloud:
    """Noise-free samples of the generating surfaces, in mm, with unit normals and labels."""

    points: np.ndarray  # (N, 3)
    normals: np.ndarray  # (N, 3)
    label: np.ndarray  # (N,) 1 bed or wall, 0 skin


def jittered_grid(u_len: float, v_len: float, spacing: float,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One point per spacing-square cell of [0, u_len] x [0, v_len], jittered within its middle 70%."""
    nu, nv = math.ceil(u_len / spacing), math.ceil(v_len / spacing)
    iu, iv = np.meshgrid(np.arange(nu), np.arange(nv), indexing="ij")
    jitter = rng.uniform(-0.35, 0.35, size=(2, nu * nv))
    u = (iu.ravel() + 0.5 + jitter[0]) * spacing
    v = (iv.ravel() + 0.5 + jitter[1]) * spacing
    inside = (u <= u_len) & (v <= v_len)
    return u[inside], v[inside]


def _cloud(parts: list[tuple[np.ndarray, np.ndarray, int]]) -> Cloud:
    points = np.vstack([p for p, _, _ in parts])
    normals = np.vstack([n for _, n, _ in parts])
    label = np.concatenate([np.full(len(p), lab, np.uint8) for p, _, lab in parts])
    return Cloud(points, normals, label)


def _flat_skin(side: float, a: float, spacing: float, rng) -> tuple[np.ndarray, np.ndarray, int]:
    """The plane z = 0 over a side x side square centred on the origin, without the disc r < a."""
    u, v = jittered_grid(side, side, spacing, rng)
    x, y = u - side / 2, v - side / 2
    keep = np.hypot(x, y) >= a
    pts = np.column_stack([x[keep], y[keep], np.zeros(keep.sum())])
    return pts, np.tile([0.0, 0.0, 1.0], (len(pts), 1)), 0


def _flat_side(a: float, bed_area: float, spacing: float) -> float:
    """Square side: 2a + 40 mm, larger where needed for MIN_POINTS at this spacing."""
    need = 1.05 * MIN_POINTS * spacing**2 - bed_area + math.pi * a * a
    return max(2 * a + 40.0, math.sqrt(max(need, 0.0)))


# ---------------------------------------------------------------------------------------------- spherical cap


def cap_sphere(a: float, h: float) -> tuple[float, float]:
    """Radius and centre height of the sphere whose cap below z = 0 has opening radius a and depth h."""
    radius = (a * a + h * h) / (2 * h)
    return radius, radius - h


def cap_truth(a: float, h: float) -> dict:
    """Closed-form measurements of a spherical-cap wound in flat skin."""
    area, volume = math.pi * a * a, math.pi * h * (3 * a * a + h * h) / 6
    surface = math.pi * (a * a + h * h)
    return report_units(area, volume, h, volume / area, 2 * math.pi * a, 2 * a, 2 * a, surface)


def cap_cloud(a: float, h: float, spacing: float, rng) -> Cloud:
    """Flat skin plus the cap bed, sampled through the Lambert equal-area map (uniform by area)."""
    radius, centre_z = cap_sphere(a, h)
    rho_max = math.sqrt(2 * radius * h)  # Lambert disc radius: pi rho_max^2 = cap area 2 pi radius h
    u, v = jittered_grid(2 * rho_max, 2 * rho_max, spacing, rng)
    px, py = u - rho_max, v - rho_max
    keep = np.hypot(px, py) <= rho_max
    px, py = px[keep], py[keep]
    rho2 = px * px + py * py
    shrink = np.sqrt(1 - rho2 / (4 * radius * radius))  # r = radius sin(psi), psi = 2 asin(rho / 2 radius)
    bed = np.column_stack([px * shrink, py * shrink, -h + rho2 / (2 * radius)])
    normals = (np.array([0.0, 0.0, centre_z]) - bed) / radius
    side = _flat_side(a, 2 * math.pi * radius * h, spacing)
    return _cloud([_flat_skin(side, a, spacing, rng), (bed, normals, 1)])


def spherical_cap(a_mm: float, h_mm: float, sampling: Sampling) -> tuple[Scan, dict]:
    """A posed, noisy scan of a spherical-cap wound (opening radius a, depth h <= a) and its truth."""
    rng = np.random.default_rng([sampling.seed, 0])
    cloud = cap_cloud(a_mm, h_mm, sampling.spacing_mm, rng)
    scan = finish(cloud, sampling, rng, keep_clear=np.array([0.0, 0.0, -h_mm]))
    params = {"a_mm": a_mm, "h_mm": h_mm}
    return scan, _with_generator(cap_truth(a_mm, h_mm), "cap", params, sampling, scan)


# ---------------------------------------------------------------------------------------------- crater


def crater_truth(a: float, h: float) -> dict:
    """Closed-form measurements of a flat-bedded, vertical-walled cylindrical hole in flat skin."""
    area = math.pi * a * a
    return report_units(area, area * h, h, h, 2 * math.pi * a, 2 * a, 2 * a, area + 2 * math.pi * a * h)


def crater_cloud(a: float, h: float, spacing: float, rng) -> Cloud:
    """Flat skin, the bed disc at z = -h and the cylindrical wall r = a between them."""
    u, v = jittered_grid(2 * a, 2 * a, spacing, rng)
    x, y = u - a, v - a
    keep = np.hypot(x, y) < a
    bed = np.column_stack([x[keep], y[keep], np.full(keep.sum(), -h)])
    u, v = jittered_grid(2 * math.pi * a, h, spacing, rng)
    theta = u / a
    wall = np.column_stack([a * np.cos(theta), a * np.sin(theta), -v])
    wall_n = np.column_stack([np.cos(theta), np.sin(theta), np.zeros_like(theta)])
    side = _flat_side(a, math.pi * a * a + 2 * math.pi * a * h, spacing)
    bed_part = (bed, np.tile([0.0, 0.0, 1.0], (len(bed), 1)), 1)
    return _cloud([_flat_skin(side, a, spacing, rng), bed_part, (wall, wall_n, 1)])


def crater(a_mm: float, h_mm: float, sampling: Sampling) -> tuple[Scan, dict]:
    """A posed, noisy scan of a cylindrical crater (radius a, flat bed at depth h) and its truth."""
    rng = np.random.default_rng([sampling.seed, 0])
    scan = finish(crater_cloud(a_mm, h_mm, sampling.spacing_mm, rng), sampling, rng)
    params = {"a_mm": a_mm, "h_mm": h_mm}
    return scan, _with_generator(crater_truth(a_mm, h_mm), "crater", params, sampling, scan)


# ---------------------------------------------------------------------------------------------- limb trough


def trough_circle(radius: float, depth: float, half_angle: float) -> tuple[float, float]:
    """Centre height c and radius rho of the trough circle meeting the limb circle at +-half_angle.

    The trough bottom is at c - rho = radius - depth; requires radius (1 - cos half_angle) < depth.
    """
    inner = radius - depth
    c = (inner * inner - radius * radius) / (2 * (inner - radius * math.cos(half_angle)))
    return c, c - inner


def trough_angles(radius: float, c: float, rho: float) -> tuple[float, float]:
    """Half-angles of the opening arc on the limb circle (alpha) and of the bed arc on the trough's (beta)."""
    d1 = (c * c + radius * radius - rho * rho) / (2 * c)  # height of the common chord
    alpha = math.acos(d1 / radius)
    beta = math.atan2(radius * math.sin(alpha), c - d1)
    return alpha, beta


def trough_bed_radius(phi, c: float, rho: float):
    """Distance from the limb axis to the bed along the ray at angle phi from +z."""
    return c * np.cos(phi) - np.sqrt(rho * rho - (c * np.sin(phi)) ** 2)


def trough_truth(radius: float, length: float, c: float, rho: float) -> dict:
    """Closed-form measurements of the trough; depth is radial (the normal of the limb surface)."""
    alpha, beta = trough_angles(radius, c, rho)
    chord_above_centre = radius * math.cos(alpha) - c  # <= 0 without overhang
    limb_segment = radius * radius * (alpha - math.sin(alpha) * math.cos(alpha))
    trough_segment = rho * rho * beta + chord_above_centre * rho * math.sin(beta)
    lens = limb_segment + trough_segment
    arc = 2 * alpha * radius
    depth_integral, _ = integrate.quad(lambda p: radius - trough_bed_radius(p, c, rho), -alpha, alpha,
                                       epsabs=1e-13, epsrel=1e-12)
    chord = 2 * radius * math.sin(alpha)
    # The outline projects to a length x chord rectangle: its longest chord is the diagonal, and the
    # extent perpendicular to a diagonal is 2 L chord / diagonal.
    diagonal = math.hypot(length, chord)
    return report_units(length * arc, length * lens, radius - (c - rho), depth_integral / (2 * alpha),
                  2 * length + 2 * arc, diagonal, 2 * length * chord / diagonal,
                  length * 2 * beta * rho + 2 * lens)


def trough_cloud(radius: float, length: float, c: float, rho: float, spacing: float, rng) -> Cloud:
    """Limb skin (|angle| <= 60 deg) without the opening, the trough bed and its two flat end walls."""
    alpha, beta = trough_angles(radius, c, rho)
    y_half = max(length / 2 + 25.0, 1.05 * MIN_POINTS * spacing**2 / (4 * LIMB_HALF_ANGLE * radius))
    u, v = jittered_grid(2 * LIMB_HALF_ANGLE * radius, 2 * y_half, spacing, rng)
    phi, y = u / radius - LIMB_HALF_ANGLE, v - y_half
    keep = ~((np.abs(phi) < alpha) & (np.abs(y) < length / 2))
    phi, y = phi[keep], y[keep]
    skin_n = np.column_stack([np.sin(phi), np.zeros_like(phi), np.cos(phi)])
    skin = skin_n * radius + np.column_stack([np.zeros_like(y), y, np.zeros_like(y)])
    u, v = jittered_grid(2 * beta * rho, length, spacing, rng)
    theta, y = u / rho - beta, v - length / 2
    bed = np.column_stack([rho * np.sin(theta), y, c - rho * np.cos(theta)])
    bed_n = np.column_stack([-np.sin(theta), np.zeros_like(theta), np.cos(theta)])
    parts = [(skin, skin_n, 0), (bed, bed_n, 1)]
    half_chord, bottom = radius * math.sin(alpha), c - rho
    for sign in (-1.0, 1.0):
        u, v = jittered_grid(2 * half_chord, radius - bottom, spacing, rng)
        x, z = u - half_chord, v + bottom
        keep = (x * x + z * z <= radius * radius) & (x * x + (z - c) ** 2 <= rho * rho)
        wall = np.column_stack([x[keep], np.full(keep.sum(), sign * length / 2), z[keep]])
        parts.append((wall, np.tile([0.0, sign, 0.0], (len(wall), 1)), 1))
    return _cloud(parts)


def limb_trough(radius_mm: float, half_angle_deg: float, depth_mm: float, length_mm: float,
                sampling: Sampling) -> tuple[Scan, dict]:
    """A posed, noisy scan of a trough of max depth D along a limb of radius R, and its truth."""
    c, rho = trough_circle(radius_mm, depth_mm, math.radians(half_angle_deg))
    rng = np.random.default_rng([sampling.seed, 0])
    scan = finish(trough_cloud(radius_mm, length_mm, c, rho, sampling.spacing_mm, rng), sampling, rng)
    params = {"radius_mm": radius_mm, "length_mm": length_mm, "depth_mm": depth_mm,
              "half_angle_deg": half_angle_deg, "trough_centre_mm": c, "trough_radius_mm": rho}
    truth = trough_truth(radius_mm, length_mm, c, rho)
    return scan, _with_generator(truth, "trough", params, sampling, scan)


# ---------------------------------------------------------------------------------------------- scan


def finish(cloud: Cloud, sampling: Sampling, rng, keep_clear: np.ndarray | None = None) -> Scan:
    """Normal noise, small holes, far outliers (label 0), shuffle, then a rigid pose into metres."""
    noisy = cloud.points + cloud.normals * rng.normal(0.0, sampling.noise_mm, size=(len(cloud.points), 1))
    keep = ~holes(cloud.points, rng.uniform(0.02, 0.04), rng, keep_clear)
    points, label = noisy[keep], cloud.label[keep]
    points = np.vstack([points, outliers(points, N_OUTLIERS, rng)])
    label = np.concatenate([label, np.zeros(N_OUTLIERS, np.uint8)])
    order = rng.permutation(len(points))
    rotation, shift = random_pose(np.random.default_rng([sampling.seed, sampling.pose, 1]))
    metres = points[order] @ rotation.T / 1000.0 + shift
    return Scan(metres, label=label[order])


def holes(points: np.ndarray, fraction: float, rng, keep_clear: np.ndarray | None = None) -> np.ndarray:
    """Mask of points dropped in random discs of radius 0.8-2 mm until `fraction` of them are gone."""
    tree, drop = cKDTree(points), np.zeros(len(points), bool)
    while drop.mean() < fraction:
        centre, r = points[rng.integers(len(points))], rng.uniform(0.8, 2.0)
        if keep_clear is not None and np.linalg.norm(centre - keep_clear) < r + 1.5:
            continue  # a hole over the deepest point would change the truth the engine can see
        drop[tree.query_ball_point(centre, r)] = True
    return drop


def outliers(points: np.ndarray, n: int, rng) -> np.ndarray:
    """n points 30-80 mm from a random surface point and at least 20 mm from every point."""
    tree, found = cKDTree(points), []
    while len(found) < n:
        direction = rng.normal(size=3)
        direction *= rng.uniform(30, 80) / np.linalg.norm(direction)
        candidate = points[rng.integers(len(points))] + direction
        if tree.query(candidate)[0] >= 20.0:
            found.append(candidate)
    return np.array(found)


def random_pose(rng) -> tuple[np.ndarray, np.ndarray]:
    """Uniform random rotation (from a normalised Gaussian quaternion) and a shift of up to 0.3 m."""
    w, x, y, z = (q := rng.normal(size=4)) / np.linalg.norm(q)
    rotation = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])
    direction = rng.normal(size=3)
    return rotation, direction / np.linalg.norm(direction) * 0.3 * rng.uniform() ** (1 / 3)


def report_units(area, volume, max_depth, mean_depth, perimeter, length, width, surface) -> dict:
    """Truth in the report's units from mm, mm^2 and mm^3."""
    return {"area_cm2": area / 100, "volume_cm3": volume / 1000, "max_depth_mm": max_depth,
            "mean_depth_mm": mean_depth, "perimeter_cm": perimeter / 10, "length_cm": length / 10,
            "width_cm": width / 10, "surface_area_cm2": surface / 100}


def _with_generator(truth: dict, shape: str, params: dict, sampling: Sampling, scan: Scan) -> dict:
    made = {"shape": shape, **params, "spacing_mm": sampling.spacing_mm, "noise_mm": sampling.noise_mm,
            "seed": sampling.seed, "pose": sampling.pose, "points": len(scan)}
    return {**truth, "generator": made}


# ---------------------------------------------------------------------------------------------- case designs


def _strata(rng, n: int, low: float, high: float) -> np.ndarray:
    """n values spread over [low, high], one per equal stratum, in random order (Latin hypercube)."""
    return low + (high - low) * (rng.permutation(n) + rng.uniform(size=n)) / n


def cases(shape: str, n: int = 12, seed: int = 20260) -> list[tuple[Scan, dict]]:
    """n seeded (scan, truth) cases of `shape` ("cap", "trough" or "crater") spread over its ranges."""
    rng = np.random.default_rng([seed, ("cap", "trough", "crater").index(shape)])
    spacing, noise = _strata(rng, n, 0.5, 1.2), _strata(rng, n, 0.2, 1.0)
    samplings = [Sampling(float(s), float(e), seed * 100 + i)
                 for i, (s, e) in enumerate(zip(spacing, noise, strict=True))]
    if shape == "trough":
        depth, length = _strata(rng, n, 2.0, 10.0), _strata(rng, n, 15.0, 40.0)
        return [limb_trough(*trough_shape(rng, float(d)), float(d), float(ln), s)
                for d, ln, s in zip(depth, length, samplings, strict=True)]
    a, depth_fraction = _strata(rng, n, 8.0, 20.0), _strata(rng, n, 0.0, 1.0)
    make = {"cap": spherical_cap, "crater": crater}[shape]
    return [make(float(ai), float(1 + f * (min(12.0, ai) - 1)), s)  # 1 mm <= h <= min(12 mm, a)
            for ai, f, s in zip(a, depth_fraction, samplings, strict=True)]


def trough_shape(rng, depth: float) -> tuple[float, float]:
    """(R, half-angle deg) for a trough of this max depth: bed deeper than the chord, and no overhang."""
    while True:
        radius, half_angle = rng.uniform(35, 70), rng.uniform(10, 30)
        chord_depth = radius * (1 - math.cos(math.radians(half_angle)))
        half_chord = radius * math.sin(math.radians(half_angle))
        # depth = chord_depth + half_chord is a half-disc trough: any deeper would overhang the opening
        if chord_depth + 0.15 * half_chord <= depth <= chord_depth + 0.9 * half_chord:
            return radius, half_angle

"""One phantom from (seed, index): skin, wound, texture, sensor capture, pose, truth; and writing a set."""

from __future__ import annotations

from dataclasses import dataclass, field
from math import lcm
from pathlib import Path

import numpy as np
from PIL import Image

from features.io import Camera, Scan, write_camera, write_json, write_ply
from features.phantoms import texture as tex
from features.phantoms.render import RenderedScene, capture_scene, render_photo, scene_samples
from features.phantoms.scene import View, build_opening, draw_view, posed_camera, random_pose
from features.phantoms.sensor import SENSORS
from features.phantoms.surfaces import SHAPES, draw_centre, draw_surface
from features.phantoms.truth import wound_truth
from features.phantoms.wounds import (
    MAX_DEPTH_RATIO,
    PROFILES,
    bed_points,
    depth_profile,
    equivalent_radius,
    outline_distance,
)

TEXTURES = ("photo", "procedural", "mixed")
BODY_SITES = {"flat": "lower leg, anterior", "limb": "lower leg", "heel": "heel"}
CAPTURED_AT = "2026-01-01T09:00:00Z"


@dataclass(frozen=True)
class PhantomConfig:
    """Phantom settings, mirroring the `phantoms` section of params.yaml (ranges in millimetres)."""

    seed: int = 2026
    n: int = 6
    texture: str = "mixed"
    photos_dir: str | None = "data/photos"  # missing or None: procedural textures only
    depth_mm: tuple[float, float] = (1.0, 20.0)
    noise_mm: tuple[float, float] = (0.2, 1.5)
    distance_mm: tuple[float, float] = (200.0, 350.0)
    sensors: tuple[str, ...] = tuple(SENSORS)
    shapes: tuple[str, ...] = SHAPES
    skin_tones: tuple[int, ...] = tuple(tex.SKIN_TONES)  # procedural skin only; a subset shifts the population

    def __post_init__(self) -> None:
        if self.texture not in TEXTURES:
            raise ValueError(f"phantoms.texture must be one of {', '.join(TEXTURES)}, not {self.texture!r}")
        for name, known in (("sensors", SENSORS), ("shapes", SHAPES), ("skin_tones", tex.SKIN_TONES)):
            chosen = getattr(self, name)
            bad = [x for x in chosen if x not in known] or ([] if chosen else ["(none)"])
            if bad:
                raise ValueError(f"phantoms.{name}: unknown {bad}; choose from {', '.join(known)}")
        for name in ("depth_mm", "noise_mm", "distance_mm"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"phantoms.{name} must be [low, high] with 0 < low <= high, got {[lo, hi]}")

    @classmethod
    def from_params(cls, section: dict) -> PhantomConfig:
        """Build from the params.yaml `phantoms` section (its `profiles` block is ignored here)."""
        known = {f: section[f] for f in cls.__dataclass_fields__ if f in section}
        for key in ("depth_mm", "noise_mm", "distance_mm", "sensors", "shapes", "skin_tones"):
            if key in known:
                known[key] = tuple(float(x) for x in known[key]) if key.endswith("mm") else tuple(known[key])
        if known.get("photos_dir") is not None:
            known["photos_dir"] = str(known["photos_dir"])
        return cls(**known)


@dataclass
class Phantom:
    """A synthetic scan with its photo, photo camera, metadata and exact truth."""

    name: str
    scan: Scan
    photo: np.ndarray  # (512, 512, 3) uint8
    camera: Camera
    meta: dict
    truth: dict = field(default_factory=dict)
    photo_mask: np.ndarray | None = None  # (512, 512) bool: the wound's pixels in `photo`


def plan(index: int, config: PhantomConfig) -> dict[str, str]:
    """Shape, sensor, profile and texture of phantom `index`: cycled so that every combination appears."""
    shapes, sensors = config.shapes, config.sensors
    cycle = lcm(len(shapes), 2 * len(PROFILES))
    photo = config.texture == "photo" or (config.texture == "mixed" and index % 2 == 0)
    return {"shape": shapes[index % len(shapes)], "profile": PROFILES[(index // 2) % len(PROFILES)],
            "sensor": sensors[(index // len(shapes) + index // cycle) % len(sensors)],
            "texture": "photo" if photo and tex.photos_available(config.photos_dir) else "procedural"}


def make_phantom(index: int, config: PhantomConfig | None = None, seed: int | None = None) -> Phantom:
    """Phantom number `index`, drawn from a generator seeded by (seed, index) only (default seed: config's)."""
    config = config or PhantomConfig()
    seed = config.seed if seed is None else seed
    rng = np.random.default_rng([seed, index])
    choice = plan(index, config)
    photo = tex.pick_photo(rng, config.photos_dir) if choice["texture"] == "photo" else None
    drawn = _draw_scene(rng, choice, config, photo)
    scene, spec = drawn.scene, SENSORS[choice["sensor"]]
    sigma0 = rng.uniform(*config.noise_mm) * 1e-3
    samples = scene_samples(scene, drawn.view, spec)
    scan = capture_scene(rng, scene, samples, drawn.view, spec, sigma0)
    image, mask = (photo.image, photo.mask >= 0.5) if photo is not None else render_photo(rng, scene, samples)
    pose = random_pose(rng)
    scan.points = scan.points @ pose[:3, :3].T + pose[:3, 3]
    truth = wound_truth(scene.surface, scene.grid, scene.field, drawn.depth, scene.tissue)
    truth["generator"] = {**choice, **drawn.info, "index": index, "seed": seed, "noise_mm": sigma0 * 1e3,
                          "device": spec.device, "points": len(scan), "wound_points": int(scan.label.sum())}
    meta = {"patient_id": f"P{index:04d}", "wound_id": f"W{index:04d}", "captured_at": CAPTURED_AT,
            "body_site": BODY_SITES[choice["shape"]], "device": spec.device}
    return Phantom(f"phantom_{index:04d}", scan, image, posed_camera(scene.photo_camera, pose), meta,
                   _rounded(truth), mask)


@dataclass(frozen=True)
class _Drawn:
    """The scene as drawn before the capture, the bed's depth field and what the truth records about it."""

    scene: RenderedScene
    view: View
    depth: np.ndarray
    info: dict


def _draw_scene(rng: np.random.Generator, choice: dict, config: PhantomConfig, photo: tex.Photo | None) -> _Drawn:
    """Skin, view, opening, depth, tissue and colours, in that order of draws."""
    surface = draw_surface(rng, choice["shape"])
    at = draw_centre(rng, surface)
    view = draw_view(rng, surface, at, config.distance_mm)
    surface, grid, opening, photo_cam = build_opening(rng, surface, at, view, photo)
    inside = opening >= 0.5
    dist = outline_distance(inside, grid.step)
    radius = equivalent_radius(surface, grid, inside)
    depth_max = min(rng.uniform(*config.depth_mm) * 1e-3, MAX_DEPTH_RATIO * radius)
    depth, profile_info = depth_profile(choice["profile"], dist, depth_max, grid, rng)
    tissue = None if photo else tex.tissue_map(rng, grid, inside, dist)
    skin = tex.draw_skin(rng, config.skin_tones)
    wound_rgb = None if tissue is None else tex.wound_colours(rng, grid, tissue)
    scene = RenderedScene(surface, grid, opening, bed_points(surface, grid, depth)[1], skin, photo, photo_cam,
                          wound_rgb, tissue, tex.draw_background(rng))
    info = {**profile_info, "radii_mm": [r * 1e3 for r in surface.radii], "taper": surface.taper,
            "undulation_mm": float(surface.undulation.amp.sum() * 1e3), "depth_mm": depth_max * 1e3,
            "opening_diameter_mm": 2e3 * radius, "distance_mm": view.distance * 1e3,
            "view_angle_deg": view.angle_deg, "photo_id": None if photo is None else photo.photo_id,
            "skin_tone": skin.tone}
    return _Drawn(scene, view, depth, info)


def _rounded(value: object) -> object:
    """Six significant digits for every float in a JSON-like value, so the files stay readable."""
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(f"{float(value):.6g}")
    return value


def write_phantom(phantom: Phantom, out_dir: Path) -> Path:
    """Write the five files of one phantom; returns the PLY path."""
    ply = out_dir / f"{phantom.name}.ply"
    write_ply(ply, phantom.scan)
    Image.fromarray(phantom.photo).save(out_dir / f"{phantom.name}.png", format="PNG", compress_level=6)
    write_camera(out_dir / f"{phantom.name}.camera.json", phantom.camera)
    write_json(out_dir / f"{phantom.name}.meta.json", phantom.meta)
    write_json(out_dir / f"{phantom.name}.truth.json", phantom.truth)
    return ply


def write_phantoms(n: int, out_dir: str | Path, seed: int, config: PhantomConfig | None = None) -> list[Path]:
    """Generate and write phantoms 0..n-1 into out_dir; returns the PLY paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [write_phantom(make_phantom(i, config, seed), out) for i in range(n)]

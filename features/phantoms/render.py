"""From the scene to a coloured, labelled point cloud (depth sensor) and to a procedural photo."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from features.io import Camera, Scan
from features.phantoms.samples import Samples, render_samples
from features.phantoms.scene import View
from features.phantoms.sensor import (
    BACKGROUND,
    SensorSpec,
    camera_centre,
    capture,
    native_camera,
    zbuffer,
)
from features.phantoms.surfaces import Surface
from features.phantoms.texture import Photo, SkinTexture, sample_photo, shade
from features.phantoms.wounds import FineGrid, equivalent_radius

SPLAT_SPACING_PX = 0.8  # samples at most this many pixels apart at the nearest skin
BACKGROUND_BEHIND = (0.10, 0.30)  # metres behind the wound


@dataclass(frozen=True)
class RenderedScene:
    """Everything that decides what a pixel sees: geometry, opening, bed, colours and tissue."""

    surface: Surface
    grid: FineGrid
    field: np.ndarray  # opening field on the grid, >= 0.5 inside
    bed: np.ndarray  # (nv, nu, 3)
    skin: SkinTexture
    photo: Photo | None
    photo_camera: Camera
    wound_rgb: np.ndarray | None  # (nv, nu, 3), procedural only
    tissue: np.ndarray | None  # (nv, nu) uint8, procedural only
    background: np.ndarray  # (3,) colour of the background plane


def scene_samples(scene: RenderedScene, view: View, spec: SensorSpec) -> Samples:
    """Render samples dense enough for the depth sensor and, when it is rendered, the procedural photo."""
    focal = native_camera(spec, view.rotation, view.centre).fx
    if scene.photo is None:
        focal = max(focal, scene.photo_camera.fx)
    nearest = view.distance - 0.04  # the skin rises at most a few centimetres towards the device
    return render_samples(scene.surface, scene.grid, scene.bed, SPLAT_SPACING_PX * nearest / focal)


def capture_scene(rng: np.random.Generator, scene: RenderedScene, samples: Samples, view: View,
                  spec: SensorSpec, sigma0: float) -> Scan:
    """The sensor's point cloud of the scene in the local frame, with colours, label and tissue."""
    camera = native_camera(spec, view.rotation, view.centre)
    normal = scene.surface.frame(np.array(view.target[0]), np.array(view.target[1]))[1]
    tilted = normal + rng.normal(0, 0.12, 3)  # the wall or couch behind is not quite parallel to the skin
    plane = (view.target - rng.uniform(*BACKGROUND_BEHIND) * normal, tilted / np.linalg.norm(tilted))
    radius = equivalent_radius(scene.surface, scene.grid, scene.field >= 0.5)
    cap = capture(rng, spec, camera, samples.pos, samples.normal, plane, sigma0, (view.target, radius))
    rgb, label, tissue = point_attributes(scene, samples, cap.sample, rng)
    return Scan(cap.points(), shade(rgb, cap.cos, rng), None, label, tissue)


def point_attributes(scene: RenderedScene, samples: Samples, sample: np.ndarray,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Colour (float), label and tissue of each point from the sample it shows (background, outlier: 0)."""
    hit = sample >= 0
    idx = sample[hit]
    rgb = np.empty((len(sample), 3))
    rgb[~hit] = scene.background
    rgb[sample < BACKGROUND] = rng.uniform(40, 220, size=(int((sample < BACKGROUND).sum()), 1))
    colours, wound, classes = sample_colours(scene, samples, idx)
    rgb[hit] = colours
    label = np.zeros(len(sample), np.uint8)
    label[hit] = wound
    if scene.tissue is None:
        return rgb, label, None
    tissue = np.zeros(len(sample), np.uint8)
    tissue[hit] = classes
    return rgb, label, tissue


def sample_colours(scene: RenderedScene, samples: Samples,
                   idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Colour, wound flag and tissue class of the given samples."""
    u, v = samples.u[idx], samples.v[idx]
    row, col, on = scene.grid.nearest(u, v)
    wound = on & (scene.field[row, col] >= 0.5)
    rgb = scene.skin.colours(u, v)
    if scene.photo is not None:
        photo_rgb, real = sample_photo(scene.photo, scene.photo_camera.project(samples.pos[idx])[0])
        rgb[real] = photo_rgb[real]
        return rgb, wound, np.zeros(len(idx), np.uint8)
    rgb[wound] = scene.wound_rgb[row[wound], col[wound]]
    return rgb, wound, np.where(wound, scene.tissue[row, col], 0).astype(np.uint8)


def render_photo(rng: np.random.Generator, scene: RenderedScene,
                 samples: Samples) -> tuple[np.ndarray, np.ndarray]:
    """A procedural photo through the photo camera, (H, W, 3) uint8, and its wound pixels, (H, W) bool.

    Splatted colours, small gaps closed, background behind; the mask marks the pixels showing a wound sample.
    """
    cam = scene.photo_camera
    index = zbuffer(cam, samples.pos, samples.normal)[0].reshape(cam.height, cam.width)
    gap, (rows, cols) = ndimage.distance_transform_edt(index < 0, return_indices=True)
    index = np.where(gap <= 2.0, index[rows, cols], BACKGROUND).ravel()
    hit = index >= 0
    rgb = np.tile(scene.background, (index.size, 1))
    wound = np.zeros(index.size, bool)
    rgb[hit], wound[hit] = sample_colours(scene, samples, index[hit])[:2]
    cos = np.ones(index.size)
    towards = samples.pos[index[hit]] - camera_centre(cam)
    towards /= np.linalg.norm(towards, axis=1, keepdims=True)
    cos[hit] = np.abs(np.einsum("ij,ij->i", samples.normal[index[hit]], towards))
    return shade(rgb, cos, rng).reshape(cam.height, cam.width, 3), wound.reshape(cam.height, cam.width)

"""Scene geometry: where the cameras stand, the wound's opening fitted to the skin, and the rigid pose."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.io import Camera
from features.phantoms.sensor import pinhole
from features.phantoms.surfaces import Surface
from features.phantoms.texture import Photo
from features.phantoms.wounds import (
    MIN_MARGIN,
    FineGrid,
    blob_field,
    fit_domain,
    opening_margin,
    photo_field,
    random_blob,
)

PHOTO_SIZE = 512
MAX_VIEW_DEG = 35.0
DIAMETER = (0.008, 0.040)  # opening's equivalent diameter, metres


@dataclass(frozen=True)
class View:
    """The device's centre and orientation (rows = camera axes) in the local frame, and how it was drawn."""

    centre: np.ndarray
    rotation: np.ndarray
    target: np.ndarray
    distance: float
    angle_deg: float


def draw_view(rng: np.random.Generator, surface: Surface, at: tuple[float, float],
              distance_mm: tuple[float, float]) -> View:
    """A device 200-350 mm from the wound centre, within 35 degrees of its normal, with a random roll."""
    target, normal, _ = surface.frame(np.array(at[0]), np.array(at[1]))
    t1 = np.cross([0.0, 1.0, 0.0], normal)
    t1 /= np.linalg.norm(t1)
    t2 = np.cross(normal, t1)
    angle = np.radians(rng.uniform(0, MAX_VIEW_DEG))
    azimuth, roll = rng.uniform(0, 2 * np.pi, 2)
    distance = rng.uniform(*distance_mm) * 1e-3
    back = np.cos(angle) * normal + np.sin(angle) * (np.cos(azimuth) * t1 + np.sin(azimuth) * t2)
    centre = target + distance * back
    return View(centre, look_at(centre, target, np.cos(roll) * t1 + np.sin(roll) * t2), target, distance,
                float(np.degrees(angle)))


def look_at(centre: np.ndarray, target: np.ndarray, down: np.ndarray) -> np.ndarray:
    """Rotation whose rows are the camera's x (right), y (down) and z (forward) axes."""
    z = (target - centre) / np.linalg.norm(target - centre)
    y = down - (down @ z) * z
    y /= np.linalg.norm(y)
    return np.stack([np.cross(y, z), y, z])


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking direction a onto direction b."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    axis, c = np.cross(a, b), float(a @ b)
    s2 = float(axis @ axis)
    if s2 < 1e-18:
        return np.eye(3)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + k + k @ k * (1 - c) / s2


def photo_camera(view: View, photo: Photo | None, diameter: float) -> Camera:
    """The photo's camera, at the device: a FUSeg photo's wound is made `diameter` metres wide and aimed at
    the wound centre; a procedural photo frames the wound with room to spare."""
    if photo is None:
        f = float(np.clip(PHOTO_SIZE * view.distance / (3.0 * diameter), 500.0, 1000.0))
        return pinhole(PHOTO_SIZE, PHOTO_SIZE, f, view.rotation, view.centre)
    f = photo.diameter * view.distance / diameter
    cam = pinhole(PHOTO_SIZE, PHOTO_SIZE, f, view.rotation, view.centre)
    ray = np.array([(photo.centroid[0] - cam.cx) / f, (photo.centroid[1] - cam.cy) / f, 1.0])
    turn = rotation_between(np.array([0.0, 0.0, 1.0]), ray)
    return pinhole(PHOTO_SIZE, PHOTO_SIZE, f, turn @ view.rotation, view.centre)


def build_opening(rng: np.random.Generator, surface: Surface, at: tuple[float, float], view: View,
                  photo: Photo | None) -> tuple[Surface, FineGrid, np.ndarray, Camera]:
    """The opening (fine grid and field), the domain cut around it and the photo camera.

    The size is drawn, then shrunk until MIN_MARGIN of skin or more separates the outline from the domain's edge.
    """
    skin = rng.uniform(0.016, 0.035)
    blob = random_blob(rng)
    diameter = rng.uniform(*DIAMETER)
    if photo is None:  # the blob's reach is known: start from a size that fits
        room = float(surface.margin(np.array(at[0]), np.array(at[1]))) - MIN_MARGIN - 1e-3
        diameter = min(diameter, 2 * room * blob.equivalent_radius() / blob.reach())
    for _ in range(16):
        camera = photo_camera(view, photo, diameter)
        got = blob_field(blob, diameter, at) if photo is None else photo_field(surface, camera, photo.mask, at)
        if got is not None and (got[1] >= 0.5).sum() > 100:
            fitted = fit_domain(surface, *got, skin)
            if opening_margin(fitted, *got) >= MIN_MARGIN:
                return fitted, got[0], got[1], camera
        diameter *= 0.85
    raise RuntimeError("could not fit the wound on this skin; this is a bug in the phantom generator")


def random_pose(rng: np.random.Generator) -> np.ndarray:
    """A random rigid transform (4, 4): uniform rotation, translation within about half a metre."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    m = np.eye(4)
    m[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                 [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                 [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]]
    m[:3, 3] = rng.uniform(-0.25, 0.25, 3)
    return m


def posed_camera(camera: Camera, pose: np.ndarray) -> Camera:
    """The same camera after the scene moved by `pose` (local -> world)."""
    return Camera(camera.width, camera.height, camera.fx, camera.fy, camera.cx, camera.cy,
                  camera.world_to_camera @ np.linalg.inv(pose))

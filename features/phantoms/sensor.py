"""A depth-camera raster of the scene: z-buffered splats, range noise, flying pixels, holes and outliers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from features.io import Camera

BACKGROUND, OUTLIER, NOTHING = -1, -2, -3  # sample index of pixels that show no skin sample
GRAZING_COS = np.cos(np.radians(75.0))  # steeper than this returns no depth
FLYING_JUMP = 0.01  # metres: a depth step this large makes mixed (flying) pixels
LAYER = 1.5e-3  # metres: samples this close behind a pixel's nearest one lie on the same (first) surface


@dataclass(frozen=True)
class SensorSpec:
    """Native raster, horizontal field of view and how the depth is upsampled for output."""

    width: int
    height: int
    hfov_deg: float
    upsample: int
    device: str
    left_band: tuple[int, int] = (0, 1)  # columns without depth on the left (stereo/projector baseline)


# Narrower than the real devices' ~60 deg so that a small wound still gets enough points.
SENSORS = {
    "lidar": SensorSpec(256, 192, 40.0, 2, "phantom LiDAR 256x192 (depth upsampled x2)"),
    "structured_light": SensorSpec(640, 480, 36.0, 1, "phantom structured light 640x480", (16, 33)),
}


def native_camera(spec: SensorSpec, rotation: np.ndarray, centre: np.ndarray) -> Camera:
    """The sensor's native pinhole camera at `centre`, rows of `rotation` = camera axes (local frame)."""
    f = spec.width / 2 / np.tan(np.radians(spec.hfov_deg) / 2)
    return pinhole(spec.width, spec.height, f, rotation, centre)


def pinhole(width: int, height: int, f: float, rotation: np.ndarray, centre: np.ndarray) -> Camera:
    """A camera with square pixels and the principal point at the image centre."""
    m = np.eye(4)
    m[:3, :3] = rotation
    m[:3, 3] = -rotation @ centre
    return Camera(width, height, float(f), float(f), (width - 1) / 2, (height - 1) / 2, m)


def camera_centre(camera: Camera) -> np.ndarray:
    """Centre of projection in the camera's world frame."""
    m = camera.world_to_camera
    return -m[:3, :3].T @ m[:3, 3]


def pixel_rays(camera: Camera) -> np.ndarray:
    """Ray (x', y', 1) in the world frame's orientation for every pixel, (H*W, 3), row-major."""
    ys, xs = np.mgrid[0:camera.height, 0:camera.width]
    ray = np.stack([(xs.ravel() - camera.cx) / camera.fx, (ys.ravel() - camera.cy) / camera.fy,
                    np.ones(xs.size)], axis=1)
    return ray @ camera.world_to_camera[:3, :3]  # R^T applied to each row


def zbuffer(camera: Camera, points: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sample each pixel shows: (H*W,) sample index (NOTHING where none) and its depth.

    A pixel reports the surface its centre ray meets first: of the front-facing samples falling in it,
    those within LAYER of the nearest depth are the first surface, and the one closest to the pixel's
    centre stands for the ray. Taking simply the nearest depth would favour the skin over the sunken bed
    in every pixel that straddles the wound's edge, shrinking the labelled wound and its depth.
    """
    pix, z = camera.project(points)
    facing = np.einsum("ij,ij->i", camera_centre(camera) - points, normals) > 0
    ix, iy = np.floor(pix[:, 0] + 0.5), np.floor(pix[:, 1] + 0.5)
    ok = facing & (z > 0) & (ix >= 0) & (ix < camera.width) & (iy >= 0) & (iy < camera.height)
    keep = np.nonzero(ok)[0]
    pixel = (iy[keep] * camera.width + ix[keep]).astype(np.int64)
    nearest = np.full(camera.width * camera.height, np.inf)
    np.minimum.at(nearest, pixel, z[keep])
    front = z[keep] <= nearest[pixel] + LAYER
    keep, pixel = keep[front], pixel[front]
    off_centre = np.hypot(pix[keep, 0] - ix[keep], pix[keep, 1] - iy[keep])  # pixels, < 0.71
    key = (pixel << 20) | np.minimum(off_centre * 2**19, 2**20 - 1).astype(np.int64)
    order = np.argsort(key, kind="stable")
    first = np.r_[True, pixel[order][1:] != pixel[order][:-1]]
    win = order[first]
    index = np.full(camera.width * camera.height, NOTHING, np.int64)
    depth = np.full(camera.width * camera.height, np.inf)
    index[pixel[win]], depth[pixel[win]] = keep[win], z[keep[win]]
    return index, depth


def fill_gaps(index: np.ndarray, depth: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Give a pixel that no splat reached, between two that were, the nearer neighbour's sample."""
    idx, z = index.reshape(shape).copy(), depth.reshape(shape).copy()
    interior = np.zeros(shape, bool)
    interior[1:-1, 1:-1] = True
    for axis in (1, 0):
        before, after = np.roll(idx, 1, axis), np.roll(idx, -1, axis)
        zb, za = np.roll(z, 1, axis), np.roll(z, -1, axis)
        gap = (idx == NOTHING) & (before >= 0) & (after >= 0) & interior  # roll wraps round: skip the border
        take_before = zb <= za
        idx[gap] = np.where(take_before, before, after)[gap]
        z[gap] = np.where(take_before, zb, za)[gap]
    return idx.ravel(), z.ravel()


def plane_depth(camera: Camera, rays: np.ndarray, point: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Camera depth Z where each pixel ray meets the plane (inf where it does not)."""
    with np.errstate(divide="ignore"):
        z = ((point - camera_centre(camera)) @ normal) / (rays @ normal)
    return np.where(z > 0, z, np.inf)


@dataclass(frozen=True)
class Capture:
    """Valid pixels of the output raster: pixel (x, y), depth, source sample index and incidence cosine."""

    camera: Camera
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    sample: np.ndarray
    cos: np.ndarray

    def points(self) -> np.ndarray:
        """Unprojected points (N, 3) in the camera's world frame."""
        c = self.camera
        cam = np.stack([(self.x - c.cx) / c.fx * self.z, (self.y - c.cy) / c.fy * self.z, self.z], axis=1)
        r, t = c.world_to_camera[:3, :3], c.world_to_camera[:3, 3]
        return (cam - t) @ r


def capture(rng: np.random.Generator, spec: SensorSpec, camera: Camera, points: np.ndarray,
            normals: np.ndarray, plane: tuple[np.ndarray, np.ndarray], sigma0: float,
            focus: tuple[np.ndarray, float]) -> Capture:
    """Render the samples and the background plane, then degrade the depth like the real sensor would.

    Args:
        plane: a point on the background plane and its unit normal.
        sigma0: range noise (metres) at 0.3 m, head-on.
        focus: the wound centre (local frame) and the opening's equivalent radius, to aim some holes.
    """
    shape = (camera.height, camera.width)
    index, depth = fill_gaps(*zbuffer(camera, points, normals), shape)
    rays = pixel_rays(camera)
    z_bg = plane_depth(camera, rays, *plane)
    skin = (index >= 0) & (depth < z_bg)
    index = np.where(skin, index, BACKGROUND)
    depth = np.where(skin, depth, z_bg)
    normal = np.where(skin[:, None], normals[np.maximum(index, 0)], plane[1])
    cos = np.abs(np.einsum("ij,ij->i", normal, rays)) / np.linalg.norm(rays, axis=1)
    if spec.upsample == 1:
        depth = flying_pixels(rng, depth.reshape(shape)).ravel()
    depth = depth + range_noise(rng, depth, cos, np.linalg.norm(rays, axis=1), sigma0)
    valid = np.isfinite(depth) & (cos >= GRAZING_COS) & ~holes(rng, camera, index, depth, focus).ravel()
    valid &= np.arange(depth.size) % camera.width >= rng.integers(*spec.left_band)
    x, y, z, sample, cos, out_cam = upsample(camera, spec.upsample, depth, valid, index, cos)
    return add_outliers(rng, Capture(out_cam, x, y, z, sample, cos))


def range_noise(rng: np.random.Generator, depth: np.ndarray, cos: np.ndarray, ray_len: np.ndarray,
                sigma0: float) -> np.ndarray:
    """Depth change from Gaussian range noise along the ray: sigma0 (z / 0.3 m)^2, more when oblique."""
    finite = np.where(np.isfinite(depth), depth, 0.0)
    sigma = sigma0 * (finite / 0.3) ** 2 / np.maximum(cos, 0.3)
    return rng.normal(0.0, 1.0, size=depth.shape) * sigma / ray_len  # range step -> depth step


def flying_pixels(rng: np.random.Generator, depth: np.ndarray) -> np.ndarray:
    """At depth steps, half the pixels return a mix of the near and the far depth."""
    finite = np.where(np.isfinite(depth), depth, 0.0)
    near, far = ndimage.minimum_filter(finite, 3), ndimage.maximum_filter(finite, 3)
    edge = (far - near > FLYING_JUMP) & np.isfinite(depth) & (rng.random(depth.shape) < 0.5)
    mix = near + rng.uniform(0.1, 0.9, size=depth.shape) * (far - near)
    return np.where(edge, mix, depth)


def holes(rng: np.random.Generator, camera: Camera, index: np.ndarray, depth: np.ndarray,
          focus: tuple[np.ndarray, float]) -> np.ndarray:
    """A few elliptical dropouts 2-8 mm across, one of them often inside the wound."""
    ys, xs = np.mgrid[0:camera.height, 0:camera.width]
    out = np.zeros(xs.shape, bool)
    skin = np.nonzero(index >= 0)[0]
    centre_px = camera.project(focus[0][None])[0][0]
    for k in range(int(rng.integers(1, 5))):
        if k == 0 and rng.random() < 0.6:
            at = centre_px + rng.uniform(-0.5, 0.5, 2) * focus[1] * camera.fx / np.median(depth[skin])
        else:
            p = skin[rng.integers(len(skin))]
            at = np.array([p % camera.width, p // camera.width], float)
        size = rng.uniform(2e-3, 8e-3, 2) / 2 * camera.fx / np.median(depth[skin])  # semi-axes, pixels
        c, s = np.cos(angle := rng.uniform(0, np.pi)), np.sin(angle)
        dx, dy = xs - at[0], ys - at[1]
        out |= ((dx * c + dy * s) / size[0]) ** 2 + ((dy * c - dx * s) / size[1]) ** 2 <= 1.0
    return out


def upsample(camera: Camera, k: int, depth: np.ndarray, valid: np.ndarray, index: np.ndarray,
             cos: np.ndarray) -> tuple[np.ndarray, ...]:
    """Bilinear depth upsampling by k (this mixes depths across edges: flying pixels); labels by nearest."""
    h, w = camera.height, camera.width
    out_cam = Camera(w * k, h * k, camera.fx * k, camera.fy * k, camera.cx * k + (k - 1) / 2,
                     camera.cy * k + (k - 1) / 2, camera.world_to_camera)
    ys, xs = np.mgrid[0:h * k, 0:w * k]
    xn, yn = (xs.ravel() - (k - 1) / 2) / k, (ys.ravel() - (k - 1) / 2) / k  # native coordinates
    near = np.clip(np.rint(yn), 0, h - 1).astype(int) * w + np.clip(np.rint(xn), 0, w - 1).astype(int)
    x0, y0 = np.floor(xn), np.floor(yn)
    total, weight = np.zeros(xn.size), np.zeros(xn.size)
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        px, py = np.clip(x0 + dx, 0, w - 1).astype(int), np.clip(y0 + dy, 0, h - 1).astype(int)
        wgt = (1 - np.abs(xn - x0 - dx)) * (1 - np.abs(yn - y0 - dy)) * valid[py * w + px]
        total += wgt * np.where(valid, depth, 0.0)[py * w + px]
        weight += wgt
    keep = valid[near] & (weight > 1e-9)
    z = total[keep] / weight[keep]
    return xs.ravel()[keep], ys.ravel()[keep], z, index[near][keep], cos[near][keep], out_cam


def add_outliers(rng: np.random.Generator, cap: Capture) -> Capture:
    """5 to 30 stray returns scattered in the frustum, well in front of whatever the pixel sees."""
    n = int(rng.integers(5, 31))
    x = rng.uniform(0, cap.camera.width - 1, n)
    y = rng.uniform(0, cap.camera.height - 1, n)
    z = rng.uniform(0.35, 0.85, n) * cap.z[cap.sample >= 0].min()  # nearer than any skin: clearly stray
    return Capture(cap.camera, np.r_[cap.x, x], np.r_[cap.y, y], np.r_[cap.z, z],
                   np.r_[cap.sample, np.full(n, OUTLIER)], np.r_[cap.cos, np.ones(n)])

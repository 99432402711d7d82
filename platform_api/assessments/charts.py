"""The report's pictures (matplotlib, Agg, no pyplot state): the outline over the photo, or seen from above on the
skin plane when there is no photo; and the wound's area and volume over time."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import timedelta

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from platform_api.assessments.schemas import TrendPoint

MAX_PHOTO_SIDE = 1024  # larger photos are drawn downscaled: the report needs no more detail
OUTLINE_COLOUR = "#ffd400"


def project(camera: dict, points: np.ndarray) -> np.ndarray:
    """Pixels (K, 2) of scan points (K, 3): (fx X/Z + cx, fy Y/Z + cy), (X, Y, Z, 1) = world_to_camera (x, y, z, 1);
    NaN for points behind the camera (docs/scan-format.md)."""
    matrix = np.asarray(camera["world_to_camera"], dtype=float)
    cam = points @ matrix[:3, :3].T + matrix[:3, 3]  # (K, 3)
    z = np.where(cam[:, 2] > 0, cam[:, 2], np.nan)
    return np.column_stack([camera["fx"] * cam[:, 0] / z + camera["cx"], camera["fy"] * cam[:, 1] / z + camera["cy"]])


def skin_plane(points: np.ndarray) -> np.ndarray:
    """(K, 2) coordinates of the outline in its best-fitting plane (the skin around a wound is nearly flat)."""
    centred = points - points.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    return centred @ axes[:2].T


def draw_outline(ax: Axes, photo: np.ndarray | None, camera: dict | None, outline: list | None) -> None:
    """The photo with the projected outline, or the outline on the skin plane in cm (no photo)."""
    points = np.asarray(outline, dtype=float).reshape(-1, 3) if outline else np.empty((0, 3))
    if photo is not None and camera is not None:
        scale = min(1.0, MAX_PHOTO_SIDE / max(photo.shape[:2]))
        ax.imshow(_downscaled(photo, scale))
        ax.set_axis_off()
        if len(points):
            pixels = project(camera, points) * scale
            ax.fill(pixels[:, 0], pixels[:, 1], color=OUTLINE_COLOUR, alpha=0.2, linewidth=0)
            ax.plot(pixels[:, 0], pixels[:, 1], color=OUTLINE_COLOUR, linewidth=1.5)
        ax.set_title("photo with the measured outline", fontsize=9)
        return
    if len(points):
        flat = skin_plane(points) * 100.0
        ax.fill(flat[:, 0], flat[:, 1], color="#c0392b", alpha=0.25, linewidth=0)
        ax.plot(flat[:, 0], flat[:, 1], color="#c0392b", linewidth=1.5)
        ax.set_aspect("equal")
        ax.set_xlabel("cm")
        ax.set_ylabel("cm")
    else:
        ax.text(0.5, 0.5, "no outline: the wound was not measured", ha="center", va="center", fontsize=9)
        ax.set_axis_off()
    ax.set_title("outline on the skin plane, from above", fontsize=9)


def _downscaled(photo: np.ndarray, scale: float) -> np.ndarray:
    if scale >= 1.0:
        return photo
    from PIL import Image

    height, width = photo.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(photo).resize(size, Image.Resampling.BILINEAR))


def draw_trend(ax: Axes, points: Sequence[TrendPoint], current_id: str | None = None) -> None:
    """Area (and volume, on a second axis) at each assessment; the current one ringed."""
    measured = [p for p in points if p.area_cm2 is not None]
    if not measured:
        ax.text(0.5, 0.5, "no measured assessment yet", ha="center", va="center", fontsize=9)
        ax.set_axis_off()
        return
    times = [p.captured_at for p in measured]
    ax.plot(times, [p.area_cm2 for p in measured], "o-", color="#c0392b", label="area (cm²)")
    volumes = [(p.captured_at, p.volume_cm3) for p in measured if p.volume_cm3 is not None]
    if volumes:
        other = ax.twinx()
        other.plot(*zip(*volumes, strict=True), "s--", color="#2c7fb8", label="volume (cm³)")
        other.set_ylabel("volume (cm³)", fontsize=8)
    current = [p for p in measured if p.assessment_id == current_id]
    if current:
        ax.plot([current[0].captured_at], [current[0].area_cm2], "o", markersize=12, markerfacecolor="none",
                markeredgecolor="black")
    ax.set_ylabel("area (cm²)", fontsize=8)
    ax.set_ylim(bottom=0)
    if volumes:
        other.set_ylim(bottom=0)  # both scales from zero, so a healing wound's two curves read alike
    if min(times) == max(times):  # one visit: two weeks either side, not matplotlib's years around one date
        ax.set_xlim(min(times) - timedelta(days=14), max(times) + timedelta(days=14))
    ax.set_title("wound size over time", fontsize=9)
    ax.tick_params(labelsize=7)
    for label in ax.get_xticklabels():
        label.set_rotation(30)


def png(draw, *args, size: tuple[float, float] = (5.0, 4.0)) -> bytes:
    """A PNG of one Axes drawn by `draw(ax, *args)`."""
    figure = Figure(figsize=size, dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    draw(figure.add_subplot(), *args)
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()

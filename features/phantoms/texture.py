"""Colours: procedural skin and tissue, or a FUSeg photo and its wound mask draped over the skin."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from features.phantoms.surfaces import Waves, random_waves
from features.phantoms.wounds import FineGrid

# Fitzpatrick-like tones 1 (lightest) to 6 (darkest), linear RGB-ish 0..255.
SKIN_TONES = {1: (238, 206, 186), 2: (224, 182, 152), 3: (198, 150, 114),
              4: (160, 112, 80), 5: (114, 78, 54), 6: (74, 50, 38)}
TISSUE_RGB = {1: (176, 36, 44), 2: (212, 188, 110), 3: (42, 30, 26), 4: (228, 148, 154)}
# A usable photo: a wound of this many mask pixels, clear of the border by this many pixels.
PHOTO_WOUND_PIXELS = (1200, 45000)
PHOTO_BORDER = 8
MASK_SMOOTHING_PX = 1.0


@dataclass(frozen=True)
class SkinTexture:
    """Procedural skin: a base tone with broad blotches and redness, evaluated anywhere on (u, v)."""

    tone: int
    base: np.ndarray
    blotch: Waves
    redness: Waves

    def colours(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """(N, 3) float colours at (u, v)."""
        light = 1.0 + 0.07 * self.blotch.value(u, v)
        red = 10.0 * self.redness.value(u, v)
        rgb = self.base * light[:, None]
        return rgb + np.stack([red, -0.4 * red, -0.4 * red], axis=1)


def draw_skin(rng: np.random.Generator, tones: tuple[int, ...] = tuple(SKIN_TONES)) -> SkinTexture:
    """A random skin tone among `tones` (all: light to dark) with its variation."""
    tone = tones[int(rng.integers(len(tones)))]  # for all six tones the same draw as integers(1, 7)
    base = np.array(SKIN_TONES[tone], float) * rng.uniform(0.94, 1.06, size=3)
    blotch, redness = random_waves(rng, 6, 1.0, (0.005, 0.04)), random_waves(rng, 4, 1.0, (0.01, 0.05))
    return SkinTexture(tone, base, blotch, redness)


def tissue_map(rng: np.random.Generator, grid: FineGrid, inside: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Tissue class per fine cell: smooth random regions, epithelialising tissue along the edge."""
    uu, vv = grid.mesh()
    bias = np.array([0.6, rng.uniform(-0.6, 0.4), rng.uniform(-1.0, 0.2)])
    fields = [random_waves(rng, 5, 1.0, (0.003, 0.012)).value(uu, vv) + b for b in bias]
    classes = 1 + np.argmax(np.stack(fields), axis=0).astype(np.uint8)  # 1 granulation, 2 slough, 3 necrotic
    wobble = 1.0 + 0.5 * random_waves(rng, 4, 1.0, (0.004, 0.01)).value(uu, vv)
    rim = min(rng.uniform(0.0, 2.5e-3), 0.25 * float(dist.max())) * wobble
    classes[dist < rim] = 4
    return np.where(inside, classes, 0).astype(np.uint8)


def wound_colours(rng: np.random.Generator, grid: FineGrid, tissue: np.ndarray) -> np.ndarray:
    """(nv, nu, 3) float colours of the tissue classes with smooth mottling."""
    uu, vv = grid.mesh()
    table = np.zeros((5, 3))
    for code, rgb in TISSUE_RGB.items():
        table[code] = np.array(rgb) * rng.uniform(0.85, 1.12, size=3)
    mottle = 1.0 + 0.12 * random_waves(rng, 6, 1.0, (0.0015, 0.008)).value(uu, vv)
    return table[tissue] * mottle[..., None]


def draw_background(rng: np.random.Generator) -> np.ndarray:
    """Colour of what lies behind the skin: a drape, couch or wall."""
    palette = np.array([[200, 205, 210], [120, 160, 190], [90, 140, 120], [225, 220, 205], [70, 70, 80.0]])
    return palette[rng.integers(len(palette))] * rng.uniform(0.85, 1.1)


def shade(colours: np.ndarray, cos_incidence: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Light from the device, plus per-point colour noise, as uint8."""
    lit = colours * (0.62 + 0.38 * np.clip(cos_incidence, 0, 1))[:, None]
    return np.clip(lit + rng.normal(0, 3.0, size=lit.shape), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------- photos


@dataclass(frozen=True)
class Photo:
    """A FUSeg photo: RGB image, wound mask in [0, 1], padding mask and wound statistics (pixels)."""

    photo_id: str
    image: np.ndarray  # (H, W, 3) uint8
    mask: np.ndarray  # (H, W) float, lightly smoothed
    padding: np.ndarray  # (H, W) bool: black border, not skin
    centroid: tuple[float, float]  # (x, y)
    diameter: float  # equivalent diameter of the wound


@lru_cache(maxsize=8)
def photo_ids(photos_dir: str) -> tuple[str, ...]:
    """Stems that have both images/STEM.jpg (or .png) and labels/STEM.png, sorted."""
    root = Path(photos_dir)
    labels = {p.stem for p in (root / "labels").glob("*.png")}
    images = {p.stem for p in (root / "images").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")} \
        if (root / "images").is_dir() else set()
    return tuple(sorted(labels & images))


def photos_available(photos_dir: str | Path | None) -> bool:
    """Whether the folder holds any photo with its mask."""
    return photos_dir is not None and Path(photos_dir).is_dir() and bool(photo_ids(str(photos_dir)))


def pick_photo(rng: np.random.Generator, photos_dir: str | Path, tries: int = 60) -> Photo:
    """A random photo whose wound has a reasonable size and does not touch the border."""
    ids = photo_ids(str(photos_dir))
    for _ in range(tries):
        photo = load_photo(Path(photos_dir), ids[int(rng.integers(len(ids)))])
        if photo is not None:
            return photo
    raise ValueError(f"{photos_dir}: no photo with a usable wound mask found in {tries} tries")


def load_photo(root: Path, photo_id: str) -> Photo | None:
    """Read one photo and its mask; None when the wound is too small, too large or touches the border."""
    mask = np.asarray(Image.open(root / "labels" / f"{photo_id}.png").convert("L"), dtype=np.float64) / 255.0
    inside = mask >= 0.5
    count = int(inside.sum())
    if not PHOTO_WOUND_PIXELS[0] <= count <= PHOTO_WOUND_PIXELS[1]:
        return None
    rows, cols = np.nonzero(inside)
    b = PHOTO_BORDER
    if rows.min() < b or cols.min() < b or rows.max() >= mask.shape[0] - b or cols.max() >= mask.shape[1] - b:
        return None
    image_path = sorted((root / "images").glob(f"{photo_id}.*"))[0]
    image = np.asarray(Image.open(image_path).convert("RGB"))
    if image.shape[:2] != mask.shape:
        return None
    # Smoothed by a pixel so that the draped outline is not a pixel staircase (which would inflate its length).
    smooth = ndimage.gaussian_filter(mask, MASK_SMOOTHING_PX)
    return Photo(photo_id, image, smooth, padding_mask(image), (float(cols.mean()), float(rows.mean())),
                 float(2 * np.sqrt(count / np.pi)))


def padding_mask(image: np.ndarray) -> np.ndarray:
    """Black bands along the borders (zero padding, blurred a little by JPEG)."""
    dark = image.max(axis=2) < 18
    rows = dark.mean(axis=1) > 0.97
    cols = dark.mean(axis=0) > 0.97
    return rows[:, None] | cols[None, :]


def sample_photo(photo: Photo, pix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear photo colours at pixel coordinates (N, 2), and whether each is real photo content."""
    h, w = photo.mask.shape
    x, y = pix[:, 0], pix[:, 1]
    ok = np.isfinite(x) & np.isfinite(y) & (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    xs, ys = np.where(ok, x, 0.0), np.where(ok, y, 0.0)
    ok &= ~photo.padding[np.rint(ys).astype(int), np.rint(xs).astype(int)]
    rgb = np.stack([ndimage.map_coordinates(photo.image[..., k].astype(np.float64), [ys, xs], order=1)
                    for k in range(3)], axis=1)
    return rgb, ok

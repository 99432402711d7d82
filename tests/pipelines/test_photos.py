"""data/photos for the pipeline: FUSeg when its folder exists, else synthetic stand-ins rendered from phantoms."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coherency.photos import (
    FUSEG,
    PROVENANCE,
    STANDIN_SEED_OFFSET,
    SYNTHETIC,
    ensure_photos,
    import_photos,
    phantom_textures,
    photo_source,
)
from features.phantoms import PhantomConfig, make_phantom
from features.quality import QualityLimits, validate_data

CONFIG = PhantomConfig(seed=5, texture="mixed", photos_dir="data/photos")


@pytest.fixture(scope="module")
def standins(tmp_path_factory) -> Path:
    """data/photos of a project without FUSeg: three stand-ins."""
    data = tmp_path_factory.mktemp("project") / "data"
    assert ensure_photos(data / "photos", data / "no-such-fuseg", 3, CONFIG) == SYNTHETIC
    return data / "photos"


def test_standins_have_the_import_layout_and_say_they_are_synthetic(standins: Path, tmp_path: Path) -> None:
    names = sorted(p.name for p in (standins / "images").iterdir())
    assert names == ["0000.jpg", "0001.jpg", "0002.jpg"]
    assert sorted(p.stem for p in (standins / "labels").iterdir()) == ["0000", "0001", "0002"]
    provenance = json.loads((standins / PROVENANCE).read_text())
    assert provenance["source"] == SYNTHETIC and "not FUSeg" in provenance["description"]
    # the photo suite the pipeline's validate step runs: RGB photos, same-size 0/255 masks, wounds marked
    validate_data(standins.parent, tmp_path, QualityLimits(), ("photos",))


def test_a_standin_mask_marks_the_wound_pixels_of_its_photo(standins: Path) -> None:
    """Wound pixels are coloured unlike the rest of the photo: the mask belongs to this photo."""
    for stem in ("0000", "0001", "0002"):
        photo = np.asarray(Image.open(standins / "images" / f"{stem}.jpg"), dtype=float)
        mask = np.asarray(Image.open(standins / "labels" / f"{stem}.png")) > 127
        assert 0.002 < mask.mean() < 0.5
        assert np.abs(photo[mask].mean(axis=0) - photo[~mask].mean(axis=0)).max() > 10
    # and it is exactly the renderer's own mask of that phantom
    procedural = PhantomConfig(seed=CONFIG.seed + STANDIN_SEED_OFFSET, texture="procedural", photos_dir=None)
    phantom = make_phantom(1, procedural)
    saved = np.asarray(Image.open(standins / "labels" / "0001.png")) > 127
    assert np.array_equal(saved, phantom.photo_mask)


def test_existing_photos_are_kept_and_fuseg_is_imported_when_present(standins: Path, tmp_path: Path) -> None:
    before = (standins / "images" / "0000.jpg").read_bytes()
    fuseg = tmp_path / "fuseg" / "train"
    for sub in ("images", "labels"):
        (fuseg / sub).mkdir(parents=True)
    shutil.copyfile(standins / "images" / "0000.jpg", fuseg / "images" / "0042.jpg")
    shutil.copyfile(standins / "labels" / "0000.png", fuseg / "labels" / "0042.png")
    assert ensure_photos(standins, fuseg.parent, 3, CONFIG) == SYNTHETIC  # kept: nothing is overwritten
    assert (standins / "images" / "0000.jpg").read_bytes() == before
    imported = tmp_path / "data" / "photos"
    assert ensure_photos(imported, fuseg.parent, 3, CONFIG) == FUSEG
    assert [p.name for p in (imported / "images").iterdir()] == ["0042.jpg"]
    assert json.loads((imported / PROVENANCE).read_text())["source"] == FUSEG


def test_an_import_without_provenance_is_fuseg_and_no_folder_is_none(tmp_path: Path) -> None:
    assert photo_source(tmp_path / "photos") is None
    (tmp_path / "photos" / "images").mkdir(parents=True)
    assert photo_source(tmp_path / "photos") == FUSEG


def test_phantoms_are_draped_with_fuseg_photos_only(standins: Path, tmp_path: Path) -> None:
    root = standins.parent.parent
    assert phantom_textures(CONFIG, root).photos_dir is None  # stand-ins: procedural textures
    fuseg = tmp_path / "data" / "photos"
    import_photos(standins, fuseg)
    draped = phantom_textures(CONFIG, tmp_path)
    assert draped.photos_dir == str(fuseg) and draped.texture == CONFIG.texture

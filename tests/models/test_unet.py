"""The photo U-Net: shapes, bad arguments, augmentation alignment, the split, a fast_dev_run, segment_photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from features.io import ScanError
from models.data.photos import AugmentConfig, PhotoDataModule, augment, jitter_colour, split_stems
from models.lit.photos import PhotoSegmenter, PhotoTrainParams, dice_per_image, photo_trainer, train_photo_segmenter
from models.segment import load_unet_checkpoint, segment_photos
from models.unet import UNet, UNetConfig

TINY = {"base_width": 4, "depth": 2}
WOUND_RGB, SKIN_RGB = (150, 40, 45), (225, 180, 150)


def ellipse_photo(height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A skin-coloured photo with one wound-coloured ellipse: (H, W, 3) uint8 and its (H, W) bool mask."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    cy, cx = rng.uniform(0.35, 0.65) * height, rng.uniform(0.35, 0.65) * width
    ry, rx = rng.uniform(0.15, 0.3) * height, rng.uniform(0.15, 0.3) * width
    mask = ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1
    photo = np.where(mask[..., None], WOUND_RGB, SKIN_RGB) + rng.normal(0, 6, (height, width, 3))
    return photo.clip(0, 255).astype(np.uint8), mask


def write_photo_set(root: Path, n: int = 6, size: int = 48) -> Path:
    """n synthetic photos as root/images/NNNN.jpg with masks root/labels/NNNN.png (0/255)."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(n):
        photo, mask = ellipse_photo(size, size, seed=i)
        Image.fromarray(photo).save(root / "images" / f"{i:04d}.jpg", quality=95)
        Image.fromarray((mask * 255).astype(np.uint8)).save(root / "labels" / f"{i:04d}.png")
    return root


# ---------------------------------------------------------------------------------------------- network


@pytest.mark.parametrize("config", [UNetConfig(**TINY), UNetConfig(base_width=8, depth=3, norm="group", groups=4,
                                                                    upsampling="transpose", dropout=0.2)])
@pytest.mark.parametrize("height, width", [(32, 32), (48, 64), (37, 53), (8, 8)])
def test_unet_keeps_the_input_size(config: UNetConfig, height: int, width: int) -> None:
    net = UNet(config).eval()
    with torch.no_grad():
        logits = net(torch.rand(2, 3, height, width))
    assert logits.shape == (2, 1, height, width)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("bad", [
    {"base_width": 0}, {"depth": 0}, {"depth": 8}, {"in_channels": -1}, {"dropout": 1.0}, {"dropout": -0.1},
    {"norm": "layer"}, {"upsampling": "nearest"}, {"norm": "group", "base_width": 12, "groups": 8},
    {"base_width": 2.5}, {"depth": True},
])
def test_bad_unet_config_raises(bad: dict) -> None:
    with pytest.raises(ValueError):
        UNetConfig(**bad)


def test_wrong_channel_count_raises() -> None:
    with pytest.raises(ValueError, match="expected an image batch"):
        UNet(UNetConfig(**TINY))(torch.rand(1, 4, 16, 16))


@pytest.mark.parametrize("bad", [{"lr": 0.0}, {"weight_decay": -1.0}, {"warmup_fraction": 1.0}])
def test_bad_training_hyperparameters_raise(bad: dict) -> None:
    with pytest.raises(ValueError):
        PhotoSegmenter(unet=TINY, **bad)


def test_bad_params_section_and_augment_config_raise() -> None:
    with pytest.raises(ValueError, match="unknown key"):
        PhotoTrainParams.from_params({"size": 128, "learning_rate": 0.1})
    with pytest.raises(ValueError, match="epochs"):
        PhotoTrainParams.from_params({"epochs": 0})
    with pytest.raises(ValueError):
        AugmentConfig(scale=(1.2, 0.8))
    with pytest.raises(ValueError):
        AugmentConfig(brightness=1.5)
    with pytest.raises(ValueError, match="crop"):
        PhotoDataModule("photos", size=64, crop=96)


def test_dice_per_image() -> None:
    truth = torch.zeros(3, 1, 4, 4, dtype=torch.bool)
    truth[0, 0, :2] = True  # 8 pixels
    truth[1, 0, 0] = True
    predicted = truth.clone()
    predicted[0, 0, 0] = False  # 4 of the 8 found: 2*4 / (4 + 8)
    predicted[1] = False  # missed entirely
    assert dice_per_image(predicted, truth).tolist() == pytest.approx([8 / 12, 0.0, 1.0])


# ---------------------------------------------------------------------------------------------- data


def ellipse_batch(n: int = 8, side: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """n ellipse photos as float images (B, 3, H, W) in [0, 1] and masks (B, 1, H, W) of 0/1."""
    photos, masks = zip(*(ellipse_photo(side, side, seed) for seed in range(n)), strict=True)
    images = torch.from_numpy(np.stack(photos)).permute(0, 3, 1, 2).float() / 255  # (B, 3, H, W)
    return images, torch.from_numpy(np.stack(masks))[:, None].float()  # (B, 1, H, W)


@pytest.mark.parametrize("crop", [None, 40])
def test_augmentation_moves_image_and_mask_together(crop: int | None) -> None:
    images, masks = ellipse_batch()
    geometric = AugmentConfig(brightness=0, contrast=0, saturation=0, hue_deg=0, max_rotate_deg=20)
    out_images, out_masks = augment(images, masks, geometric, torch.Generator().manual_seed(0), crop=crop)
    side = crop or 64
    assert out_images.shape == (8, 3, side, side) and out_masks.shape == (8, 1, side, side)
    # the mask read back off the augmented photo (wound pixels are the ones far redder than green)
    from_image = (out_images[:, 0] - out_images[:, 1]) > 0.5 * ((150 - 40) + (225 - 180)) / 255
    agreement = (from_image == out_masks[:, 0].bool()).float().mean(dim=(1, 2))  # (B,)
    assert agreement.min() > 0.97
    assert set(out_masks.unique().tolist()) == {0.0, 1.0}


def test_augmentation_changes_most_samples() -> None:
    images, masks = ellipse_batch()
    out_images, out_masks = augment(images, masks, AugmentConfig(), torch.Generator().manual_seed(3))
    moved = (out_masks != masks).float().mean(dim=(1, 2, 3))  # (B,)
    assert (moved > 0.02).sum() >= 6
    assert ((out_images - images).abs().mean(dim=(1, 2, 3)) > 0.02).all()


def test_wound_focused_crops_contain_the_wound() -> None:
    images, masks = ellipse_batch(side=96)
    focused = AugmentConfig(wound_focus=1.0, max_shift=0.0, scale=(1.0, 1.0))
    _, crops = augment(images, masks, focused, torch.Generator().manual_seed(4), crop=16)
    assert (crops.sum(dim=(1, 2, 3)) > 0).all()


def test_colour_jitter_stays_in_range_and_changes_colour() -> None:
    images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    jittered = jitter_colour(images, AugmentConfig(), torch.Generator().manual_seed(2))
    assert jittered.shape == images.shape
    assert jittered.min() >= 0 and jittered.max() <= 1
    assert (jittered - images).abs().mean() > 0.01


def test_split_is_deterministic_disjoint_and_stable() -> None:
    stems = [f"{i:04d}" for i in range(400)]
    train, val = split_stems(stems, 0.12)
    assert (train, val) == split_stems(list(stems), 0.12)
    assert not set(train) & set(val)
    assert sorted(train + val) == stems
    assert 0.07 < len(val) / len(stems) < 0.17
    # a photo's side does not depend on the other photos
    _, val_more = split_stems(stems + [f"extra{i}" for i in range(100)], 0.12)
    assert set(val) <= set(val_more)
    assert len(split_stems(["a", "b"], 0.12)[1]) == 1


def test_split_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError):
        split_stems(["a", "b"], 0.0)
    with pytest.raises(ValueError):
        split_stems(["a"], 0.12)


def test_data_module_loads_pairs_once_and_splits_by_image(tmp_path: Path) -> None:
    data = PhotoDataModule(write_photo_set(tmp_path / "photos"), size=32, batch_size=4)
    data.setup("fit")
    assert len(data.train_set) + len(data.val_set) == 6
    assert len(data.val_set) >= 1 and not set(data.train_stems) & set(data.val_stems)
    images, masks = data.train_set.tensors
    assert images.shape == (len(data.train_set), 3, 32, 32) and images.dtype == torch.uint8
    assert masks.shape == (len(data.train_set), 1, 32, 32) and set(masks.unique().tolist()) == {0, 1}


def test_data_module_refuses_a_folder_without_labels(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    with pytest.raises(ScanError, match="labels"):
        PhotoDataModule(tmp_path).setup("fit")


# ---------------------------------------------------------------------------------------------- training


def test_fast_dev_run(tmp_path: Path) -> None:
    torch.manual_seed(0)
    data = PhotoDataModule(write_photo_set(tmp_path / "photos"), size=32, batch_size=4, crop=24)
    model = PhotoSegmenter(unet=TINY, size=32)
    trainer = photo_trainer(1, fast_dev_run=True, logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=data)
    metrics = trainer.callback_metrics
    assert trainer.state.finished
    assert torch.isfinite(metrics["train_loss"])
    assert 0.0 <= float(metrics["val_dice"]) <= 1.0


def test_training_writes_a_checkpoint_segment_photos_can_use(tmp_path: Path) -> None:
    params = PhotoTrainParams(size=32, batch_size=4, epochs=1, base_width=4, depth=2, precision="32-true")
    checkpoint = train_photo_segmenter(write_photo_set(tmp_path / "photos"), tmp_path / "ckpt", params,
                                       enable_progress_bar=False, enable_model_summary=False)
    net, size = load_unet_checkpoint(checkpoint)
    assert size == 32 and isinstance(net, UNet) and not net.training
    assert net.config == params.unet_config()
    assert segment_photos(tmp_path / "photos" / "images", tmp_path / "masks", net, size) == 6


# ---------------------------------------------------------------------------------------------- segment_photos


class RednessModel(torch.nn.Module):
    """A stand-in for a trained U-Net: wound where red exceeds green by more than 0.35 (a 1x1 convolution)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([20.0, -20.0, 0.0]).view(1, 3, 1, 1))
            self.conv.bias.fill_(-20 * 0.35)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.conv(images)


def test_segment_photos_writes_binary_masks_of_the_input_size(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    truths = {}
    for name, (height, width) in {"a.jpg": (90, 120), "b.png": (64, 48), "c.jpeg": (33, 47)}.items():
        photo, truths[Path(name).stem] = ellipse_photo(height, width, seed=len(truths))
        Image.fromarray(photo).save(photos / name)
    (photos / "notes.txt").write_text("not a photo")
    assert segment_photos(photos, tmp_path / "masks", RednessModel(), size=32) == 3
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["a.png", "b.png", "c.png"]
    for stem, truth in truths.items():
        mask = np.asarray(Image.open(tmp_path / "masks" / f"{stem}.png"))
        assert mask.shape == truth.shape and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}
        dice = float(dice_per_image(torch.from_numpy(mask == 255)[None, None], torch.from_numpy(truth)[None, None]))
        assert dice > 0.85  # the mask lands on the ellipse after the round trip through 32 x 32


def test_segment_photos_refuses_bad_input(tmp_path: Path) -> None:
    model, out = RednessModel(), tmp_path / "masks"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ScanError, match="not a folder"):
        segment_photos(tmp_path / "missing", out, model, size=32)
    with pytest.raises(ScanError, match="no photo"):
        segment_photos(tmp_path / "empty", out, model, size=32)
    broken = tmp_path / "broken"
    broken.mkdir()
    for i in range(10):  # nine good photos, so the failure comes after masks were already written
        Image.fromarray(ellipse_photo(24, 24, seed=i)[0]).save(broken / f"{i:02d}.jpg")
    (broken / "09.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(ScanError, match="unreadable image"):
        segment_photos(broken, out, model, size=32)
    with pytest.raises(ValueError, match="threshold"):
        segment_photos(broken, out, model, size=32, threshold=1.5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "empty"]  # no output, no staging left

"""PointNet++ accuracy on phantoms: train on one phantom set, score another (different seed) over every point.

Trains with the `pointnet` section of params.yaml (profile demo or full; defaults where the section is
absent), then reports wound IoU and tissue mIoU pooled over all points of the held-out whole scans, and per
scan. Writes results/pointnet_accuracy.json.

Run: `.venv/bin/python benchmarks/pointnet_accuracy.py --train 48 --test 16 --photos-dir data/photos`
(without photos every phantom has a procedural texture).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

if __package__ in (None, ""):  # run as a script, this file's folder comes first and its name hides the models package
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import torch

from features.params import load_params
from features.phantoms import PhantomConfig, write_phantoms
from models.lit.points import PointSegmenter, PointTrainParams, evaluate_point_segmenter, train_point_segmenter


def phantom_set(out: Path, n: int, seed: int, photos_dir: str | None) -> list[Path]:
    """n phantoms of this seed in out (written once; kept for the next run)."""
    existing = sorted(out.glob("*.ply"))
    if len(existing) == n:
        return existing
    texture = "mixed" if photos_dir else "procedural"
    return write_phantoms(n, out, seed, PhantomConfig(texture=texture, photos_dir=photos_dir))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo", choices=("demo", "full"))
    parser.add_argument("--train", type=int, default=48, help="training phantoms (a share goes to validation)")
    parser.add_argument("--test", type=int, default=16, help="held-out phantoms")
    parser.add_argument("--train-seed", type=int, default=7)
    parser.add_argument("--test-seed", type=int, default=11)
    parser.add_argument("--photos-dir", default=None, help="FUSeg images/ and labels/: mixed textures")
    parser.add_argument("--epochs", type=int, default=None, help="override the profile's epochs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path(".tmp/pointnet_accuracy"))
    parser.add_argument("--out", type=Path, default=Path("results/pointnet_accuracy.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = PointTrainParams.from_params(load_params("pointnet", args.profile))
    params = params if args.epochs is None else replace(params, epochs=args.epochs)
    train_dir, test_dir = args.work / f"train_{args.train_seed}", args.work / f"test_{args.test_seed}"
    phantom_set(train_dir, args.train, args.train_seed, args.photos_dir)
    tests = phantom_set(test_dir, args.test, args.test_seed, args.photos_dir)

    start = time.perf_counter()
    best = train_point_segmenter(train_dir, args.work / "checkpoints", params, enable_progress_bar=False)
    train_s = time.perf_counter() - start
    model = PointSegmenter.load_from_checkpoint(best, map_location="cpu")
    start = time.perf_counter()
    result = evaluate_point_segmenter(model, tests, params)
    result.update(train_s=train_s, evaluate_s=time.perf_counter() - start, profile=args.profile,
                  photos=bool(args.photos_dir), threads=args.threads, train_phantoms=args.train)
    for row in result["scans"]:
        tissue = "-" if row["tissue_miou"] is None else f"{row['tissue_miou']:.3f}"
        print(f"{row['scan']:16s} wound IoU {row['wound_iou']:.3f}  tissue mIoU {tissue}")
    print(f"held-out wound IoU {result['wound_iou']:.3f}, tissue mIoU {result['tissue_miou']:.3f} "
          f"(train {train_s:.0f} s, evaluate {result['evaluate_s']:.0f} s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

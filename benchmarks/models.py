"""Network throughput on this machine: inference and training items/s and peak memory, per network.

Each network is an `Entry` (how to build it, one input batch and a loss); add a network by adding an entry
to ENTRIES. Every (network, mode) runs in a fresh subprocess with `--threads` torch threads, so that
import-time memory and one mode's allocations do not blur another's.

Peak memory is the rise of the process's resident-set high-water mark (resource.getrusage ru_maxrss)
over the resident set once the model and the batch exist, i.e. the activations, gradients, optimizer
state and workspace of the timed steps (tracemalloc does not see torch's allocator).

Prints a table; writes results/bench_models.json. Run: `.venv/bin/python benchmarks/models.py` (about 1 minute).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script, this file's folder comes first and its name hides the models package
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

MODES = ("inference fp32", "inference bf16", "training fp32", "training bf16")
# Measured here by the issue (batch 8 x 4096 points, 2 threads): yanx27/Pointnet_Pointnet2_pytorch SSG sem-seg.
PUBLIC_POINTNET2_SSG = {"inference": 12_000, "training": 10_000}


@dataclass(frozen=True)
class Entry:
    """A network to measure: `build()` returns (model, batch, loss_fn); throughput counts `items` per batch."""

    unit: str
    items: int
    build: Callable[[], tuple[torch.nn.Module, torch.Tensor, Callable]]
    reference: dict | None = None


def pointnet_batch(batch: int = 8, n_points: int = 4096) -> tuple[torch.nn.Module, torch.Tensor, Callable]:
    """The default PointNet++ segmenter on a batch of skin-like patches with 13 features per point."""
    from models.pointnet import PointNetConfig, PointNetSegmenter

    generator = torch.Generator().manual_seed(0)
    xyz = torch.rand(batch, n_points, 3, generator=generator) * 2 - 1
    xyz[..., 2] *= 0.1  # a patch of surface, not a volume
    xyz /= xyz.norm(dim=-1).amax(dim=1, keepdim=True)[..., None]
    x = torch.cat([xyz, torch.rand(batch, n_points, 10, generator=generator)], dim=-1)
    wound = torch.randint(0, 2, (batch, n_points), generator=generator)
    tissue = torch.randint(0, 5, (batch, n_points), generator=generator)

    def loss(outputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        w, t = outputs
        return (torch.nn.functional.cross_entropy(w.flatten(0, 1).float(), wound.flatten())
                + torch.nn.functional.cross_entropy(t.flatten(0, 1).float(), tissue.flatten()))

    return PointNetSegmenter(PointNetConfig()), x, loss


def unet_batch(batch: int = 8, size: int = 256) -> tuple[torch.nn.Module, torch.Tensor, Callable]:
    """The default photo U-Net (channels-last, as trained) on random photos with a random wound mask."""
    from models.unet import UNet, UNetConfig

    generator = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 3, size, size, generator=generator).contiguous(memory_format=torch.channels_last)
    masks = (torch.rand(batch, 1, size, size, generator=generator) < 0.05).float()

    def loss(logits: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), masks)

    return UNet(UNetConfig()).to(memory_format=torch.channels_last), images, loss


ENTRIES: dict[str, Entry] = {
    "pointnet++ (8 x 4096 points)": Entry("points", 8 * 4096, pointnet_batch, PUBLIC_POINTNET2_SSG),
    "u-net (8 x 128x128 photos)": Entry("images", 8, lambda: unet_batch(size=128)),
    "u-net (8 x 256x256 photos)": Entry("images", 8, lambda: unet_batch(size=256)),
}


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _current_rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(name: str, mode: str, threads: int, seconds: float) -> dict:
    """Items per second and peak memory of one network in one mode (runs in its own process)."""
    torch.set_num_threads(threads)
    entry = ENTRIES[name]
    model, batch, loss_fn = entry.build()
    training, bf16 = mode.startswith("training"), mode.endswith("bf16")
    model.train(training)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3) if training else None

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16), torch.set_grad_enabled(training):
            outputs = model(batch)
            if training:
                loss = loss_fn(outputs)
        if training:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    base = _current_rss_mib()
    step()  # warm-up: allocator pools, optimizer state, oneDNN kernels
    times = []
    while sum(times) < seconds or len(times) < 3:
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    median = sorted(times)[len(times) // 2]
    return {"network": name, "mode": mode, "threads": threads, "batches": len(times), "median_batch_s": median,
            f"{entry.unit}_per_s": entry.items / median, "peak_mib": _max_rss_mib() - base}


def geometry_share(threads: int) -> dict:
    """Milliseconds per batch of the PointNet++'s sampling and neighbour searches at the first level."""
    from models.pointnet import ball_query, farthest_point_sample, three_nn_weights

    torch.set_num_threads(threads)
    xyz = pointnet_batch()[1][..., :3].contiguous()
    order = farthest_point_sample(xyz, 1024)
    centres = torch.stack([xyz[b, order[b]] for b in range(len(xyz))])
    timed = {"fps_1024_of_4096": lambda: farthest_point_sample(xyz, 1024),
             "ball_query_1024x4096_k32": lambda: ball_query(centres, xyz, 0.1, 32),
             "three_nn_4096x1024": lambda: three_nn_weights(xyz, centres)}
    out = {}
    for key, fn in timed.items():
        fn()
        start = time.perf_counter()
        for _ in range(3):
            fn()
        out[key + "_ms"] = (time.perf_counter() - start) / 3 * 1e3
    return out


def run_isolated(fn: Callable, *args) -> dict:
    """fn(*args) in a fresh spawned process, so that memory high-water marks are its own."""
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=4.0, help="timed seconds per network and mode")
    parser.add_argument("--only", default="", help="measure only the networks whose name contains this")
    parser.add_argument("--out", type=Path, default=Path("results/bench_models.json"))
    args = parser.parse_args()
    names = [name for name in ENTRIES if args.only in name]
    rows = [run_isolated(measure, name, mode, args.threads, args.seconds) for name in names for mode in MODES]
    geometry = run_isolated(geometry_share, args.threads)
    print(f"{'network':30s} {'mode':16s} {'items/s':>10s} {'batch s':>8s} {'peak MiB':>9s} {'x public':>9s}")
    for row in rows:
        entry = ENTRIES[row["network"]]
        rate = row[f"{entry.unit}_per_s"]
        ref = (entry.reference or {}).get(row["mode"].split()[0])
        row["x_public"] = rate / ref if ref else None
        ratio = f"{row['x_public']:.1f}" if ref else "-"
        print(f"{row['network']:30s} {row['mode']:16s} {rate:10.0f} {row['median_batch_s']:8.3f} "
              f"{row['peak_mib']:9.0f} {ratio:>9s}")
    print("pointnet++ geometry per batch (ms):", {k: round(v, 1) for k, v in geometry.items()})
    load = os.getloadavg()[0]
    print(f"load average during the run: {load:.1f} on {os.cpu_count()} cores")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "pointnet_geometry_ms": geometry, "load_average": load,
                                    "cpu_count": os.cpu_count(), "torch": torch.__version__,
                                    "public_pointnet2_ssg": PUBLIC_POINTNET2_SSG,
                                    "memory_method": "ru_maxrss rise over RSS after build"}, indent=1))


if __name__ == "__main__":
    main()

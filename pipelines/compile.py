"""Compile the training pipeline to YAML (pipelines/compiled/, committed; a test fails when it drifts)."""

from __future__ import annotations

from pathlib import Path

COMPILED = Path(__file__).parent / "compiled" / "training.yaml"


def compile_training(path: Path = COMPILED) -> Path:
    """Write the pipeline's IR YAML to `path`."""
    from kfp import compiler

    from pipelines.training import training

    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(training, str(path))
    return path


if __name__ == "__main__":
    print(compile_training())

"""params.yaml: one section per stage; a stage's `profiles:` block overrides its keys per profile."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import TypeVar

import yaml

T = TypeVar("T")

PROFILES = ("tiny", "demo", "full")  # tiny: the test suite's end-to-end runs
DEFAULT_PATH = Path("params.yaml")


def load_params(stage: str, profile: str = "demo", path: str | Path = DEFAULT_PATH) -> dict:
    """The `stage` section of params.yaml with the `profile` overrides applied."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile '{profile}'; use one of {', '.join(PROFILES)}")
    path = Path(path)
    sections = yaml.safe_load(path.read_text()) if path.is_file() else {}
    section = dict((sections or {}).get(stage) or {})
    overrides = (section.pop("profiles", None) or {}).get(profile) or {}
    return {**section, **overrides}


def from_section(cls: type[T], section: dict, stage: str) -> T:
    """Build the frozen dataclass `cls` from a params.yaml section; unknown keys are an error, lists tuples."""
    unknown = set(section) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown key(s) in the {stage} section of params.yaml: {', '.join(sorted(unknown))}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in section.items()})

"""The `serving` section of params.yaml: ports, the registry, request limits and CUDA batching.

Both server processes and `coherency serve` read it through `serving_settings`, so the numbers live in one place;
command-line flags override single values (a test's free ports, another registry).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from features.params import DEFAULT_PATH, from_section, load_params


@dataclass(frozen=True)
class ServingSettings:
    """What `coherency serve` and the two KServe processes run with."""

    model_name: str = "coherency"
    host: str = "127.0.0.1"  # where clients reach the servers (kserve itself binds 0.0.0.0)
    transformer_port: int = 8080
    predictor_port: int = 8085
    registry: str = "mlruns"
    alias: str = "champion"
    max_body_mb: float = 64.0
    max_points: int = 2_000_000
    batch_max_scans: int = 8
    batch_wait_ms: float = 5.0

    def __post_init__(self) -> None:
        for name in ("transformer_port", "predictor_port"):
            if not 0 < getattr(self, name) <= 65535:
                raise ValueError(f"serving.{name} must be a TCP port (1-65535), got {getattr(self, name)}")
        if self.transformer_port == self.predictor_port:
            raise ValueError(f"serving: the transformer and the predictor both want port {self.predictor_port}")
        for name in ("max_body_mb", "max_points", "batch_max_scans"):
            if getattr(self, name) <= 0:
                raise ValueError(f"serving.{name} must be positive, got {getattr(self, name)}")
        if self.batch_wait_ms < 0:
            raise ValueError(f"serving.batch_wait_ms must be >= 0, got {self.batch_wait_ms}")

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 2**20)

    @property
    def registry_path(self) -> Path:
        return Path(self.registry)

    def url(self, port: int) -> str:
        return f"http://{self.host}:{port}"

    @classmethod
    def from_params(cls, section: dict) -> ServingSettings:
        return from_section(cls, section, "serving")

    def override(self, **values) -> ServingSettings:
        """A copy with the values that are not None replaced (command-line flags over params.yaml)."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})


def serving_settings(profile: str = "demo", path: str | Path = DEFAULT_PATH) -> ServingSettings:
    """The serving section of params.yaml for `profile` (the defaults above when the file has none)."""
    return ServingSettings.from_params(load_params("serving", profile, path))


def monitoring_paths(profile: str = "demo", path: str | Path = DEFAULT_PATH) -> tuple[Path | None, Path | None]:
    """The inference log and the drift reports folder from params.yaml's monitoring section (None when unset)."""
    section = load_params("monitoring", profile, path)
    log, reports = section.get("log"), section.get("reports")
    return (Path(log) if log else None), (Path(reports) if reports else None)

"""What each pipeline step does, as plain functions; pipelines/components.py wraps them for kfp.

Every step takes the project root (`repo`, where params.yaml, data.dvc and data/ live) and the profile,
so the same code serves the demo, the full run and the tests' tiny project.
"""

from __future__ import annotations

import json
from pathlib import Path

PARTS_WITHOUT_PHOTOS = ("scans", "cohort", "features")


def ingest(repo: str, profile: str, photos: str = "") -> dict:
    """Make data/ from params.yaml where it is missing, then version it with DVC; returns the data version.

    data/photos: the FUSeg folder `photos` when it exists, else synthetic stand-ins (coherency.photos); the
    summary's `photos` names the source (fuseg, synthetic, or none when phantoms.standin_photos is 0).
    """
    from coherency.photos import ensure_photos, phantom_textures
    from features.cohort import CohortConfig, generate_cohort
    from features.params import load_params
    from features.phantoms import PhantomConfig, write_phantoms

    root = Path(repo)
    data = root / "data"
    params = root / "params.yaml"
    section = load_params("phantoms", profile, params)
    config = PhantomConfig.from_params(section)
    source = ensure_photos(root / (config.photos_dir or "data/photos"), Path(photos) if photos else None,
                           int(section.get("standin_photos", 0)), config)
    if not any((data / "phantoms").glob("*.ply")):
        (data / "phantoms").mkdir(parents=True, exist_ok=True)
        write_phantoms(config.n, data / "phantoms", config.seed, phantom_textures(config, root))
    if not (data / "cohort" / "visits.parquet").is_file():
        generate_cohort(CohortConfig.from_params(load_params("cohort", profile, params)), data / "cohort",
                        data / "features" / "tables")
    return {"data_version": dvc_version(root), "photos": source or "none"}


def dvc_version(root: Path) -> str:
    """`dvc add data` through DVC's own API, and the resulting directory hash (the data version)."""
    import yaml
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        repo.add(str(root / "data"))
    outs = yaml.safe_load((root / "data.dvc").read_text())["outs"]
    return str(outs[0]["md5"])


def validate(repo: str, profile: str, report_dir: str) -> dict:
    """Run the Great Expectations suites over data/; DataQualityError (after the reports) stops the run."""
    from features.quality import PARTS, QualityLimits, validate_data

    root = Path(repo)
    parts = PARTS if (root / "data" / "photos").is_dir() else PARTS_WITHOUT_PHOTOS
    limits = QualityLimits.for_profile(profile, root / "params.yaml")
    summary = validate_data(root / "data", Path(report_dir), limits, tuple(parts))
    return {"suites": len(summary["suites"])}


def build_features(repo: str, online: str = "sqlite") -> dict:
    """Feast apply and materialise the feature tables up to the newest prediction time."""
    import pandas as pd

    from features.store import apply, materialize, open_store

    data = Path(repo) / "data" / "features"
    store = open_store(data_dir=data, online=online)
    apply(store)
    rows = pd.read_parquet(data / "tables" / "entity_rows.parquet", columns=["event_timestamp"])
    end = rows["event_timestamp"].max().to_pydatetime()
    materialize(store, end)
    return {"feature_views": len(store.list_feature_views()), "materialized_until": end.isoformat()}


def write_json(path: str, values: dict) -> None:
    """A step's summary into its output artifact."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(values, indent=2, sort_keys=True, default=str))

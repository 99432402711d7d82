"""The Feast feature store through its Python API (the CLI costs about 8 s of imports per call).

A data folder holds registry.db, online.db (SQLite) and tables/ (the parquet files of
features/cohort/tables.py). Feast is imported lazily: importing it takes seconds.
"""

from __future__ import annotations

import copy
import os
from datetime import UTC, datetime
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING

import pandas as pd
import yaml

if TYPE_CHECKING:
    from feast import FeatureStore

REPO_DIR = Path(__file__).parent / "feature_repo"
CONFIG_FILES = {"sqlite": "feature_store.yaml", "redis": "feature_store.redis.yaml"}
DEFAULT_ENV = {"COHERENCY_REDIS": "127.0.0.1:6379,db=0"}
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # materialisation start: before any cohort date


def _restore_feast_sqlite_timestamps() -> None:
    """Feast's SQLite online store keeps event times as epoch seconds and registers sqlite3's global "timestamp"
    converter to read them; importing IPython (evidently and open3d pull it in) replaces that converter with an
    ISO-string one, after which every online read fails ("Invalid isoformat string"). Put Feast's back."""
    import sqlite3

    from feast.infra.online_stores import sqlite as feast_sqlite

    sqlite3.register_converter("timestamp", feast_sqlite.convert_timestamp)


def open_store(repo_dir: str | Path = REPO_DIR, data_dir: str | Path = "data/features", online: str = "sqlite",
               project: str | None = None) -> FeatureStore:
    """A FeatureStore on repo_dir's configuration with its registry and SQLite file in data_dir.

    online: "sqlite" or "redis" (connection string from COHERENCY_REDIS, default 127.0.0.1:6379,db=0).
    project: overrides the configured project name (a separate namespace, e.g. per test run).
    """
    from feast import FeatureStore, RepoConfig

    if online not in CONFIG_FILES:
        raise ValueError(f"online store must be one of {', '.join(CONFIG_FILES)}, not {online!r}")
    text = (Path(repo_dir) / CONFIG_FILES[online]).read_text()
    values = {**DEFAULT_ENV, **os.environ, "COHERENCY_FEATURE_DATA": str(Path(data_dir).resolve())}
    raw = yaml.safe_load(Template(text).substitute(values))
    if project is not None:
        raw["project"] = project
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    config = RepoConfig(**raw)
    config.repo_path = Path(repo_dir)
    return FeatureStore(repo_path=str(repo_dir), config=config)


def tables_dir(store: FeatureStore) -> Path:
    """The parquet folder of the store's data folder (the one holding its registry)."""
    return Path(store.config.registry.path).parent / "tables"


def bound_definitions(tables: Path) -> list:
    """Copies of every object in feature_repo/definitions.py, their sources reading from `tables`."""
    from feast import Entity, FeatureService, FeatureView, FileSource

    from features.feature_repo import definitions

    objects = [o for o in vars(definitions).values() if isinstance(o, Entity | FeatureService | FeatureView)]
    bound = []
    for obj in objects:
        if isinstance(obj, FeatureView):
            obj, source = copy.copy(obj), copy.deepcopy(obj.batch_source)
            if not isinstance(source, FileSource):
                raise ValueError(f"feature view {obj.name}: only FileSource sources are bound, got {type(source)}")
            source.file_options.uri = str(tables.resolve() / Path(source.path).name)
            obj.batch_source = obj.data_source = source
            bound.append(source)
        bound.append(obj)
    return bound


def apply(store: FeatureStore) -> None:
    """Register the entities, sources, views and services, bound to the store's tables folder."""
    store.apply(bound_definitions(tables_dir(store)))


def materialize(store: FeatureStore, end: datetime, start: datetime = EARLIEST) -> None:
    """Load the latest feature row per entity with timestamp in [start, end] into the online store."""
    store.materialize(start_date=start, end_date=end)


def training_frame(store: FeatureStore, entity_rows: pd.DataFrame, service: str) -> pd.DataFrame:
    """Point-in-time-correct features of `service` for each entity row, in the rows' order.

    entity_rows: wound_id, patient_id, event_timestamp (UTC) and any label columns, which pass through.
    """
    rows = entity_rows.reset_index(drop=True).assign(_row=lambda f: range(len(f)))
    job = store.get_historical_features(entity_df=rows, features=store.get_feature_service(service))
    frame = job.to_df().sort_values("_row").drop(columns="_row").reset_index(drop=True)
    return frame


def online_features(store: FeatureStore, wound_ids: list[str], service: str) -> pd.DataFrame:
    """The latest materialised features of `service` for each wound (its patient resolved online)."""
    _restore_feast_sqlite_timestamps()
    keys = [{"wound_id": w} for w in wound_ids]
    owners = store.get_online_features(features=["wound_profile:patient_ref"], entity_rows=keys).to_dict()
    rows = [{"wound_id": w, "patient_id": p} for w, p in zip(wound_ids, owners["patient_ref"], strict=True)]
    return store.get_online_features(features=store.get_feature_service(service), entity_rows=rows).to_df()

"""The InferenceService manifest: built from a real registry, parsed back by the SDK's models, served from a mount."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import yaml

from features.point_chunks import normalise_chunks
from serving.ensemble import Ensemble, ModelNotReady, load_ensemble
from serving.manifests import (
    MODEL_ROOT,
    Champion,
    ServiceSpec,
    from_dict,
    inference_service,
    registered_champions,
    to_dict,
    write_manifest,
)
from tests.serving.conftest import register_points_champion, tiny_ensemble
from tests.serving.test_ensemble import store  # noqa: F401  (a fixture)

POINTS = Champion("coherency-points", "3", "s3://models/1/abc/artifacts/pointnet", "md5-data")
PHOTOS = Champion("coherency-photos", "5", "s3://models/2/def/artifacts/unet", "md5-data")


def test_manifest_round_trips_through_the_sdk_models(tmp_path):
    service = inference_service(ServiceSpec(name="wounds", image="registry.local/coherency:1"), [POINTS, PHOTOS])
    path = write_manifest(tmp_path / "manifests" / "inferenceservice.yaml", service)
    manifest = yaml.safe_load(path.read_text())
    assert manifest["apiVersion"] == "serving.kserve.io/v1beta1" and manifest["kind"] == "InferenceService"
    assert to_dict(from_dict(manifest)) == manifest
    predictor, transformer = manifest["spec"]["predictor"], manifest["spec"]["transformer"]
    container = predictor["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in container["resources"]["requests"]  # extended resources: limits only
    assert [(s["uri"], s["mountPath"]) for s in predictor["storageUris"]] == [
        (POINTS.artifact_uri, f"{MODEL_ROOT}/coherency-points"),
        (PHOTOS.artifact_uri, f"{MODEL_ROOT}/coherency-photos")]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["COHERENCY_MODEL_ROOT"] == MODEL_ROOT and env["COHERENCY_DATA_VERSION"] == "md5-data"
    assert container["command"][-1] == "serving.predictor"
    assert transformer["containers"][0]["command"][-1] == "serving.transformer"
    assert "--predictor_protocol" in transformer["containers"][0]["args"]
    assert "nvidia.com/gpu" not in transformer["containers"][0]["resources"]["limits"]


def test_cpu_manifest_asks_for_no_gpu():
    manifest = to_dict(inference_service(ServiceSpec(gpu=False), [POINTS]))
    predictor = manifest["spec"]["predictor"]
    assert "nvidia.com/gpu" not in predictor["containers"][0]["resources"]["limits"]
    assert "tolerations" not in predictor


def test_parsing_rejects_unknown_and_missing_fields():
    manifest = to_dict(inference_service(ServiceSpec(), [POINTS]))
    manifest["spec"]["predictor"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(ValueError, match="imagePullPolcy"):
        from_dict(manifest)
    del manifest["spec"]["predictor"]["containers"][0]["imagePullPolcy"]
    del manifest["spec"]["predictor"]["containers"][0]["name"]
    with pytest.raises(ValueError, match="name"):
        from_dict(manifest)


def test_no_champion_no_manifest():
    with pytest.raises(ValueError, match="pipeline run"):
        inference_service(ServiceSpec(), [])


def test_champions_from_the_registry_serve_from_the_storage_mount(store, tmp_path, monkeypatch):  # noqa: F811
    import mlflow

    original = tiny_ensemble(with_unet=False)
    version = register_points_champion(store, original.points, "md5-abc")
    champions = registered_champions(store)
    assert [(c.name, c.version, c.data_version) for c in champions] == [("coherency-points", version, "md5-abc")]
    # what KServe's storage initializer does with storageUris: copy each artifact's contents to its mount path
    root = tmp_path / "mnt" / "models"
    root.mkdir(parents=True)
    copied = mlflow.artifacts.download_artifacts(champions[0].artifact_uri, dst_path=str(tmp_path / "download"))
    shutil.move(copied, root / "coherency-points")
    served = Ensemble.from_directory(root, {"coherency-points": version}, "md5-abc")
    assert served.versions == {"coherency-points": version} and served.data_version == "md5-abc"
    assert served.unet is None and served.point_params.n_points == original.point_params.n_points
    x = torch.from_numpy(normalise_chunks(np.random.default_rng(1).normal(size=(2, 256, 13))))
    with torch.no_grad():
        torch.testing.assert_close(original.points(x)[0], served.points(x)[0])
    with pytest.raises(ModelNotReady, match="coherency-points"):
        Ensemble.from_directory(tmp_path / "empty")
    # a pod finds the mount and its versions in the environment the manifest sets
    monkeypatch.setenv("COHERENCY_MODEL_ROOT", str(root))
    monkeypatch.setenv("COHERENCY_MODEL_VERSIONS", json.dumps({"coherency-points": "41"}))
    monkeypatch.setenv("COHERENCY_DATA_VERSION", "md5-pod")
    from_env = load_ensemble(tmp_path / "no-registry-here")
    assert from_env.versions == {"coherency-points": "41"} and from_env.data_version == "md5-pod"


def test_serve_manifests_writes_the_registered_champions(store, tmp_path):  # noqa: F811
    from tests.test_cli import run_cli

    out = tmp_path / "isvc.yaml"
    missing = run_cli("serve", "manifests", "--registry", str(tmp_path / "none"), "--out", str(out))
    assert missing.returncode == 2 and "pipeline run" in missing.stderr and not out.exists()
    version = register_points_champion(store, tiny_ensemble(with_unet=False).points, "md5-abc")
    made = run_cli("serve", "manifests", "--registry", str(store), "--out", str(out), "--no-gpu",
                   "--image", "registry.local/coherency:2")
    assert made.returncode == 0, made.stderr
    manifest = yaml.safe_load(out.read_text())
    predictor = manifest["spec"]["predictor"]
    assert predictor["containers"][0]["image"] == "registry.local/coherency:2"
    assert "nvidia.com/gpu" not in predictor["containers"][0]["resources"]["limits"]
    assert json.loads(manifest["metadata"]["annotations"]["coherency.io/model-versions"]) == {
        "coherency-points": version}
    assert predictor["storageUris"][0]["uri"].startswith((store / "artifacts" / "pointnet").resolve().as_uri())

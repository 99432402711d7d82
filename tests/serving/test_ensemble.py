"""Ensemble: loading champions from a real MLflow store in a temporary folder, its errors, and moving devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from features.point_chunks import normalise_chunks
from serving.assessment import assess, predict_point_probabilities
from serving.ensemble import Ensemble, ModelNotReady
from tests.conftest import bowl_scan
from tests.serving.conftest import TINY_PARAMS, register_points_champion, tiny_ensemble


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path / "mlruns"


def test_an_empty_store_names_the_missing_champion(store):
    with pytest.raises(ModelNotReady, match="coherency-points@champion") as error:
        Ensemble.from_registry(store)
    assert isinstance(error.value, RuntimeError) and "coherency pipeline run" in str(error.value)


def test_registered_champion_loads_with_its_version_and_data_version(store):
    original = tiny_ensemble(with_unet=False)
    version = register_points_champion(store, original.points, "md5-abc")
    loaded = Ensemble.from_registry(store)
    assert loaded.versions == {"coherency-points": version}
    assert loaded.data_version == "md5-abc"
    assert loaded.unet is None and loaded.prognosis is None
    params = loaded.point_params
    assert (params.voxel_mm, params.radii, params.n_points) == (TINY_PARAMS.voxel_mm, TINY_PARAMS.radii, 1024)
    chunks = normalise_chunks(np.random.default_rng(0).normal(size=(2, 256, 13)))
    x = torch.from_numpy(chunks)
    with torch.no_grad():
        for mine, theirs in zip(original.points(x), loaded.points(x), strict=True):
            torch.testing.assert_close(mine, theirs)
    with pytest.raises(ModelNotReady, match="coherency-photos@champion"):
        Ensemble.from_registry(store, required=("coherency-points", "coherency-photos"))
    with pytest.raises(ModelNotReady, match="coherency-points@staging"):
        Ensemble.from_registry(store, alias="staging")


def test_unet_and_its_size_come_together():
    ensemble = tiny_ensemble()
    with pytest.raises(ValueError, match="together"):
        Ensemble(ensemble.points, TINY_PARAMS, ensemble.unet, None)
    with pytest.raises(ValueError, match="unknown model"):
        Ensemble.from_registry(required=("coherency-everything",))


def test_to_moves_the_networks_and_returns_the_ensemble():
    ensemble = tiny_ensemble()
    assert ensemble.to("cpu") is ensemble and ensemble.device.type == "cpu"
    assert next(ensemble.unet.parameters()).device.type == "cpu"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_assessment_on_cuda_matches_the_cpu():
    scan = bowl_scan(seed=7)
    cpu = tiny_ensemble(with_unet=False)
    cpu_probs = predict_point_probabilities(cpu, scan)
    gpu = tiny_ensemble(with_unet=False).to()
    assert gpu.device.type == "cuda"
    gpu_probs = predict_point_probabilities(gpu, scan)
    np.testing.assert_allclose(gpu_probs.wound, cpu_probs.wound, atol=0.02)  # bf16 on the GPU
    assert assess(gpu, scan)["segmentation"]["points"] == len(scan)


"""The predictor without a server: readiness, its two input forms, errors, the inference log, and the micro-batcher
(enabled here on the CPU) giving each scan what a lone forward pass gives."""

from __future__ import annotations

import asyncio
import json
import threading

import numpy as np
import pytest
from kserve.errors import InvalidInput

from models.lit.points import numpy_predictor
from serving.assessment import predict_point_probabilities
from serving.batching import MicroBatcher
from serving.payload import decode_request
from serving.predictor import Predictor
from serving.settings import ServingSettings
from serving.wire import assessment_of, infer_request_from_bytes, to_predictor
from tests.conftest import bowl_scan
from tests.serving.conftest import tiny_ensemble
from tests.serving.payloads import camera_dict, photo_bytes, scan_bytes, v2_body


@pytest.fixture(scope="module")
def predictor(tmp_path_factory) -> Predictor:
    model = Predictor("coherency", ServingSettings(), ensemble=tiny_ensemble(),
                      inference_log=tmp_path_factory.mktemp("monitoring") / "inference.sqlite")
    assert model.ready is False  # nothing is served before load()
    assert model.load() is True and model.ready and model.batcher is None  # the CPU runs scans directly
    return model


def _request(tmp_path, **kwargs):
    return decode_request(infer_request_from_bytes(*v2_body(scan_bytes(tmp_path), **kwargs), "coherency"), 10_000)


def test_v2_tensors_give_one_bytes_output_of_json_with_versions_and_stage_times(predictor, tmp_path):
    request = _request(tmp_path, photo=photo_bytes(), camera=camera_dict(), metadata={"body_site": "heel"})
    payload = infer_request_from_bytes(*to_predictor(request, "coherency", "req-1").to_rest(), "coherency")
    response = asyncio.run(predictor.predict(payload))
    assert response.id == "req-1" and [o.name for o in response.outputs] == ["assessment"]
    reply = assessment_of(response)
    assert reply["segmentation"]["points"] == len(request.scan) and reply["segmentation"]["photo_used"] is True
    assert reply["models"] == {"coherency-points": "7"} and reply["data_version"] == "md5-of-data"
    assert {"decode", "photo", "points", "fusion", "prognosis", "log"} <= set(reply["timings_ms"])
    json.dumps(reply, allow_nan=False)


def test_a_v1_instance_of_lists_is_assessed_like_the_tensors(predictor, tmp_path):
    request = _request(tmp_path)
    as_v1 = {"instances": [{"points": request.scan.points.tolist(), "colors": request.scan.colors.tolist()}]}
    reply = asyncio.run(predictor.predict(as_v1))
    one = reply["predictions"][0]
    two = predictor.assess_payload(to_predictor(request, "coherency"))
    for result in (one, two):
        del result["timings_ms"]
    assert one == two


def test_assess_value_errors_are_invalid_input(predictor, tmp_path):
    request = _request(tmp_path)
    # sizes given, so the prognosis runs whatever the untrained segmentation finds, but no wound_id: a ValueError
    request.history = {"age": 70, "area_cm2": 1.0, "volume_cm3": 0.5, "depth_mm": 3.0}
    predictor.ensemble.prognosis = _Prognosis()
    try:
        with pytest.raises(InvalidInput, match="wound_id"):
            predictor.assess_payload(to_predictor(request, "coherency"))
    finally:
        predictor.ensemble.prognosis = None


class _Prognosis:
    def predict(self, frame):  # pragma: no cover - assess refuses the history before calling it
        raise AssertionError("not reached")


def test_every_inference_is_appended_to_the_monitoring_log(predictor, tmp_path):
    monitoring = pytest.importorskip("serving.monitoring")
    before = len(monitoring.read_log(predictor.inference_log)) if predictor.inference_log.is_file() else 0
    predictor.assess_payload(to_predictor(_request(tmp_path, metadata={"body_site": "heel"}), "coherency"))
    log = monitoring.read_log(predictor.inference_log)
    assert len(log) == before + 1


def test_an_injected_ensemble_can_be_batched_on_the_cpu_when_asked():
    model = Predictor("coherency", ServingSettings(batch_max_scans=3), ensemble=tiny_ensemble(with_unet=False),
                      batch=True)
    model.load()
    try:
        assert isinstance(model.batcher, MicroBatcher) and model.batcher.max_calls == 3
    finally:
        model.stop()
    assert model.batcher is None and model.ready is False


# ------------------------------------------------------------------------------------------------ batching


def test_concurrent_scans_batched_together_get_what_each_gets_alone():
    ensemble = tiny_ensemble(with_unet=False)
    scans = [bowl_scan(seed=s, spacing=1.5e-3) for s in (1, 2, 3)]
    alone = [predict_point_probabilities(ensemble, scan) for scan in scans]
    network = numpy_predictor(ensemble.points, ensemble.point_params.precision)
    batcher = MicroBatcher(network, max_calls=3, wait_s=0.2)
    together: list = [None] * len(scans)
    start = threading.Barrier(len(scans))

    def run(i: int) -> None:
        start.wait()
        together[i] = predict_point_probabilities(ensemble, scans[i], batcher)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(scans))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    batcher.close()
    assert max(batcher.calls_per_pass) > 1, batcher.calls_per_pass  # some forward passes served several scans
    for mine, theirs in zip(alone, together, strict=True):
        np.testing.assert_allclose(theirs.wound, mine.wound, atol=1e-5)
        np.testing.assert_allclose(theirs.tissue, mine.tissue, atol=1e-5)


def test_a_failing_pass_fails_each_of_its_callers_and_a_closed_batcher_refuses():
    def broken(chunks):
        raise RuntimeError(f"no device for {len(chunks)} chunks")

    batcher = MicroBatcher(broken, max_calls=2, wait_s=0.0)
    with pytest.raises(RuntimeError, match="no device for 8 chunks"):
        batcher(np.zeros((8, 16, 13), np.float32))
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher(np.zeros((1, 16, 13), np.float32))
    with pytest.raises(ValueError, match="max_calls"):
        MicroBatcher(broken, max_calls=0)

"""The KServe predictor: the champion ensemble behind the Open Inference Protocol (`python -m serving.predictor`).

`load()` reads the champions from the MLflow registry (in a cluster, from the folders KServe's storage
initializer filled, --model_root) and moves them to CUDA when there is one; only then is the model ready.
`predict()` takes the transformer's binary tensors (serving.wire) or a V1 instance, runs
serving.assessment.assess in a worker thread, so that the event loop keeps answering health checks and
concurrent requests overlap, and answers with the assessment as one BYTES output of JSON. On CUDA, concurrent
requests' PointNet++ chunks share forward passes (serving.batching). Every inference is appended to the
monitoring log, and each stage's time goes to the `coherency_stage_seconds` histogram.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from kserve import InferRequest, InferResponse, Model
from kserve.errors import InvalidInput

from features.stopwatch import Stopwatch
from serving import monitoring
from serving.assessment import assess, predict_point_probabilities
from serving.batching import MicroBatcher
from serving.ensemble import Ensemble, ModelNotReady, load_ensemble
from serving.payload import AssessmentRequest
from serving.server import argument_parser, observe_stages, serve
from serving.settings import ServingSettings, monitoring_paths, serving_settings
from serving.wire import INPUT_TYPES, OUTPUT_TYPES, from_transformer, respond

SERVER = "predictor"


class Predictor(Model):
    """Assess scans with the champion ensemble.

    ensemble: a ready Ensemble (tests), instead of loading one in load(); model_root: MLflow model folders named
    after the registered models, instead of the registry; batch: join concurrent requests' network passes
    (None: when the ensemble is on CUDA); inference_log: where serving.monitoring appends every inference.
    """

    def __init__(self, name: str, settings: ServingSettings, *, ensemble: Ensemble | None = None,
                 model_root: Path | None = None, inference_log: Path | None = None, batch: bool | None = None):
        super().__init__(name)
        self.settings, self.model_root, self.inference_log, self.batch = settings, model_root, inference_log, batch
        self._given = ensemble
        self.ensemble: Ensemble | None = None
        self.batcher: MicroBatcher | None = None

    def load(self) -> bool:
        """Load the champions (ModelNotReady when none is registered), on CUDA when available; then ready."""
        from models.lit.points import numpy_predictor

        ensemble = (self._given or self._stored_ensemble()).to()
        if self.batcher is None and (ensemble.device.type == "cuda" if self.batch is None else self.batch):
            network = numpy_predictor(ensemble.points, ensemble.point_params.precision)
            self.batcher = MicroBatcher(network, self.settings.batch_max_scans, self.settings.batch_wait_ms / 1e3)
        self.ensemble = ensemble
        self.ready = True
        return self.ready

    def _stored_ensemble(self) -> Ensemble:
        # a cluster passes model_root: the versions come with the manifest, in the environment
        return load_ensemble(self.settings.registry_path, self.settings.alias, self.model_root)

    def get_input_types(self) -> list[dict]:
        return INPUT_TYPES

    def get_output_types(self) -> list[dict]:
        return OUTPUT_TYPES

    def stop(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
            self.batcher = None
        super().stop()

    async def predict(self, payload: InferRequest | dict, headers: dict | None = None,
                      response_headers: dict | None = None) -> InferResponse | dict:
        """The assessment of the scan in `payload`, as the request's protocol wants it."""
        result = await asyncio.to_thread(self.assess_payload, payload)
        return respond(payload, result, self.name)

    def assess_payload(self, payload: InferRequest | dict) -> dict:
        """Decode, assess, log; the result carries each stage's milliseconds as `timings_ms`."""
        clock = Stopwatch()
        with clock.stage("decode"):
            request = from_transformer(payload, self.settings.max_points)
        result = self.run_ensemble(request, clock)
        with clock.stage("log"):
            if self.inference_log is not None:
                monitoring.record_inference(self.inference_log, request.scan, result, request.metadata)
        measure_ms = (result.get("quality") or {}).get("stage_ms") or {}  # measure's own steps
        observe_stages(SERVER, {**clock.ms, **{f"measure_{k}": v for k, v in measure_ms.items()}})
        result["timings_ms"] = {k: round(v, 1) for k, v in clock.ms.items()}
        return result

    def run_ensemble(self, request: AssessmentRequest, clock: Stopwatch) -> dict:
        """serving.assessment.assess, with the point network through the batcher when there is one."""
        try:
            with clock.stage("points"):
                probabilities = predict_point_probabilities(self.ensemble, request.scan, self.batcher)
            return assess(self.ensemble, request.scan, request.photo, request.camera, request.history,
                          point_probabilities=probabilities, clock=clock)
        except ValueError as e:  # assess's contract: a ValueError is an input it cannot use
            raise InvalidInput(str(e)) from e


def register_drift_collector(reports_dir: Path | None) -> None:
    """serving.monitoring's drift gauges on this process's /metrics."""
    from prometheus_client import REGISTRY

    if reports_dir is not None:
        REGISTRY.register(monitoring.DriftCollector(reports_dir))


def main(argv: list[str] | None = None) -> None:
    """Flags (kserve's and ours), then serve until SIGTERM; exit 2 with one line when no champion is registered."""
    parser = argument_parser("The coherency predictor (KServe): the champion ensemble.")
    parser.add_argument("--registry", help="MLflow store with the champions (default: serving.registry)")
    parser.add_argument("--model_root", type=Path, default=os.environ.get("COHERENCY_MODEL_ROOT") or None,
                        help="folders of MLflow models named after the registered models, instead of the registry")
    parser.add_argument("--inference_log", type=Path, help="inference log (default: monitoring.log)")
    parser.add_argument("--drift_reports", type=Path, help="drift summaries for /metrics (default: monitoring.reports)")
    parser.add_argument("--batch", choices=("auto", "on", "off"), default="auto",
                        help="join concurrent requests' network passes (auto: on CUDA)")
    args = parser.parse_args(argv)
    settings = serving_settings(args.profile, args.params).override(registry=args.registry)
    log, reports = monitoring_paths(args.profile, args.params)
    predictor = Predictor(args.model_name, settings, model_root=args.model_root,
                          inference_log=args.inference_log or log,
                          batch={"auto": None, "on": True, "off": False}[args.batch])
    register_drift_collector(args.drift_reports or reports)
    serve(predictor, args, settings.max_body_bytes, fatal=(ModelNotReady,))


if __name__ == "__main__":
    main()

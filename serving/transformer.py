"""The KServe transformer, what clients call: `python -m serving.transformer --predictor_host HOST:PORT`.

preprocess() decodes and validates the client's V2 or V1 request (serving.payload) in a worker thread and, when a
feature store is configured and the metadata names a known wound_id, adds the wound's first-visit features from
Feast (the prognosis model's input); predict() forwards the scan to the predictor as binary V2 tensors
(serving.wire); postprocess() answers in the client's own protocol with the assessment (which names the model
versions and the data version) and each stage's milliseconds. The Open3D preprocessing the network needs
(voxel grid, normals, local geometry) runs inside the predictor's assess(), which owns it, so that served and
in-process assessments are one code path.
"""

from __future__ import annotations

import asyncio
import logging
import os
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from kserve import InferenceRESTClient, InferRequest, InferResponse, Model, RESTConfig
from kserve.errors import InferenceError, InvalidInput, ModelNotReady
from kserve.model import append_forwardable_headers

from features.stopwatch import Stopwatch
from serving.payload import CLIENT_INPUTS, AssessmentRequest, decode_request
from serving.server import argument_parser, observe_stages, serve
from serving.settings import ServingSettings, serving_settings
from serving.wire import OUTPUT_TYPES, assessment_of, respond, to_predictor

log = logging.getLogger(__name__)

SERVER = "transformer"
PROGNOSIS_SERVICE = "prognosis_gbm_v1"  # the Feast FeatureService of the prognosis model's first-visit features
# the wound's size comes from the scan being assessed, the newest visit; serving.assessment fills these
# prognosis inputs from its measurements when the history leaves them out (PROGNOSIS_MEASUREMENTS there)
MEASURED_NOW = ("area_cm2", "volume_cm3", "depth_mm")


@dataclass
class _Call:
    """What postprocess needs to know about the client's request."""

    payload: InferRequest | dict
    clock: Stopwatch = field(default_factory=Stopwatch)


_CALL: ContextVar[_Call] = ContextVar("coherency_transformer_call")  # preprocess and postprocess share a task


class Transformer(Model):
    """Validate, enrich and forward scans; answer V1 clients in V1 and V2 clients in V2.

    feature_data: the Feast data folder (registry.db, online.db); None serves without prognosis features.
    """

    def __init__(self, name: str, settings: ServingSettings, *, feature_data: Path | None = None,
                 online: str = "sqlite"):
        super().__init__(name)
        self.settings, self.feature_data, self.online = settings, feature_data, online
        self.store = None
        self.client: InferenceRESTClient | None = None

    def load(self) -> bool:
        """Open the feature store when configured and make the predictor's client; then ready."""
        if self.feature_data is not None:
            from features.store import open_store

            self.store = open_store(data_dir=self.feature_data, online=self.online)
        config = self.predictor_config
        self.client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=config.predictor_request_timeout_seconds,
                                                     retries=config.predictor_request_retries))
        self.ready = True
        return self.ready

    def get_input_types(self) -> list[dict]:
        return [{"name": name, "datatype": "BYTES", "shape": [1]} for name in CLIENT_INPUTS]

    def get_output_types(self) -> list[dict]:
        return OUTPUT_TYPES

    async def preprocess(self, payload: InferRequest | dict, headers: dict | None = None) -> InferRequest:
        """The client's scan, validated, with the wound's features, as the predictor's binary tensors."""
        call = _Call(payload)
        _CALL.set(call)
        request = await asyncio.to_thread(self.prepare, payload, call.clock)
        return to_predictor(request, self.name, payload.id if isinstance(payload, InferRequest) else None)

    def prepare(self, payload: InferRequest | dict, clock: Stopwatch) -> AssessmentRequest:
        with clock.stage("parse"):
            request = decode_request(payload, self.settings.max_points)
        with clock.stage("features"):
            request.history = self.history(request.metadata.get("wound_id"))
        return request

    def history(self, wound_id: object) -> dict | None:
        """The wound's first-visit features from Feast; None without a store or for a wound it does not know."""
        if self.store is None or not isinstance(wound_id, str):
            return None
        from features.store import online_features

        try:
            row = online_features(self.store, [wound_id], PROGNOSIS_SERVICE).iloc[0].to_dict()
        except Exception as e:  # the assessment does not depend on the prognosis: serve it without one
            log.warning("no features for wound %s from the feature store: %s: %s", wound_id, type(e).__name__, e)
            return None
        if row.get("patient_id") is None:  # Feast answers an unknown wound with empty values
            return None
        return {k: v.item() if isinstance(v, np.generic) else v for k, v in row.items() if k not in MEASURED_NOW}

    async def predict(self, payload: InferRequest, headers: dict | None = None,
                      response_headers: dict | None = None) -> InferResponse:
        """Forward to the predictor (its 4xx stays a 4xx, its absence is a 503)."""
        config = self.predictor_config
        try:
            with _CALL.get().clock.stage("predictor"):
                return await self.client.infer(config.predictor_base_url, payload, model_name=self.name,
                                               headers=append_forwardable_headers(headers))
        except httpx.HTTPStatusError as e:
            raise _predictor_error(self.name, e.response) from e
        except httpx.TransportError as e:
            raise ModelNotReady(self.name, f"the predictor at {config.predictor_host} does not answer "
                                           f"({type(e).__name__})") from e

    async def postprocess(self, response: InferResponse, headers: dict | None = None,
                          response_headers: dict | None = None) -> InferResponse | dict:
        """The assessment with every stage's milliseconds, in the client's protocol."""
        call = _CALL.get()
        result = assessment_of(response)
        observe_stages(SERVER, call.clock.ms)
        result["timings_ms"] = {**{k: round(v, 1) for k, v in call.clock.ms.items()}, **result.get("timings_ms", {})}
        return respond(call.payload, result, self.name)


def _predictor_error(name: str, response: httpx.Response) -> Exception:
    try:
        message = response.json().get("error") or response.text
    except ValueError:
        message = response.text
    if response.status_code == 503:
        return ModelNotReady(name, f"the predictor is not ready: {message}")
    if 400 <= response.status_code < 500:
        return InvalidInput(f"the predictor refused the scan: {message}")
    return InferenceError(f"the predictor failed ({response.status_code}): {message}")


def main(argv: list[str] | None = None) -> None:
    """Flags (kserve's, with --predictor_host and --predictor_protocol v2, and ours), then serve until SIGTERM."""
    parser = argument_parser("The coherency transformer (KServe): validation, features, the predictor's tensors.")
    parser.add_argument("--feature_data", type=Path, default=os.environ.get("COHERENCY_FEATURE_DATA") or None,
                        help="Feast data folder (registry.db); without it no prognosis features are fetched")
    parser.add_argument("--online", choices=("sqlite", "redis"), default=os.environ.get("COHERENCY_ONLINE_STORE")
                        or "sqlite", help="Feast online store")
    args = parser.parse_args(argv)
    if args.predictor_protocol != "v2":
        parser.error("the transformer talks to the predictor in V2 binary tensors: pass --predictor_protocol v2")
    if not args.predictor_host:
        parser.error("--predictor_host HOST:PORT is required")
    settings = serving_settings(args.profile, args.params)
    serve(Transformer(args.model_name, settings, feature_data=args.feature_data, online=args.online), args,
          settings.max_body_bytes)


if __name__ == "__main__":
    main()

"""The KServe InferenceService that runs `coherency serve`'s topology on a cluster, built from the SDK's own models.

The transformer and the predictor are the same two processes as on one machine (serving.transformer and
serving.predictor in the project's image). The predictor asks for one GPU, and KServe's storage initializer
copies each champion's MLflow artifact into /mnt/models/NAME before it starts. The predictor loads from there
(COHERENCY_MODEL_ROOT) instead of calling the registry, and its versions come from annotations and the
environment, so a pod serves exactly the versions the manifest names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from kserve import (
    V1beta1InferenceService,
    V1beta1InferenceServiceSpec,
    V1beta1PredictorSpec,
    V1beta1TransformerSpec,
    constants,
)
from kserve.api_client import ApiClient
from kserve.models import V1beta1StorageUri
from kubernetes.client import V1Container, V1ContainerPort, V1EnvVar, V1ObjectMeta, V1ResourceRequirements, V1Toleration

MODEL_ROOT = "/mnt/models"  # where KServe's storage initializer puts storageUris by convention
GPU = "nvidia.com/gpu"
HTTP_PORT = 8080  # KServe routes to the first container port; both servers listen on it in their pods


@dataclass(frozen=True)
class Champion:
    """One registered model the predictor serves: its registry name, version and artifact location."""

    name: str
    version: str
    artifact_uri: str  # s3://..., gs://..., or a PVC path the storage initializer can read
    data_version: str = "unknown"


@dataclass(frozen=True)
class ServiceSpec:
    """What the cluster needs besides the champions: image, namespace, resources and the online store."""

    name: str = "coherency"
    image: str = "ghcr.io/coherency/coherency:latest"
    namespace: str = "coherency"
    gpu: bool = True
    predictor_cpu: str = "4"
    predictor_memory: str = "16Gi"
    transformer_cpu: str = "2"
    transformer_memory: str = "4Gi"
    min_replicas: int = 1
    max_replicas: int = 4
    env: dict[str, str] = field(default_factory=lambda: {"COHERENCY_ONLINE_STORE": "redis",
                                                         "COHERENCY_REDIS": "redis.coherency:6379,db=0"})


def inference_service(spec: ServiceSpec, champions: list[Champion]) -> V1beta1InferenceService:
    """The InferenceService (serving.kserve.io/v1beta1) for `champions`, transformer in front of predictor."""
    if not champions:
        raise ValueError("no champion to serve: register the models first ('coherency pipeline run')")
    versions = {c.name: c.version for c in champions}
    annotations = {"serving.kserve.io/enable-prometheus-scraping": "true",
                   "coherency.io/model-versions": json.dumps(versions, sort_keys=True),
                   "coherency.io/data-version": champions[0].data_version}
    return V1beta1InferenceService(
        api_version=constants.KSERVE_V1BETA1, kind=constants.KSERVE_KIND_INFERENCESERVICE,
        metadata=V1ObjectMeta(name=spec.name, namespace=spec.namespace, annotations=annotations,
                              labels={"app.kubernetes.io/part-of": "coherency"}),
        spec=V1beta1InferenceServiceSpec(predictor=_predictor(spec, champions, annotations),
                                         transformer=_transformer(spec)))


def _predictor(spec: ServiceSpec, champions: list[Champion], annotations: dict[str, str]) -> V1beta1PredictorSpec:
    limits = {"cpu": spec.predictor_cpu, "memory": spec.predictor_memory, **({GPU: "1"} if spec.gpu else {})}
    env = {**spec.env, "COHERENCY_MODEL_ROOT": MODEL_ROOT,
           "COHERENCY_MODEL_VERSIONS": annotations["coherency.io/model-versions"],
           "COHERENCY_DATA_VERSION": annotations["coherency.io/data-version"]}
    container = _container(spec, "serving.predictor", env, limits)
    tolerations = [V1Toleration(key=GPU, operator="Exists", effect="NoSchedule")] if spec.gpu else None
    return V1beta1PredictorSpec(
        containers=[container], tolerations=tolerations,
        storage_uris=[V1beta1StorageUri(uri=c.artifact_uri, mount_path=f"{MODEL_ROOT}/{c.name}") for c in champions],
        min_replicas=spec.min_replicas, max_replicas=spec.max_replicas)


def _transformer(spec: ServiceSpec) -> V1beta1TransformerSpec:
    # KServe adds --predictor_host (the predictor's in-cluster address) to the transformer's arguments itself
    limits = {"cpu": spec.transformer_cpu, "memory": spec.transformer_memory}
    return V1beta1TransformerSpec(containers=[_container(spec, "serving.transformer", spec.env, limits,
                                                         ["--predictor_protocol", "v2"])],
                                  min_replicas=spec.min_replicas, max_replicas=spec.max_replicas)


def _container(spec: ServiceSpec, module: str, env: dict[str, str], limits: dict[str, str],
               extra_args: list[str] | None = None) -> V1Container:
    requests = {k: v for k, v in limits.items() if k != GPU}
    return V1Container(
        name="kserve-container", image=spec.image, command=["python", "-m", module],
        args=["--model_name", spec.name, "--http_port", str(HTTP_PORT), "--enable_grpc", "false", *(extra_args or [])],
        env=[V1EnvVar(name=k, value=v) for k, v in sorted(env.items())],
        ports=[V1ContainerPort(container_port=HTTP_PORT, protocol="TCP")],
        resources=V1ResourceRequirements(limits=limits, requests=requests))


def registered_champions(store: Path = Path("mlruns"), alias: str = "champion") -> list[Champion]:
    """The champions in the MLflow registry at `store`, with the artifact each version was registered from."""
    from mlflow import MlflowClient

    from models import registry
    from serving.ensemble import MODEL_NAMES

    registry.use_store(store)
    client, found = MlflowClient(), []
    for name in MODEL_NAMES:
        version = registry.alias_version(name, alias)
        if version is None:
            continue
        tags = client.get_model_version(name, version).tags
        found.append(Champion(name, version, client.get_model_version_download_uri(name, version),
                              tags.get("data_version") or "unknown"))
    return found


def to_dict(service: V1beta1InferenceService) -> dict:
    """The manifest as plain data (camelCase keys, no nulls), ready for YAML or `kubectl apply`."""
    return ApiClient().sanitize_for_serialization(service)


def from_dict(manifest: dict) -> V1beta1InferenceService:
    """Parse a manifest back through the SDK's models (kserve's and kubernetes'), field by field.

    Each model's constructor validates its own fields (required ones, enums); a key no model declares raises
    ValueError, so a typo in a hand-edited manifest is caught here rather than ignored by the cluster.
    """
    return _model(manifest, "V1beta1InferenceService")


PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": float, "object": object}


def _model(data, type_name: str):
    import kserve.models
    import kubernetes.client

    if type_name.startswith("list["):
        return [_model(item, type_name[5:-1]) for item in data]
    if type_name.startswith("dict("):
        value_type = type_name[5:-1].split(", ", 1)[1]
        return {k: _model(v, value_type) for k, v in data.items()}
    if type_name in PRIMITIVES or type_name == "ResourceQuantity":
        return data
    klass = getattr(kserve.models, type_name, None) or getattr(kubernetes.client, type_name)
    by_key = {key: attr for attr, key in klass.attribute_map.items()}
    unknown = sorted(set(data) - set(by_key))
    if unknown:
        raise ValueError(f"{type_name} has no field(s) {', '.join(unknown)}")
    return klass(**{by_key[k]: _model(v, klass.openapi_types[by_key[k]]) for k, v in data.items()})


def write_manifest(path: Path, service: V1beta1InferenceService) -> Path:
    """Write the manifest as YAML (atomically: a half-written manifest must never be applied)."""
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump(to_dict(service), sort_keys=False))
    tmp.replace(path)
    return path

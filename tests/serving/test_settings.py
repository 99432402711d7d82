"""The serving section of params.yaml: read like the other sections, checked, overridden by flags."""

from __future__ import annotations

import pytest
import yaml

from serving.settings import ServingSettings, monitoring_paths, serving_settings


def test_the_project_params_read_and_flags_override_them():
    settings = serving_settings("demo")
    assert settings.model_name == "coherency" and settings.transformer_port != settings.predictor_port
    assert settings.max_body_bytes == int(settings.max_body_mb * 2**20)
    moved = settings.override(transformer_port=9000, registry=None)
    assert moved.transformer_port == 9000 and moved.registry == settings.registry
    assert moved.url(9000) == f"http://{settings.host}:9000"


@pytest.mark.parametrize(("values", "message"), [
    ({"transformer_port": 0}, "TCP port"), ({"predictor_port": 8080}, "both want port 8080"),
    ({"max_body_mb": 0}, "max_body_mb must be positive"), ({"batch_wait_ms": -1}, "batch_wait_ms"),
    ({"max_points": -5}, "max_points"),
])
def test_unusable_values_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        ServingSettings(**values)


def test_unknown_keys_and_missing_sections(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"serving": {"max_body_gb": 1}}))
    with pytest.raises(ValueError, match=r"unknown key.*max_body_gb"):
        serving_settings("demo", path)
    path.write_text(yaml.safe_dump({"measure": {}}))
    assert serving_settings("demo", path) == ServingSettings()
    assert monitoring_paths("demo", path) == (None, None)

"""The committed pipeline YAML is what the source compiles to."""

from __future__ import annotations

from pipelines.compile import COMPILED, compile_training


def test_compiled_yaml_matches_the_source(tmp_path):
    fresh = compile_training(tmp_path / "training.yaml").read_text()
    assert fresh == COMPILED.read_text(), "pipelines/compiled/training.yaml is stale: run `coherency pipeline compile`"


def test_the_gate_guards_promotion():
    text = COMPILED.read_text()
    assert "condition: inputs.parameter_values['pipelinechannel--evaluate-prognosis-Output']" in text
    for step in ("ingest", "validate", "features", "train", "evaluate-prognosis", "register-prognosis", "promote"):
        assert f"comp-{step}:" in text

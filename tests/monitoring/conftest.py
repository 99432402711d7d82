"""Phantom feature rows shared by the monitoring tests: a training reference and four windows of new scans.

The reference population lacks heels and the darkest skin tones, so that a window of heels is a new body site
and one of tones 5-6 is other skin tones; another sensor's noise is a window with 2.5-4 mm range noise. The
undrifted window is the reference's configuration with another seed. Rows are computed once per session (48
phantoms, under a minute on two cores).
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from features.phantoms import PhantomConfig, make_phantom
from serving.monitor_reference import reference_rows

REFERENCE = PhantomConfig(texture="procedural", photos_dir=None, shapes=("flat", "limb"), skin_tones=(1, 2, 3, 4))
SCENARIOS = {
    "undrifted": (REFERENCE, 202),
    "sensor_noise": (replace(REFERENCE, noise_mm=(2.5, 4.0)), 303),
    "skin_tones": (replace(REFERENCE, skin_tones=(5, 6)), 404),
    "body_site": (replace(REFERENCE, shapes=("heel",)), 505),
}
REFERENCE_SEED, N_REFERENCE, N_WINDOW = 101, 16, 8


def phantom_rows(config: PhantomConfig, seed: int, n: int) -> pd.DataFrame:
    """Monitored rows of phantoms 0..n-1, predictions from their labels and truth (as the reference builds them)."""
    phantoms = (make_phantom(i, config, seed) for i in range(n))
    return reference_rows((p.scan, p.truth, p.meta) for p in phantoms)


@pytest.fixture(scope="session")
def reference_frame() -> pd.DataFrame:
    return phantom_rows(REFERENCE, REFERENCE_SEED, N_REFERENCE)


@pytest.fixture(scope="session")
def windows() -> dict[str, pd.DataFrame]:
    return {name: phantom_rows(config, seed, N_WINDOW) for name, (config, seed) in SCENARIOS.items()}

"""The dressing rules as a pure function: each named threshold on both of its sides, and the safety overrides."""

from __future__ import annotations

import pytest

from platform_api.commerce.dressings import (
    DEBRIDEMENT_SHARE,
    DEEP_CAVITY_MM,
    SHALLOW_MM,
    Findings,
    has_infection_signs,
    recommend,
)


def types(findings: Findings) -> tuple[list[str], set[str]]:
    use, avoid = recommend(findings)
    return [a.dressing_type.value for a in use], {a.dressing_type.value for a in avoid}


def test_deep_cavity_wants_a_filler():
    use, avoid = types(Findings(max_depth_mm=DEEP_CAVITY_MM + 0.1, exudate="low"))
    assert set(use[:2]) == {"alginate", "foam"} and "film" in avoid
    assert "alginate" not in types(Findings(max_depth_mm=DEEP_CAVITY_MM, exudate="low"))[0]


def test_heavy_exudate_wants_absorbency_and_no_film_or_hydrogel():
    use, avoid = types(Findings(max_depth_mm=3.0, exudate="heavy", tissue={"slough": 0.5}))
    assert set(use[:2]) == {"alginate", "foam"}
    assert {"film", "hydrogel"} <= avoid and "hydrogel" not in use  # avoided despite the slough


def test_moderate_exudate_prefers_foam():
    use, avoid = types(Findings(max_depth_mm=3.0, exudate="moderate"))
    assert use[:2] == ["foam", "alginate"] and not avoid


@pytest.mark.parametrize(("slough", "necrotic", "debride"), [(0.15, 0.10, True), (0.20, 0.04, False), (0.0, 0.3, True)])
def test_slough_and_necrosis_from_a_quarter_want_hydrogel(slough, necrotic, debride):
    use, _ = types(Findings(max_depth_mm=3.0, exudate="low", tissue={"slough": slough, "necrotic": necrotic}))
    assert (use[:1] == ["hydrogel"]) is debride
    assert DEBRIDEMENT_SHARE == 0.25


def test_infection_wants_an_antimicrobial_first_and_nothing_occlusive():
    use, avoid = types(Findings(max_depth_mm=1.0, exudate="low", tissue={"epithelialising": 0.9}, infection=True))
    assert use[0] == "antimicrobial" and {"film", "hydrocolloid"} <= avoid
    use, avoid = types(Findings(max_depth_mm=8.0, exudate="heavy", infection=True))
    assert use[0] == "antimicrobial" and set(use[1:3]) == {"alginate", "foam"}


def test_shallow_dry_epithelialising_wants_film_or_hydrocolloid():
    use, _ = types(Findings(max_depth_mm=SHALLOW_MM, exudate="none", tissue={"epithelialising": 0.6}))
    assert set(use) == {"film", "hydrocolloid"}
    deeper, _ = types(Findings(max_depth_mm=SHALLOW_MM + 0.5, exudate="none", tissue={"epithelialising": 0.6}))
    wetter, _ = types(Findings(max_depth_mm=1.0, exudate="moderate", tissue={"epithelialising": 0.6}))
    assert "film" not in deeper and "film" not in wetter


def test_no_indication_falls_back_to_foam_and_unmeasured_is_no_indication():
    assert types(Findings(max_depth_mm=3.0, exudate="low", tissue={"granulation": 1.0})) == (["foam"], set())
    assert types(Findings()) == (["foam"], set())


def test_every_advice_has_reasons_naming_its_threshold():
    use, avoid = recommend(Findings(max_depth_mm=7.5, exudate="heavy", tissue={"necrotic": 0.5}, infection=True))
    assert all(a.reasons for a in use + avoid)
    assert any("7.5 mm > 5 mm" in reason for a in use for reason in a.reasons)


@pytest.mark.parametrize(("flags", "metadata", "infected"), [
    ([{"code": "suspected_infection", "message": "x"}], None, True),
    ([], {"infection": True}, True),
    ([], {"infected": "yes"}, True),
    ([], {"status": "infected"}, True),
    ([], {"infection": False}, False),
    ([], {"infection": "no"}, False),
    ([], {"notes": "no infection seen"}, False),
    ([{"code": "depth_exceeds_opening"}], {"exudate": "heavy"}, False),
])
def test_infection_signs(flags, metadata, infected):
    assert has_infection_signs(flags, metadata) is infected

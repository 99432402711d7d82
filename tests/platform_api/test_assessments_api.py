"""Scans and assessments without the assessment service: uploads refused before anything is stored, access, the
trend arithmetic, reports from stored assessments, object storage, and the service client's error mapping.
(test_assessments.py runs the real serving stack.)"""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import func, select

from platform_api.assessments import serving_client
from platform_api.assessments.models import Assessment, Scan
from platform_api.assessments.service import p_heal_12w, serving_metadata
from platform_api.assessments.storage import Storage
from platform_api.assessments.trend import trend
from platform_api.auth.models import Role
from platform_api.errors import Invalid, NotFound, Upstream
from platform_api.settings import Settings

PLY = b"ply\nformat binary_little_endian 1.0\nelement vertex 0\nproperty float x\nend_header\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
CAMERA = {"width": 40, "height": 30, "fx": 60.0, "fy": 60.0, "cx": 20.0, "cy": 15.0,
          "world_to_camera": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0.6], [0, 0, 0, 1]]}
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
# a square outline 2 cm across in a tilted plane, as the service reports it (scan metres)
SQUARE = [[x, y, 0.3 + 0.5 * x] for x, y in ((0, 0), (0.02, 0), (0.02, 0.02), (0, 0.02), (0, 0))]


def stored_assessment(session, wound, user, *, captured_at: datetime, area: float | None = 4.0,
                      result: dict | None = None, **columns) -> Assessment:
    """An assessed scan and its assessment, written as the service writes them (no files, no service)."""
    scan = Scan(wound_id=wound.id, patient_id=wound.patient_id, uploaded_by=user.id, captured_at=captured_at,
                scan_key="scans/none/scan.ply", scan_format="ply", scan_bytes=1, scan_sha256="0" * 64,
                status="assessed")
    session.add(scan)
    session.flush()
    measured = area is not None
    values = {"area_cm2": area, "volume_cm3": 0.5 if measured else None, "max_depth_mm": 4.0 if measured else None,
              "length_cm": 2.5 if measured else None, "width_cm": 1.6 if measured else None,
              "tissue": {"granulation": 0.75, "slough": 0.25, "necrotic": 0.0} if measured else None,
              "model_versions": {"coherency-points": "3"}, "data_version": "md5-test", "flags": []}
    assessment = Assessment(scan_id=scan.id, wound_id=wound.id, patient_id=wound.patient_id, captured_at=captured_at,
                            result=result or {"uncertainty": {"area_cm2": [3.5, 4.5]}, "outline": SQUARE},
                            **{**values, **columns})
    session.add(assessment)
    session.commit()
    return assessment


def upload(client, wound_id, headers, scan=PLY, photo=None, camera=None, metadata=None, **extra):
    files = {"scan": ("scan.ply", scan, "application/octet-stream")}
    if photo is not None:
        files["photo"] = ("photo.png", photo, "image/png")
    data = {k: json.dumps(v) for k, v in (("camera", camera), ("metadata", metadata)) if v is not None}
    return client.post(f"/wounds/{wound_id}/scans", files=files, data={**data, **extra}, headers=headers)


def scans_of(session, wound) -> int:
    return session.scalar(select(func.count()).select_from(Scan).where(Scan.wound_id == wound.id))


# ------------------------------------------------------------------------------------------------------ refusals


REFUSED = {
    "not a PLY or PCD": ({"scan": b"solid cube\nfacet normal 0 0 1\n"}, 415, "PLY"),
    "a photo that is a GIF": ({"photo": b"GIF89a" + b"\0" * 20, "camera": CAMERA}, 415, "JPEG or PNG"),
    "a photo without its camera": ({"photo": PNG}, 422, "needs its camera"),
    "a camera without fx": ({"camera": {k: v for k, v in CAMERA.items() if k != "fx"}}, 422, "camera.fx"),
    "a 3x4 camera matrix": ({"camera": {**CAMERA, "world_to_camera": CAMERA["world_to_camera"][:3]}}, 422, "4x4"),
    "an unknown metadata key": ({"metadata": {"patient_name": "Ada"}}, 422, "metadata.patient_name"),
    "an unknown exudate": ({"metadata": {"exudate": "lots"}}, 422, "metadata.exudate"),
    "a capture time without zone": ({"metadata": {"captured_at": "2026-01-01T09:00:00"}}, 422, "captured_at"),
    "a capture time in the future": ({"metadata": {"captured_at": "2999-01-01T09:00:00Z"}}, 422, "future"),
    "an unknown form field": ({"photos": "x"}, 422, "unknown form field"),
}


def test_bad_uploads_are_refused_and_nothing_is_stored(client, auth, world, session, settings):
    for case, (fields, status, message) in REFUSED.items():  # one test: each world costs six password hashes
        response = upload(client, world.wound.id, auth(world.clinician), **fields)
        assert response.status_code == status, (case, response.text)
        assert set(response.json()) == {"error", "code"} and message in response.json()["error"], case
    response = client.post(f"/wounds/{world.wound.id}/scans", json={"scan": "x"}, headers=auth(world.clinician))
    assert response.status_code == 415
    assert scans_of(session, world.wound) == 0
    assert not Path(settings.storage_url).exists()  # no file was written either


def test_who_may_upload_and_how_much(client, auth, world, session, settings):
    assert upload(client, world.wound.id, auth(world.patient_user)).status_code == 403
    assert upload(client, world.wound.id, auth(world.other_clinician)).status_code == 404
    assert upload(client, "no-such-wound", auth(world.clinician)).status_code == 404
    assert upload(client, world.wound.id, {}).status_code == 401
    junk = {**auth(world.other_clinician), "Content-Type": "text/plain"}  # a 404 before the body is read
    assert client.post(f"/wounds/{world.wound.id}/scans", content=b"x", headers=junk).status_code == 404
    settings.max_upload_mb = 0.01  # 10 KiB
    big = PLY + b"\0" * 20_000
    response = upload(client, world.wound.id, auth(world.clinician), scan=big)
    assert response.status_code == 413 and "0.01 MB" in response.json()["error"]
    body = b"".join([b"--b\r\n", b'Content-Disposition: form-data; name="scan"; filename="s.ply"\r\n\r\n', big,
                     b"\r\n--b--\r\n"])
    chunked = client.post(f"/wounds/{world.wound.id}/scans", content=iter([body[:5000], body[5000:]]),
                          headers={**auth(world.clinician), "Content-Type": "multipart/form-data; boundary=b"})
    assert "content-length" not in chunked.request.headers  # counted as it arrived, not trusted from a header
    assert chunked.status_code == 413
    assert scans_of(session, world.wound) == 0


# ------------------------------------------------------------------------------------------------------ reads


def test_reads_follow_the_patient_and_are_audited(client, auth, world, session):
    first = stored_assessment(session, world.wound, world.clinician, captured_at=T0 + timedelta(days=7))
    second = stored_assessment(session, world.wound, world.clinician, captured_at=T0)
    listed = client.get(f"/wounds/{world.wound.id}/assessments", headers=auth(world.patient_user))
    assert [a["id"] for a in listed.json()] == [second.id, first.id]  # by capture time, not by insertion
    for user, status in ((world.caregiver, 200), (world.patient_user, 200), (world.other_clinician, 404),
                         (world.other_user, 404)):
        assert client.get(f"/assessments/{first.id}", headers=auth(user)).status_code == status
        assert client.get(f"/scans/{first.scan_id}", headers=auth(user)).status_code == status
        assert client.get(f"/wounds/{world.wound.id}/trend", headers=auth(user)).status_code == status
    assert client.post(f"/scans/{first.scan_id}/assess", headers=auth(world.patient_user)).status_code == 403
    assert client.post(f"/scans/{first.scan_id}/assess", headers=auth(world.clinician)).status_code == 409
    records = client.get("/audit", params={"patient_id": world.patient.id}, headers=auth(world.admin)).json()
    assert {("read", "assessment"), ("read", "scan")} <= {(r["action"], r["resource_type"]) for r in records}
    assert {r["actor_id"] for r in records if r["action"] == "read"} >= {world.caregiver.id, world.patient_user.id}


def test_report_without_a_photo_draws_the_outline_from_above(client, auth, session, make_user, make_patient,
                                                            make_wound):
    clinician, other = make_user(Role.clinician), make_user(Role.clinician)
    wound = make_wound(make_patient(care_team=(clinician,)))
    assessment = stored_assessment(session, wound, clinician, captured_at=T0,
                                   flags=[{"code": "sparse", "message": "only <40> wound points"}])
    html = client.get(f"/assessments/{assessment.id}/report.html", headers=auth(clinician))
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert html.text.count("data:image/png;base64,") == 2
    assert "granulation 75%" in html.text and "3.50–4.50" in html.text and "coherency-points v3" in html.text
    assert "only &lt;40&gt; wound points" in html.text and "<40>" not in html.text  # text is escaped
    assert "Example, Ada" in html.text
    pdf = client.get(f"/assessments/{assessment.id}/report.pdf", headers=auth(clinician))
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    assert client.get(f"/assessments/{assessment.id}/report.pdf", headers=auth(other)).status_code == 404


def test_projection_follows_the_scan_format():
    from platform_api.assessments.charts import project

    camera = {**CAMERA, "fx": 50.0, "world_to_camera": [[0, -1, 0, 0.01], [1, 0, 0, 0], [0, 0, 1, 0.5], [0, 0, 0, 1]]}
    pixels = project(camera, np.array([[0.1, 0.02, 0.0], [0.0, 0.0, -0.6]]))
    # camera frame (0.01 - 0.02, 0.1, 0.5): (50 * -0.01 / 0.5 + 20, 60 * 0.1 / 0.5 + 15); the second is behind
    assert pixels[0].tolist() == pytest.approx([19.0, 27.0]) and np.isnan(pixels[1]).all()


def test_the_outline_from_above_keeps_its_shape():
    from platform_api.assessments.charts import skin_plane

    flat = skin_plane(np.asarray(SQUARE))
    sides = np.linalg.norm(np.diff(flat, axis=0), axis=1)
    assert sorted(round(s, 4) for s in sides) == [0.02, 0.02, 0.0224, 0.0224]  # the tilt stretches one side


# ------------------------------------------------------------------------------------------------------ trend


class Row:
    def __init__(self, day: float, area: float | None, i: int = 0):
        self.id, self.captured_at, self.area_cm2 = f"a{i}", T0 + timedelta(days=day), area
        self.volume_cm3 = self.max_depth_mm = None


def rows(*pairs):
    return [Row(day, area, i) for i, (day, area) in enumerate(pairs)]


def test_trend_reduction_from_the_first_measured_area_and_sheehans_week_4():
    result = trend("w", rows((0, None), (3, 8.0), (17, 6.0), (30, 3.0), (45, 2.0)))
    assert [p.area_reduction_pct for p in result.points] == [None, 0.0, 25.0, 62.5, 75.0]
    s = result.summary
    assert s.baseline.assessment_id == "a1" and s.latest.assessment_id == "a4"
    assert s.weeks_since_baseline == pytest.approx(6.0) and s.area_reduction_pct == 75.0
    assert s.area_reduction_4w_pct == 62.5 and s.on_track_4w is True  # day 30 is 27 days after the baseline


def test_week_4_needs_an_assessment_near_day_28():
    assert trend("w", rows((0, 4.0), (14, 3.0), (40, 1.0))).summary.area_reduction_4w_pct is None
    early = trend("w", rows((0, 4.0), (25, 3.0), (40, 1.0))).summary
    assert early.area_reduction_4w_pct == 25.0 and early.on_track_4w is False
    growing = trend("w", rows((0, 4.0), (28, 5.0))).summary
    assert growing.area_reduction_pct == -25.0 and growing.on_track_4w is False
    empty = trend("w", rows((0, None))).summary
    assert empty.baseline is None and empty.area_reduction_pct is None and empty.weeks_since_baseline is None


# ------------------------------------------------------------------------------------------------------ parts


def test_prognosis_prefers_the_newest_ensemble_week():
    assert p_heal_12w({"p_gbm": 0.4, "p_ens_w2": 0.5, "p_ens_w10": 0.7, "weeks_gbm": 9}) == 0.7
    assert p_heal_12w({"p_gbm": 0.4, "p_ens_w2": 0.5, "p_ens_w10": None}) == 0.5
    assert p_heal_12w({"p_gbm": 0.4}) == 0.4 and p_heal_12w({}) is None


def test_the_service_hears_no_patient_identifier(make_patient, make_wound):
    wound = make_wound(make_patient(mrn="MRN-1"))
    scan = Scan(captured_at=T0, scan_metadata={"device": "Structure Sensor", "exudate": "low"})
    sent = serving_metadata(wound, scan)
    assert sent == {"body_site": "left plantar forefoot", "device": "Structure Sensor", "captured_at": T0.isoformat()}
    wound.feature_key = "W0042"
    assert serving_metadata(wound, scan)["wound_id"] == "W0042"


def test_local_storage_is_atomic_and_stays_in_its_folder(tmp_path):
    storage = Storage(str(tmp_path / "objects"))
    storage.put("scans/a/scan.ply", b"one")
    storage.put("scans/a/scan.ply", b"two")
    assert storage.get("scans/a/scan.ply") == b"two"
    assert [p.name for p in (tmp_path / "objects" / "scans" / "a").iterdir()] == ["scan.ply"]  # no temp left
    for key in ("../escape", "/etc/passwd", "scans/../../x"):
        with pytest.raises(ValueError):
            storage.put(key, b"x")
    with pytest.raises(NotFound):
        storage.get("scans/b/scan.ply")


def test_fsspec_storage_by_url():
    storage = Storage("memory://coherency-test/objects")
    storage.put("scans/a/photo.jpg", b"\xff\xd8\xff")
    assert storage.get("scans/a/photo.jpg") == b"\xff\xd8\xff" and storage.exists("scans/a/photo.jpg")
    with pytest.raises(NotFound):
        storage.get("scans/a/none.jpg")


ANSWERS = {
    "scan refused": (httpx.Response(400, json={"error": "unreadable PLY: bad header"}), Invalid, "unreadable PLY"),
    "too large for the service": (httpx.Response(413, json={"error": "larger than 1 MB"}), Invalid, "1 MB"),
    "unknown model": (httpx.Response(404, json={"error": "Model with name x does not exist."}), Upstream, "(404)"),
    "server error": (httpx.Response(500, text="<html>oops</html>"), Upstream, "oops"),
    "no predictions": (httpx.Response(200, json={"outputs": []}), Upstream, "without an assessment"),
}


@pytest.mark.parametrize("case", ANSWERS, ids=list(ANSWERS))
def test_service_answers_map_to_one_line_errors(monkeypatch, case):
    answer, error, message = ANSWERS[case]
    monkeypatch.setattr(serving_client.httpx, "post", lambda *a, **k: answer)
    with pytest.raises(error) as raised:
        serving_client.assess(Settings(), scan=PLY, scan_format="ply")
    assert message in raised.value.message and "\n" not in raised.value.message


def test_a_service_that_does_not_answer_in_time_is_upstream(monkeypatch):
    def slow(*args, **kwargs):
        raise httpx.ReadTimeout("timed out")

    monkeypatch.setattr(serving_client.httpx, "post", slow)
    with pytest.raises(Upstream, match="within 2 s"):
        serving_client.assess(Settings(serving_timeout_s=2), scan=PLY, scan_format="ply")


def test_s3_storage_through_an_s3_compatible_server(monkeypatch):
    """storage_url s3://bucket/prefix against a real S3 protocol server on loopback (moto's, as MinIO would be)."""
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        for name, value in {"AWS_ENDPOINT_URL_S3": endpoint, "AWS_ACCESS_KEY_ID": "local",
                            "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(name, value)
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="coherency-scans")
        storage = Storage("s3://coherency-scans/objects")
        storage.put("scans/a/scan.ply", PLY)
        # the object is where the key says, read back through the S3 API itself
        body = s3.get_object(Bucket="coherency-scans", Key="objects/scans/a/scan.ply")["Body"].read()
        assert body == PLY and storage.get("scans/a/scan.ply") == PLY and storage.exists("scans/a/scan.ply")
        with pytest.raises(NotFound):
            storage.get("scans/b/scan.ply")
        with pytest.raises(ValueError):
            storage.put("../escape", b"x")
    finally:
        server.stop()

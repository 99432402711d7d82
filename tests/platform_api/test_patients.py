"""Patients, consents, wounds and care teams: who may see and change what, and the audit trail it leaves."""

from __future__ import annotations

from platform_api.auth.models import Role

NEW_PATIENT = {"given_name": "Cleo", "family_name": "Sample", "birth_date": "1961-02-03", "sex": "female"}


def test_clinician_creates_a_patient_and_joins_the_care_team(client, auth, make_user):
    clinician = make_user(Role.clinician)
    created = client.post("/patients", json=NEW_PATIENT, headers=auth(clinician))
    assert created.status_code == 201
    patient_id = created.json()["id"]
    team = client.get(f"/patients/{patient_id}/care-team", headers=auth(clinician)).json()
    assert [member["user_id"] for member in team] == [clinician.id]
    assert client.get(f"/patients/{patient_id}", headers=auth(make_user(Role.clinician))).status_code == 404


def test_lists_show_only_what_the_caller_may_see(client, auth, world):
    def ids(user):
        return {p["id"] for p in client.get("/patients", headers=auth(user)).json()}

    assert ids(world.clinician) == {world.patient.id}
    assert ids(world.patient_user) == {world.patient.id}
    assert ids(world.admin) >= {world.patient.id, world.other.id}


def test_patient_reads_own_record_but_cannot_change_it(client, auth, world):
    headers = auth(world.patient_user)
    assert client.get(f"/patients/{world.patient.id}", headers=headers).status_code == 200
    assert client.get(f"/patients/{world.other.id}", headers=headers).status_code == 404
    assert client.patch(f"/patients/{world.patient.id}", json={"given_name": "X"}, headers=headers).status_code == 403
    wound = {"etiology": "venous_leg_ulcer", "body_site": "left medial malleolus", "onset_date": "2026-10-01"}
    assert client.post(f"/patients/{world.patient.id}/wounds", json=wound, headers=headers).status_code == 403


def test_wounds_and_consents(client, auth, world):
    headers = auth(world.clinician)
    body = {"etiology": "pressure_injury", "body_site": "sacrum", "onset_date": "2026-11-01"}
    wound = client.post(f"/patients/{world.patient.id}/wounds", json=body, headers=headers)
    assert wound.status_code == 201 and wound.json()["etiology"] == "pressure_injury"
    assert client.get(f"/wounds/{wound.json()['id']}", headers=auth(world.other_clinician)).status_code == 404
    for granted in (True, False):
        client.post(f"/patients/{world.patient.id}/consents", json={"kind": "photography", "granted": granted},
                    headers=headers)
    consents = client.get(f"/patients/{world.patient.id}/consents", headers=headers).json()
    current = [c for c in consents if c["revoked_at"] is None]
    assert len(consents) == 2 and len(current) == 1 and current[0]["granted"] is False


def test_care_team_changes(client, auth, world, make_user):
    nurse = make_user(Role.caregiver)
    path = f"/patients/{world.patient.id}/care-team"
    assert client.post(path, json={"user_id": nurse.id}, headers=auth(world.caregiver)).status_code == 403
    assert client.post(path, json={"user_id": nurse.id}, headers=auth(world.clinician)).status_code == 201
    assert client.post(path, json={"user_id": nurse.id}, headers=auth(world.clinician)).status_code == 409
    assert client.post(path, json={"user_id": world.patient_user.id}, headers=auth(world.admin)).status_code == 422
    assert client.get(f"/patients/{world.patient.id}", headers=auth(nurse)).status_code == 200


def test_every_read_and_write_is_audited(client, auth, world):
    client.get(f"/patients/{world.patient.id}", headers=auth(world.caregiver))
    client.patch(f"/patients/{world.patient.id}", json={"family_name": "Renamed"}, headers=auth(world.clinician))
    records = client.get("/audit", params={"patient_id": world.patient.id}, headers=auth(world.admin)).json()
    seen = {(r["actor_id"], r["action"], r["resource_type"]) for r in records}
    assert (world.caregiver.id, "read", "patient") in seen
    assert (world.clinician.id, "update", "patient") in seen
    assert all(r["client"] and r["path"].startswith("/patients/") for r in records)
    assert client.get("/audit", headers=auth(world.clinician)).status_code == 403


def test_bad_input_is_one_json_shape(client, auth, world):
    response = client.post("/patients", json={"given_name": ""}, headers=auth(world.clinician))
    assert response.status_code == 422 and set(response.json()) == {"error", "code"}
    assert client.get("/no/such/route").json() == {"error": "Not Found", "code": "not_found"}

"""No name, INS, birth date or free text of a person ever reaches a log line."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from gateway import logs
from gateway.api.app import create_app
from gateway.settings import Settings


def _personal_values(data: dict) -> set[str]:
    person = data["person"]
    values = {person["birth_family_name"], *person["birth_given_names"], person["birth_date"],
              person["ins"]["value"], person["birth_date"].replace("-", "")}
    for rep in person.get("representatives", []):
        values |= {rep["family_name"], *rep["given_names"]}
    values |= {n["description"] for n in data.get("needs", [])}
    values |= {o["description"] for o in data.get("objectives", [])}
    return {v for v in values if len(v) >= 4}


def test_plan_traffic_leaves_no_personal_data_in_logs(tmp_path, store, sample_plan):
    log_file = tmp_path / "relais.log"
    logs.configure("DEBUG", log_file)
    try:
        store.create_tenant("plateforme-a", "Plateforme A")
        _, token = store.create_api_key("plateforme-a", "test")
        data = sample_plan.model_dump(mode="json")
        data["notes"] = "Texte libre confidentiel sur la situation familiale"
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        pid = data["person"]["local_id"]
        with TestClient(create_app(store, Settings()), raise_server_exceptions=False) as client:
            assert client.put(f"/persons/{pid}/plan", content=json.dumps(data), headers=headers).status_code == 201
            client.get(f"/persons/{pid}/plan", headers=headers)
            bad = dict(data, needs=[dict(data["needs"][0], code="9.9")])
            assert client.put(f"/persons/{pid}/plan", content=json.dumps(bad), headers=headers).status_code == 422
            # A careless call naming a person's field is redacted by the last processor.
            logs.get_logger("relais.test").info("probe", name=data["person"]["birth_family_name"])
    finally:
        logs.configure("WARNING")
    text = log_file.read_text("utf-8")
    lines = [json.loads(line) for line in text.splitlines()]
    assert any(line.get("event") == "request" for line in lines), "the API logged nothing at all"
    assert any(line.get("event") == "plan_stored" for line in lines)
    leaked = [v for v in _personal_values(data) | {data["notes"], token} if v in text]
    assert leaked == [], f"personal data or secrets in logs: {leaked}"
    assert token.split("_", 2)[2] not in text  # the secret part alone (it may hold "_" itself)


def test_outbound_request_urls_stay_out_of_logs(tmp_path):
    """httpx logs each request's full URL at INFO (a path may carry a resource id or a searched
    identifier); Relais keeps that logger at WARNING, whatever level it runs at."""
    import httpx

    log_file = tmp_path / "relais.log"
    logs.configure("DEBUG", log_file)
    try:
        transport = httpx.MockTransport(lambda request: httpx.Response(200, json={}))
        with httpx.Client(transport=transport) as client:
            assert client.get("https://peer.test/Task?identifier=urn:oid:1.2.250.1.213.1.4.8|2800101131234").status_code == 200
    finally:
        logs.configure("WARNING")
    text = log_file.read_text("utf-8") if log_file.exists() else ""
    assert "2800101131234" not in text and "peer.test" not in text

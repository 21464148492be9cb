"""Simulated Defender API: the documented example, auth (401/403), 404s,
alert ids as one path segment, file data shapes, large alerts, keep-alive."""

from __future__ import annotations

import re
import uuid
from urllib.parse import quote

import jwt
import pytest

from mde_simulator import (
    DA_ALERT_ID,
    DUPLICATES_ALERT_ID,
    EMPTY_ALERT_ID,
    EXAMPLE_ALERT_ID,
    EXAMPLE_FILE,
    INVALID_CERT_ALERT_ID,
    LARGE_ALERT_5K,
    LARGE_ALERT_10K,
    MALWARE_ALERT_ID,
    NEGATIVE_ALERT_ID,
    PUA_ALERT_ID,
    SPARSE_ALERT_ID,
    UNICODE_ALERT_ID,
    Simulator,
    SimulatorOptions,
)
from tests.simulator.sim_helpers import Api, PinnedSession, acquire, documented_response

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
HEX = re.compile(r"^[0-9a-f]+$")


def files_url(alert_id: str) -> str:
    return f"/api/alerts/{quote(alert_id, safe='')}/files"


def assert_ms_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"code", "message", "target"}
    assert UUID_RE.match(error["target"])
    assert error["message"]
    if code:
        assert error["code"] == code
    return error


def test_documented_example_is_served_equal_in_meaning(api: Api) -> None:
    documented = documented_response()
    response = api.get(files_url(EXAMPLE_ALERT_ID))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["@odata.context"] == f"{api.sim.api_base_url}/api/$metadata#Files"
    assert body["value"][0] == documented["value"][0] == EXAMPLE_FILE
    assert body["value"][0]["fileProductName"] == "Microsoft\ufffd Windows\ufffd Operating System"
    assert "\ufffd".encode() in response.content  # sent as UTF-8, not escaped to ASCII
    assert len(body["value"]) > 1


def test_example_id_shapes_exist(api: Api) -> None:
    for alert_id in (EXAMPLE_ALERT_ID, DA_ALERT_ID, NEGATIVE_ALERT_ID):
        response = api.get(f"/api/alerts/{quote(alert_id, safe='')}")
        assert response.status_code == 200
        assert response.json()["id"] == alert_id
    assert NEGATIVE_ALERT_ID.split("_")[1].startswith("-")


def test_single_alert_has_the_documented_fields(api: Api) -> None:
    alert = api.get(f"/api/alerts/{DA_ALERT_ID}").json()
    for name in ("id", "incidentId", "investigationId", "assignedTo", "severity", "status", "classification",
                 "determination", "investigationState", "detectionSource", "category", "threatFamilyName",
                 "title", "description", "alertCreationTime", "firstEventTime", "lastEventTime",
                 "lastUpdateTime", "resolvedTime", "machineId", "computerDnsName", "mitreTechniques", "evidence"):
        assert name in alert
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$", alert["alertCreationTime"])
    assert alert["evidence"] == []
    expanded = api.get(f"/api/alerts/{DA_ALERT_ID}", params={"$expand": "evidence"}).json()
    assert expanded["evidence"] and all(e["entityType"] == "File" for e in expanded["evidence"])
    assert all("md5" not in e and {"sha1", "sha256", "fileName", "filePath"} <= set(e)
               for e in expanded["evidence"])


def test_missing_alert_is_404_in_microsofts_shape(api: Api) -> None:
    first = assert_ms_error(api.get(files_url("da000000000000000000_1")), 404)
    second = assert_ms_error(api.get("/api/alerts/da000000000000000000_1"), 404)
    assert first["target"] != second["target"]  # a fresh correlation id each time


def test_unknown_path_is_404(api: Api) -> None:
    assert_ms_error(api.get("/api/machines"), 404, "NotFound")
    assert_ms_error(api.get(f"/api/alerts/{EXAMPLE_ALERT_ID}/files/extra"), 404)


@pytest.mark.parametrize(
    "raw_id",
    [
        quote(f"{EXAMPLE_ALERT_ID}/files", safe=""),  # %2F inside the segment
        f"x%2F..%2F{EXAMPLE_ALERT_ID}",
        quote("../alerts", safe=""),
        "%252F" + EXAMPLE_ALERT_ID,  # decoded once only
    ],
)
def test_percent_encoded_ids_do_not_escape_their_segment(api: Api, raw_id: str) -> None:
    assert_ms_error(api.get(f"/api/alerts/{raw_id}/files"), 404)
    assert_ms_error(api.get(f"/api/alerts/{raw_id}"), 404)


def test_percent_encoded_id_is_decoded_once(api: Api) -> None:
    odd = "da637000000000000000_-1 odd/ü"
    api.sim.add_alert(id=odd, files=[EXAMPLE_FILE])
    response = api.get(files_url(odd))
    assert response.status_code == 200 and response.json()["value"] == [EXAMPLE_FILE]
    assert any(r.path == files_url(odd) for r in api.sim.requests)  # logged raw, still encoded


def test_no_token_is_401(sim: Simulator) -> None:
    response = PinnedSession(sim.ca_bundle).get(f"{sim.api_base_url}{files_url(EXAMPLE_ALERT_ID)}")
    assert_ms_error(response, 401, "Unauthorized")
    record = sim.requests[-1]
    assert record.status == 401 and record.authorization_present is False and record.client_id is None


def test_tampered_token_is_401(api: Api, token: str) -> None:
    header, payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["roles"] = ["Machine.Isolate"]
    forged_payload = jwt.utils.base64url_encode(jwt.api_jwt.json.dumps(claims).encode()).decode()
    for bad in (f"{header}.{forged_payload}.{signature}", token[:-4] + "AAAA", "not-a-jwt"):
        assert_ms_error(api.get(files_url(EXAMPLE_ALERT_ID), token=bad), 401, "Unauthorized")


def test_expired_token_is_401(api: Api) -> None:
    expired = api.sim.issue_token(lifetime=-60)
    error = assert_ms_error(api.get(files_url(EXAMPLE_ALERT_ID), token=expired), 401)
    assert "expired" in error["message"]


def test_basic_scheme_is_401(api: Api) -> None:
    response = api.session.get(f"{api.sim.api_base_url}/api/alerts", headers={"Authorization": "Basic dTpw"})
    assert_ms_error(response, 401)


def test_app_without_file_role_gets_403_on_files_only(sim: Simulator) -> None:
    client_id = str(uuid.uuid4())
    sim.add_app(client_id, secret="alerts-only-secret", roles=["Alert.Read.All"])
    result = acquire(sim, "alerts-only-secret", client_id=client_id)
    limited = Api(sim, result["access_token"])
    error = assert_ms_error(limited.get(files_url(EXAMPLE_ALERT_ID)), 403, "Forbidden")
    assert "File.Read.All" in error["message"]
    assert limited.get(f"/api/alerts/{EXAMPLE_ALERT_ID}").status_code == 200
    assert sim.requests[-2].client_id == client_id


def test_app_without_alert_role_gets_403_on_alerts(sim: Simulator) -> None:
    client_id = str(uuid.uuid4())
    sim.add_app(client_id, secret="files-only-secret", roles=["File.Read.All"])
    limited = Api(sim, acquire(sim, "files-only-secret", client_id=client_id)["access_token"])
    assert_ms_error(limited.get("/api/alerts"), 403, "Forbidden")
    assert_ms_error(limited.get(f"/api/alerts/{EXAMPLE_ALERT_ID}"), 403, "Forbidden")
    assert limited.get(files_url(EXAMPLE_ALERT_ID)).status_code == 200


def test_large_alerts_return_all_their_files(api: Api) -> None:
    api.sim.warm()
    for alert_id, count in ((LARGE_ALERT_10K, 10_000), (LARGE_ALERT_5K, 5_000)):
        files = api.get(files_url(alert_id)).json()["value"]
        assert len(files) == count
        assert "@odata.nextLink" not in api.get(files_url(alert_id)).json()


def test_special_alerts(api: Api) -> None:
    assert api.get(files_url(EMPTY_ALERT_ID)).json()["value"] == []
    dup = api.get(files_url(DUPLICATES_ALERT_ID)).json()["value"]
    assert len({f["sha256"] for f in dup}) < len(dup)
    uni = api.get(files_url(UNICODE_ALERT_ID)).json()["value"]
    text = " ".join(str(f.get("filePublisher")) + str(f.get("fileProductName")) for f in uni)
    assert any(ord(ch) > 127 for ch in text)
    pua = api.get(files_url(PUA_ALERT_ID)).json()["value"]
    assert all(f["determinationType"] == "Pua" and f["determinationValue"].startswith("PUA:") for f in pua)
    malware = api.get(files_url(MALWARE_ALERT_ID)).json()["value"]
    assert all(f["determinationType"] == "Malware" and f["determinationValue"] for f in malware)
    invalid = api.get(files_url(INVALID_CERT_ALERT_ID)).json()["value"]
    assert all(f["isValidCertificate"] is False and f["signer"] for f in invalid)
    sparse = api.get(files_url(SPARSE_ALERT_ID)).json()["value"]
    assert any(None in f.values() for f in sparse)


def test_file_data_shapes_across_all_small_alerts(api: Api) -> None:
    seen_missing_md5 = seen_unsigned = seen_rare = seen_common = seen_valid_signed = False
    for alert in api.sim.alerts:
        if alert["id"] in (LARGE_ALERT_5K, LARGE_ALERT_10K):
            continue
        for f in api.get(files_url(alert["id"])).json()["value"]:
            for name, length in (("md5", 32), ("sha1", 40), ("sha256", 64)):
                value = f.get(name)
                assert value is None or (len(value) == length and HEX.match(value)), (name, value)
            seen_missing_md5 |= "md5" not in f
            seen_unsigned |= f.get("signer") is None and f.get("signerHash") is None and "sha1" in f
            prevalence = f.get("globalPrevalence")
            seen_rare |= prevalence is not None and prevalence <= 5
            seen_common |= prevalence is not None and prevalence >= 1_000_000
            seen_valid_signed |= f.get("isValidCertificate") is True and f.get("signer") in (
                "Microsoft Corporation", "Google LLC", "Adobe Inc.", "Mozilla Corporation")
    assert seen_missing_md5 and seen_unsigned and seen_rare and seen_common and seen_valid_signed


def test_data_is_deterministic_per_seed(sim: Simulator, sim_state) -> None:
    twin = Simulator(sim_state, SimulatorOptions(seed=7))
    other = Simulator(sim_state, SimulatorOptions(seed=8))
    ids = [a["id"] for a in sim.alerts if not a["id"].startswith("da637000")]
    assert [a["id"] for a in twin.alerts][: len(ids)] == ids[: len(twin.alerts)]

    def timeless(files: list[dict]) -> list[dict]:
        # Observation times are relative to the moment the data set is built.
        return [{k: v for k, v in f.items() if not k.startswith("global") or k == "globalPrevalence"}
                for f in files]

    assert timeless(twin.files_of(DA_ALERT_ID)) == timeless(sim.files_of(DA_ALERT_ID))
    assert timeless(other.files_of(DA_ALERT_ID)) != timeless(sim.files_of(DA_ALERT_ID))
    assert twin.files_of(EXAMPLE_ALERT_ID)[0] == EXAMPLE_FILE
    assert (twin.tenant_id, twin.client_id, twin.client_secret) == (sim.tenant_id, sim.client_id, sim.client_secret)


def test_keep_alive_reuses_one_connection(sim: Simulator, token: str) -> None:
    client = Api(sim, token)
    for _ in range(20):
        assert client.get(files_url(EXAMPLE_ALERT_ID)).status_code == 200
    pools = client.session.get_adapter(sim.api_base_url).poolmanager.pools
    assert sum(pools[key].num_connections for key in pools.keys()) == 1
    assert sum(pools[key].num_requests for key in pools.keys()) == 20


def test_request_log_holds_no_credentials(api: Api, token: str) -> None:
    api.get(files_url(EXAMPLE_ALERT_ID))
    dump = repr(api.sim.requests)
    assert token not in dump and token.split(".")[2] not in dump
    assert api.sim.client_secret not in dump
    record = api.sim.requests[-1]
    assert record.method == "GET" and record.status == 200 and record.authorization_present
    assert record.client_id == api.sim.client_id and record.duration >= 0


def test_files_paging_follows_next_links(make_sim) -> None:
    paged = make_sim(files_page_size=3)
    client = Api(paged, acquire(paged, paged.client_secret)["access_token"])
    everything = paged.files_of(DA_ALERT_ID)
    first = client.get(files_url(DA_ALERT_ID)).json()
    assert len(first["value"]) == 3 and "$skip=3" in first["@odata.nextLink"]
    collected, body = list(first["value"]), first
    while "@odata.nextLink" in body:
        body = client.get(body["@odata.nextLink"]).json()
        collected += body["value"]
    assert collected == everything
    limited = client.get(files_url(DA_ALERT_ID), params={"$top": "4"}).json()
    rest = client.get(limited["@odata.nextLink"]).json()
    assert limited["value"] + rest["value"] == everything[:4] and "@odata.nextLink" not in rest


def test_links_use_the_host_the_client_used(api: Api) -> None:
    base = api.sim.base_url.replace("127.0.0.1", "localhost")
    body = api.get(f"{base}/api/alerts", params={"$top": "2"}).json()
    assert body["@odata.context"].startswith(f"{base}/api/")
    assert body["@odata.nextLink"].startswith(f"{base}/api/alerts?")


def test_concurrent_clients(sim: Simulator, token: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def worker(n: int) -> list[int]:
        client = Api(sim, token)
        alert_id = (EXAMPLE_ALERT_ID, DA_ALERT_ID, NEGATIVE_ALERT_ID)[n % 3]
        return [client.get(files_url(alert_id)).status_code for _ in range(15)]

    with ThreadPoolExecutor(8) as pool:
        statuses = [s for result in pool.map(worker, range(8)) for s in result]
    assert statuses == [200] * 120

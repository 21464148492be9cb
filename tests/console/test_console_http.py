"""The console's HTTP API without a browser: the security model (token,
cookie, CSRF, Origin/Host, CSP, no secret in any response) and the API's
agreement with the CLI (validation sentences, the playbook validator, the
saved file format)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any
from urllib.parse import quote

import pytest
import requests

from connector.console.server import CSP
from tests.console.conftest import HOSTILE_ALERT_ID, World, shipped

TIMEOUT = 60


class Client:
    """A logged-in API client that sends what the page sends."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.base = world.server.base_url
        first = requests.get(world.server.url, allow_redirects=False, timeout=TIMEOUT)
        assert first.status_code == 303
        self.cookie = first.headers["Set-Cookie"].split(";")[0]
        self.csrf = self.get("session").json()["csrf"]
        self.responses: list[requests.Response] = [first]

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        host = self.base.split("//", 1)[1]
        out = {"Cookie": self.cookie, "X-CSRF-Token": self.csrf if hasattr(self, "csrf") else "",
               "Origin": f"http://{host}", "Content-Type": "application/json"}
        out.update(extra or {})
        return out

    def get(self, path: str) -> requests.Response:
        r = requests.get(f"{self.base}/api/{path}", headers=self.headers(), timeout=TIMEOUT)
        if hasattr(self, "responses"):
            self.responses.append(r)
        return r

    def send(self, method: str, path: str, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
        r = requests.request(method, f"{self.base}/api/{path}", data=json.dumps(body),
                             headers=self.headers(headers), timeout=TIMEOUT)
        self.responses.append(r)
        return r


@pytest.fixture(scope="module")
def client(world: World) -> Client:
    return Client(world)


# -- the security model ---------------------------------------------------------


def test_console_listens_on_loopback_by_default(world: World) -> None:
    assert world.server.httpd.server_address[0] == "127.0.0.1"
    assert world.server.url.startswith("http://127.0.0.1:")
    assert "?token=" in world.server.url and len(world.server.token) >= 40


def test_token_url_sets_an_httponly_samesite_strict_cookie_and_redirects_without_it(world: World) -> None:
    r = requests.get(world.server.url, allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 303
    assert r.headers["Location"] == "/"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert world.server.token in cookie


def test_wrong_token_in_the_url_is_refused(world: World) -> None:
    r = requests.get(f"{world.server.base_url}/?token=not-the-token", allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 403
    assert "Set-Cookie" not in r.headers


@pytest.mark.parametrize("path", ["/", "/api/containers", "/api/session", "/static/app.js"])
def test_reading_without_the_cookie_is_refused(world: World, path: str) -> None:
    r = requests.get(world.server.base_url + path, timeout=TIMEOUT)
    assert r.status_code == 403
    assert world.server.csrf not in r.text


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "actions/get_alert_related_files/run"),
    ("PUT", "playbooks/local/x.json"),
    ("POST", "playbooks/run"),
])
def test_state_changing_request_without_the_token_is_refused(world: World, method: str, path: str) -> None:
    host = world.server.base_url.split("//", 1)[1]
    r = requests.request(method, f"{world.server.base_url}/api/{path}", timeout=TIMEOUT,
                         headers={"Content-Type": "application/json", "Origin": f"http://{host}",
                                  "X-CSRF-Token": world.server.csrf},
                         data=json.dumps({"params": {"alert_id": world.example_alert}}))
    assert r.status_code == 403
    assert not list(world.playbook_dir.glob("x.json"))


def test_state_changing_request_without_the_csrf_header_is_refused(client: Client) -> None:
    before = len(client.world.store.action_runs(1000))
    r = client.send("POST", "actions/get_alert_related_files/run", {"params": {"alert_id": client.world.example_alert}},
                    headers={"X-CSRF-Token": "forged"})
    assert r.status_code == 403
    assert "CSRF" in r.json()["error"]
    assert len(client.world.store.action_runs(1000)) == before


def test_state_changing_request_from_another_origin_is_refused(client: Client) -> None:
    r = client.send("POST", "playbooks/validate", {"document": {}}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    assert "origin" in r.json()["error"]


def test_request_naming_another_host_is_refused_against_dns_rebinding(client: Client) -> None:
    port = client.world.server.port
    r = requests.get(f"{client.base}/api/containers", timeout=TIMEOUT,
                     headers={"Cookie": client.cookie, "Host": f"attacker.example:{port}"})
    assert r.status_code == 403
    assert "Host" in r.json()["error"]


def test_every_response_carries_the_strict_content_security_policy(client: Client) -> None:
    for path in ["session", "containers", "manifest", "playbooks", "nope"]:
        r = client.get(path)
        assert r.headers["Content-Security-Policy"] == CSP
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    page = requests.get(client.base + "/", headers={"Cookie": client.cookie}, timeout=TIMEOUT)
    assert page.status_code == 200
    assert page.headers["Content-Security-Policy"] == CSP
    assert "<script>" not in page.text and "onload=" not in page.text  # no inline script in the page


def test_static_files_are_only_those_shipped(client: Client) -> None:
    r = requests.get(client.base + "/static/..%2F..%2Fconfig.py", headers={"Cookie": client.cookie}, timeout=TIMEOUT)
    assert r.status_code == 404


@pytest.mark.parametrize(("body", "ctype", "status"), [
    (b"not json", "application/json", 400),
    (b'{"document": NaN}', "application/json", 400),
    (b"[" * 100_000 + b"]" * 100_000, "application/json", 400),
    (b'{"document": {}}', "text/plain", 415),
    (b"x" * (3 * 1024 * 1024), "application/json", 413),
])
def test_malformed_bodies_get_one_clear_error(client: Client, body: bytes, ctype: str, status: int) -> None:
    r = requests.post(f"{client.base}/api/playbooks/validate", data=body, timeout=TIMEOUT,
                      headers=client.headers({"Content-Type": ctype}))
    assert r.status_code == status
    assert r.json()["error"].endswith(".")


def test_playbook_keys_cannot_leave_the_playbook_directories(client: Client) -> None:
    for key in ["local/..%2Fconnector.json", "local/%2E%2E", "shipped/..%2F..%2Fmanifest.json", "other/x.json"]:
        assert client.get(f"playbooks/{key}").status_code == 404
    r = client.send("PUT", "playbooks/local/..%2Fevil.json", {"document": shipped("investigate_alert_files.json")})
    assert r.status_code == 409
    assert not (client.world.playbook_dir.parent / "evil.json").exists()


def test_no_response_holds_the_client_secret(client: Client, world: World) -> None:
    assert world.secret and world.secret != "None"
    client.get(f"containers/{quote(world.example_alert, safe='')}")
    client.get(f"containers/{quote(HOSTILE_ALERT_ID, safe='')}")
    client.get("playbooks/shipped/triage_new_alert.json")
    client.send("POST", "actions/get_alert_related_files/validate", {"params": {"alert_id": ".."}})
    job = client.send("POST", "actions/test_connectivity/run", {"params": {}}).json()["job"]
    for _ in range(600):  # a safety net, not a timing assertion
        if job["status"] != "running":
            break
        time.sleep(0.1)
        job = client.get(f"jobs/{job['id']}").json()["job"]
    assert job["result"]["summary"]["token_acquired"] is True  # it signed in with the secret...
    bodies = [r.text for r in client.responses]
    assert len(bodies) > 5
    for text in bodies:
        assert world.secret not in text  # ...which no answer holds


# -- agreement with the CLI -------------------------------------------------------


def test_action_form_errors_are_the_sentences_the_cli_prints(client: Client, tmp_path: Any) -> None:
    r = client.send("POST", "actions/get_alert_related_files/validate", {"params": {"alert_id": ".."}})
    assert r.status_code == 422
    cli = subprocess.run([sys.executable, "-m", "connector", "run", "get_alert_related_files", "--param",
                          "alert_id=..", "--config", str(tmp_path / "none.json")],
                         capture_output=True, text=True, timeout=120, check=False)
    assert cli.returncode == 2
    assert f"mde-connector: {r.json()['error']}" == cli.stderr.strip()


def test_valid_action_form_returns_the_validated_parameters(client: Client) -> None:
    r = client.send("POST", "actions/get_alert_related_files/validate", {"params": {"alert_id": "  a_1  "}})
    assert r.status_code == 200
    assert r.json()["params"] == {"alert_id": "a_1"}


def test_unknown_action_is_not_found_with_the_known_ones(client: Client) -> None:
    r = client.send("POST", "actions/delete_everything/run", {"params": {}})
    assert r.status_code == 404
    assert "get_alert_related_files" in r.json()["error"]


def test_manual_action_runs_and_is_recorded_like_a_cli_run(client: Client, world: World) -> None:
    before = len(world.store.action_runs(1000))
    r = client.send("POST", "actions/get_alert_related_files/run", {"params": {"alert_id": world.example_alert}})
    assert r.status_code == 202
    job = r.json()["job"]
    for _ in range(600):
        job = client.get(f"jobs/{job['id']}").json()["job"]
        if job["status"] != "running":
            break
        time.sleep(0.1)
    assert job["status"] == "success", job["result"]
    assert job["result"]["summary"]["distinct_files"] >= 1
    runs = world.store.action_runs(1000)
    assert len(runs) == before + 1
    assert runs[0]["action"] == "get_alert_related_files" and runs[0]["container"] == world.example_alert


@pytest.mark.parametrize("name", ["triage_new_alert.json", "investigate_alert_files.json"])
def test_shipped_playbook_round_trips_unchanged_through_the_editor_api(client: Client, world: World,
                                                                      name: str) -> None:
    loaded = client.get(f"playbooks/shipped/{name}").json()
    assert loaded["problems"] == []
    saved = client.send("PUT", f"playbooks/local/{name}", {"document": loaded["document"]})
    assert saved.status_code == 200, saved.text
    text = (world.playbook_dir / name).read_text(encoding="utf-8")
    on_disk = json.loads(text)
    assert on_disk == shipped(name)
    assert json.dumps(on_disk) == json.dumps(shipped(name))  # key order too
    again = client.get(f"playbooks/local/{name}").json()["document"]
    client.send("PUT", f"playbooks/local/{name}", {"document": again})
    assert (world.playbook_dir / name).read_text(encoding="utf-8") == text  # byte for byte


def test_saved_playbook_is_what_the_cli_validates_and_runs(client: Client, world: World) -> None:
    from connector.runtime.playbooks import load_playbook, validate_playbook_file

    client.send("PUT", "playbooks/local/investigate_alert_files.json",
                {"document": shipped("investigate_alert_files.json")})
    path = world.playbook_dir / "investigate_alert_files.json"
    assert validate_playbook_file(path) == []
    assert load_playbook(path).name == "investigate_alert_files"


def _draft_with_binding(ref: str) -> dict[str, Any]:
    doc = shipped("investigate_alert_files.json")
    doc["name"] = "bind_check"
    doc["steps"].append({"id": "again", "type": "action", "action": "get_alert_related_files",
                         "depends_on": ["files"], "parameters": {"alert_id": ref}})
    return doc


def test_data_paths_offer_only_what_fits_the_parameters_contains(client: Client) -> None:
    r = client.send("POST", "playbooks/paths", {"document": _draft_with_binding(""), "step": "again",
                                                "parameter": "alert_id"})
    assert r.status_code == 200
    paths = {p["ref"]: p for p in r.json()["paths"]}
    assert paths["{{container.alert_id}}"]["ok"]
    assert paths["{{files.parameter.alert_id}}"]["ok"]
    sha1 = paths["{{files.data.*.sha1}}"]
    assert not sha1["ok"]
    assert "defender alert id" in sha1["reason"] and "sha1" in sha1["reason"]
    assert not paths["{{files.summary.total_files}}"]["ok"]
    assert not paths["{{files.artifacts.*.container}}"]["ok"]  # the right contains, but a list
    assert not any(p["root"] == "again" for p in r.json()["paths"])  # never its own outputs


def test_note_text_accepts_any_upstream_path(client: Client) -> None:
    r = client.send("POST", "playbooks/paths", {"document": shipped("investigate_alert_files.json"),
                                                "step": "note_counts", "parameter": "text"})
    paths = r.json()["paths"]
    assert paths and all(p["ok"] for p in paths)
    assert {p["root"] for p in paths} == {"container", "files"}


def test_save_revalidates_and_refuses_an_incompatible_binding(client: Client, world: World) -> None:
    draft = _draft_with_binding("{{files.data.*.sha1}}")
    r = client.send("PUT", "playbooks/local/bind_check.json", {"document": draft})
    assert r.status_code == 422
    problems = r.json()["problems"]
    assert problems[0]["step"] == "again"
    from connector.runtime.playbooks import validate_playbook

    expected = [str(p) for p in validate_playbook(_draft_with_binding("{{files.data.*.sha1}}"),
                                                  source="bind_check.json")]
    assert [p["message"] for p in problems] == expected
    assert not (world.playbook_dir / "bind_check.json").exists()


def test_validate_marks_the_step_at_fault(client: Client) -> None:
    doc = shipped("triage_new_alert.json")
    doc["steps"][1]["depends_on"] = ["nowhere"]
    problems = client.send("POST", "playbooks/validate", {"document": doc}).json()["problems"]
    assert problems and problems[0]["step"] == "decide"
    assert "nowhere" in problems[0]["message"]


def test_console_command_prints_a_loopback_url_with_a_token(tmp_path: Any) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "connector", "console", "--state-dir", str(tmp_path / "state")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = ""
        for _ in range(20):
            line = proc.stdout.readline()
            if line.startswith("Open "):
                url = line.split()[1]
                break
        assert url.startswith("http://127.0.0.1:") and "/?token=" in url
        r = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
        assert r.status_code == 303
        cookie = r.headers["Set-Cookie"].split(";")[0]
        session = requests.get(url.split("/?")[0] + "/api/session", headers={"Cookie": cookie}, timeout=TIMEOUT).json()
        assert session["actions_enabled"] is False
        assert "--config" in session["config_problem"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_console_command_with_a_bad_port_says_so_in_one_sentence(tmp_path: Any) -> None:
    cli = subprocess.run([sys.executable, "-m", "connector", "console", "--state-dir", str(tmp_path),
                          "--port", "70000"], capture_output=True, text=True, timeout=120, check=False)
    assert cli.returncode == 2
    assert cli.stderr.startswith("mde-connector: --port 70000 is not a port number")
    assert "Traceback" not in cli.stderr


def test_every_static_file_is_package_data_so_pip_install_serves_it() -> None:
    import configparser
    import fnmatch
    from pathlib import Path

    from connector.console.server import STATIC_DIR

    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).resolve().parents[2] / "setup.cfg")
    globs = [g.strip() for g in cfg["options.package_data"]["connector"].split(",")]
    files = [p.relative_to(STATIC_DIR.parent.parent).as_posix() for p in STATIC_DIR.rglob("*") if p.is_file()]
    assert {"console/static/index.html", "console/static/app.js", "console/static/editor.js"} <= set(files)
    for name in files:
        assert any(fnmatch.fnmatch(name, g) and "/" not in name[len(g.rsplit("/", 1)[0]) + 1:] for g in globs), name


def test_polling_with_the_current_version_is_answered_unchanged_until_the_store_changes(client: Client,
                                                                                        world: World) -> None:
    first = client.get("containers").json()
    assert first["containers"]
    again = client.get(f"containers?since={first['version']}").json()
    assert again == {"version": first["version"], "unchanged": True}
    with world.store.transaction() as conn:  # a running watch or playbook tags a container
        world.store.add_tags(conn, world.example_alert, ["seen-by-poll-test"])
    changed = client.get(f"containers?since={first['version']}").json()
    assert changed["version"] != first["version"]
    tagged = next(c for c in changed["containers"] if c["alert_id"] == world.example_alert)
    assert "seen-by-poll-test" in tagged["tags"]


def test_alert_page_polling_sees_a_new_note(client: Client, world: World) -> None:
    path = f"containers/{quote(world.example_alert, safe='')}"
    first = client.get(path).json()
    assert client.get(f"{path}?since={first['version']}").json()["unchanged"] is True
    with world.store.transaction() as conn:
        world.store.add_note(conn, world.example_alert, "a note from the poll test")
    changed = client.get(f"{path}?since={first['version']}").json()
    assert "a note from the poll test" in changed["container"]["notes"]


def test_alert_with_thousands_of_files_shows_the_first_ones_and_the_total(client: Client, world: World) -> None:
    from connector.console.app import MAX_ARTIFACTS

    big = max(world.store.containers(), key=lambda c: c["artifact_count"])
    assert big["artifact_count"] > MAX_ARTIFACTS
    page = client.get(f"containers/{quote(big['alert_id'], safe='')}").json()
    assert len(page["artifacts"]) == MAX_ARTIFACTS
    assert page["artifact_total"] == big["artifact_count"]
    assert page["artifacts"][0] == world.store.artifacts(big["alert_id"])[0]


def test_console_listens_on_ipv6_loopback_when_asked(world: World) -> None:
    from connector.console.server import ConsoleServer

    try:
        server = ConsoleServer(world.server.app, host="::1").start()
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    try:
        assert server.url.startswith("http://[::1]:")
        r = requests.get(server.url, allow_redirects=False, timeout=TIMEOUT)
        assert r.status_code == 303
    finally:
        server.stop()


def test_console_command_without_any_configuration_says_how_to_give_one(tmp_path: Any) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MDE_")}
    env["HOME"] = str(tmp_path)
    cli = subprocess.run([sys.executable, "-m", "connector", "console"], capture_output=True, text=True,
                         timeout=120, check=False, env=env, cwd=tmp_path)
    assert cli.returncode == 2
    assert cli.stderr.startswith("mde-connector: No configuration was found.")
    assert "Traceback" not in cli.stderr


HOSTILE_DRAFTS: list[Any] = [
    None, [], "playbook", 1e308, {"steps": "x"}, {"name": "a", "steps": [None, 1, "s", {"id": {"x": 1}}]},
    {"name": "\ud800", "version": "1", "trigger": {"type": "manual"},
     "steps": [{"id": "a", "type": "action", "action": "\u202e<script>", "parameters": {"alert_id": "{{a.{{b}}}}"},
                "depends_on": "a"}]},
    {"name": "n", "version": "1", "trigger": {"type": "new_alert"},
     "steps": [{"id": "a", "type": "add_tag", "parameters": {"tags": [[[[[]]]]]}, "depends_on": ["a", "a"]}]},
]


@pytest.mark.parametrize("draft", HOSTILE_DRAFTS)
def test_hostile_drafts_get_problems_never_a_crash(client: Client, draft: Any) -> None:
    checked = client.send("POST", "playbooks/validate", {"document": draft})
    assert checked.status_code == 200
    assert checked.json()["problems"], "a broken draft has at least one problem"
    paths = client.send("POST", "playbooks/paths", {"document": draft, "step": "a", "parameter": "alert_id"})
    assert paths.status_code in (200, 422)
    saved = client.send("PUT", "playbooks/local/n.json", {"document": draft})
    assert saved.status_code == 422
    assert saved.json()["error"].endswith(".")


def test_data_paths_for_a_when_condition_come_from_the_steps_it_depends_on(client: Client) -> None:
    doc = shipped("triage_new_alert.json")
    r = client.send("POST", "playbooks/paths", {"document": doc, "step": "note_findings", "field": "when"})
    assert r.status_code == 200
    paths = {p["ref"]: p for p in r.json()["paths"]}
    assert paths["{{decide.result}}"]["ok"] and paths["{{files.summary.malware}}"]["ok"]
    assert "{{trigger.alert.id}}" in paths  # a new_alert playbook has a triggering alert
    first = client.send("POST", "playbooks/paths", {"document": doc, "step": "files", "field": "when"}).json()
    assert {p["root"] for p in first["paths"]} == {"container", "trigger"}

"""The console in a real browser: Debian's chromium, headless, under Playwright.

Playwright's auto-waiting (``expect``) does the waiting, with a generous
timeout as a safety net; nothing here measures time.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

import pytest

from connector.manifest import load_manifest
from tests.console.conftest import HOSTILE_ALERT_ID, HOSTILE_TITLE, WAIT_MS, World, screenshot, shipped

expect: Any = None


@pytest.fixture(autouse=True)
def _expect(browser: Any) -> None:
    global expect
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=WAIT_MS)
    expect = playwright_expect


def _open(page: Any, world: World, route: str) -> None:
    page.goto(f"{world.server.base_url}/#/{route}")


def _no_secret_and_no_page_error(page: Any, world: World) -> None:
    assert page.bodies, "the page should have loaded something"
    for body in page.bodies:
        assert world.secret not in body
    assert page.errors == []
    assert page.dialogs == []


def test_browser_without_the_token_gets_403(browser: Any, world: World) -> None:
    context = browser.new_context()
    try:
        pg = context.new_page()
        response = pg.goto(world.server.base_url + "/")
        assert response is not None and response.status == 403
        assert "Open the URL" in pg.content()
        api = pg.request.post(world.server.base_url + "/api/playbooks/run", data={"key": "shipped/x.json"})
        assert api.status == 403
    finally:
        context.close()


def test_alerts_list_shows_every_container_and_updates_while_watch_runs(page: Any, world: World) -> None:
    rows = page.locator("#alerts-body tr")
    expect(rows).to_have_count(len(world.store.containers()))
    example = page.locator(f'#alerts-body tr[data-alert-id="{world.example_alert}"]')
    expect(example.locator(".sev")).to_have_text(world.store.container(world.example_alert)["severity"])
    expect(example.locator(".chip").first).to_be_visible()
    screenshot(page, "alerts")
    with world.store.transaction() as conn:  # what a running `watch` does: a new container appears
        world.store.upsert_container(conn, "live_alert_1", name="Arrived while the page was open", severity="low")
    expect(page.locator('#alerts-body tr[data-alert-id="live_alert_1"]')).to_be_visible()
    page.fill("#filter-text", "arrived while")
    expect(rows).to_have_count(1)
    page.select_option("#filter-severity", "high")
    expect(rows).to_have_count(0)
    _no_secret_and_no_page_error(page, world)


def test_hostile_alert_text_is_shown_as_text_never_as_markup(page: Any, world: World) -> None:
    row = page.locator("#alerts-body tr").filter(has_text=HOSTILE_TITLE)
    expect(row).to_have_count(1)
    expect(row.locator("td.title")).to_have_text(HOSTILE_TITLE)
    row.click()
    expect(page.locator("#alert-title")).to_have_text(HOSTILE_TITLE)
    assert page.locator("main img").count() == 0
    assert page.locator("main script").count() == 0
    assert page.locator("main b, main u, main i").count() == 0
    signer = page.locator('#files dd[data-field="Signer"]')
    # The bidi override and BEL are shown as visible escapes, like the CLI shows them.
    expect(signer).to_have_text("<script>alert(2)</script>Micro\\u202esoft\\x07 {{container.alert_id}}")
    expect(page.locator("#notes li")).to_have_text("<script>alert(3)</script>")
    expect(page.locator("#alert-fields")).to_contain_text("evil\\u202etxt.exe \\x1b[31m")
    screenshot(page, "hostile_alert")
    _no_secret_and_no_page_error(page, world)


def test_alert_page_shows_full_hashes_signer_and_verdict_of_each_file(page: Any, world: World) -> None:
    _open(page, world, f"alert/{quote(world.example_alert, safe='')}")
    artifacts = world.store.artifacts(world.example_alert)
    cards = page.locator("#files .file")
    expect(cards).to_have_count(len(artifacts))
    for artifact in artifacts:
        card = page.locator(f'#files .file[data-sdi="{artifact["source_data_identifier"]}"]')
        cef = artifact["cef"]
        expect(card.locator('[data-hash="SHA-256"]')).to_have_text(cef["fileHashSha256"])
        expect(card.locator('[data-hash="SHA-1"]')).to_have_text(cef["fileHashSha1"])
        expect(card.locator(".verdict")).to_have_text(artifact["verdict"])
        expect(card.locator(".sev")).to_have_text(artifact["severity"])
        if cef.get("signer"):
            expect(card.locator('dd[data-field="Signer"]')).to_have_text(cef["signer"])
    expect(page.locator("#runs .run").first).to_contain_text("triage_new_alert")
    screenshot(page, "alert")
    _no_secret_and_no_page_error(page, world)


def test_get_related_files_button_runs_the_action_on_the_alert(page: Any, world: World) -> None:
    _open(page, world, f"alert/{quote(world.example_alert, safe='')}")
    before = len(world.store.action_runs(1000))
    page.click("#get-files")
    expect(page.locator('#job .job[data-status="success"]')).to_be_visible()
    expect(page.locator("#job .job-message")).to_contain_text("related files")
    runs = world.store.action_runs(1000)
    assert len(runs) == before + 1 and runs[0]["container"] == world.example_alert
    mine = [r for r in runs if r["container"] == world.example_alert]
    expect(page.locator("#action-runs tr")).to_have_count(len(mine))
    _no_secret_and_no_page_error(page, world)


def test_action_form_shows_the_cli_sentence_then_runs_and_shows_the_result(page: Any, world: World) -> None:
    from connector.errors import InputError

    _open(page, world, "actions/get_alert_related_files")
    spec = load_manifest().action("get_alert_related_files")
    with pytest.raises(InputError) as bad:
        spec.validate_params({"alert_id": ".."})
    page.fill("#param-alert_id", "..")
    expect(page.locator("#form-message")).to_have_text(bad.value.sentence())
    page.fill("#param-alert_id", world.example_alert)
    expect(page.locator("#form-message")).to_have_text("Ready to run.")
    before = len(world.store.action_runs(1000))
    page.click("#run-action")
    expect(page.locator('#action-result .job[data-status="success"]')).to_be_visible()
    expect(page.locator("#result-json")).to_contain_text('"distinct_files"')
    assert len(world.store.action_runs(1000)) == before + 1
    screenshot(page, "actions")
    _no_secret_and_no_page_error(page, world)


def _drop(page: Any, palette_selector: str, x: int, y: int) -> None:
    page.locator(palette_selector).drag_to(page.locator("#canvas-wrap"), target_position={"x": x, "y": y})


def test_editor_drag_connect_bind_save_reload_and_run(page: Any, world: World) -> None:
    from connector.runtime.playbooks import validate_playbook_file

    _open(page, world, "editor/new")
    page.fill("#pb-name", "console_made")
    page.fill("#pb-description", "Made in the console's editor")

    # Drag an action from the palette: it is marked at fault until its alert_id is bound.
    _drop(page, '.palette-item[data-action="get_alert_related_files"]', 320, 60)
    files = page.locator('.node[data-step-id="get_alert_related_files"]')
    expect(files).to_have_class(re.compile(r"\bfault\b"))
    expect(page.locator("#problems")).to_contain_text("does not bind the required parameter 'alert_id'")
    page.select_option("#bind-alert_id", "{{container.alert_id}}")
    expect(page.locator("#valid")).to_be_visible()
    expect(files).not_to_have_class(re.compile(r"\bfault\b"))

    # A note step, connected below it; its text binds an upstream summary path.
    _drop(page, '.palette-item[data-kind="add_note"]', 320, 260)
    note = page.locator('.node[data-step-id="add_note"]')
    expect(note).to_be_visible()
    files.locator(".port-out").drag_to(note)
    expect(page.locator('#edges path[data-from="get_alert_related_files"][data-to="add_note"]')).to_have_count(1)
    expect(page.locator("#step-deps")).to_contain_text("get_alert_related_files")
    page.select_option("#bind-text", "{{get_alert_related_files.summary.total_files}}")
    expect(page.locator("#param-text")).to_have_value("Note {{get_alert_related_files.summary.total_files}}")

    # A second action downstream: a sha1 is refused for its alert id, and typed in anyway it is marked at fault.
    _drop(page, '.palette-item[data-action="get_alert_related_files"]', 620, 260)
    second = page.locator('.node[data-step-id="get_alert_related_files_2"]')
    files.locator(".port-out").drag_to(second)
    sha1 = page.locator('#bind-alert_id option[value="{{get_alert_related_files.data.*.sha1}}"]')
    expect(sha1).to_be_disabled()
    expect(sha1).to_contain_text("refused")
    expect(page.locator('#bind-alert_id option[value="{{container.alert_id}}"]')).to_be_enabled()
    page.fill("#param-alert_id", "{{get_alert_related_files.data.*.sha1}}")
    expect(second).to_have_class(re.compile(r"\bfault\b"))
    expect(page.locator("#problems")).to_contain_text("which needs defender alert id")
    screenshot(page, "editor_refused")
    page.click("#step-delete")
    expect(second).to_have_count(0)
    expect(page.locator("#valid")).to_be_visible()

    # Save: the file is what the CLI validates and runs.
    page.click("#pb-save")
    expect(page.locator("#save-status")).to_contain_text("saved to")
    path = world.playbook_dir / "console_made.json"
    assert validate_playbook_file(path) == []
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert [s["id"] for s in saved["steps"]] == ["get_alert_related_files", "add_note"]
    assert saved["steps"][0]["parameters"] == {"alert_id": "{{container.alert_id}}"}
    assert saved["steps"][1]["depends_on"] == ["get_alert_related_files"]
    assert all(set(s["layout"]) == {"x", "y"} for s in saved["steps"])

    # Reload: the same playbook, and saving it again changes nothing.
    page.reload()
    expect(page.locator("#pb-name")).to_have_value("console_made")
    expect(page.locator(".node")).to_have_count(2)
    expect(page.locator('#edges path[data-from="get_alert_related_files"][data-to="add_note"]')).to_have_count(1)
    text = path.read_text(encoding="utf-8")
    page.click("#pb-save")
    expect(page.locator("#save-status")).to_contain_text("saved to")
    assert path.read_text(encoding="utf-8") == text
    screenshot(page, "editor")

    # Run it on a simulator alert and watch the steps complete; the files are then on the alert's page.
    page.select_option("#run-alert", world.example_alert)
    page.click("#run-pb")
    expect(page.locator('#run-job .job[data-status="success"]')).to_be_visible()
    expect(page.locator('#run-job li[data-step="add_note"][data-status="success"]')).to_be_visible()
    expect(page.locator('.node[data-step-id="add_note"]')).to_have_attribute("data-run", "success")
    screenshot(page, "editor_run")
    page.click("#run-alert-link")
    expect(page.locator("#files .file")).to_have_count(len(world.store.artifacts(world.example_alert)))
    total = world.store.playbook_runs(world.example_alert)
    assert any(r["playbook"] == "console_made" and r["status"] == "success" for r in total)
    expect(page.locator("#notes")).to_contain_text(re.compile(r"Note \d+"))
    expect(page.locator("#runs")).to_contain_text("console_made")
    _no_secret_and_no_page_error(page, world)


def test_editor_moves_a_node_and_saves_its_layout(page: Any, world: World) -> None:
    _open(page, world, "editor/shipped%2Finvestigate_alert_files.json")
    node = page.locator('.node[data-step-id="tag_investigated"]')
    expect(node).to_be_visible()
    expect(page.locator("#valid")).to_be_visible()
    box = node.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 40, box["y"] + 20)
    page.mouse.down()
    page.mouse.move(box["x"] + 140, box["y"] + 120, steps=5)
    page.mouse.up()
    expect(page.locator("#save-status")).to_have_text("unsaved changes")
    page.click("#pb-save")
    expect(page.locator("#save-status")).to_contain_text("saved to")
    saved = json.loads((world.playbook_dir / "investigate_alert_files.json").read_text(encoding="utf-8"))
    step = next(s for s in saved["steps"] if s["id"] == "tag_investigated")
    assert step["layout"] == {"x": 420, "y": 260}
    others = [s["layout"] for s in saved["steps"] if s["id"] != "tag_investigated"]
    assert others == [{"x": 120, "y": 40}, {"x": 120, "y": 160}]
    _no_secret_and_no_page_error(page, world)


def test_editor_saves_a_shipped_playbook_unchanged_then_edits_when_and_on_failure(page: Any, world: World) -> None:
    _open(page, world, "editor/shipped%2Ftriage_new_alert.json")
    expect(page.locator(".node")).to_have_count(7)
    expect(page.locator("#valid")).to_be_visible()
    expect(page.locator("#pb-save")).to_have_text("Save a copy")
    page.click("#pb-save")
    expect(page.locator("#save-status")).to_contain_text("saved to")
    path = world.playbook_dir / "triage_new_alert.json"
    original = shipped("triage_new_alert.json")
    assert json.dumps(json.loads(path.read_text(encoding="utf-8"))) == json.dumps(original)  # keys in order

    page.locator('.node[data-step-id="tag_suspicious"]').click()
    expect(page.locator("#step-id")).to_have_value("tag_suspicious")
    page.fill("#step-when", '{"gt": ["{{nowhere.summary.rare}}", 0]}')
    expect(page.locator('.node[data-step-id="tag_suspicious"]')).to_have_class(re.compile(r"\bfault\b"))
    expect(page.locator("#step-problems")).to_contain_text("unknown step 'nowhere'")
    page.fill("#step-when", '{"gt": ["{{files.summary.rare}}", 0]}')
    page.select_option("#step-on-failure", "continue")
    page.select_option("#step-add-dep", "files")  # the keyboard's way to connect two steps
    edge = page.locator('#edges path[data-from="files"][data-to="tag_suspicious"]')
    expect(edge).to_have_count(1)
    page.get_by_title("remove the dependency on files").click()
    expect(edge).to_have_count(0)
    expect(page.locator("#valid")).to_be_visible()
    expect(page.locator("#step-problems li")).to_have_count(0)
    page.click("#pb-save")
    expect(page.locator("#save-status")).to_contain_text("saved to")
    saved = json.loads(path.read_text(encoding="utf-8"))
    edited = next(s for s in saved["steps"] if s["id"] == "tag_suspicious")
    assert edited["when"] == {"gt": ["{{files.summary.rare}}", 0]}
    assert edited["on_failure"] == "continue"
    assert [s for s in saved["steps"] if s["id"] != "tag_suspicious"] == \
        [s for s in original["steps"] if s["id"] != "tag_suspicious"]
    _no_secret_and_no_page_error(page, world)


def test_renaming_a_step_renames_its_dependencies_and_references(page: Any, world: World) -> None:
    _open(page, world, "editor/shipped%2Finvestigate_alert_files.json")
    page.locator('.node[data-step-id="files"]').click()
    page.fill("#step-id", "related")
    page.press("#step-id", "Enter")
    expect(page.locator('.node[data-step-id="related"]')).to_be_visible()
    expect(page.locator('#edges path[data-from="related"][data-to="note_counts"]')).to_have_count(1)
    expect(page.locator("#valid")).to_be_visible()
    page.fill("#pb-name", "renamed_steps")
    page.click("#pb-save")
    expect(page.locator("#save-status")).to_contain_text("saved to")
    saved = json.loads((world.playbook_dir / "renamed_steps.json").read_text(encoding="utf-8"))
    original = shipped("investigate_alert_files.json")
    assert [s["id"] for s in saved["steps"]] == ["related", "note_counts", "tag_investigated"]
    assert saved["steps"][1]["depends_on"] == ["related"]
    assert saved["steps"][1]["parameters"]["text"] == \
        original["steps"][1]["parameters"]["text"].replace("{{files.", "{{related.")
    _no_secret_and_no_page_error(page, world)


def test_when_condition_binds_an_upstream_data_path_where_the_cursor_is(page: Any, world: World) -> None:
    _open(page, world, "editor/shipped%2Finvestigate_alert_files.json")
    page.locator('.node[data-step-id="tag_investigated"]').click()
    page.fill("#step-when", '{"gt": [, 0]}')
    page.locator("#step-when").evaluate("area => area.setSelectionRange(8, 8)")
    page.select_option("#bind-when", "{{files.summary.malware}}")
    expect(page.locator("#step-when")).to_have_value('{"gt": ["{{files.summary.malware}}", 0]}')
    expect(page.locator("#valid")).to_be_visible()
    page.fill("#pb-name", "when_bound")
    page.click("#pb-save")
    expect(page.locator("#save-status")).to_contain_text("saved to")
    saved = json.loads((world.playbook_dir / "when_bound.json").read_text(encoding="utf-8"))
    assert saved["steps"][2]["when"] == {"gt": ["{{files.summary.malware}}", 0]}
    _no_secret_and_no_page_error(page, world)


def test_hostile_alert_id_survives_routing_to_its_page(page: Any, world: World) -> None:
    _open(page, world, f"alert/{quote(HOSTILE_ALERT_ID, safe='')}")
    expect(page.locator("#alert-head .mono")).to_have_text(HOSTILE_ALERT_ID)
    _no_secret_and_no_page_error(page, world)

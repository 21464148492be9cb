"""Jobs: what the page polls while an action or playbook runs."""

from __future__ import annotations

from connector.console.app import MAX_PROGRESS, Job


def test_engine_progress_marks_the_steps_of_a_playbook_job() -> None:
    job = Job("playbook", "triage", ["files", "decide"])
    job.note("step files: success")
    job.note("step unknown: failed")  # not a step of this playbook: ignored
    job.note("step decide <b>: success")  # not the engine's form: kept as text only
    assert job.to_dict()["steps"] == [{"id": "files", "status": "success"}, {"id": "decide", "status": "pending"}]
    assert job.to_dict()["progress"][-1] == "step decide <b>: success"


def test_a_long_run_keeps_only_the_latest_progress_lines() -> None:
    job = Job("action", "get_alert_related_files")
    for n in range(MAX_PROGRESS * 3):
        job.note(f"page {n}")
    progress = job.to_dict()["progress"]
    assert len(progress) == MAX_PROGRESS
    assert progress[-1] == f"page {MAX_PROGRESS * 3 - 1}"


def test_a_finished_job_reports_its_status_and_result() -> None:
    job = Job("action", "test_connectivity")
    assert job.to_dict()["status"] == "running"
    job.finish("failed", {"message": "Sign-in failed."})
    assert job.to_dict()["status"] == "failed"
    assert job.to_dict()["result"] == {"message": "Sign-in failed."}

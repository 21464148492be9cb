"""The console's API, free of HTTP: each method takes parsed input and returns
``(status, payload)`` for :mod:`connector.console.server` to send as JSON.

Everything goes through what the CLI uses, so the console can never disagree
with it: the store for containers, artifacts and runs; the manifest for
actions, their forms and data paths; ``ActionSpec.params_from_cli`` and
``validate_params`` for action input (the same sentences ``run`` prints);
``validate_playbook`` for the editor (what ``playbook validate`` runs);
``run_action`` and ``run_playbook`` to act, so runs are recorded like CLI runs.

No secret reaches a payload: the configuration is never serialised, only
whether actions can run.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connector.actions import ActionContext, run_action
from connector.config import Config, ensure_private_dir
from connector.errors import ConnectorError
from connector.manifest import ActionSpec, load_manifest
from connector.runtime.engine import run_playbook
from connector.runtime.playbooks import (
    BUILTIN_OUTPUTS,
    Output,
    action_outputs,
    container_outputs,
    load_playbook,
    playbook_schema,
    validate_playbook,
    validate_playbook_file,
)
from connector.runtime.store import Store
from connector.sdk import Context, JSONObject
from connector.text import dumps_output

Reply = tuple[int, Any]

# A playbook's file is named after it; the schema allows these characters in a name.
_FILE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}\.json$")
_RUN_STEP_RE = re.compile(r"^step (?P<id>[A-Za-z_][A-Za-z0-9_]*): (?P<status>\w+)$")
MAX_JOBS = 200
MAX_PROGRESS = 100  # the page shows the latest line; a long paging run must not grow a job without end
# A page shows this many of an alert's files; the CLI lists them all.
MAX_ARTIFACTS = 500


def problem_dicts(problems: list[Any]) -> list[dict[str, Any]]:
    """Validator problems as JSON: the one-line message and the step at fault."""
    return [{"message": str(p), "step": p.step} for p in problems]


class Job:
    """A manual action or playbook run in a worker thread; polled by the page."""

    def __init__(self, kind: str, name: str, steps: list[str] | None = None) -> None:
        self.id = uuid.uuid4().hex
        self.kind = kind
        self.name = name
        self.status = "running"
        self.progress: list[str] = []
        self.steps: dict[str, str] = {s: "pending" for s in steps or []}
        self.result: JSONObject | None = None
        self._lock = threading.Lock()

    def note(self, message: str) -> None:
        """A progress line from the action or engine (``step X: status`` marks a step)."""
        with self._lock:
            self.progress = (self.progress + [message])[-MAX_PROGRESS:]
            m = _RUN_STEP_RE.match(message)
            if m and m["id"] in self.steps:
                self.steps[m["id"]] = m["status"]

    def finish(self, status: str, result: JSONObject) -> None:
        """Set the final status and result."""
        with self._lock:
            self.result = result
            self.status = status

    def to_dict(self) -> dict[str, Any]:
        """The job as the page polls it."""
        with self._lock:
            return {"id": self.id, "kind": self.kind, "name": self.name, "status": self.status,
                    "progress": list(self.progress), "steps": [{"id": k, "status": v} for k, v in self.steps.items()],
                    "result": self.result}


class ConsoleApp:
    """The API over one state directory.

    ``config`` is the loaded :class:`~connector.config.Config` or None (then
    the console only reads, and ``config_problem`` says why). ``playbook_dir``
    is where the editor saves; the shipped playbooks are offered read-only.
    ``context_factory`` builds the ActionContext of a run (tests inject a
    client factory here); by default the configured client is used.
    """

    def __init__(self, *, store: Store, config: Config | None = None, config_problem: str | None = None,
                 playbook_dir: Path, context_factory: Callable[[Callable[[str], None]], Context] | None = None,
                 ) -> None:
        self.store = store
        self.config = config
        self.config_problem = config_problem
        self.playbook_dir = playbook_dir
        self.manifest = load_manifest()
        self._context_factory = context_factory
        self._jobs: dict[str, Job] = {}
        self._jobs_lock = threading.Lock()

    @property
    def actions_enabled(self) -> bool:
        """Whether actions and playbooks can run (a configuration was loaded)."""
        return self.config is not None or self._context_factory is not None

    # -- containers ----------------------------------------------------------

    def _read(self) -> sqlite3.Connection:
        """A read-only connection to the store for the aggregate queries."""
        conn = sqlite3.connect(f"file:{self.store.path}?mode=ro", uri=True, timeout=30)
        conn.row_factory = sqlite3.Row
        return conn

    def _version(self, conn: sqlite3.Connection, alert_id: str | None = None) -> str:
        """A cheap fingerprint of what a page shows (all containers, or one
        with its notes, artifacts and runs): the page polls with it and gets
        the full answer only when something changed."""
        if alert_id is None:
            args: tuple[Any, ...] = ()
            rows = conn.execute("SELECT alert_id, name, severity, status, tags, updated_at FROM containers")
            files = conn.execute("SELECT COUNT(*), MAX(updated_at) FROM artifacts").fetchone()
        else:
            args = (alert_id,)
            rows = conn.execute("SELECT alert_id, name, severity, status, tags, updated_at FROM containers"
                                " WHERE alert_id = ?", args)
            files = conn.execute("SELECT COUNT(*), MAX(updated_at) FROM artifacts WHERE container = ?", args).fetchone()
        parts: list[Any] = [[tuple(r) for r in rows], tuple(files)]
        if alert_id is not None:
            for sql in ("SELECT COUNT(*), MAX(id), SUM(LENGTH(text)) FROM notes WHERE container = ?",
                        "SELECT COUNT(*), MAX(COALESCE(finished_at, started_at)), GROUP_CONCAT(status)"
                        " FROM playbook_runs WHERE container = ?",
                        "SELECT COUNT(*), MAX(id) FROM action_runs WHERE container = ?"):
                parts.append(tuple(conn.execute(sql, args).fetchone()))
        return hashlib.sha256(json.dumps(parts, default=str).encode("utf-8", "replace")).hexdigest()[:32]

    def containers(self, since: str | None = None) -> Reply:
        """Every container with its verdict counts (flag -> number of files);
        ``{"unchanged": true}`` when ``since`` is the current version."""
        conn = self._read()
        try:
            version = self._version(conn)
            if since == version:
                return 200, {"version": version, "unchanged": True}
            counts: dict[str, dict[str, int]] = {}
            updated: dict[str, str] = {}
            for row in conn.execute(
                    "SELECT a.container AS c, COALESCE(t.value, 'no findings') AS flag, COUNT(*) AS n"
                    " FROM artifacts a LEFT JOIN json_each(a.body, '$.tags') t GROUP BY c, flag"):
                counts.setdefault(row["c"], {})[str(row["flag"])] = int(row["n"])
            for row in conn.execute("SELECT alert_id, updated_at FROM containers"):
                updated[row["alert_id"]] = row["updated_at"]
        finally:
            conn.close()
        items = self.store.containers()
        for item in items:
            item["verdicts"] = counts.get(item["alert_id"], {})
            item["updated_at"] = updated.get(item["alert_id"])
        return 200, {"version": version, "containers": items}

    def container(self, alert_id: str, since: str | None = None) -> Reply:
        """One container: alert fields, notes, the first MAX_ARTIFACTS
        artifacts (``artifact_total`` counts them all), playbook and action
        runs; ``{"unchanged": true}`` when ``since`` is the current version."""
        conn = self._read()
        try:
            version = self._version(conn, alert_id)
            if since == version:
                return 200, {"version": version, "unchanged": True}
            actions = [dict(r) for r in conn.execute(
                "SELECT id, action, status, message, started_at, duration_ms FROM action_runs"
                " WHERE container = ? ORDER BY id DESC LIMIT 100", (alert_id,))]
            bodies = [r[0] for r in conn.execute(
                "SELECT body FROM artifacts WHERE container = ? ORDER BY rowid LIMIT ?", (alert_id, MAX_ARTIFACTS))]
        finally:
            conn.close()
        item = self.store.container(alert_id)
        if item is None:
            return 404, {"error": f"There is no container for alert {alert_id!r} in the store."}
        runs = []
        for run in self.store.playbook_runs(alert_id, limit=50):
            full = self.store.playbook_run(run["id"])
            runs.append(full["record"] if full else run)
        return 200, {"version": version, "container": item, "artifacts": [json.loads(b) for b in bodies],
                     "artifact_total": item["artifact_count"], "runs": runs, "action_runs": actions}

    # -- manifest and actions ------------------------------------------------

    def manifest_info(self) -> Reply:
        """Actions (parameter schemas and outputs) and the built-in step types."""
        actions = [{"name": a.name, "display_name": a.display_name, "description": a.description,
                    "read_only": a.read_only, "parameters": a.parameters_schema,
                    "outputs": [{"path": p, "data_type": o.data_type, "contains": list(o.contains)}
                                for p, o in _outputs(a).items()]}
                   for a in self.manifest.actions]
        step_schema = playbook_schema()["$defs"]["step"]
        builtins = []
        for branch in step_schema["allOf"]:
            kind = branch["if"]["properties"]["type"]["const"]
            if kind == "action":
                continue
            params = branch["then"]["properties"]["parameters"]
            builtins.append({"type": kind, "parameters": params,
                             "outputs": [{"path": p, "data_type": o.data_type, "contains": list(o.contains)}
                                         for p, o in BUILTIN_OUTPUTS[kind].items()]})
        container = [{"path": p, "data_type": o.data_type, "contains": list(o.contains)}
                     for p, o in container_outputs().items()]
        return 200, {"actions": actions, "builtins": builtins, "container": container,
                     "type_help": step_schema["properties"]["type"]["description"]}

    def _spec(self, name: str) -> ActionSpec:
        return self.manifest.action(name)

    def check_params(self, name: str, raw: Any) -> tuple[Any, dict[str, Any] | None, str | None]:
        """Form values (strings, as typed) -> validated parameters, through the
        CLI's own conversion and validation: ``(spec, params, None)`` or
        ``(spec, None, sentence)``."""
        spec = None
        try:
            spec = self._spec(name)
            if not isinstance(raw, dict):
                return spec, None, "The parameters must be a JSON object of name/value pairs."
            pairs = []
            for key, value in raw.items():
                if value is None or (isinstance(value, str) and value == ""):
                    continue  # an empty field is a parameter not given, as on the command line
                text = value if isinstance(value, str) else json.dumps(value)
                pairs.append(f"{key}={text}")
            params = spec.params_from_cli(pairs)
            return spec, spec.validate_params(params), None
        except ConnectorError as err:
            return spec, None, err.sentence()

    def validate_action(self, name: str, body: dict[str, Any]) -> Reply:
        """Check form values without running: 200 with the clean parameters, or 422 with the sentence."""
        spec, params, problem = self.check_params(name, body.get("params", {}))
        if problem is not None:
            return (404 if spec is None else 422), {"error": problem}
        return 200, {"params": params}

    def run_action(self, name: str, body: dict[str, Any]) -> Reply:
        """Start an action in a worker; 202 with the job, 422 with the CLI's sentence for bad input."""
        spec, params, problem = self.check_params(name, body.get("params", {}))
        if problem is not None:
            return (404 if spec is None else 422), {"error": problem}
        if not self.actions_enabled:
            return 409, {"error": self.config_problem or "Actions need a configuration."}
        job = self._new_job("action", spec.name)

        def work() -> None:
            result = run_action(spec.name, dict(params or {}), self._context(job.note))
            job.finish(result.status, result.to_dict())

        self._start(job, work)
        return 202, {"job": job.to_dict()}

    def job(self, job_id: str) -> Reply:
        """A job's status, progress and (once done) result."""
        with self._jobs_lock:
            job = self._jobs.get(job_id)
        if job is None:
            return 404, {"error": "There is no such job (the console may have been restarted)."}
        return 200, {"job": job.to_dict()}

    def _context(self, progress: Callable[[str], None]) -> Context:
        if self._context_factory is not None:
            return self._context_factory(progress)
        return ActionContext(config=self.config, store=self.store, progress=progress)

    def _new_job(self, kind: str, name: str, steps: list[str] | None = None) -> Job:
        job = Job(kind, name, steps)
        with self._jobs_lock:
            if len(self._jobs) >= MAX_JOBS:  # forget the oldest finished jobs
                for old in [j for j in self._jobs.values() if j.status != "running"][: MAX_JOBS // 2]:
                    del self._jobs[old.id]
            self._jobs[job.id] = job
        return job

    def _start(self, job: Job, work: Callable[[], None]) -> None:
        def guarded() -> None:
            try:
                work()
            except ConnectorError as err:
                job.finish("failed", {"status": "failed", "message": err.sentence()})
            except Exception as exc:  # noqa: BLE001 - a worker must always finish its job
                job.finish("failed", {"status": "failed",
                                      "message": f"The run stopped unexpectedly ({exc.__class__.__name__})."})

        threading.Thread(target=guarded, name=f"console-{job.kind}-{job.id[:8]}", daemon=True).start()

    # -- playbooks -------------------------------------------------------------

    def _shipped_dir(self) -> Path:
        return Path(__file__).resolve().parent.parent / "playbooks"

    def playbooks(self) -> Reply:
        """The saved (editable) and shipped (read-only) playbook files."""
        out = []
        for source, folder in (("local", self.playbook_dir), ("shipped", self._shipped_dir())):
            for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
                entry: dict[str, Any] = {"key": f"{source}/{path.name}", "file": path.name, "source": source,
                                         "editable": source == "local"}
                try:
                    data = json.loads(path.read_text(encoding="utf-8"))
                    entry.update(name=data.get("name"), trigger=(data.get("trigger") or {}).get("type"),
                                 description=data.get("description", ""))
                except (OSError, ValueError, AttributeError):
                    entry.update(name=path.stem, problem="The file is not a readable playbook.")
                out.append(entry)
        return 200, {"playbooks": out, "directory": str(self.playbook_dir)}

    def _path(self, key: str) -> Path | None:
        source, _, name = key.partition("/")
        if not _FILE_RE.match(name) or name.startswith("."):
            return None
        if source == "local":
            return self.playbook_dir / name
        if source == "shipped":
            return self._shipped_dir() / name
        return None

    def playbook(self, key: str) -> Reply:
        """One playbook file: its document (as written) and its problems."""
        path = self._path(key)
        if path is None or not path.is_file():
            return 404, {"error": f"There is no playbook {key!r}."}
        text = path.read_text(encoding="utf-8")
        try:
            document = json.loads(text)
        except ValueError:
            document = None
        problems = validate_playbook_file(path, manifest=self.manifest)
        return 200, {"key": key, "file": path.name, "document": document, "text": text if document is None else None,
                     "editable": key.startswith("local/"), "problems": problem_dicts(problems)}

    def validate_playbook(self, body: dict[str, Any]) -> Reply:
        """Every problem of a draft, each with the step at fault."""
        document = body.get("document")
        problems = validate_playbook(document, source=_source_name(document), manifest=self.manifest)
        return 200, {"problems": problem_dicts(problems)}

    def data_paths(self, body: dict[str, Any]) -> Reply:
        """The data paths a step's parameter (or, with ``"field": "when"``, its
        condition) may bind: the container, the
        triggering alert's id and the outputs of the steps it depends on
        (directly or not), each with ``ok`` and, when refused, the validator's
        sentence. A path is refused when binding it alone makes the validator
        report a new problem for that step (contains or type mismatch)."""
        document = body.get("document")
        step_id = body.get("step")
        parameter = body.get("parameter")
        in_when = body.get("field") == "when"
        if not isinstance(document, dict) or not isinstance(document.get("steps"), list):
            return 422, {"error": "The draft must be a playbook object with a list of steps."}
        steps = [s for s in document["steps"] if isinstance(s, dict)]
        by_id = {s.get("id"): s for s in steps if isinstance(s.get("id"), str)}
        step = by_id.get(step_id)
        if step is None or not in_when and (not isinstance(parameter, str) or not parameter):
            return 422, {"error": "Name the step and the parameter (or \"field\": \"when\") to bind."}
        candidates: list[tuple[str, str, Any]] = []
        container = container_outputs()
        for path, out in container.items():
            candidates.append(("container", path, out))
        if (document.get("trigger") or {}).get("type") == "new_alert":
            candidates.append(("trigger", "alert.id", container[load_manifest().container_key]))
        for upstream in _ancestors(by_id, step_id):
            other = by_id[upstream]
            outputs: dict[str, Any] = {}
            if other.get("type") == "action":
                try:
                    outputs = _outputs(self._spec(str(other.get("action"))))
                except ConnectorError:
                    outputs = {}
            else:
                outputs = BUILTIN_OUTPUTS.get(str(other.get("type")), {})
            for path, out in outputs.items():
                candidates.append((upstream, path, out))

        schema_type = None if in_when else _parameter_type(self, step, str(parameter))

        def refusals(ref: str) -> list[str]:
            trial = json.loads(json.dumps(document))
            value: Any = [ref] if schema_type == "array" else ref
            for s in trial["steps"]:
                if isinstance(s, dict) and s.get("id") == step_id and in_when:
                    s["when"] = ref
                elif isinstance(s, dict) and s.get("id") == step_id:
                    params = s.get("parameters")
                    s["parameters"] = {**(params if isinstance(params, dict) else {}), str(parameter): value}
            found = validate_playbook(trial, source=_source_name(document), manifest=self.manifest)
            # The validator names the reference in every sentence about it.
            return [p.message for p in found if p.step == step_id and ref in p.message]

        paths = []
        for root, path, out in candidates:
            ref = "{{" + f"{root}.{path}" + "}}"
            refused = refusals(ref)
            paths.append({"ref": ref, "root": root, "path": path, "data_type": out.data_type,
                          "contains": list(out.contains), "ok": not refused,
                          "reason": refused[0] if refused else None})
        return 200, {"paths": paths}

    def save_playbook(self, key: str, body: dict[str, Any]) -> Reply:
        """Validate a draft with the CLI's validator and write it to the playbook
        directory as ``<name>.json`` (422 with every problem when invalid)."""
        document = body.get("document")
        problems = validate_playbook(document, source=_source_name(document), manifest=self.manifest)
        if problems:
            return 422, {"error": str(problems[0]), "problems": problem_dicts(problems)}
        assert isinstance(document, dict)  # noqa: S101 - a valid playbook is an object
        name = f"{document['name']}.json"
        if key != f"local/{name}":
            return 409, {"error": f"The playbook is named {document['name']!r}, so it is saved as {name}; "
                                  f"save it with the key local/{name}."}
        ensure_private_dir(self.playbook_dir)
        path = self.playbook_dir / name
        tmp = path.with_name(f".{name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(format_playbook(document), encoding="utf-8")
        tmp.replace(path)
        return 200, {"key": f"local/{name}", "file": name, "path": str(path)}

    def run_playbook(self, body: dict[str, Any]) -> Reply:
        """Run a saved or shipped playbook on an alert's container in a worker; 202 with the job."""
        key = str(body.get("key") or "")
        alert_id = body.get("alert_id")
        path = self._path(key)
        if path is None or not path.is_file():
            return 404, {"error": f"There is no playbook {key!r}; save the playbook first."}
        if not isinstance(alert_id, str) or not alert_id.strip():
            return 422, {"error": "Choose the alert to run the playbook on."}
        if not self.actions_enabled:
            return 409, {"error": self.config_problem or "Running a playbook needs a configuration."}
        try:
            playbook = load_playbook(path, manifest=self.manifest)
        except ConnectorError as err:
            return 422, {"error": err.sentence()}
        job = self._new_job("playbook", playbook.name, [s.id for s in playbook.order])

        def work() -> None:
            record = run_playbook(playbook, alert_id=alert_id.strip(), context=self._context(job.note),
                                  trigger="manual")
            for entry in record.get("steps", []):
                job.note(f"step {entry['id']}: {entry['status']}")
            job.finish(record["status"], record)

        self._start(job, work)
        return 202, {"job": job.to_dict()}


def format_playbook(document: Any) -> str:
    """The text the editor saves: two-space indented JSON, keys in the
    order given, non-ASCII as is, one final newline (stable: saving a saved
    file changes nothing)."""
    return dumps_output(document, indent=2) + "\n"


def _source_name(document: Any) -> str:
    name = document.get("name") if isinstance(document, dict) else None
    return f"{name}.json" if isinstance(name, str) and name else "playbook"


def _outputs(spec: ActionSpec) -> dict[str, Output]:
    return action_outputs(spec)


def _parameter_type(app: ConsoleApp, step: dict[str, Any], parameter: str) -> str | None:
    """The JSON type the step's parameter takes (action schema or built-in schema)."""
    if step.get("type") == "action":
        try:
            props = app.manifest.action(str(step.get("action"))).parameters_schema.get("properties", {})
        except ConnectorError:
            return None
    else:
        props = {}
        for branch in playbook_schema()["$defs"]["step"]["allOf"]:
            if branch["if"]["properties"]["type"]["const"] == step.get("type"):
                props = branch["then"]["properties"].get("parameters", {}).get("properties", {})
    kind = (props.get(parameter) or {}).get("type")
    return kind if isinstance(kind, str) else None


def _ancestors(by_id: dict[Any, dict[str, Any]], step_id: Any) -> list[str]:
    """The steps ``step_id`` depends on, directly or not, nearest first."""
    seen: list[str] = []
    queue = [step_id]
    while queue:
        current = by_id.get(queue.pop(0)) or {}
        deps = current.get("depends_on")
        for dep in deps if isinstance(deps, list) else []:
            if isinstance(dep, str) and dep in by_id and dep not in seen and dep != step_id:
                seen.append(dep)
                queue.append(dep)
    return seen

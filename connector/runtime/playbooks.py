"""Load and validate playbooks: what a drag-and-drop editor enforces before saving.

A playbook is JSON (``connector/schemas/playbook.schema.json`` documents the
format). :func:`validate_playbook` checks a parsed document and returns every
problem found, each one line naming the step and the fix::

    problems = validate_playbook(data, source="triage_new_alert.json")
    # [Problem("triage_new_alert.json", "step 'files' calls unknown action ...")]
    playbook = load_playbook("playbooks/triage_new_alert.json")  # raises PlaybookError

Checks, in order: JSON syntax (line and column), the schema, then what a
schema cannot express: unique step ids, depends_on names existing steps and
has no cycle (a step that can never run is reported), each action exists in
the manifest with its required parameters bound and no unknown ones, literal
parameter values satisfy the action's schema, and every ``{{step.path}}``
reference names a step that runs earlier and a data path that step declares,
with ``contains`` types compatible with the parameter it feeds.

The module is pure (data in, problems out); ``jsonschema`` is imported only
when something is validated.
"""

from __future__ import annotations

import heapq
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from connector.errors import PlaybookError
from connector.manifest import Manifest, load_manifest

__all__ = [
    "BUILTIN_OUTPUTS",
    "CONTAINER_OUTPUTS",
    "container_outputs",
    "Output",
    "Playbook",
    "Problem",
    "Step",
    "Reference",
    "execution_order",
    "find_references",
    "load_playbook",
    "parse_playbook",
    "substitute",
    "validate_playbook",
    "validate_playbook_file",
]

_SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "playbook.schema.json"
_SCHEMA_CACHE: list[dict[str, Any]] = []

# A reference: {{ root.path }}; the loose form finds candidates, the strict
# form decides whether a candidate is well formed.
_CANDIDATE_RE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_REFERENCE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.(?:[A-Za-z0-9_$@-]+|\*))+$")
_WHOLE_RE = re.compile(r"^\{\{\s*([^{}]*?)\s*\}\}$", re.DOTALL)

# Records are NamedTuples rather than dataclasses: they cost far less to
# define at import time, and the CLI's start-up is benchmarked.


class Output(NamedTuple):
    """A declared output data path: its type and ``contains`` types."""

    data_type: str
    contains: tuple[str, ...] = ()


# What built-in steps declare (every step also has status and message).
_COMMON_OUTPUTS = {"status": Output("string"), "message": Output("string")}
BUILTIN_OUTPUTS: dict[str, dict[str, Output]] = {
    "decision": {**_COMMON_OUTPUTS, "result": Output("boolean")},
    "set_severity": {**_COMMON_OUTPUTS, "severity": Output("string"), "previous_severity": Output("string")},
    "add_note": {**_COMMON_OUTPUTS, "text": Output("string")},
    "add_tag": {**_COMMON_OUTPUTS, "tags": Output("array")},
}

# {{container.<field>}}: the container as it is when the step runs. The field
# naming the alert (the manifest's container key) is added by container_outputs().
CONTAINER_OUTPUTS: dict[str, Output] = {
    "name": Output("string"),
    "severity": Output("string"),
    "status": Output("string"),
    "source": Output("string"),
    "tags": Output("array"),
}



def container_outputs(manifest: Manifest | None = None) -> dict[str, Output]:
    """What ``{{container.<field>}}`` may name: the manifest's container key
    (the alert id, with its ``contains`` types) and :data:`CONTAINER_OUTPUTS`."""
    m = manifest or load_manifest()
    return {m.container_key: Output("string", m.container_contains), **CONTAINER_OUTPUTS}


class _Facts(NamedTuple):
    """What the checks need from the manifest about containers and alerts
    (the validator itself knows no API): the container's fields, its key and
    the alert fields ``{{trigger.alert.<field>}}`` may name."""

    container: dict[str, Output]
    key: str
    alert_fields: frozenset[str]

    @property
    def alert_ref(self) -> str:
        return "{{container." + self.key + "}}"


_DATA_TYPE_TO_SCHEMA = {
    "string": {"string"},
    "numeric": {"number", "integer"},
    "boolean": {"boolean"},
    "array": {"array"},
}


class Problem(NamedTuple):
    """One thing wrong with a playbook; ``str()`` is the one-line report."""

    source: str
    message: str
    step: str | None = None

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"


class Step(NamedTuple):
    """One validated step. ``raw`` is the step as written (layout included)."""

    id: str
    type: str
    parameters: dict[str, Any]
    action: str | None = None
    depends_on: tuple[str, ...] = ()
    when: Any = None
    on_failure: str = "stop"
    raw: dict[str, Any] | None = None


class Playbook(NamedTuple):
    """A validated playbook. ``steps`` are in file order, ``order`` in
    execution order (dependencies first, otherwise file order)."""

    name: str
    version: str
    description: str
    trigger: dict[str, Any]
    steps: tuple[Step, ...]
    source: str
    raw: dict[str, Any]

    def __repr__(self) -> str:
        return f"<Playbook {self.name} {self.version} from {self.source}: {len(self.steps)} steps>"

    @property
    def trigger_type(self) -> str:
        """``new_alert`` or ``manual``."""
        return str(self.trigger["type"])

    @property
    def filters(self) -> dict[str, list[str]]:
        """The new_alert filters (empty: every new alert)."""
        return dict(self.trigger.get("filters") or {})

    @property
    def order(self) -> list[Step]:
        """Steps in execution order."""
        by_id = {s.id: s for s in self.steps}
        return [by_id[i] for i in execution_order([(s.id, s.depends_on) for s in self.steps])]

    def step(self, step_id: str) -> Step:
        """The step called ``step_id`` (KeyError if there is none)."""
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)


class Reference(NamedTuple):
    """A ``{{root.path}}`` found in a step: ``root`` is ``container``,
    ``trigger`` or a step id; ``path`` the dot-separated rest."""

    root: str
    path: str
    whole: bool  # the string is exactly this reference (the value keeps its type)

    @property
    def text(self) -> str:
        return f"{self.root}.{self.path}"


# -- loading -------------------------------------------------------------------


def load_playbook(path: str | Path, *, manifest: Any = None) -> Playbook:
    """Read, validate and return the playbook at ``path``.

    Raises :class:`PlaybookError` with the first problem as one sentence (and
    how many more there are) if the file is missing, not JSON or invalid.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlaybookError(f"Playbook file {p} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "it is not UTF-8 text"
        raise PlaybookError(f"Playbook file {p} cannot be read: {reason}.") from None
    return parse_playbook(text, source=p.name, manifest=manifest)


def parse_playbook(text: str, *, source: str, manifest: Any = None) -> Playbook:
    """Parse and validate playbook JSON text; raise :class:`PlaybookError`."""
    data, problems = _parse_json(text, source)
    if not problems:
        problems = validate_playbook(data, source=source, manifest=manifest)
    if problems:
        raise _error(problems)
    return _build(data, source)


def validate_playbook_file(path: str | Path, *, manifest: Any = None,
                           api_source: str | None = None, enriched: bool = False) -> list[Problem]:
    """Every problem of the playbook file at ``path`` (empty when valid);
    ``api_source``/``enriched`` as in :func:`validate_playbook`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [Problem(p.name, "the file does not exist; check the path.")]
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "it is not UTF-8 text"
        return [Problem(p.name, f"the file cannot be read: {reason}.")]
    data, problems = _parse_json(text, p.name)
    return problems or validate_playbook(data, source=p.name, manifest=manifest, api_source=api_source,
                                         enriched=enriched)


def _error(problems: list[Problem]) -> PlaybookError:
    text = str(problems[0])
    if len(problems) > 1:
        more = len(problems) - 1
        text = text.rstrip(".") + f" (and {more} more problem{'s' if more > 1 else ''}; " \
            "'mde-connector playbook validate FILE' lists them all)."
    return PlaybookError(text)


def _parse_json(text: str, source: str) -> tuple[Any, list[Problem]]:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise _DuplicateKey(key)
            out[key] = value
        return out

    try:
        return json.loads(text, object_pairs_hook=no_duplicates), []
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        return None, [Problem(source, f"the file is not valid JSON at {where}: {exc.msg}.")]
    except _DuplicateKey as exc:
        return None, [Problem(source, f"the file is not valid: the key '{exc.args[0]}' appears twice in one object; "
                                      "keep one of them.")]
    except RecursionError:
        return None, [Problem(source, "the file is nested too deeply to be a playbook.")]


class _DuplicateKey(ValueError):
    pass


def _build(data: dict[str, Any], source: str) -> Playbook:
    steps = tuple(
        Step(
            id=s["id"],
            type=s["type"],
            parameters=dict(s.get("parameters") or {}),
            action=s.get("action"),
            depends_on=tuple(s.get("depends_on") or ()),
            when=s.get("when"),
            on_failure=s.get("on_failure", "stop"),
            raw=s,
        )
        for s in data["steps"]
    )
    return Playbook(name=data["name"], version=data["version"], description=data.get("description", ""),
                    trigger=data["trigger"], steps=steps, source=source, raw=data)


# -- validation ----------------------------------------------------------------


def playbook_schema() -> dict[str, Any]:
    """The playbook JSON Schema (loaded once)."""
    if not _SCHEMA_CACHE:
        _SCHEMA_CACHE.append(json.loads(_SCHEMA_PATH.read_text(encoding="utf-8")))
    return _SCHEMA_CACHE[0]


def validate_playbook(data: Any, *, source: str, manifest: Any = None,
                      api_source: str | None = None, enriched: bool = False) -> list[Problem]:
    """Every problem of a parsed playbook (empty list: valid).

    ``api_source`` (``defender`` or ``graph``, the configuration key
    ``source``) limits action outputs to those that source yields, with
    ``enriched`` for ``enrich_files``; None accepts every declared output.

    ``source`` names the playbook in messages (usually the file name);
    ``manifest`` defaults to the packaged one. Schema problems are reported
    alone: the other checks need a well-formed document.
    """
    problems = _schema_problems(data, source)
    if problems:
        return problems
    if manifest is None:
        manifest = load_manifest()
    return _semantic_problems(data, source, manifest, api_source=api_source, enriched=enriched)


def _schema_problems(data: Any, source: str) -> list[Problem]:
    from connector import validation

    # The shipped schema is trusted here (a test checks it against the metaschema).
    validator = validation.compile_validator(playbook_schema(), key="playbook", check_schema=False)
    if validator.is_valid(data):
        return []
    from jsonschema.exceptions import best_match  # type: ignore[import-untyped]

    problems: list[Problem] = []
    seen: set[str] = set()
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    for error in errors:
        leaf = best_match([error])
        p = validation.explain(leaf, subject="Playbook field")
        path = list(p.path)
        step_name: str | None = None
        if len(path) >= 2 and path[0] == "steps" and isinstance(path[1], int):
            step_name = _step_id(data, path[1])
            label = f"'{step_name}'" if step_name else f"#{path[1] + 1}"
            field_path = validation.format_path(path[2:])
            head = f"step {label}" + (f" field '{field_path}'" if field_path else "")
        elif path:
            head = f"field '{validation.format_path(path)}'"
        else:
            head = "the playbook"
        text = f"{head} {p.problem}"
        if p.fix:
            text += f"; {p.fix}"
        text = text.rstrip(".") + "."
        if text not in seen:
            seen.add(text)
            problems.append(Problem(source, text, step_name))
    return problems


def _step_id(data: Any, index: int) -> str | None:
    try:
        sid = data["steps"][index]["id"]
    except (KeyError, IndexError, TypeError):
        return None
    return sid if isinstance(sid, str) and sid else None


def execution_order(steps: list[tuple[str, tuple[str, ...] | list[str]]]) -> list[str]:
    """Step ids in execution order: every step after its dependencies, ties
    broken by file order. Steps in a cycle, depending on a missing step or
    on such a step are left out (validation reports them)."""
    index = {sid: i for i, (sid, _) in enumerate(steps)}
    waiting: dict[str, set[str]] = {}
    dependants: dict[str, list[str]] = {sid: [] for sid, _ in steps}
    for sid, deps in steps:
        waiting[sid] = set(deps)
        for dep in deps:
            if dep in dependants:
                dependants[dep].append(sid)
    ready = [(index[sid], sid) for sid, deps in waiting.items() if not deps]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, sid = heapq.heappop(ready)
        order.append(sid)
        for child in dependants[sid]:
            waiting[child].discard(sid)
            if not waiting[child]:
                heapq.heappush(ready, (index[child], child))
    return order


def substitute(template: str, render: Callable[[Reference], str]) -> str:
    """``template`` with each well-formed ``{{root.path}}`` replaced by
    ``render(reference)``, in one pass: the replacement text is never scanned
    again, so braces in a value (an alert title from the API) stay literal.
    Malformed ``{{...}}`` are left as written."""

    def one(match: re.Match[str]) -> str:
        inner = match.group(1).strip()
        if not _REFERENCE_RE.match(inner):
            return match.group(0)
        root, _, path = inner.partition(".")
        return render(Reference(root, path, False))

    return _CANDIDATE_RE.sub(one, template)


def find_references(value: Any) -> Iterator[tuple[str, Reference | None]]:
    """Every ``{{...}}`` in the strings of ``value`` (recursively) as
    ``(text, Reference)``; the Reference is None when the text is malformed.
    A string with ``{{`` but no matching ``}}`` yields ``(string, None)``."""
    if isinstance(value, str):
        if "{{" not in value and "}}" not in value:
            return
        whole = _WHOLE_RE.match(value) is not None
        for m in _CANDIDATE_RE.finditer(value):
            inner = m.group(1).strip()
            if _REFERENCE_RE.match(inner):
                root, _, path = inner.partition(".")
                yield m.group(0), Reference(root, path, whole)
            else:
                yield m.group(0), None
        rest = _CANDIDATE_RE.sub("", value)
        if "{{" in rest or "}}" in rest:
            yield value, None
    elif isinstance(value, dict):
        for v in value.values():
            yield from find_references(v)
    elif isinstance(value, list):
        for v in value:
            yield from find_references(v)


def action_outputs(spec: Any, api_source: str | None = None, enriched: bool = False) -> dict[str, Output]:
    """An action's declared outputs as reference paths (``action_result.``
    removed): ``{"summary.unsigned": Output("numeric"), ...}``; with
    ``api_source``, only those that source yields."""
    out: dict[str, Output] = {}
    kept = spec.output_paths_for(api_source, enriched=enriched) if api_source else None
    for o in spec.outputs:
        path = str(o["data_path"])
        if kept is not None and path not in kept:
            continue
        if path.startswith("action_result."):
            path = path[len("action_result."):]
        out[path] = Output(str(o.get("data_type", "string")), tuple(o.get("contains") or ()))
    return out


def _semantic_problems(data: dict[str, Any], source: str, manifest: Any, *,
                       api_source: str | None = None, enriched: bool = False) -> list[Problem]:
    problems: list[Problem] = []

    def report(step: str | None, message: str) -> None:
        problem = Problem(source, message, step)
        if problem not in problems:
            problems.append(problem)

    steps: list[dict[str, Any]] = data["steps"]
    ids = [s["id"] for s in steps]
    known = ", ".join(dict.fromkeys(ids))

    # Unique ids.
    first_at: dict[str, int] = {}
    for i, sid in enumerate(ids):
        if sid in first_at:
            report(sid, f"step '{sid}' (step #{i + 1}) reuses the id of step #{first_at[sid] + 1}; "
                        "give each step a unique id.")
        else:
            first_at[sid] = i
    unique = {sid: steps[i] for sid, i in first_at.items()}

    # Dependencies: missing steps, cycles, steps that can never run.
    broken: set[str] = set()
    for sid, step in unique.items():
        for dep in step.get("depends_on") or ():
            if dep not in unique:
                hint = _did_you_mean(dep, list(unique))
                report(sid, f"step '{sid}' depends on unknown step '{dep}'{hint} and could never run; "
                            f"known steps: {known}.")
                broken.add(sid)
    graph = {sid: [d for d in (s.get("depends_on") or ()) if d in unique] for sid, s in unique.items()}
    for cycle in _cycles(graph, list(unique)):
        path = " -> ".join(f"'{c}'" for c in cycle + [cycle[0]])
        report(cycle[0], f"step '{cycle[0]}' is in a depends_on cycle ({path}); remove one of these dependencies.")
        broken.update(cycle)
    order = execution_order([(sid, tuple(s.get("depends_on") or ())) for sid, s in unique.items()])
    runnable = set(order)
    for sid in unique:
        if sid not in runnable and sid not in broken:
            blockers = [d for d in graph[sid] if d not in runnable]
            report(sid, f"step '{sid}' can never run: it depends on '{blockers[0]}', which can never run; "
                        "fix that step or remove the dependency.")
    position = {sid: i for i, sid in enumerate(order)}
    ancestors = _ancestors(graph)

    outputs: dict[str, dict[str, Output]] = {}
    for sid, step in unique.items():
        if step["type"] == "action":
            try:
                spec = manifest.action(step["action"])
            except Exception:  # noqa: BLE001 - InputError: unknown action, reported below
                spec = None
            outputs[sid] = action_outputs(spec, api_source, enriched) if spec is not None else {}
        else:
            outputs[sid] = BUILTIN_OUTPUTS[step["type"]]

    trigger_type = data["trigger"]["type"]
    facts = _Facts(container_outputs(manifest), manifest.container_key, manifest.alert_fields(api_source))
    for sid, step in unique.items():
        spec = None
        if step["type"] == "action":
            spec = _check_action(step, manifest, report, facts)

        def check_ref(ref: Reference, where: str, *, sid: str = sid) -> Output | None:
            return _check_reference(ref, where, sid, unique, outputs, position, ancestors, trigger_type, report,
                                    facts)

        # References in parameters (with contains/type checks for actions).
        params = step.get("parameters") or {}
        props = spec.parameters_schema.get("properties", {}) if spec is not None else {}
        for name, value in params.items():
            for text, ref in find_references(value):
                if ref is None:
                    report(sid, f"step '{sid}' parameter '{name}' has a malformed reference {_short(text)}; "
                                f"write {{{{step_id.data.path}}}}, {facts.alert_ref} or {{{{trigger.alert.<field>}}}}.")
                    continue
                declared = check_ref(ref, f"parameter '{name}'")
                if declared is None or name not in props:
                    continue
                _check_binding(sid, name, props[name], ref, declared, report, facts)
        if step.get("when") is not None:
            for text, ref in find_references(step["when"]):
                if ref is None:
                    report(sid, f"step '{sid}' condition 'when' has a malformed reference {_short(text)}; "
                                "write {{step_id.data.path}}.")
                else:
                    check_ref(ref, "condition 'when'")
    return problems


def _check_action(step: dict[str, Any], manifest: Any, report: Any, facts: _Facts) -> Any:
    sid, name = step["id"], step["action"]
    try:
        spec = manifest.action(name)
    except Exception:  # noqa: BLE001 - InputError from the manifest: unknown action
        names = [a.name for a in manifest.actions]
        hint = _did_you_mean(name, names)
        report(sid, f"step '{sid}' calls unknown action '{name}'{hint}; known actions: {', '.join(names)}.")
        return None
    schema = spec.parameters_schema
    props: dict[str, Any] = schema.get("properties", {})
    params: dict[str, Any] = step.get("parameters") or {}
    for required in schema.get("required", []):
        if required not in params and "default" not in props.get(required, {}):
            example = (props.get(required, {}).get("examples") or [None])[0]
            bind = facts.alert_ref if required == facts.key else (example or "a value")
            report(sid, f"step '{sid}' does not bind the required parameter '{required}' of {spec.name}; "
                        f"add \"{required}\": \"{bind}\" to its parameters.")
    if schema.get("additionalProperties") is False:
        for given in params:
            if given not in props:
                hint = _did_you_mean(given, list(props))
                accepted = ", ".join(props) or "none"
                report(sid, f"step '{sid}' passes unknown parameter '{given}'{hint} to {spec.name}; "
                            f"accepted parameters: {accepted}.")
    # Literal values (no references) must already satisfy the parameter's schema.
    from connector import validation

    clean_props = spec.validation_schema().get("properties", {})
    for given, value in params.items():
        if given not in clean_props or any(True for _ in find_references(value)):
            continue
        value = value.strip() if isinstance(value, str) else value
        error = validation.find_error(
            validation.compile_validator(clean_props[given], key=f"playbook-param:{spec.name}:{given}"), value)
        if error is not None:
            p = validation.explain(error, subject="Parameter")
            fix = f"; {p.fix}" if p.fix else ""
            report(sid, f"step '{sid}' parameter '{given}' {p.problem}{fix}".rstrip(".") + ".")
    return spec


def _check_reference(ref: Reference, where: str, sid: str, steps: dict[str, dict[str, Any]],
                     outputs: dict[str, dict[str, Output]], position: dict[str, int],
                     ancestors: dict[str, set[str]], trigger_type: str, report: Any, facts: _Facts) -> Output | None:
    text = "{{" + ref.text + "}}"
    if ref.root == "container":
        declared = facts.container.get(ref.path)
        if declared is None:
            report(sid, f"step '{sid}' {where} references {text}, which the container does not have; "
                        f"use one of: {', '.join('container.' + k for k in facts.container)}.")
        return declared
    if ref.root == "trigger":
        parts = ref.path.split(".")
        if trigger_type != "new_alert":
            report(sid, f"step '{sid}' {where} references {text}, but a manual playbook has no triggering "
                        f"alert; use {facts.alert_ref} or set the trigger type to new_alert.")
            return None
        if len(parts) < 2 or parts[0] != "alert" or parts[1] not in facts.alert_fields:
            hint = _did_you_mean(parts[1], sorted(facts.alert_fields)) if len(parts) >= 2 else ""
            report(sid, f"step '{sid}' {where} references {text}, which is not an alert field{hint}; "
                        "write {{trigger.alert.<field>}} with a Defender alert field such as severity or title.")
            return None
        if parts[1] == "id" and len(parts) == 2:
            return facts.container[facts.key]
        return Output("array" if "*" in parts else "any")
    if ref.root not in steps:
        hint = _did_you_mean(ref.root, list(steps))
        report(sid, f"step '{sid}' {where} references unknown step '{ref.root}'{hint} in {text}; "
                    f"known steps: {', '.join(steps)}.")
        return None
    if ref.root == sid:
        report(sid, f"step '{sid}' {where} references its own output {text}; reference an earlier step.")
        return None
    # Order is only meaningful between steps that can run (the rest is reported).
    earlier = ref.root in ancestors.get(sid, set()) or (
        ref.root in position and sid in position and position[ref.root] < position[sid])
    if not earlier and ref.root in position and sid in position:
        report(sid, f"step '{sid}' {where} references step '{ref.root}', which runs after it; "
                    f"move '{ref.root}' before '{sid}' or add it to depends_on.")
        return None
    declared = outputs[ref.root].get(ref.path)
    if declared is None:
        target = steps[ref.root]
        what = f"action {target['action']}" if target["type"] == "action" else f"a {target['type']} step"
        choices = list(outputs[ref.root])
        if not choices:  # unknown action: already reported at that step
            return None
        hint = _did_you_mean(ref.path, choices)
        sample = ", ".join(choices[:8]) + (f" and {len(choices) - 8} more" if len(choices) > 8 else "")
        report(sid, f"step '{sid}' {where} references {text}, a data path {what} does not declare{hint}; "
                    f"declared paths of '{ref.root}': {sample}.")
    return declared


def _check_binding(sid: str, name: str, prop: dict[str, Any], ref: Reference, declared: Output,
                   report: Any, facts: _Facts) -> None:
    wanted = tuple(prop.get("contains") or ())
    text = "{{" + ref.text + "}}"
    if wanted and not set(wanted) & set(declared.contains):
        got = ", ".join(declared.contains) if declared.contains else "no contains type"
        report(sid, f"step '{sid}' binds {text} ({got}) to parameter '{name}', which needs "
                    f"{' or '.join(wanted)}; bind a data path that contains {wanted[0]}, e.g. "
                    f"{facts.alert_ref}.")
        return
    if not ref.whole:
        return
    types = prop.get("type")
    accepted = {types} if isinstance(types, str) else set(types or ())
    produced = {"array"} if "*" in ref.path.split(".") else _DATA_TYPE_TO_SCHEMA.get(declared.data_type)
    if accepted and produced and not (accepted & produced) and not ("integer" in produced and "number" in accepted):
        what = "a list" if "array" in produced else f"a {declared.data_type} value"
        report(sid, f"step '{sid}' binds {text}, which yields {what}, to parameter '{name}', which takes "
                    f"{' or '.join(sorted(accepted))}; bind a single value of that type.")


def _ancestors(graph: dict[str, list[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}

    def visit(sid: str, trail: frozenset[str]) -> set[str]:
        if sid in out:
            return out[sid]
        acc: set[str] = set()
        for dep in graph.get(sid, ()):
            if dep in trail:
                continue
            acc.add(dep)
            acc |= visit(dep, trail | {dep})
        out[sid] = acc
        return acc

    for sid in graph:
        visit(sid, frozenset({sid}))
    return out


def _cycles(graph: dict[str, list[str]], ids: list[str]) -> list[list[str]]:
    """One cycle per strongly connected component that has one (file order)."""
    index_of = {sid: i for i, sid in enumerate(ids)}
    # Tarjan's algorithm, iterative enough for <= 200 steps.
    counter = [0]
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                components.append(comp)

    for sid in ids:
        if sid not in index:
            strong(sid)
    cycles = []
    for comp in sorted(components, key=lambda c: min(index_of[s] for s in c)):
        members = set(comp)
        start = min(comp, key=lambda s: index_of[s])
        # Walk inside the component from the first step back to it.
        path, current, seen = [start], start, {start}
        while True:
            nxt = min((w for w in graph[current] if w in members), key=lambda s: index_of[s])
            if nxt == start or nxt in seen:
                break
            path.append(nxt)
            seen.add(nxt)
            current = nxt
        if nxt != start:
            path = path[path.index(nxt):]
        cycles.append(path)
    return cycles


def _did_you_mean(word: str, choices: list[str]) -> str:
    import difflib

    hits = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean '{hits[0]}'?)" if hits else ""


def _short(text: str, limit: int = 60) -> str:
    from connector.validation import quote_value

    return quote_value(text, limit)

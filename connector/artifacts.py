"""Turn the files related to an alert into SOAR artifacts (pure functions).

``build_artifacts(alert_id, files)`` maps the ``value`` list of
``GET /api/alerts/{id}/files`` into one artifact per distinct file, driven by
the ``artifacts`` section the manifest declares for
``get_alert_related_files`` (its ``cef_mapping`` says which File field feeds
which CEF key, with which value type and ``contains`` types)::

    result = build_artifacts("636688558380765161_2136280442", response["value"])
    result.artifacts[0]["cef"]["fileHashSha256"]  # 'dcd71ef5...'
    result.summary["highest_severity"]             # 'informational'

Rules, in the order a caller meets them:

* **Distinct files.** A file is identified by its sha256, else sha1, else md5
  (``identity_fields``; valid hex only, lowercased). Records sharing a hash
  (and not contradicting each other on another hash) are one file: they
  collapse into one artifact, the first valid value of each field winning.
  A record without any valid hash is identified by a digest of its canonical
  JSON (volatile prevalence fields left out so re-runs agree).
* **Clean values.** null, missing, empty and whitespace-only values are absent
  from ``cef`` (never ``"None"`` or ``""``). A value of the wrong type or shape
  (a hash that is not hex of the right length, a size that is not a
  non-negative integer, a certificate flag that is not a boolean, an object
  where a string belongs) is dropped, never stringified, and counted in
  ``summary["dropped_values"]``. Strings longer than ``max_string_length``
  (1,024) are cut, ending with an ellipsis, and counted in
  ``truncated_values``. Non-ASCII text and U+FFFD are kept as received.
* **Verdict.** Each file gets flags (``tags``), a ``verdict`` string and a
  ``severity``:

  ===================== ============================================ ========
  flag                  when                                         severity
  ===================== ============================================ ========
  malware               determinationType is Malware                 high
  pua                   determinationType is Pua                     medium
  invalid_certificate   signed, and isValidCertificate is false      medium
  unsigned              no signer                                    low
  rare                  globalPrevalence < RARE_PREVALENCE (10)      low
  unknown_prevalence    no globalPrevalence                          (none)
  ===================== ============================================ ========

  Severity is the highest among the flags, else ``informational``; the
  verdict is the flags joined by ", ", or ``"no findings"``.
* **Stable identifiers.** ``source_data_identifier`` is
  ``mde:{alert_id}:file:{identity}``: the same on every run, different per
  alert and per file, so a platform de-duplicates re-ingested artifacts.

Nothing here does I/O beyond reading the packaged manifest once when no
mapping is passed.
"""

from __future__ import annotations

import gc
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from connector.manifest import load_manifest
from connector.severity import SCALE

__all__ = [
    "MappingResult",
    "RARE_PREVALENCE",
    "SEVERITY_ORDER",
    "SUMMARY_KEYS",
    "build_artifacts",
    "default_mapping",
]

#: Files seen on fewer machines than this, organisation-wide, are flagged
#: ``rare``: a binary on a handful of machines deserves a look, one on
#: thousands is most likely a known line-of-business or OS file.
RARE_PREVALENCE = 10

#: Default cap on string values, if the mapping declares none.
MAX_STRING_LENGTH = 1024

#: Artifact severities from lowest to highest (the one scale, :mod:`connector.severity`).
SEVERITY_ORDER = SCALE

#: Keys of ``MappingResult.summary``, each declared as an output data path
#: ``action_result.summary.<key>`` in the manifest.
SUMMARY_KEYS = (
    "total_files",
    "distinct_files",
    "duplicates_collapsed",
    "files_without_hash",
    "unsigned",
    "invalid_certificate",
    "rare",
    "unknown_prevalence",
    "pua",
    "malware",
    "highest_severity",
    "dropped_values",
    "truncated_values",
)

_FLAG_SEVERITY = {
    "malware": "high",
    "pua": "medium",
    "invalid_certificate": "medium",
    "unsigned": "low",
    "rare": "low",
    "unknown_prevalence": "informational",
}
_RANK = {name: i for i, name in enumerate(SEVERITY_ORDER)}

# Value kinds (the manifest's value_type), as small ints for a cheap dispatch.
_STR, _INT, _BOOL, _HEX, _DATETIME = range(5)
_HEX_LENGTHS = {
    "md5": frozenset({32}),
    "sha1": frozenset({40}),
    "sha256": frozenset({64}),
    "hash": frozenset({32, 40, 64, 128}),
}
_KINDS = {"string": _STR, "integer": _INT, "boolean": _BOOL, "datetime": _DATETIME}
_HEX_DIGITS = "0123456789abcdef"

# Fields the verdict reads, with the kind used when the mapping does not map
# them (the verdict must not depend on which CEF keys a manifest chooses).
_VERDICT_FIELDS = {
    "signer": _STR,
    "isValidCertificate": _BOOL,
    "globalPrevalence": _INT,
    "determinationType": _STR,
    "determinationValue": _STR,
}
# Left out of the no-hash digest: they change between runs for the same file.
_VOLATILE_FIELDS = frozenset({"globalPrevalence", "globalLastObserved"})


class MappingResult:
    """Artifacts (one dict per distinct file, in first-seen order) and the
    summary counters (keys: :data:`SUMMARY_KEYS`)."""

    __slots__ = ("artifacts", "summary")

    def __init__(self, artifacts: list[dict[str, Any]], summary: dict[str, Any]) -> None:
        self.artifacts = artifacts
        self.summary = summary

    def __repr__(self) -> str:
        return f"MappingResult({len(self.artifacts)} artifacts, summary={self.summary!r})"


class _Plan:
    """A declared artifact mapping, compiled once for the per-file loop."""

    def __init__(self, mapping: Mapping[str, Any]) -> None:
        self.label: str = mapping.get("label", "file")
        self.type: str = mapping.get("type", "file")
        self.sdi_template: str = mapping.get("source_data_identifier", "mde:{alert_id}:file:{identity}")
        self.max_len: int = int(mapping.get("max_string_length", MAX_STRING_LENGTH))
        cef_mapping: Mapping[str, Any] = mapping.get("cef_mapping") or {}
        # source field -> (kind, accepted hex lengths or None)
        fields: dict[str, tuple[int, frozenset[int] | None]] = {}
        # (cef key, source field or None for the verdict, contains list)
        cef: list[tuple[str, str | None, tuple[str, ...]]] = []
        for key, entry in cef_mapping.items():
            value_type = entry.get("value_type", "string")
            contains = tuple(entry.get("contains") or ())
            if entry.get("derived"):
                cef.append((key, None, contains))
                continue
            source = entry["source"]
            if value_type in _HEX_LENGTHS:
                fields.setdefault(source, (_HEX, _HEX_LENGTHS[value_type]))
            else:
                fields.setdefault(source, (_KINDS.get(value_type, _STR), None))
            cef.append((key, source, contains))
        self.identity: tuple[str, ...] = tuple(mapping.get("identity_fields") or ("sha256", "sha1", "md5"))
        for source in self.identity:
            if source not in fields:
                fields[source] = (_HEX, _HEX_LENGTHS.get(source, _HEX_LENGTHS["hash"]))
        for source, kind in _VERDICT_FIELDS.items():
            fields.setdefault(source, (kind, None))
        self.by_kind = (
            tuple(s for s, (k, _) in fields.items() if k == _STR),
            tuple((s, lens or frozenset()) for s, (k, lens) in fields.items() if k == _HEX),
            tuple(s for s, (k, _) in fields.items() if k == _INT),
            tuple(s for s, (k, _) in fields.items() if k == _BOOL),
            tuple(s for s, (k, _) in fields.items() if k == _DATETIME),
        )
        # Mapped keys keep the declared order; derived keys (the verdict) follow.
        self.cef_sources = tuple((k, s) for k, s, _ in cef if s is not None)
        self.derived_keys = tuple(k for k, s, _ in cef if s is None)
        self.typed_keys = tuple((k, c) for k, _, c in cef if c)


_PLANS: dict[int, tuple[Mapping[str, Any], _Plan]] = {}


def _plan_for(mapping: Mapping[str, Any] | None) -> _Plan:
    if mapping is None:
        mapping = default_mapping()
    entry = _PLANS.get(id(mapping))
    if entry is not None and entry[0] is mapping:
        return entry[1]
    plan = _Plan(mapping)
    _PLANS[id(mapping)] = (mapping, plan)  # keeps `mapping` alive: id stays unique
    return plan


def default_mapping() -> Mapping[str, Any]:
    """The ``artifacts`` section of ``get_alert_related_files`` in the
    packaged manifest (loaded once)."""
    mapping = load_manifest().action("get_alert_related_files").artifact_mapping
    if mapping is None:  # pragma: no cover - the manifest schema guarantees it
        raise LookupError("get_alert_related_files declares no artifact mapping")
    return mapping


def build_artifacts(
    alert_id: str,
    files: Iterable[Mapping[str, Any]],
    mapping: Mapping[str, Any] | None = None,
) -> MappingResult:
    """Map File records related to ``alert_id`` into artifacts.

    ``files``: the API's ``value`` items as received (any field may be null,
    missing or of the wrong type; items that are not objects are skipped and
    counted in ``dropped_values``). ``mapping``: an action's declared
    ``artifacts`` section; None uses the packaged manifest's. The inputs are
    not modified. See the module docstring for the rules.
    """
    plan = _plan_for(mapping)
    # The mapping allocates a few small containers per file and creates no
    # reference cycles, so the cyclic GC's passes over them are pure overhead
    # (about a third of the run time); pause it and restore the caller's state.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _build(str(alert_id), plan, files)
    finally:
        if gc_was_enabled:
            gc.enable()


def _build(alert_id: str, plan: _Plan, files: Iterable[Mapping[str, Any]]) -> MappingResult:
    max_len = plan.max_len
    identity_fields = plan.identity

    groups: list[dict[str, Any]] = []  # merged normalised values per distinct file
    keys: list[str | None] = []  # digest identity for files without a hash
    index: dict[str, int] = {}  # any valid hash (or digest) -> group number
    total = dropped = truncated = duplicates = 0

    str_fields, hex_fields, int_fields, bool_fields, time_fields = plan.by_kind
    for record in files:
        total += 1
        if type(record) is not dict and not isinstance(record, Mapping):
            dropped += 1
            continue
        get = record.get
        norm: dict[str, Any] = {}
        # One loop per value kind: cheaper than dispatching on the kind per
        # field, and this loop is the whole cost of the mapping.
        for source in str_fields:
            value = get(source)
            if value is None:
                continue
            if type(value) is not str:
                dropped += 1
            elif value and not value.isspace():
                if len(value) > max_len:
                    value = value[: max_len - 1] + "\u2026"
                    truncated += 1
                norm[source] = value
        for source, lengths in hex_fields:
            value = get(source)
            if value is None:
                continue
            if type(value) is not str:
                dropped += 1
            elif value:
                if len(value) in lengths:
                    value = value.lower()
                    if not value.strip(_HEX_DIGITS):  # nothing but hex digits
                        norm[source] = value
                        continue
                dropped += 1
        for source in int_fields:
            value = get(source)
            if value is None:
                continue
            if type(value) is int and value >= 0:  # bool is not int here
                norm[source] = value
            else:
                dropped += 1
        for source in bool_fields:
            value = get(source)
            if value is None:
                continue
            if type(value) is bool:
                norm[source] = value
            else:
                dropped += 1
        for source in time_fields:
            # ISO 8601 text as the API sends it, kept verbatim.
            value = get(source)
            if value is None:
                continue
            if type(value) is not str:
                dropped += 1
            elif value:
                if 10 <= len(value) <= max_len and value[4] == "-" and value[:4].isdigit():
                    norm[source] = value
                else:
                    dropped += 1

        gid = None
        hashed = False
        for source in identity_fields:
            h = norm.get(source)
            if h is not None:
                hashed = True
                g = index.get(h)
                if g is not None and _compatible(groups[g], norm, identity_fields):
                    gid = g
                    break
        if not hashed:
            digest = _digest(record)
            gid = index.get(digest)
            if gid is None:
                index[digest] = len(groups)
                keys.append(digest)
                groups.append(norm)
                continue
        if gid is None:
            gid = len(groups)
            groups.append(norm)
            keys.append(None)
        else:
            duplicates += 1
            merged = groups[gid]
            for k, v in norm.items():
                if k not in merged:
                    merged[k] = v
            norm = merged
        for source in identity_fields:
            h = norm.get(source)
            if h is not None and h not in index:
                index[h] = gid

    return _finish(alert_id, plan, groups, keys, total, duplicates, dropped, truncated)


def _finish(
    alert_id: str,
    plan: _Plan,
    groups: list[dict[str, Any]],
    keys: list[str | None],
    total: int,
    duplicates: int,
    dropped: int,
    truncated: int,
) -> MappingResult:
    counts = dict.fromkeys(_FLAG_SEVERITY, 0)
    highest = -1
    without_hash = 0
    artifacts: list[dict[str, Any]] = []
    sdi_prefix, sdi_suffix = _split_template(plan.sdi_template, alert_id)
    label, typ, identity_fields = plan.label, plan.type, plan.identity
    cef_sources, derived_keys, typed_keys = plan.cef_sources, plan.derived_keys, plan.typed_keys

    for norm, digest in zip(groups, keys, strict=True):
        identity = None
        for source in identity_fields:
            identity = norm.get(source)
            if identity is not None:
                break
        if identity is None:
            without_hash += 1
            identity = f"nohash-{digest}"
            short = f"without hash {digest[:8]}\u2026" if digest else "without hash"
        else:
            short = identity[:12] + "\u2026"

        flags = []
        determination = norm.get("determinationType")
        determination = determination.lower() if determination else None
        if determination == "malware":
            flags.append("malware")
        elif determination == "pua":
            flags.append("pua")
        signer = norm.get("signer")
        if signer is None:
            flags.append("unsigned")
        elif norm.get("isValidCertificate") is False:
            flags.append("invalid_certificate")
        prevalence = norm.get("globalPrevalence")
        if prevalence is None:
            flags.append("unknown_prevalence")
        elif prevalence < RARE_PREVALENCE:
            flags.append("rare")
        flags.sort(key=_flag_order)

        rank = 0
        for flag in flags:
            counts[flag] += 1
            r = _RANK[_FLAG_SEVERITY[flag]]
            if r > rank:
                rank = r
        if rank > highest:
            highest = rank
        verdict = ", ".join(flags) if flags else "no findings"

        threat = norm.get("determinationValue")
        if threat and determination in ("malware", "pua"):
            who = _clip(threat, 40)
        elif signer is not None:
            who = _clip(signer, 40)
        else:
            who = "unsigned"

        cef = {key: norm[source] for key, source in cef_sources if source in norm}
        for key in derived_keys:
            cef[key] = verdict
        cef_types = {key: list(contains) for key, contains in typed_keys if key in cef}

        artifacts.append(
            {
                "name": f"{who} file {short}",
                "label": label,
                "type": typ,
                "severity": SEVERITY_ORDER[rank],
                "source_data_identifier": f"{sdi_prefix}{identity}{sdi_suffix}",
                "container": alert_id,
                "cef": cef,
                "cef_types": cef_types,
                "tags": flags,
                "verdict": verdict,
            }
        )

    summary = {
        "total_files": total,
        "distinct_files": len(artifacts),
        "duplicates_collapsed": duplicates,
        "files_without_hash": without_hash,
        "unsigned": counts["unsigned"],
        "invalid_certificate": counts["invalid_certificate"],
        "rare": counts["rare"],
        "unknown_prevalence": counts["unknown_prevalence"],
        "pua": counts["pua"],
        "malware": counts["malware"],
        "highest_severity": SEVERITY_ORDER[highest] if highest >= 0 else "none",
        "dropped_values": dropped,
        "truncated_values": truncated,
    }
    return MappingResult(artifacts=artifacts, summary=summary)


_FLAG_POSITION = {name: i for i, name in enumerate(_FLAG_SEVERITY)}


def _flag_order(flag: str) -> int:
    return _FLAG_POSITION[flag]


def _compatible(merged: Mapping[str, Any], norm: Mapping[str, Any], fields: tuple[str, ...]) -> bool:
    # Two records sharing one hash are the same file unless another hash of
    # the same kind differs (contradictory data: keep them apart).
    for source in fields:
        a = merged.get(source)
        if a is not None:
            b = norm.get(source)
            if b is not None and a != b:
                return False
    return True


def _digest(record: Mapping[str, Any]) -> str:
    stable = {k: v for k, v in record.items() if k not in _VOLATILE_FIELDS}
    text = json.dumps(stable, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _split_template(template: str, alert_id: str) -> tuple[str, str]:
    # Pre-split "mde:{alert_id}:file:{identity}" once per call, so the
    # per-file cost is one f-string (and an alert id holding braces is safe).
    head, _, tail = template.partition("{identity}")
    return head.replace("{alert_id}", alert_id), tail.replace("{alert_id}", alert_id)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"

"""The one severity scale and the one alert -> container mapping.

::

    SCALE                                   # ('informational', 'low', 'medium', 'high')
    rank("medium") > rank("low")            # True; unknown values rank lowest
    normalise("High")                       # 'high'; None for a value off the scale
    container_fields("da1_1", alert)        # ContainerFields(name=..., severity=..., status=...)

Artifacts, containers, playbook steps, the store's "severity only rises"
rule and the CLI's sorting all use this scale. Pure: data in, data out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

__all__ = [
    "DEFAULT",
    "NAME_LIMIT",
    "SCALE",
    "ContainerFields",
    "container_fields",
    "highest",
    "normalise",
    "rank",
]

#: Severities from lowest to highest (artifacts, containers, ``set_severity``).
SCALE: tuple[str, ...] = ("informational", "low", "medium", "high")
#: What a container or artifact gets when nothing says otherwise.
DEFAULT = "informational"
#: Longest container name kept from an alert's title (characters).
NAME_LIMIT = 200

_RANK = {name: index for index, name in enumerate(SCALE)}


def rank(severity: object) -> int:
    """The position of ``severity`` on :data:`SCALE` (0 = informational);
    a value off the scale ranks with informational, so it never raises one."""
    return _RANK.get(severity, 0) if isinstance(severity, str) else 0


def normalise(value: object) -> str | None:
    """``value`` as a scale name (case and surrounding space ignored), or None
    when it is not on the scale (Defender's ``UnSpecified``, Graph's
    ``unknown``, anything else)."""
    if not isinstance(value, str):
        return None
    name = value.strip().lower()
    return name if name in _RANK else None


def highest(severities: Iterable[object]) -> str | None:
    """The highest scale name among ``severities`` (values off the scale count
    as informational), or None when there is none."""
    ranks = [rank(s) for s in severities]
    return SCALE[max(ranks)] if ranks else None


class ContainerFields(NamedTuple):
    """What a container takes from its alert: the store columns ``name``,
    ``severity`` and ``status``."""

    name: str
    severity: str
    status: str


def container_fields(alert_id: str, alert: Mapping[str, object]) -> ContainerFields:
    """The container of ``alert`` (a Defender or Graph alert entity, any shape).

    - ``name``: the alert's title cut to :data:`NAME_LIMIT` characters, or
      ``Defender alert <id>`` when it has none;
    - ``severity``: the alert's severity on :data:`SCALE` (any case), else
      ``informational`` (``UnSpecified``, Graph's ``unknown``, missing);
    - ``status``: the alert's status in lower case (``new``, ``inprogress``,
      ``resolved``), ``new`` when missing.

    The poller creates containers with these values and the playbook engine
    writes the same ones when a triggered run starts, so both agree.
    """
    title = alert.get("title")
    status = alert.get("status")
    return ContainerFields(
        name=str(title or f"Defender alert {alert_id}")[:NAME_LIMIT],
        severity=normalise(alert.get("severity")) or DEFAULT,
        status=str(status or "New").lower(),
    )

"""The manifest's http.retry switches act on the client: ``jitter`` spreads
the backoff, ``honour_retry_after`` makes a 429's Retry-After the wait."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, cast

import requests

from connector.config import resolve
from connector.http.client import DefenderClient
from connector.manifest import load_manifest


class _Tokens:
    def token(self) -> str:
        return "token"

    def invalidate(self) -> None:
        pass


class _Session:
    """Answers 429 with ``Retry-After: 5`` twice, then an empty page."""

    def __init__(self) -> None:
        self.calls = 0

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        self.calls += 1
        response = requests.Response()
        response.url = url
        if self.calls <= 2:
            response.status_code = 429
            response.headers["Retry-After"] = "5"
            response._content = b"{}"
        else:
            response.status_code = 200
            response._content = b'{"value": []}'
        return response


def _waits(tmp_path: Path, **retry: Any) -> list[float]:
    config = resolve({"tenant_id": "t", "client_id": "c", "client_secret": "s",
                      "api_base_url": "https://api.example", "state_dir": str(tmp_path)})
    http = copy.deepcopy(load_manifest().http)
    http["retry"].update(retry)
    waits: list[float] = []
    now = [0.0]

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    session = cast(requests.Session, _Session())
    client = DefenderClient(config, session=session, tokens=_Tokens(), clock=lambda: now[0], sleep=sleep,
                            rng=lambda: 0.0, http_spec=http)
    assert client.alert_files("1_2") == []
    return waits


def test_retry_after_is_the_wait_when_honoured(tmp_path: Path) -> None:
    assert _waits(tmp_path, honour_retry_after=True, jitter=False) == [5.0, 5.0]


def test_retry_after_is_ignored_when_not_honoured(tmp_path: Path) -> None:
    base = load_manifest().http["retry"]["backoff_base_seconds"]
    assert _waits(tmp_path, honour_retry_after=False, jitter=False) == [base, base * 2]


def test_jitter_spreads_the_backoff_below_its_ceiling(tmp_path: Path) -> None:
    base = load_manifest().http["retry"]["backoff_base_seconds"]
    # rng() == 0: the lowest jittered wait, half the ceiling.
    assert _waits(tmp_path, honour_retry_after=False, jitter=True) == [base / 2, base]

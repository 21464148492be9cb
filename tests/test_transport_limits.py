"""PinnedSession bounds every exchange: the whole body within the deadline,
and no more than the cap once decompressed (gzip and deflate decoded here,
with a bounded output). Real TLS against the simulator's scripted answers."""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from connector.http.transport import DeadlineExceeded, PinnedSession, ResponseTooLarge, megabytes
from mde_simulator import ScriptedResponse

PATH = "/transport-limits/answer"
HOSTILE = {"name": "\ud800\u202e{{7*7}}<b>\x1b[31m\x07", "size": 1.5, "items": list(range(50))}


@pytest.fixture
def sim(simulator: Any) -> Iterator[Any]:
    simulator.clear_script()
    yield simulator
    simulator.clear_script()


def session(sim: Any, timeout: float = 10.0, cap: int = 1_000_000) -> PinnedSession:
    return PinnedSession(str(sim.ca_bundle), None, (min(10.0, timeout), timeout), cap)


def answer(sim: Any, body: bytes, encoding: str | None = None, **kw: Any) -> None:
    headers = {"Content-Encoding": encoding} if encoding else {}
    sim.script(ScriptedResponse(200, body=body, headers=headers, path_contains=PATH, **kw))


def hostile_json() -> bytes:
    return json.dumps(HOSTILE).encode()


@pytest.mark.parametrize("encoding, encode", [
    ("gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("deflate", lambda b: (lambda c: c.compress(b) + c.flush())(zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS))),
    (None, lambda b: b),
], ids=["gzip", "deflate (zlib)", "deflate (raw, as some servers send it)", "identity"])
def test_bodies_are_decoded_and_read_as_usual(sim: Any, encoding: str | None, encode: Any) -> None:
    answer(sim, encode(hostile_json()), encoding)
    response = session(sim).get(f"{sim.base_url}{PATH}")
    assert response.status_code == 200
    assert response.content == hostile_json() and response.json() == HOSTILE


def test_two_gzip_members_are_one_body(sim: Any) -> None:
    answer(sim, gzip.compress(b'{"value": [') + gzip.compress(b"1, 2]}"), "gzip")
    assert session(sim).get(f"{sim.base_url}{PATH}").json() == {"value": [1, 2]}


def test_a_body_exactly_at_the_cap_is_read(sim: Any) -> None:
    body = b" " * 99_998 + b"{}"
    answer(sim, gzip.compress(body), "gzip")
    assert session(sim, cap=len(body)).get(f"{sim.base_url}{PATH}").content == body


def test_the_cap_counts_decompressed_bytes(sim: Any) -> None:
    body = b" " * 100_001
    wire = gzip.compress(body)
    assert len(wire) < 1000
    answer(sim, wire, "gzip")
    with pytest.raises(ResponseTooLarge) as caught:
        session(sim, cap=100_000).get(f"{sim.base_url}{PATH}")
    assert caught.value.limit == 100_000


def test_a_declared_length_over_the_cap_is_refused_before_reading(sim: Any) -> None:
    answer(sim, b"x" * 200_000)
    with pytest.raises(ResponseTooLarge):
        session(sim, cap=100_000).get(f"{sim.base_url}{PATH}")


def test_a_gzip_bomb_stops_at_the_cap(sim: Any) -> None:
    sim.script(ScriptedResponse(action="gzip_bomb", size=256 << 20, path_contains=PATH))
    with pytest.raises(ResponseTooLarge):
        session(sim, cap=1_000_000).get(f"{sim.base_url}{PATH}")


def test_an_unknown_content_encoding_is_a_decoding_error(sim: Any) -> None:
    answer(sim, b"\x8b\x00\x80{}\x03", "br")
    with pytest.raises(requests.exceptions.ContentDecodingError):
        session(sim).get(f"{sim.base_url}{PATH}")


def test_corrupt_gzip_is_a_decoding_error(sim: Any) -> None:
    answer(sim, b"\x1f\x8b\x08\x00not gzip at all", "gzip")
    with pytest.raises(requests.exceptions.ContentDecodingError):
        session(sim).get(f"{sim.base_url}{PATH}")


@pytest.mark.parametrize("action", ["trickle", "endless"])
def test_a_body_that_outlasts_the_deadline_raises_deadline_exceeded(simulator: Any, fresh_simulator: Any,
                                                                     action: str) -> None:
    # A simulator of its own: stopping it ends the hostile body it still serves.
    sim = fresh_simulator()
    sim.script(ScriptedResponse(action=action, delay=0.1, path_contains=PATH))
    caught: list[BaseException] = []

    def call() -> None:
        try:
            session(sim, timeout=1.0).get(f"{sim.base_url}{PATH}")
        except BaseException as exc:  # noqa: BLE001 - examined below
            caught.append(exc)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(120)  # a safety net only
    assert not thread.is_alive()
    assert len(caught) == 1 and isinstance(caught[0], DeadlineExceeded), caught
    assert caught[0].seconds == 1.0
    assert isinstance(caught[0], requests.exceptions.Timeout)


def test_megabytes_names_the_limit_as_configured() -> None:
    assert megabytes(200_000_000) == "200 MB" and megabytes(1_000_000) == "1 MB"

"""The simulator's hostile scripted bodies: a trickle, an endless chunked
body, a gzip bomb and a nextLink back to a page already served."""

from __future__ import annotations

import zlib
from collections.abc import Callable

import pytest

from mde_simulator import EXAMPLE_ALERT_ID, ScriptedResponse, Simulator
from tests.simulator.sim_helpers import Api, acquire

FILES = f"/api/alerts/{EXAMPLE_ALERT_ID}/files"


@pytest.fixture
def hsim(make_sim: Callable[..., Simulator]) -> Simulator:
    return make_sim(rate_per_minute=10_000, rate_per_hour=100_000)


def client(sim: Simulator) -> Api:
    result = acquire(sim, sim.client_secret)
    assert "access_token" in result, result
    return Api(sim, result["access_token"])


def test_trickle_sends_the_normal_body_one_byte_at_a_time(hsim: Simulator) -> None:
    api = client(hsim)
    whole = api.get(FILES).content
    hsim.script(ScriptedResponse(action="trickle", delay=0.01))
    response = api.get(FILES, stream=True)
    assert response.status_code == 200 and int(response.headers["Content-Length"]) == len(whole)
    first = [response.raw.read(1) for _ in range(5)]
    assert b"".join(first) == whole[:5]
    response.close()
    assert hsim.requests[-1].fault == "trickle"


def test_endless_body_is_chunked_and_never_ends(hsim: Simulator) -> None:
    api = client(hsim)
    hsim.script(ScriptedResponse(action="endless"))
    response = api.get(FILES, stream=True)
    assert response.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in response.headers
    received = 0
    start = b""
    for chunk in response.iter_content(65536):
        if len(start) < 64:
            start += chunk
        received += len(chunk)
        if received > 4 << 20:
            break
    response.close()
    assert start.startswith(b'{"value":[{"sha1":') and received > 4 << 20
    assert hsim.requests[-1].fault == "endless"


def test_gzip_bomb_is_small_on_the_wire_and_huge_decompressed(hsim: Simulator) -> None:
    api = client(hsim)
    size = 16 << 20
    hsim.script(ScriptedResponse(action="gzip_bomb", size=size))
    response = api.get(FILES, stream=True)
    assert response.headers["Content-Encoding"] == "gzip"
    wire = response.raw.read(decode_content=False)
    assert len(wire) < size // 500
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = 0
    data = wire
    while data:
        part = inflate.decompress(data, 1 << 20)
        assert part.strip(b" ") == b""
        out += len(part)
        data = inflate.unconsumed_tail
    assert out == size and inflate.eof and inflate.unused_data == b""  # the CRC and length check out
    assert hsim.requests[-1].fault == "gzip_bomb"


def test_loop_on_the_first_page_links_to_itself(hsim: Simulator) -> None:
    api = client(hsim)
    hsim.script(ScriptedResponse(action="loop"))
    body = api.get(FILES).json()
    assert body["value"] and body["@odata.nextLink"] == f"{hsim.api_base_url}{FILES}"


def test_loop_on_a_later_page_links_back_to_the_first(hsim: Simulator) -> None:
    api = client(hsim)
    hsim.script(ScriptedResponse(action="loop", path_contains="$skip="))
    body = api.get(f"{FILES}?$top=2&$skip=2").json()
    assert body["value"] and body["@odata.nextLink"] == f"{hsim.api_base_url}{FILES}?$top=2"
    assert hsim.requests[-1].fault == "loop"

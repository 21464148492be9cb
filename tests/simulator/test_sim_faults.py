"""Rate limits (429 + Retry-After on a scaled clock), scripted responses and
seeded random faults."""

from __future__ import annotations

import time
from collections.abc import Callable

import msal
import pytest
import requests

from mde_simulator import EXAMPLE_ALERT_ID, Faults, ScriptedResponse, Simulator
from mde_simulator.ratelimit import RateLimiter, format_retry_after
from tests.simulator.sim_helpers import Api, PinnedSession, acquire

FILES = f"/api/alerts/{EXAMPLE_ALERT_ID}/files"


def client(sim: Simulator) -> Api:
    result = acquire(sim, sim.client_secret)
    assert "access_token" in result, result
    return Api(sim, result["access_token"])


def assert_429(response: requests.Response) -> float:
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "TooManyRequests" and error["target"]
    return float(response.headers["Retry-After"])


# -- rate limits -------------------------------------------------------------------


def test_minute_limit_on_a_scaled_clock(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim(rate_per_minute=5, rate_per_hour=1000, time_scale=60)  # a "minute" is 1 s
    api = client(sim)
    statuses = [api.get(FILES).status_code for _ in range(5)]
    assert statuses == [200] * 5
    retry_after = assert_429(api.get(FILES))
    assert 0 < retry_after <= 1.0
    assert sim.requests[-1].status == 429 and sim.requests[-1].client_id == sim.client_id
    assert acquire(sim, sim.client_secret).get("access_token")  # token calls are not limited
    time.sleep(retry_after)  # unavoidable: the limiter's clock is real time, sped up 60x
    assert api.get(FILES).status_code == 200


def test_retry_after_is_whole_seconds_at_real_speed(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim(rate_per_minute=2, rate_per_hour=1000)
    api = client(sim)
    assert [api.get(FILES).status_code for _ in range(2)] == [200, 200]
    response = api.get(FILES)
    assert_429(response)
    assert response.headers["Retry-After"].isdigit()
    assert 55 <= int(response.headers["Retry-After"]) <= 60


def test_hour_limit_and_per_app_counting(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim(rate_per_minute=100, rate_per_hour=3)
    api = client(sim)
    assert [api.get(FILES).status_code for _ in range(3)] == [200] * 3
    assert 3500 <= assert_429(api.get("/api/alerts")) <= 3600
    sim.add_app("11111111-2222-4333-8444-555555555555", secret="second-app-secret")
    other = acquire(sim, "second-app-secret", client_id="11111111-2222-4333-8444-555555555555")
    assert Api(sim, other["access_token"]).get(FILES).status_code == 200
    sim.reset_rate_limits()
    assert api.get(FILES).status_code == 200


def test_limiter_sliding_window_with_a_fake_clock() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=3, per_hour=5, clock=lambda: now[0])
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(60.0)
    now[0] = 30.0
    assert limiter.acquire("a") == pytest.approx(30.0)
    assert limiter.acquire("b") == 0.0
    now[0] = 60.0  # the first three calls (t=0) leave the minute window
    assert limiter.acquire("a") == 0.0 and limiter.acquire("a") == 0.0
    assert limiter.acquire("a") == pytest.approx(3540.0)  # 5 in the hour


def test_retry_after_format() -> None:
    assert format_retry_after(0.2, 1.0) == "1"
    assert format_retry_after(59.01, 1.0) == "60"
    assert format_retry_after(1.2, 60.0) == "2"
    assert format_retry_after(0.2501, 60.0) == "0.251"
    assert format_retry_after(0.0000001, 60.0) == "0.001"


# -- scripted responses ----------------------------------------------------------------


@pytest.fixture
def fsim(make_sim: Callable[..., Simulator]) -> Simulator:
    return make_sim(rate_per_minute=10_000, rate_per_hour=100_000)


def test_scripted_503_then_normal(fsim: Simulator) -> None:
    api = client(fsim)
    fsim.script(ScriptedResponse(503), ScriptedResponse(429, headers={"Retry-After": "2"}))
    first = api.get(FILES)
    assert first.status_code == 503 and first.json()["error"]["code"] == "ServiceUnavailable"
    second = api.get(FILES)
    assert second.status_code == 429 and second.headers["Retry-After"] == "2"
    assert second.json()["error"]["code"] == "TooManyRequests"
    assert api.get(FILES).status_code == 200
    assert [r.fault for r in fsim.requests[-3:]] == ["scripted", "scripted", None]


def test_scripted_times_and_path_filter(fsim: Simulator) -> None:
    api = client(fsim)
    fsim.script(ScriptedResponse(500, path_contains="/files", times=2))
    assert api.get("/api/alerts", params={"$top": "1"}).status_code == 200  # not matched
    assert [api.get(FILES).status_code for _ in range(3)] == [500, 500, 200]


def test_scripted_body_and_headers(fsim: Simulator) -> None:
    api = client(fsim)
    fsim.script(ScriptedResponse(200, body={"value": []}, headers={"X-Test": "1"}))
    response = api.get(FILES)
    assert response.json() == {"value": []} and response.headers["X-Test"] == "1"


def test_scripted_drop_closes_without_response(fsim: Simulator) -> None:
    api = client(fsim)
    fsim.script(ScriptedResponse(action="drop"))
    with pytest.raises(requests.ConnectionError):
        api.get(FILES)
    assert fsim.requests[-1].status == 0 and fsim.requests[-1].fault == "drop"
    assert api.get(FILES).status_code == 200


def test_scripted_truncate(fsim: Simulator) -> None:
    api = client(fsim)
    fsim.script(ScriptedResponse(action="truncate"))
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        api.get(FILES)
    assert api.get(FILES).status_code == 200


def test_scripted_html_proxy_page(fsim: Simulator) -> None:
    api = client(fsim)
    fsim.script(ScriptedResponse(action="html"))
    response = api.get(FILES)
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert b"502 Bad Gateway" in response.content
    with pytest.raises(requests.JSONDecodeError):
        response.json()


def test_scripted_slow_body_trips_a_read_timeout(fsim: Simulator) -> None:
    api = client(fsim)
    fsim.script(ScriptedResponse(action="slow", delay=2.0))
    with pytest.raises(requests.exceptions.ConnectionError):  # urllib3 ReadTimeoutError mid-body
        api.get(FILES, timeout=(5, 0.05)).content  # noqa: B018
    fsim.script(ScriptedResponse(action="slow", delay=0.2))
    started = time.monotonic()
    assert api.get(FILES).json()["value"]
    assert time.monotonic() - started >= 0.18


def test_scripted_token_endpoint_error(fsim: Simulator) -> None:
    fsim.script(ScriptedResponse(400, path_contains="/oauth2/v2.0/token"),
                ScriptedResponse(503, path_contains="/oauth2/v2.0/token"))
    result = acquire(fsim, fsim.client_secret)
    assert "access_token" not in result and result["error"] == "invalid_request"
    with pytest.raises(msal.exceptions.MsalServiceError):  # msal raises on a 5xx token response
        acquire(fsim, fsim.client_secret)
    assert acquire(fsim, fsim.client_secret).get("access_token")


# -- random faults ------------------------------------------------------------------------


def test_error_rate_is_seeded_and_repeatable(make_sim: Callable[..., Simulator]) -> None:
    runs = []
    for _ in range(2):
        sim = make_sim(seed=3, rate_per_minute=10_000, faults=Faults(error_rate=0.5))
        api = client(sim)
        runs.append([api.get(FILES).status_code for _ in range(20)])
        sim.stop()
    assert runs[0] == runs[1]
    assert {200, 500, 503} <= set(runs[0])


@pytest.mark.parametrize(
    ("faults", "expected"),
    [
        (Faults(drop_rate=1.0), requests.ConnectionError),
        (Faults(truncated_rate=1.0), (requests.exceptions.ChunkedEncodingError, requests.ConnectionError)),
    ],
)
def test_connection_faults(make_sim: Callable[..., Simulator], faults: Faults, expected: type) -> None:
    sim = make_sim(faults=faults)
    api = client(sim)  # the token endpoint is spared by default
    with pytest.raises(expected):
        api.get(FILES)


def test_malformed_body(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim(faults=Faults(malformed_rate=1.0))
    api = client(sim)
    for _ in range(4):
        response = api.get(FILES)
        assert response.status_code == 200
        with pytest.raises(requests.JSONDecodeError):
            response.json()


def test_latency_and_runtime_fault_changes(fsim: Simulator) -> None:
    api = client(fsim)
    fsim.set_faults(Faults(latency_ms=150))
    started = time.monotonic()
    assert api.get(FILES).status_code == 200
    assert time.monotonic() - started >= 0.14
    fsim.set_faults(Faults(error_rate=1.0, error_statuses=(500,)))
    assert api.get(FILES).status_code == 500
    fsim.set_faults(Faults())
    assert api.get(FILES).status_code == 200


def test_faults_reach_the_token_endpoint_only_when_asked(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim(faults=Faults(error_rate=1.0, error_statuses=(503,), token_endpoint=True))
    session = PinnedSession(sim.ca_bundle)
    response = session.get(f"{sim.authority_url}/v2.0/.well-known/openid-configuration")
    assert response.status_code == 503
    sim.set_faults(Faults(error_rate=1.0, error_statuses=(503,)))
    assert session.get(f"{sim.authority_url}/v2.0/.well-known/openid-configuration").status_code == 200

"""DefenderClient: the one place that talks to the Defender for Endpoint API.

It owns the session, the token, the shared rate budget, retries and the
mapping of HTTP failures to the error taxonomy:

- every call first takes a slot from the shared :class:`RateBudget`;
- 429 honours ``Retry-After`` (seconds or an HTTP date; the manifest's
  ``http.retry.honour_retry_after``), capped by ``max_retry_after_seconds``:
  a longer demand fails at once with the time to retry instead of hanging;
- the statuses in ``http.retry.statuses``, dropped connections, timeouts and
  bodies that are not JSON are retried with exponential backoff
  (``backoff_base_seconds`` doubling up to ``backoff_max_seconds``), with
  jitter when ``http.retry.jitter`` says so;
- a 401 fetches a fresh token once;
- all waiting is bounded by ``retry_budget_seconds`` in total;
- ``@odata.nextLink`` is followed (bounded by ``max_pages``) only to the
  configured API host over https, so a poisoned link cannot carry the bearer
  token elsewhere.

Paths and the permission each call needs (named in a 403's hint) come from
the manifest's ``sources.<source>.endpoints``; nothing about the API's shape
is typed here.

Clock, sleep and randomness are injected so tests never sleep.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from connector.config import Config
from connector.errors import (
    ApiError,
    ConnectorError,
    ForbiddenError,
    InputError,
    NetworkError,
    NotFoundError,
    RateLimitedError,
    TLSError,
    UnauthorizedError,
)
from connector.http.transport import DeadlineExceeded, ResponseTooLarge, megabytes
from connector.manifest import Endpoint, Manifest, load_manifest

log = logging.getLogger("connector.http.client")


def alert_segment(alert_id: str) -> str:
    """The alert id encoded as exactly one URL path segment.

    Every character outside the unreserved set is percent-encoded (``/``, ``?``,
    ``#``, ``%`` included), and the dot segments, which URL normalisation
    would collapse, are refused.
    """
    if alert_id in {"", ".", ".."}:
        raise InputError(f"Parameter 'alert_id' cannot be {alert_id!r}; pass a Defender alert id.")
    try:
        return quote(alert_id, safe="")
    except UnicodeEncodeError:
        raise InputError("Parameter 'alert_id' holds a character that is not text (a lone UTF-16 surrogate, often "
                         "a byte that is not UTF-8); pass the alert id as Defender shows it.") from None


def parse_retry_after(value: str | None, now: float | None = None, date: str | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an
    HTTP date), or None when absent, unreadable or not a finite number.

    An HTTP date is read against the response's ``Date`` header when there is
    one, so that a local clock that is off does not stretch or cancel the
    wait; else against ``now`` (default: this machine's clock).
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    when = _http_date(value)
    if when is None:
        return None
    reference = _http_date(date) if date else None
    if reference is None:
        reference = time.time() if now is None else now
    return max(0.0, when - reference)


def _http_date(value: str) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return when.timestamp()


def _null_constant(_: str) -> None:
    # NaN, Infinity and -Infinity are not JSON: read as null, like a missing value.
    return None


_TOO_DEEP = "JSON nested too deeply"


def parse_json(response: requests.Response) -> Any:
    """The JSON body (NaN/Infinity read as null). Raises ValueError when it is
    not JSON, or nested too deeply to read."""
    try:
        return json.loads(response.text, parse_constant=_null_constant)
    except RecursionError:
        raise ValueError(_TOO_DEEP) from None


def _error_fields(response: requests.Response) -> tuple[str | None, str | None, str | None]:
    """(code, message, correlation id) from Microsoft's error body, if it has one."""
    try:
        body = parse_json(response)
    except ValueError:
        return None, None, None
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return None, None, None

    def text(key: str) -> str | None:
        value = err.get(key)
        return " ".join(str(value).split())[:300] if value not in (None, "") else None

    return text("code"), text("message"), text("target")


def _describe_body(response: requests.Response) -> str:
    ctype = response.headers.get("Content-Type", "").split(";")[0].strip() or "no content type"
    if "html" in ctype:
        return "an HTML page (often a proxy or gateway error page)"
    return f"a {ctype} body that is not the documented JSON"


def _full_url(url: str, params: Mapping[str, str] | None) -> str:
    """The URL requests sends for ``url`` with ``params`` (normalised the same
    way for a link and for the first page)."""
    prepared = requests.models.PreparedRequest()
    prepared.prepare_url(url, dict(params or {}))
    return str(prepared.url)


class DefenderClient:
    """Calls the Defender for Endpoint API for one configured instance.

    Build it with :meth:`from_config`; pass ``session``, ``tokens``, ``budget``,
    ``clock``, ``sleep`` and ``rng`` to swap the edges in tests and benchmarks.
    ``http_spec`` (the manifest's ``http`` section) and ``manifest`` default
    to the packaged manifest's.
    """

    #: The manifest's ``sources`` key whose endpoints this client calls.
    source = "defender"

    def __init__(
        self,
        config: Config,
        *,
        session: requests.Session,
        tokens: Any,
        budget: Any = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        http_spec: Mapping[str, Any] | None = None,
        manifest: Manifest | None = None,
    ) -> None:
        self.config = config
        self.session = session
        self.tokens = tokens
        self.budget = budget
        self.clock = clock
        self.sleep = sleep
        self.rng = rng
        self.manifest = manifest or load_manifest()
        http = http_spec if http_spec is not None else self.manifest.http
        retry, paging = http["retry"], http["paging"]
        self.retry_statuses = frozenset(retry["statuses"])
        self.backoff_base = float(retry["backoff_base_seconds"])
        self.backoff_max = float(retry["backoff_max_seconds"])
        self.jitter = bool(retry["jitter"])
        self.honour_retry_after = bool(retry["honour_retry_after"])
        self.next_link_field = paging["next_link_field"]
        self.items_field = paging["items_field"]
        # The documented limit, named when a 429 outlasts the retries.
        self.documented_limits: Mapping[str, int] = (
            self.manifest.sources.get(self.source, {}).get("rate_limits") or http["rate_limits"])
        self.max_retries = int(config.get("max_retries"))
        self.retry_budget = float(config.get("retry_budget_seconds"))
        self.max_retry_after = float(config.get("max_retry_after_seconds"))
        self.max_pages = int(config.get("max_pages"))
        read = float(config.timeout_seconds)
        self.timeout = (min(10.0, read), read)  # (connect, read), as build_session sets them
        api = urlsplit(config.api_base_url)
        self._api_origin = (api.scheme, api.netloc.lower())
        self._token: str | None = None
        self.calls = 0  # HTTP requests sent by this client (retries included)
        #: Told one sentence per retry about to wait ("retrying in 4 s,
        #: attempt 2 of 5: ..."), for a terminal; None: only logged.
        self.notify: Callable[[str], None] | None = None

    @classmethod
    def from_config(cls, config: Config, **kwargs: Any) -> DefenderClient:
        """The production wiring: pinned session, msal tokens, shared budget."""
        from connector.http.auth import TokenProvider
        from connector.http.ratelimit import RateBudget
        from connector.http.transport import build_session

        manifest = kwargs.pop("manifest", None) or load_manifest()
        session = kwargs.pop("session", None) or build_session(config)
        tokens = kwargs.pop("tokens", None) or TokenProvider(config, session)
        budget = kwargs.pop("budget", None)
        if budget is None:
            per_min = int(config.get("rate_per_minute"))
            per_hour = int(config.get("rate_per_hour"))
            budget = RateBudget(
                config.state_dir / "rate_budget.sqlite",
                [(per_min, 60.0), (per_hour, 3600.0)],
                # rate_time_scale multiplies the windows (0.01: a minute lasts
                # 0.6 s); RateBudget's time_scale divides them.
                time_scale=1.0 / float(config.get("rate_time_scale", 1.0)),
                # A request's longest life, (connect, read) as build_session
                # sets them: a slot left unsettled counts until then.
                hold=min(10.0, float(config.timeout_seconds)) + float(config.timeout_seconds),
            )
        return cls(config, session=session, tokens=tokens, budget=budget, manifest=manifest, **kwargs)

    # -- public API -------------------------------------------------------

    def endpoint(self, name: str) -> Endpoint:
        """The manifest's ``sources.<source>.endpoints.<name>`` for this client."""
        return self.manifest.endpoint(self.source, name)

    def alert_files(self, alert_id: str, progress: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
        """Every File related to the alert (all pages; endpoint ``alert_files``).
        Raises NotFoundError when the alert does not exist, ForbiddenError
        without the endpoint's permission."""
        endpoint = self.endpoint("alert_files")
        path = endpoint.path.format(alert_id=alert_segment(alert_id))
        files: list[dict[str, Any]] = []
        for page in self.pages(path, resource=f"Alert {alert_id}", permission=endpoint.permission):
            files.extend(page)
            if progress:
                progress(len(files))
        return files

    def list_alerts(self, params: Mapping[str, str]) -> Iterator[list[dict[str, Any]]]:
        """Pages of the alert list (endpoint ``list_alerts``) with OData
        ``params`` ($filter, $orderby, $top...)."""
        endpoint = self.endpoint("list_alerts")
        return self.pages(endpoint.path, params=params, resource="The alert list", permission=endpoint.permission)

    def pages(
        self,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        resource: str,
        permission: str,
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield the ``value`` list of each page, following ``@odata.nextLink``."""
        url = first = self.config.api_base_url + path
        page_params: Mapping[str, str] | None = params
        # Every page fetched in this run, as requested: a link back to one of
        # them would loop until max_pages, spending the rate budget. Made
        # when the first link arrives (most answers are one page).
        served: set[str] | None = None
        for page_no in range(1, self.max_pages + 1):
            body = self._get(url, page_params, resource=resource, permission=permission)
            items = body.get(self.items_field)
            if not isinstance(items, list):
                raise ApiError(
                    f"Defender returned a response for {resource} without the '{self.items_field}' list "
                    "the API documents.",
                )
            yield items
            link = body.get(self.next_link_field)
            if not link:
                return
            url = self._checked_next_link(link)
            if served is None:
                served = {_full_url(first, params)}
            if _full_url(url, None) in served:
                raise ApiError(
                    f"Defender returned an @odata.nextLink to a page of {resource} it already served "
                    f"(after page {page_no}), so paging stopped instead of looping.",
                    hint="Run the action again; if it keeps happening, report it to Microsoft with the alert id.",
                )
            served.add(_full_url(url, None))
            page_params = None  # the link carries its own query
            if page_no == self.max_pages:
                raise ApiError(
                    f"Defender kept returning more pages for {resource} after {self.max_pages} pages.",
                    hint="Raise 'max_pages' if this alert really has that many files.",
                )

    def get_json(
        self, path: str, *, resource: str, permission: str, params: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """One GET returning the decoded JSON object."""
        return self._get(self.config.api_base_url + path, params, resource=resource, permission=permission)

    # -- internals ---------------------------------------------------------

    def _checked_next_link(self, link: Any) -> str:
        if not isinstance(link, str):
            raise ApiError("Defender returned an @odata.nextLink that is not a URL.")
        parts = urlsplit(link)
        if (parts.scheme, parts.netloc.lower()) != self._api_origin:
            # Name the link (without its query), on one line and short: it
            # comes from the server and may be anything.
            shown = "".join(c if c.isprintable() else "?" for c in link.split("?", 1)[0])[:160]
            raise ApiError(
                f"Refused to follow @odata.nextLink {shown}: it is not on the configured API host "
                f"{self.config.api_base_url}, and following it would send the access token there.",
            )
        return link

    def use_token(self, token: str) -> None:
        """Send ``token`` on the next calls (until a 401 replaces it)."""
        self._token = token

    def _bearer(self) -> str:
        if self._token is None:
            self._token = self.tokens.token()
        return self._token

    def _backoff(self, attempt: int) -> float:
        # Jitter (between half and all of the ceiling) keeps parallel clients
        # from retrying in lockstep.
        ceiling = float(min(self.backoff_max, self.backoff_base * (2 ** attempt)))
        return ceiling * (0.5 + 0.5 * self.rng()) if self.jitter else ceiling

    def _get(self, url: str, params: Mapping[str, str] | None, *, resource: str, permission: str) -> dict[str, Any]:
        deadline = self.clock() + self.retry_budget
        refreshed = False
        attempt = 0
        while True:
            # The token first: fetching it may take a while, and the rate
            # slot is taken just before the request goes out.
            headers = {"Authorization": f"Bearer {self._bearer()}", "Accept": "application/json"}
            if self.budget is not None:
                self.budget.acquire(deadline=time.time() + max(0.0, deadline - self.clock()))
            self.calls += 1
            failure: ConnectorError
            wait: float | None = None
            try:
                try:
                    response = self.session.get(url, params=params, headers=headers,
                                                timeout=self._attempt_timeout(attempt, deadline))
                finally:
                    settle = getattr(self.budget, "settle", None)
                    if settle is not None:
                        settle()
            except requests.exceptions.SSLError as exc:
                from connector.http.transport import tls_reason

                host = urlsplit(url)
                raise TLSError(
                    f"The TLS certificate of {host.netloc} could not be verified: "
                    f"{tls_reason(exc, host.hostname or host.netloc)}.",
                    hint="If a private CA signs it, set 'ca_bundle' to that CA's PEM file; "
                    "verification cannot be turned off.",
                ) from None
            except ResponseTooLarge as exc:
                # The same answer would come again: no retry.
                raise ApiError(
                    f"Defender's answer for {resource} is larger than max_response_mb ({megabytes(exc.limit)}) "
                    "once decompressed, so the connector stopped reading it.",
                    hint="Raise 'max_response_mb' if this alert really has that many files.",
                ) from None
            except DeadlineExceeded as exc:
                failure = NetworkError(
                    f"{urlsplit(url).netloc} did not send its whole answer for {resource} within "
                    f"timeout_seconds ({exc.seconds:g} s).",
                    hint="Check the network and 'proxy', or raise 'timeout_seconds'.",
                )
            except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as exc:
                failure = NetworkError(
                    f"The connection to {urlsplit(url).netloc} was dropped before the whole response arrived "
                    f"({exc.__class__.__name__}).",
                    hint="Check the network and 'proxy'.",
                )
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                from connector.http.transport import connection_failure

                sentence, hint = connection_failure(exc, url, self._attempt_timeout(attempt, deadline))
                failure = NetworkError(sentence, hint=hint)
            except requests.RequestException as exc:
                failure = NetworkError(f"The request to {urlsplit(url).netloc} failed ({exc.__class__.__name__}).")
            else:
                status = response.status_code
                if status == 200:
                    try:
                        body = parse_json(response)
                    except ValueError as exc:
                        if str(exc) == _TOO_DEEP:
                            # The same answer again would be just as deep: not retried.
                            raise ApiError(f"Defender answered {resource} with JSON nested too deeply to read.",
                                           hint="Report the alert id to Microsoft support.") from None
                        body = None
                    if isinstance(body, dict):
                        return body
                    failure = ApiError(f"Defender answered {resource} with {_describe_body(response)}.")
                elif status == 401 and not refreshed:
                    refreshed = True
                    self._token = None
                    self.tokens.invalidate()
                    log.info("401 from the API; fetching a new token once")
                    continue
                else:
                    failure = self._status_error(response, resource, permission)
                    if status not in self.retry_statuses:
                        raise failure
                    if status == 429 and self.honour_retry_after:
                        wait = parse_retry_after(response.headers.get("Retry-After"),
                                                 date=response.headers.get("Date"))
                        if wait is not None and wait > self.max_retry_after:
                            raise RateLimitedError(
                                f"Defender's rate limit was reached and it asked to wait {wait:.0f} seconds, "
                                f"more than max_retry_after_seconds ({self.max_retry_after:g}).",
                                hint="Run the action again later.",
                                code=failure.code,
                                correlation_id=failure.correlation_id,
                                status=429,
                            )
            attempt += 1
            if attempt > self.max_retries:
                raise failure
            # Never sooner than the backoff: a Retry-After of 0 must not turn
            # into a burst of immediate retries.
            backoff = self._backoff(attempt - 1)
            wait = backoff if wait is None else max(wait, backoff)
            if self.clock() + wait > deadline:
                if isinstance(failure, RateLimitedError):
                    raise failure
                raise failure.__class__(
                    f"{failure.message.rstrip('.')}; retries stopped at the {self.retry_budget:g} s time budget.",
                    hint=failure.hint,
                    code=failure.code,
                    correlation_id=failure.correlation_id,
                    status=failure.status,
                )
            log.info("retrying %s in %.2f s (attempt %d of %d): %s",
                     resource, wait, attempt, self.max_retries, failure.message)
            if self.notify is not None:
                self.notify(f"{failure.message.rstrip('.')}; retrying in {max(1, round(wait))} s, "
                            f"attempt {attempt + 1} of {self.max_retries + 1}")
            self.sleep(wait)

    def _attempt_timeout(self, attempt: int, deadline: float) -> tuple[float, float]:
        # A retry gets at most what is left of the retry time budget, so a
        # slow server cannot stretch an action past it.
        if attempt == 0:
            return self.timeout
        left = max(0.1, deadline - self.clock())
        return (min(self.timeout[0], left), min(self.timeout[1], left))

    def _status_error(self, response: requests.Response, resource: str, permission: str) -> ConnectorError:
        status = response.status_code
        code, message, target = _error_fields(response)
        detail = f" ({code}: {message.rstrip('.')})" if code and message else (f" ({code})" if code else "")
        common: dict[str, Any] = {"code": code, "correlation_id": target, "status": status}
        if 300 <= status < 400:
            where = " ".join(response.headers.get("Location", "").split())[:200] or "no location"
            return ApiError(
                f"Defender answered {resource} with a redirect (HTTP {status}) to {where}, which the connector "
                "does not follow, so the access token stays with the configured API host.",
                hint="Check 'api_base_url' and 'proxy'.",
                status=status,
            )
        if status == 404:
            return NotFoundError(f"{resource} was not found in Defender for Endpoint.",
                                 hint="Check the id; only alerts within the tenant's retention period can be queried.",
                                 **common)
        if status == 403:
            return ForbiddenError(
                f"Defender for Endpoint denied access to {resource} (403{' ' + code if code else ''}).",
                hint=f"Grant the app the {permission} application permission and admin consent; a user token also "
                "needs the 'View Data' role and access to the device group, and a token for the wrong audience "
                "gets 403 too (check token_scope).",
                **common,
            )
        if status == 401:
            return UnauthorizedError(
                f"Defender for Endpoint rejected the access token for {resource} even after a fresh one was fetched.",
                hint="Check that token_scope matches the API host and cloud.",
                **common,
            )
        if status == 429:
            return RateLimitedError(
                f"Defender's rate limit for {resource} was still reached after retrying{detail}.",
                hint=f"The API allows {self.documented_limits['per_minute']:,} calls a minute and "
                f"{self.documented_limits['per_hour']:,} an hour per app; run the action again later.",
                **common,
            )
        if code is None:
            return ApiError(f"Defender answered {resource} with HTTP {status} and {_describe_body(response)}.",
                            status=status)
        return ApiError(f"Defender answered {resource} with HTTP {status}{detail}.", **common)


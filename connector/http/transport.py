"""The one HTTP session the connector uses, for Entra ID and the API alike.

Why a session subclass: requests lets ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``
and ``HTTPS_PROXY`` from the environment override ``Session.verify`` and
``Session.proxies`` whenever a call passes ``verify=None``, which is what msal
and most callers do. On a corporate machine that silently swaps the trust
store. :class:`PinnedSession` passes the configured trust store and proxy on
every call, so the configuration always wins, and verification can never be
turned off through it.

It never follows a redirect either: requests would re-send a 307/308 POST,
the token request with its client secret included, to wherever the Location
header points, and a GET to another host. Neither Entra ID's token endpoint
nor the API redirects; an answer that does is reported, not followed.

And every exchange is bounded: the whole of it (connecting, waiting, reading
the body) must end within the request's read timeout (``timeout_seconds``),
however slowly the bytes trickle in, and the body may not grow past
``max_response_bytes`` once decompressed, so an endless or gzip-bombed body
ends as :class:`DeadlineExceeded` or :class:`ResponseTooLarge` with memory
bounded by the cap.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import time
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests
import urllib3.exceptions
from requests.__version__ import __version__ as REQUESTS_VERSION

from connector import __version__
from connector.config import Config
from connector.errors import ConfigError
from connector.fsguard import atomic_write, private_dir

log = logging.getLogger("connector.http")

USER_AGENT = f"mde-connector/{__version__} (+Get Alert Related Files) python-requests/{REQUESTS_VERSION}"

#: ``max_response_mb``'s default, in bytes (MB are 10^6 bytes).
DEFAULT_MAX_RESPONSE_BYTES = 200 * 1_000_000
_CHUNK = 1 << 16  # read and decompress at most this much at a time


class DeadlineExceeded(requests.exceptions.Timeout):
    """The whole exchange did not end within its deadline (``timeout_seconds``)."""

    def __init__(self, seconds: float, url: str) -> None:
        super().__init__(f"no complete response within {seconds:g} s")
        self.seconds = seconds
        self.url = url


class ResponseTooLarge(requests.RequestException):
    """The body, decompressed, grew past ``max_response_bytes``."""

    def __init__(self, limit: int, url: str) -> None:
        super().__init__(f"response body larger than {limit} bytes")
        self.limit = limit
        self.url = url


def megabytes(limit: int) -> str:
    """A byte limit as ``max_response_mb`` states it, e.g. ``200 MB``."""
    return f"{limit / 1_000_000:g} MB"


def trust_store(ca_bundle: Path | None, state_dir: Path) -> str:
    """What to pass as ``verify``: the public CAs (certifi's bundle) without a
    ``ca_bundle``, else a bundle file holding the public CAs *plus* the extra CA.

    Always a file path, never ``True``: with ``True`` requests would take
    ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` from the environment instead, so
    that a variable, not the configuration, would decide whom to trust.

    ``ca_bundle`` is an *extra* trusted CA (a private endpoint, a TLS-inspecting
    proxy): the public CAs stay trusted so that the sign-in host keeps working.
    The combined file is written once per content into ``state_dir`` (0600)
    and used only while it holds exactly the public CAs plus the extra CA.
    """
    import certifi

    public = Path(certifi.where())
    if ca_bundle is None:
        return str(public)
    try:
        extra = ca_bundle.read_bytes()
    except OSError:
        raise ConfigError(f"Configuration key 'ca_bundle' names {ca_bundle}, which cannot be read.") from None
    if b"-----BEGIN CERTIFICATE-----" not in extra:
        raise ConfigError(
            f"Configuration key 'ca_bundle' names {ca_bundle}, which holds no PEM certificate.",
            hint="Give a PEM file with one or more '-----BEGIN CERTIFICATE-----' blocks.",
        )
    public_pem = public.read_bytes()
    expected = public_pem.rstrip(b"\n") + b"\n" + extra
    # The name says which inputs it combines; only its content is trusted:
    # a file that is not exactly these bytes is rebuilt, never used.
    digest = hashlib.sha256(b"combined\0" + extra + str(public).encode() + str(len(public_pem)).encode())
    combined = state_dir / f"ca-bundle-{digest.hexdigest()[:16]}.pem"
    if _holds_exactly(combined, expected):
        # Written only after these very bytes parsed below: no need to import
        # cryptography (~24 ms) to parse them again on every run.
        return str(combined)
    try:
        from cryptography import x509

        x509.load_pem_x509_certificates(extra)
    except ValueError:
        raise ConfigError(
            f"Configuration key 'ca_bundle' names {ca_bundle}, whose certificates cannot be read.",
            hint="Give the CA certificate in PEM form, as exported by the CA or the proxy vendor.",
        ) from None
    private_dir(state_dir)
    atomic_write(combined, expected)
    return str(combined)


def _holds_exactly(path: Path, expected: bytes) -> bool:
    """Whether ``path`` is a regular file of this user's, writable by no one
    else, holding exactly ``expected`` (never read through a symlink)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022 \
                or st.st_size != len(expected):
            return False
        data = b""
        while len(data) <= len(expected) and (chunk := os.read(fd, len(expected) + 1 - len(data))):
            data += chunk
        return data == expected
    except OSError:
        return False
    finally:
        os.close(fd)


class PinnedSession(requests.Session):
    """A ``requests.Session`` whose trust store, proxy and default timeout come
    from the configuration on every call, whatever the caller or environment
    passes. ``verify=False`` is refused, and redirects are never followed."""

    def __init__(self, verify: str | bool, proxy: str | None, timeout: float | tuple[float, float],
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> None:
        super().__init__()
        self._pinned_verify = verify
        self._pinned_proxies = {"http": proxy, "https": proxy} if proxy else None
        self._default_timeout = timeout
        self.max_response_bytes = int(max_response_bytes)
        self.verify = verify
        self.headers["User-Agent"] = USER_AGENT
        # Only what _read_body decompresses with a bound (never br or zstd,
        # which requests would otherwise offer when their modules are installed).
        self.headers["Accept-Encoding"] = "gzip, deflate"
        if proxy:
            self.proxies.update(self._pinned_proxies or {})
        # Keep-alive connections for the API host and the sign-in host.
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=8)
        self.mount("https://", adapter)
        self._environment: dict[Any, dict[str, Any]] = {}

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any,
                                   cert: Any) -> dict[str, Any]:
        """requests' own answer (environment proxies, NO_PROXY), kept per
        origin and arguments for the session's life.

        requests reads every ``*_proxy`` variable of the environment twice on
        every request, ~80 us of a ~750 us call on loopback; a session makes
        many calls to two origins. The first call to an origin reads the
        environment exactly as before.
        """
        try:
            parts = urlparse(url)
            key = (parts.scheme, parts.netloc, tuple(sorted((proxies or {}).items())), stream, verify, cert)
            hash(key)
        except (TypeError, ValueError):
            return dict(super().merge_environment_settings(url, proxies, stream, verify, cert))
        settings = self._environment.get(key)
        if settings is None:
            settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
            self._environment[key] = settings
        # Copies: requests may adjust what it is given.
        return {**settings, "proxies": dict(settings["proxies"])}

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        """requests' ``request`` with the pinned settings, whose body is read
        in full, within the deadline and the size cap, before it returns.

        The deadline is the read timeout (``timeout_seconds``, or what a
        caller passes), counted from now for the whole exchange. Raises
        :class:`DeadlineExceeded` or :class:`ResponseTooLarge` besides
        requests' own exceptions.
        """
        kwargs["verify"] = self._pinned_verify
        kwargs["allow_redirects"] = False
        if self._pinned_proxies:
            kwargs["proxies"] = self._pinned_proxies
        timeout = kwargs.get("timeout")
        if timeout is None:
            timeout = kwargs["timeout"] = self._default_timeout
        kwargs["stream"] = True
        total = float(timeout[1] if isinstance(timeout, tuple) else timeout)
        started = time.monotonic()
        try:
            response = super().request(_s(method), url, *args, **kwargs)
            self._read_body(response, started + total, total)
        except requests.RequestException as exc:
            log.debug("%s %s -> %s after %.0f ms", _s(method), _url(url), exc.__class__.__name__,
                      (time.monotonic() - started) * 1000)
            raise
        log.debug("%s %s -> %s in %.0f ms", _s(method), _url(url), response.status_code,
                  (time.monotonic() - started) * 1000)
        return response

    def _read_body(self, response: requests.Response, deadline: float, total: float) -> None:
        """Read the whole body into ``response`` (so ``.content``, ``.text``
        and ``.json()`` work as usual), decompressing gzip/deflate here with
        a bound on the output, and giving up at ``deadline``."""
        raw = response.raw
        limit = self.max_response_bytes
        url = response.url
        encoding = response.headers.get("Content-Encoding", "").strip().lower()
        inflate = _decompressor(encoding)
        if inflate is None and encoding not in ("", "identity"):
            response.close()
            raise requests.exceptions.ContentDecodingError(f"unsupported Content-Encoding {encoding[:40]!r}")
        declared = response.headers.get("Content-Length", "")
        if inflate is None and declared.isdigit() and int(declared) > limit:
            response.close()
            raise ResponseTooLarge(limit, url)
        sock = getattr(getattr(raw, "_connection", None), "sock", None)
        # read1: what has arrived, without waiting for the whole chunk (a
        # stand-in response, such as a test recording's, may lack it).
        read = raw.read1 if isinstance(raw, urllib3.HTTPResponse) and hasattr(raw, "read1") else raw.read
        chunks: list[bytes] = []
        size = 0
        clamped = False
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DeadlineExceeded(total, url)
                if sock is not None and left < total:
                    # The next read may wait only for what is left of the deadline.
                    sock.settimeout(left)
                    clamped = True
                data = read(_CHUNK, decode_content=False)
                if inflate is not None:
                    data = inflate.feed(data, limit - size + 1)
                elif not data:
                    break
                if data:
                    size += len(data)
                    if size > limit:
                        raise ResponseTooLarge(limit, url)
                    chunks.append(data)
                elif inflate is not None and inflate.done:
                    break
        except (DeadlineExceeded, ResponseTooLarge):
            response.close()
            raise
        except urllib3.exceptions.ReadTimeoutError as exc:
            response.close()
            if clamped:
                raise DeadlineExceeded(total, url) from None
            raise requests.exceptions.ConnectionError(exc) from None
        except urllib3.exceptions.ProtocolError as exc:
            response.close()
            raise requests.exceptions.ChunkedEncodingError(exc) from None
        except (urllib3.exceptions.SSLError, OSError) as exc:
            response.close()
            raise requests.exceptions.ConnectionError(exc) from None
        except zlib.error as exc:
            response.close()
            raise requests.exceptions.ContentDecodingError(exc) from None
        response._content = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        response._content_consumed = True


class _Inflate:
    """Incremental gzip/deflate decompression whose output per call is bounded."""

    def __init__(self, wbits: int) -> None:
        self._wbits = wbits
        self._obj = zlib.decompressobj(wbits)
        self._raw_deflate_tried = wbits != zlib.MAX_WBITS
        self.done = False

    def feed(self, data: bytes, most: int) -> bytes:
        """Up to ``most`` decompressed bytes from ``data`` plus what is left
        of earlier input; ``b""`` with ``done`` set at the end of input."""
        obj = self._obj
        if not data:
            if obj.unconsumed_tail:
                return obj.decompress(obj.unconsumed_tail, most)
            self.done = True
            return obj.flush()[:most] if not obj.eof else b""
        try:
            out = obj.decompress(obj.unconsumed_tail + data if obj.unconsumed_tail else data, most)
        except zlib.error:
            if self._raw_deflate_tried:
                raise
            # "deflate" as some servers send it: raw, without the zlib header.
            self._raw_deflate_tried = True
            self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
            return self.feed(data, most)
        self._raw_deflate_tried = True
        if obj.eof and obj.unused_data and self._wbits != -zlib.MAX_WBITS:
            # Another gzip member follows.
            rest = obj.unused_data
            self._obj = zlib.decompressobj(self._wbits)
            if len(out) < most:
                out += self.feed(rest, most - len(out))
        return out


def _decompressor(encoding: str) -> _Inflate | None:
    if encoding in ("gzip", "x-gzip"):
        return _Inflate(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return _Inflate(zlib.MAX_WBITS)
    return None


def tls_reason(exc: BaseException, host: str) -> str:
    """Why a server certificate was refused, in words, from the TLS error."""
    text = str(exc).lower()
    if "mismatch" in text or "not valid for" in text or "doesn't match" in text:
        return f"it is not issued for {host}"
    if "has expired" in text:
        return "it has expired"
    if "not yet valid" in text:
        return "it is not valid yet (check this machine's clock)"
    if "local issuer" in text or "self-signed" in text or "self signed" in text or "unknown ca" in text:
        return "it is not signed by a trusted CA"
    if "certificate verify failed" in text:
        return "it does not verify"
    return "the TLS handshake failed"


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception it wraps (requests wraps urllib3's, which
    wraps the socket's): arguments, ``reason``, cause and context."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo and len(seen) < 20:
        item = todo.pop(0)
        if any(item is s for s in seen):
            continue
        seen.append(item)
        nested = [a for a in getattr(item, "args", ()) if isinstance(a, BaseException)]
        nested += [x for x in (getattr(item, "reason", None), item.__cause__, item.__context__)
                   if isinstance(x, BaseException)]
        todo.extend(nested)
    return seen


def connection_failure(exc: BaseException, url: str,
                       timeout: float | tuple[float, float] | None = None) -> tuple[str, str]:
    """What went wrong reaching ``url``, as a sentence and a hint: the name
    did not resolve (DNS), the connection was refused, connecting timed out,
    the server accepted but did not answer in time, or the connection was
    reset. The sentence names the host and port; ``timeout`` (connect, read)
    gives the seconds waited."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or parts.netloc
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = 443
    where = f"{host}:{port}"
    connect, read = (timeout if isinstance(timeout, tuple) else (timeout, timeout)) if timeout else (None, None)
    chain = _causes(exc)
    proxy = any(isinstance(e, requests.exceptions.ProxyError) for e in chain)
    via = " through the configured proxy" if proxy else ""

    def seconds(value: float | None) -> str:
        return f" after {value:g} s" if value else ""

    sentence, hint = _failure_words(chain, where, host, port, via, proxy, seconds(connect), seconds(read))
    return sentence[:1].upper() + sentence[1:], hint


def _failure_words(chain: list[BaseException], where: str, host: str, port: int, via: str, proxy: bool,
                   connect: str, read: str) -> tuple[str, str]:
    import socket

    if any(isinstance(e, socket.gaierror) or type(e).__name__ == "NameResolutionError" for e in chain):
        if proxy:
            return (f"The proxy's host name could not be resolved (DNS lookup failed) while connecting to {where}.",
                    "Check 'proxy' and this machine's DNS settings.")
        return (f"The host name {host} could not be resolved (DNS lookup failed); no connection was made.",
                "Check the host name in the configured URL, this machine's DNS settings and 'proxy'.")
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return (f"{where} refused the connection{via} (nothing listens on port {port}, or a firewall rejects it).",
                "Check the URL's host and port, and 'proxy'.")
    if any(isinstance(e, (requests.exceptions.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError))
           for e in chain):
        return (f"Connecting to {where}{via} timed out{connect}: nothing answered "
                "(a firewall may be dropping the packets).",
                "Check the network, 'proxy' and the URL's host, or raise 'timeout_seconds'.")
    if any(isinstance(e, (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError, TimeoutError))
           for e in chain):
        return (f"{where} accepted the connection{via}, then timed out: no answer came{read} "
                "(timeout_seconds).",
                "The service may be overloaded; try again, or raise 'timeout_seconds'.")
    if any(isinstance(e, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)) for e in chain):
        return (f"{where} closed the connection{via} before answering (connection reset).",
                "Check 'proxy' and any TLS-inspecting gateway between this machine and the service.")
    return (f"The connection to {where}{via} failed ({chain[0].__class__.__name__}).",
            "Check the network, 'proxy' and 'timeout_seconds'.")


def _s(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _url(url: str | bytes) -> str:
    # Query strings of token calls carry nothing secret (the secret is in the
    # POST body, never logged), but keep log lines short and predictable.
    return _s(url).split("?", 1)[0] + ("?…" if "?" in _s(url) else "")


def build_session(config: Config) -> PinnedSession:
    """The session for one configured instance: trust store (+ ``ca_bundle``),
    proxy, (connect, read) timeouts and the exchange deadline from
    ``timeout_seconds``, and the body cap from ``max_response_mb``."""
    verify = trust_store(config.ca_bundle, config.state_dir)
    read = float(config.timeout_seconds)
    cap = int(config.get("max_response_mb", DEFAULT_MAX_RESPONSE_BYTES // 1_000_000)) * 1_000_000
    return PinnedSession(verify, config.proxy, (min(10.0, read), read), cap)

"""Every recorded cassette is free of credentials.

Fails the build if any cassette under tests/cassettes holds an Authorization
header, a client secret, a client assertion, an access token (a JWT) or a
private key. The checks are deliberately broader than the scrubber in
conftest.py: they look for the shapes of secrets, not for our placeholders.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CASSETTES = Path(__file__).parent / "cassettes"
FILES = sorted(CASSETTES.rglob("*.yaml"))

FORBIDDEN = [
    (re.compile(r"(?im)^\s*-?\s*authorization\s*:"), "an Authorization header"),
    (re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/-]{8,}"), "a bearer token"),
    (re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), "a JWT (access token or client assertion)"),
    (re.compile(r"client_secret=(?!SCRUB(?:&|$|'|\"))[^&\s'\"]+"), "a client secret"),
    (re.compile(r"client_assertion=(?!SCRUB(?:&|$|'|\"))[^&\s'\"]+"), "a client assertion"),
    (re.compile(r'"access_token"\s*:\s*"(?!scrubbed-access-token")'), "an access token"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
]


def test_cassettes_were_recorded() -> None:
    # Guards against this module passing vacuously after a bad re-record.
    assert len(FILES) >= 8, f"expected the recorded cassettes under {CASSETTES}, found {len(FILES)}"


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(CASSETTES)) for p in FILES])
def test_cassette_holds_no_secret(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    found = [what for pattern, what in FORBIDDEN if pattern.search(text)]
    assert not found, f"{path.relative_to(CASSETTES)} holds {', '.join(found)}; re-record with the scrubber on"


def test_detector_catches_secrets(tmp_path: Path) -> None:
    # The detector itself must be able to fail: feed it what an unscrubbed
    # recording would contain.
    leaked = (
        "    headers:\n      Authorization:\n"
        "      - Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwcyJ9.sig\n"
        "    body: grant_type=client_credentials&client_secret=Q~8Xy.realSecretValue&scope=x\n"
        '      string: \'{"access_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwcyJ9.sig"}\'\n'
    )
    hits = {what for pattern, what in FORBIDDEN if pattern.search(leaked)}
    assert {"an Authorization header", "a bearer token", "a client secret", "an access token"} <= hits
    clean = "    body: grant_type=client_credentials&client_secret=SCRUB&scope=x\n" \
            '      string: \'{"access_token": "scrubbed-access-token", "expires_in": 3599}\'\n'
    assert not [what for pattern, what in FORBIDDEN if pattern.search(clean)]

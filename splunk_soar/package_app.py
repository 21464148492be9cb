"""Build the app's .tgz with the SDK's own ``soarapps package build``.

Run by ``scripts/build-splunk-soar-app`` with the SDK virtualenv's Python, from
the repository root: ``python splunk_soar/package_app.py OUTPUT.tgz``.

The one addition to the SDK's build: the connector core is a local project
(``[tool.uv.sources]`` in pyproject.toml points at the repository root), and
the SDK builds local projects into wheels only for the packages it lists in
``DEPENDENCIES_TO_BUILD``. Adding ``mde-connector`` there makes the SDK build
the core with the standard PEP 517 build (the same wheel ``pip wheel .``
makes), put it under ``wheels/`` and declare it in the app JSON's
``pip313_dependencies`` like every other dependency.

The SDK downloads every wheel at once with a short connect timeout, which a
busy machine or a connection-limiting proxy turns into ``ConnectTimeout``;
the downloads here go four at a time with a few retries (the SDK still checks
each wheel's hash against uv.lock).
"""

import asyncio
import sys
from pathlib import Path

import httpx
from soar_sdk.cli.package import cli as package_cli
from soar_sdk.meta.dependencies import package as dependency_package
from soar_sdk.meta.dependencies import sources

APP_DIR = Path(__file__).resolve().parent


DOWNLOADS_AT_ONCE = 4
ATTEMPTS = 4
_sdk_fetch = sources.UvWheel.fetch
_slots = asyncio.Semaphore(DOWNLOADS_AT_ONCE)


async def _fetch(self: sources.UvWheel) -> bytes:
    async with _slots:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await _sdk_fetch(self)
            except httpx.TransportError:
                if attempt == ATTEMPTS:
                    raise
                await asyncio.sleep(attempt)
    raise AssertionError("unreachable")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: package_app.py OUTPUT.tgz", file=sys.stderr)
        return 2
    dependency_package.DEPENDENCIES_TO_BUILD.add("mde_connector")
    sources.UvWheel.fetch = _fetch  # type: ignore[method-assign]
    package_cli.build(APP_DIR, Path(argv[0]).resolve(), None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

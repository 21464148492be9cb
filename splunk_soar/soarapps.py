"""Splunk's ``soarapps`` CLI, able to package the connector core from this repository.

Run with the SDK virtualenv's Python, with the same arguments as ``soarapps``::

    python splunk_soar/soarapps.py package build splunk_soar -o dist/mde_connector_soar.tgz
    python splunk_soar/soarapps.py manifests create app.json splunk_soar

``scripts/build-splunk-soar-app`` calls the first. Two adjustments, nothing else:

- The connector core is a local project (``[tool.uv.sources]`` in
  pyproject.toml points at the repository root), and the SDK builds local
  projects into wheels only for the packages it lists in
  ``DEPENDENCIES_TO_BUILD``. Adding ``mde-connector`` there makes the SDK build
  the core with the standard PEP 517 build (the same wheel ``pip wheel .``
  makes), put it under ``wheels/`` and declare it in the app JSON's
  ``pip313_dependencies`` like every other dependency.
- The SDK downloads every wheel at once with a short connect timeout, which a
  busy machine or a connection-limiting proxy turns into ``ConnectTimeout``;
  here the downloads go four at a time with a few retries (the SDK still
  checks each wheel's hash against uv.lock).
"""

import asyncio

import httpx
from soar_sdk.cli import cli
from soar_sdk.meta.dependencies import package as dependency_package
from soar_sdk.meta.dependencies import sources

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


def main() -> None:
    """``soarapps`` with the two adjustments above."""
    dependency_package.DEPENDENCIES_TO_BUILD.add("mde_connector")
    sources.UvWheel.fetch = _fetch  # type: ignore[method-assign]
    cli.main()


if __name__ == "__main__":
    main()

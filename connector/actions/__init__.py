"""Actions: one module per action, each a ``handler(params, context)``.

The manifest is the registry: each action's ``handler`` names its module, and
:func:`load_handler` imports it on first use (the CLI only pays for the
action it runs). tests/test_manifest_keys.py fails when a declared action has
no handler or an action module is not declared.

:func:`run_action` is the one way every caller (CLI, playbook engine, poller,
benchmarks) runs an action: it validates the parameters against the manifest,
calls the handler, turns any ConnectorError into a failed result with the
right exit code, and saves the result in the store in one transaction.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from connector.config import Config
from connector.errors import ConfigError, ConnectorError, StoreError
from connector.manifest import ActionSpec, Manifest, load_manifest
from connector.sdk import ActionResult, AlertClient, Context, ResultStore

log = logging.getLogger("connector.actions")

Handler = Callable[[dict[str, Any], Context], ActionResult]


def load_handler(spec: ActionSpec) -> Handler:
    """The ``handler`` function of the module the manifest declares for
    ``spec``. Raises ImportError or AttributeError when the declaration is
    wrong (a packaging error, which the manifest tests catch)."""
    handler: Handler = importlib.import_module(spec.handler).handler
    return handler


@dataclass
class ActionContext:
    """What a handler may use. ``client`` is built on first use from
    ``config`` so that invalid input never opens a connection."""

    config: Config | None
    store: ResultStore | None = None
    progress: Callable[[str], None] = lambda message: None
    client_factory: Callable[[Config | None], AlertClient] | None = None
    _client: AlertClient | None = field(default=None, repr=False)
    _enrichment: AlertClient | None = field(default=None, repr=False)

    def _config(self) -> Config:
        if self.config is None:
            raise ConfigError("This action needs the instance configuration and none was loaded.",
                              hint="Pass --config FILE or set MDE_CONFIG.")
        return self.config

    @property
    def client(self) -> AlertClient:
        if self._client is None:
            if self.client_factory is not None:
                self._client = self.client_factory(self.config)
            else:
                from connector.http.graph import client_for

                self._client = client_for(self._config())
        return self._client

    @property
    def enrichment_client(self) -> AlertClient:
        """A Defender API client for ``enrich_files`` with ``source: graph``
        (the Defender API's own token scope and shared rate budget)."""
        if self._enrichment is None:
            from connector.http.client import DefenderClient

            self._enrichment = DefenderClient.from_config(self._config())
        return self._enrichment


def run_action(name: str, params: dict[str, Any], context: Context | None,
               *, container_fields: dict[str, Any] | None = None) -> ActionResult:
    """Validate ``params``, run the action, save the result; never raises a
    ConnectorError (it becomes a failed result). ``context`` may be None only
    when the parameters are invalid or the configuration failed to load (the
    caller then gets the failed result for that)."""
    started = time.time()
    action_name = name
    # Parameters come from playbooks and callers too: anything but an object
    # is refused by validate_params below, in one sentence.
    validated: dict[str, Any] = dict(params) if isinstance(params, dict) else {}
    manifest: Manifest | None = None
    try:
        manifest = load_manifest()
        spec = manifest.action(name)
        action_name = spec.name
        validated = spec.validate_params(params)
        if context is None:
            raise RuntimeError("run_action needs a context once parameters are valid")
        result = load_handler(spec)(validated, context)
    except ConnectorError as err:
        result = ActionResult.failure(action_name, err, validated)
    key = validated.get(manifest.container_key) if manifest is not None else None
    container = key if isinstance(key, str) else None
    # Invalid input or configuration never reached the network: nothing to record.
    recordable = result.error is None or result.error.get("kind") not in {"invalid_input", "invalid_config"}
    if context is not None and context.store is not None and recordable:
        try:
            context.store.save_action_result(result, container=container, started=started,
                                             container_fields=container_fields)
        except StoreError as err:
            return ActionResult.failure(action_name, err, validated)
    return result

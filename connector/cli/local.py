"""Where every command finds the local state directory, and how it opens it.

One rule for all of them (:func:`connector.config.state_dir_setting`):
``--state-dir``, else ``MDE_STATE_DIR``, else the configuration's
``state_dir`` (``--config FILE`` or ``MDE_CONFIG``), else the default. Reading
the store never needs credentials; commands that call the API load the whole
configuration and still honour ``--state-dir`` the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connector.runtime.store import Store


def state_dir(args: argparse.Namespace) -> Path:
    """The state directory for the parsed command line ``args``."""
    from connector.config import state_dir_setting

    return state_dir_setting(getattr(args, "config", None), override=getattr(args, "state_dir", None))


def open_store_read_only(args: argparse.Namespace, hint: str = "Run an action or a playbook first.") -> Store:
    """The store in the state directory, opened read-only (it works on a
    read-only directory). ConfigError (exit 2) with ``hint`` when there is no
    store yet."""
    from connector.runtime.store import Store

    return Store.open_existing(state_dir(args), hint=hint)


def load_cli_config(args: argparse.Namespace) -> Any:
    """The full configuration (credentials included) for a command that calls
    the API, its ``state_dir`` resolved by the same rule as :func:`state_dir`."""
    from connector.config import load_config

    config = load_config(getattr(args, "config", None))
    if getattr(args, "state_dir", None):
        state = state_dir(args)
        config = dataclasses.replace(config, state_dir=state, raw={**config.raw, "state_dir": str(state)})
    return config


def add_state_dir(parser: argparse.ArgumentParser) -> None:
    """The ``--state-dir`` option, worded alike on every command."""
    parser.add_argument("--state-dir", metavar="DIR",
                        help="state directory (default: $MDE_STATE_DIR, the configuration's state_dir, "
                             "else ~/.local/state/mde-connector)")


def tell_progress(client: Any, progress: Callable[[str], None]) -> Any:
    """``client`` set to tell ``progress`` each retry about to wait and each
    wait for the connector's rate budget, with its real length."""
    if hasattr(client, "notify"):
        client.notify = progress
    budget = getattr(client, "budget", None)
    if budget is not None and hasattr(budget, "on_wait"):
        budget.on_wait = lambda seconds: progress(
            f"the connector's rate budget is full; next call in {max(1, round(seconds))} s")
    return client

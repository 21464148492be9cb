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
        config = dataclasses.replace(config, state_dir=state_dir(args))
    return config


def add_state_dir(parser: argparse.ArgumentParser) -> None:
    """The ``--state-dir`` option, worded alike on every command."""
    parser.add_argument("--state-dir", metavar="DIR",
                        help="state directory (default: $MDE_STATE_DIR, the configuration's state_dir, "
                             "else ~/.local/state/mde-connector)")

"""The concrete collaborators satisfy the Protocols of ``connector/sdk.py``.

Two checks: at run time (``isinstance`` against the runtime-checkable
Protocols, which sees every member by name), and statically: this file is in
mypy's ``files`` (``mypy.ini``), so the typed assignments in
:func:`_static_conformance` fail ``mypy`` when a signature drifts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.actions import ActionContext
from connector.config import Config, resolve
from connector.http.auth import TokenProvider
from connector.http.client import DefenderClient
from connector.http.graph import GraphClient, graph_config
from connector.runtime.store import Store
from connector.sdk import AlertClient, Context, EvidenceClient, ResultStore, TokenSource


def _config(tmp_path: Path) -> Config:
    return resolve({"tenant_id": "t", "client_id": "c", "client_secret": "s", "state_dir": str(tmp_path / "state"),
                    "api_base_url": "https://127.0.0.1:8443", "authority_url": "https://127.0.0.1:8443/t"})


def _static_conformance(config: Config, store: Store, defender: DefenderClient, graph: GraphClient,
                        tokens: TokenProvider) -> list[object]:
    """Never called for its value: mypy checks each assignment."""
    context: Context = ActionContext(config=config, store=store)
    result_store: ResultStore = store
    client: AlertClient = defender
    graph_client: AlertClient = graph
    evidence: EvidenceClient = graph
    token_source: TokenSource = tokens
    return [context, result_store, client, graph_client, evidence, token_source]


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return _config(tmp_path)


def test_the_store_is_a_result_store(config: Config) -> None:
    store = Store.open(config.state_dir)
    assert isinstance(store, ResultStore)
    assert not isinstance(object(), ResultStore)


def test_the_api_clients_are_alert_clients_and_graph_gives_evidence(config: Config) -> None:
    defender = DefenderClient.from_config(config)
    graph = GraphClient.from_config(graph_config(config))
    assert isinstance(defender, AlertClient) and isinstance(graph, AlertClient)
    assert isinstance(graph, EvidenceClient) and not isinstance(defender, EvidenceClient)
    assert isinstance(defender.tokens, TokenSource)


def test_the_action_context_is_a_context(config: Config) -> None:
    store = Store.open(config.state_dir)
    context = ActionContext(config=config, store=store)
    assert isinstance(context, Context)
    assert isinstance(context.client, AlertClient)  # built from the configuration, no request sent
    defender = DefenderClient.from_config(config)
    assert isinstance(defender.tokens, TokenProvider)
    checked = _static_conformance(config, store, defender, GraphClient.from_config(graph_config(config)),
                                  defender.tokens)
    assert all(isinstance(c, (Context, ResultStore, AlertClient, TokenSource)) for c in checked)

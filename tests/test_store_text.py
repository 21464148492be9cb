"""The store keeps API text it cannot encode as UTF-8 (lone surrogates) and NaN."""

from __future__ import annotations

from connector.artifacts import build_artifacts
from connector.runtime.store import Store


def test_an_artifact_with_a_lone_surrogate_is_stored_and_read_back_unchanged(tmp_path) -> None:
    store = Store.open(tmp_path)
    mapped = build_artifacts("da1_1", [{"sha256": "ab" * 32, "signer": "Contoso\ud800 Ltd", "size": 10}])
    with store.transaction() as conn:
        store.upsert_container(conn, "da1_1", name="Alert", source="test", data={"title": "\udfff"})
        assert store.upsert_artifacts(conn, mapped.artifacts) == 1
    stored = store.artifacts("da1_1")
    assert stored[0]["cef"]["signer"] == "Contoso\ud800 Ltd"
    assert store.container("da1_1")["data"] == {"title": "\udfff"}

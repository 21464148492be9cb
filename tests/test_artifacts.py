"""File -> artifact mapping: one artifact per distinct file, clean CEF values,
verdicts and stable identifiers. (Mapping speed is measured by bench/large.py,
not asserted here: a test must pass on a busy machine.)"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.artifacts import RARE_PREVALENCE, SUMMARY_KEYS, build_artifacts, default_mapping
from tests.strategies import json_values

FIXTURES = Path(__file__).parent / "fixtures"
ALERT = "636688558380765161_2136280442"
OTHER_ALERT = "da637308392288907382_-880718168"

SHA256 = "dcd71ef5fff4362a9f64cf3f96f14f2b11d6f428f3badbedcb9ff3361e7079aa"
SHA1 = "f2a00fd2f2de1be0214b8529f1e9f67096c1aa70"
MD5 = "8d5b7cc9a832e21d22503057e1fec8e9"


def load(name: str) -> list[dict[str, Any]]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))["value"]


def one(files: list[dict[str, Any]]) -> dict[str, Any]:
    result = build_artifacts(ALERT, files)
    assert len(result.artifacts) == 1
    return result.artifacts[0]


def hashes(seed: str) -> dict[str, str]:
    # Deterministic, realistic-looking file hashes (test data, not security).
    b = seed.encode()
    return {
        "sha1": hashlib.sha1(b, usedforsecurity=False).hexdigest(),
        "sha256": hashlib.sha256(b).hexdigest(),
        "md5": hashlib.md5(b, usedforsecurity=False).hexdigest(),
    }


# -- Microsoft's documented example ----------------------------------------------


def test_documented_example_maps_to_one_artifact_with_every_hash_and_the_signer() -> None:
    art = one(load("documented_example"))
    cef = art["cef"]
    assert cef["fileHashMd5"] == MD5
    assert cef["fileHashSha1"] == SHA1
    assert cef["fileHashSha256"] == SHA256
    assert cef["fileSize"] == 113984
    assert cef["signer"] == "Microsoft Corporation"
    assert cef["issuer"] == "Microsoft Code Signing PCA"
    assert cef["signerHash"] == "9dc17888b5cfad98b3cb35c1994e96227f061675"
    assert cef["isValidCertificate"] is True
    assert cef["globalPrevalence"] == 29
    assert art["label"] == "file" and art["type"] == "file"
    assert art["container"] == ALERT
    assert art["source_data_identifier"] == f"mde:{ALERT}:file:{SHA256}"


def test_documented_example_cef_types_give_contains_for_hashes_only_where_present() -> None:
    art = one(load("documented_example"))
    assert art["cef_types"] == {
        "fileHashMd5": ["md5", "hash"],
        "fileHashSha1": ["sha1", "hash"],
        "fileHashSha256": ["sha256", "hash"],
        "fileSize": ["file size"],
        "signerHash": ["certificate hash"],
    }
    assert set(art["cef_types"]) <= set(art["cef"])


def test_documented_example_keeps_replacement_characters_and_omits_nulls() -> None:
    art = one(load("documented_example"))
    assert art["cef"]["fileProductName"] == "Microsoft\ufffd Windows\ufffd Operating System"
    assert "fileType" not in art["cef"]  # null in the API
    assert "determinationValue" not in art["cef"]  # null in the API
    assert "None" not in json.dumps(art) and '""' not in json.dumps(art)


def test_documented_example_is_signed_prevalent_and_has_no_findings() -> None:
    result = build_artifacts(ALERT, load("documented_example"))
    art = result.artifacts[0]
    assert art["verdict"] == "no findings"
    assert art["cef"]["verdict"] == "no findings"
    assert art["tags"] == []
    assert art["severity"] == "informational"
    assert art["name"] == "Microsoft Corporation file dcd71ef5fff4\u2026"
    assert result.summary == {
        "total_files": 1,
        "distinct_files": 1,
        "duplicates_collapsed": 0,
        "files_without_hash": 0,
        "unsigned": 0,
        "invalid_certificate": 0,
        "rare": 0,
        "unknown_prevalence": 0,
        "pua": 0,
        "malware": 0,
        "highest_severity": "informational",
        "dropped_values": 0,
        "truncated_values": 0,
    }


def test_mapping_does_not_modify_its_input() -> None:
    files = load("rich")
    before = copy.deepcopy(files)
    build_artifacts(ALERT, files)
    assert files == before


def test_result_is_json_serialisable_and_summary_has_exactly_the_declared_keys() -> None:
    result = build_artifacts(ALERT, load("rich"))
    json.dumps(result.artifacts, ensure_ascii=False)
    assert tuple(result.summary) == SUMMARY_KEYS


# -- absent values -------------------------------------------------------------------


def test_missing_md5_gives_no_md5_key_and_no_cef_types_entry() -> None:
    art = one(load("missing_md5"))
    assert "fileHashMd5" not in art["cef"]
    assert "fileHashMd5" not in art["cef_types"]
    assert art["cef_types"]["fileHashSha256"] == ["sha256", "hash"]


def test_null_fields_are_absent_and_a_file_without_any_hash_still_gets_an_artifact() -> None:
    result = build_artifacts(ALERT, load("nulls_everywhere"))
    first, second = result.artifacts
    assert first["cef"] == {"fileHashSha256": hashes("nulls-a")["sha256"], "verdict": "unsigned, unknown_prevalence"}
    assert first["cef_types"] == {"fileHashSha256": ["sha256", "hash"]}
    assert second["cef"] == {"verdict": "unsigned, unknown_prevalence"}
    assert second["cef_types"] == {}
    assert second["source_data_identifier"].startswith(f"mde:{ALERT}:file:nohash-")
    assert result.summary["files_without_hash"] == 1
    assert result.summary["dropped_values"] == 0  # null is not a wrong type


def test_file_without_hash_keeps_the_same_identifier_when_its_prevalence_changes() -> None:
    record = {"sha256": None, "signer": None, "size": 512, "globalPrevalence": 3}
    later = dict(record, globalPrevalence=4, globalLastObserved="2024-03-01T00:00:00Z")
    a = build_artifacts(ALERT, [record]).artifacts[0]
    b = build_artifacts(ALERT, [later]).artifacts[0]
    assert a["source_data_identifier"] == b["source_data_identifier"]


def test_empty_and_whitespace_strings_are_absent_not_empty() -> None:
    art = one([dict(hashes("blank"), signer="", issuer="   ", fileType="", md5="")])
    assert {"signer", "issuer", "fileType", "fileHashMd5"}.isdisjoint(art["cef"])
    assert "unsigned" in art["tags"]


def test_no_files_gives_no_artifacts_and_a_zero_summary() -> None:
    result = build_artifacts(ALERT, [])
    assert result.artifacts == []
    assert result.summary["total_files"] == 0
    assert result.summary["highest_severity"] == "none"


# -- distinct files ------------------------------------------------------------------


def test_duplicates_collapse_into_one_artifact_per_file() -> None:
    result = build_artifacts(ALERT, load("duplicates"))
    assert [a["cef"]["fileHashSha256"] for a in result.artifacts] == [
        hashes("dup-a")["sha256"],
        hashes("dup-b")["sha256"],
    ]
    assert result.summary["total_files"] == 4
    assert result.summary["distinct_files"] == 2
    assert result.summary["duplicates_collapsed"] == 2


def test_duplicates_merge_with_the_first_non_null_value_winning() -> None:
    art = build_artifacts(ALERT, load("duplicates")).artifacts[0]
    assert art["cef"]["globalPrevalence"] == 1843  # first listing wins over the later 1850
    assert art["cef"]["fileType"] == "APP"  # null in the first listing, filled by the second
    assert art["cef"]["signer"] == "Contoso Ltd."  # the sha1-only record does not override it


def test_a_sha1_only_record_listed_first_merges_with_the_full_record_and_keeps_the_sha256_identity() -> None:
    full = dict(hashes("order"), signer="Contoso Ltd.")
    partial = {"sha1": full["sha1"].upper(), "sha256": None}
    forward = build_artifacts(ALERT, [full, partial]).artifacts
    backward = build_artifacts(ALERT, [partial, full]).artifacts
    assert len(forward) == len(backward) == 1
    assert forward[0]["source_data_identifier"] == backward[0]["source_data_identifier"]
    assert backward[0]["source_data_identifier"].endswith(full["sha256"])


def test_records_sharing_a_sha1_but_with_different_sha256_stay_apart() -> None:
    a = dict(hashes("conflict"))
    b = dict(a, sha256=hashes("conflict-other")["sha256"])
    result = build_artifacts(ALERT, [a, b])
    assert result.summary["distinct_files"] == 2
    assert result.summary["duplicates_collapsed"] == 0


def test_identity_falls_back_from_sha256_to_sha1_to_md5_and_is_lowercased() -> None:
    h = hashes("fallback")
    by_sha1 = one([{"sha1": h["sha1"].upper(), "md5": h["md5"], "sha256": "zz"}])
    by_md5 = one([{"md5": h["md5"].upper()}])
    assert by_sha1["source_data_identifier"] == f"mde:{ALERT}:file:{h['sha1']}"
    assert by_sha1["cef"]["fileHashSha1"] == h["sha1"]
    assert by_md5["source_data_identifier"] == f"mde:{ALERT}:file:{h['md5']}"


def test_source_data_identifier_is_stable_across_runs_and_differs_between_alerts() -> None:
    files = load("rich")
    run1 = [a["source_data_identifier"] for a in build_artifacts(ALERT, files).artifacts]
    run2 = [a["source_data_identifier"] for a in build_artifacts(ALERT, copy.deepcopy(files)).artifacts]
    other = [a["source_data_identifier"] for a in build_artifacts(OTHER_ALERT, files).artifacts]
    assert run1 == run2
    assert len(set(run1)) == len(run1)
    assert set(run1).isdisjoint(other)
    assert all(sdi.startswith(f"mde:{OTHER_ALERT}:file:") for sdi in other)


def test_five_thousand_distinct_files_give_five_thousand_artifacts() -> None:
    files = [dict(hashes(f"bulk-{i}"), signer="Contoso Ltd.", globalPrevalence=i) for i in range(5000)]
    files += files[:100]  # a second page repeating some files
    result = build_artifacts(ALERT, files)
    assert len(result.artifacts) == 5000
    assert len({a["source_data_identifier"] for a in result.artifacts}) == 5000
    assert result.summary["total_files"] == 5100
    assert result.summary["duplicates_collapsed"] == 100
    assert result.summary["rare"] == RARE_PREVALENCE  # prevalence 0..9


# -- verdicts ----------------------------------------------------------------------------


def signed(seed: str, **fields: Any) -> dict[str, Any]:
    base = dict(hashes(seed), signer="Contoso Ltd.", isValidCertificate=True, globalPrevalence=500)
    base.update(fields)
    return base


@pytest.mark.parametrize(
    ("fields", "tags", "severity"),
    [
        ({}, [], "informational"),
        ({"determinationType": "Malware"}, ["malware"], "high"),
        ({"determinationType": "Pua"}, ["pua"], "medium"),
        ({"determinationType": "Clean"}, [], "informational"),
        ({"isValidCertificate": False}, ["invalid_certificate"], "medium"),
        ({"signer": None}, ["unsigned"], "low"),
        ({"signer": None, "isValidCertificate": False}, ["unsigned"], "low"),
        ({"globalPrevalence": RARE_PREVALENCE - 1}, ["rare"], "low"),
        ({"globalPrevalence": 0}, ["rare"], "low"),
        ({"globalPrevalence": RARE_PREVALENCE}, [], "informational"),
        ({"globalPrevalence": None}, ["unknown_prevalence"], "informational"),
        (
            {"determinationType": "Malware", "signer": None, "globalPrevalence": 1},
            ["malware", "unsigned", "rare"],
            "high",
        ),
        ({"determinationType": "Pua", "isValidCertificate": False}, ["pua", "invalid_certificate"], "medium"),
    ],
)
def test_verdict_flags_and_severity(fields: dict[str, Any], tags: list[str], severity: str) -> None:
    art = one([signed("verdict", **fields)])
    assert art["tags"] == tags
    assert art["severity"] == severity
    assert art["verdict"] == (", ".join(tags) if tags else "no findings")


def test_summary_counts_each_flag_and_the_highest_severity() -> None:
    summary = build_artifacts(ALERT, load("rich")).summary
    assert summary["malware"] == 1
    assert summary["pua"] == 1
    assert summary["invalid_certificate"] == 1
    assert summary["unsigned"] == 3
    assert summary["rare"] == 2
    assert summary["highest_severity"] == "high"


def test_artifact_names_say_who_signed_or_what_was_detected() -> None:
    names = [a["name"] for a in build_artifacts(ALERT, load("rich")).artifacts]
    assert names[0].startswith("Contoso Ltd. file 5fe85f6fde44")
    assert names[1].startswith("Trojan:Win32/Wacatac.B!ml file ")
    assert names[4].startswith("unsigned file ")
    assert names[5].startswith("unsigned file without hash ")
    assert all(len(n) <= 80 for n in names)


# -- wrong types, long and non-ASCII strings ------------------------------------------


def test_wrong_types_are_dropped_not_stringified_and_counted() -> None:
    result = build_artifacts(ALERT, load("wrong_types"))
    cef = result.artifacts[0]["cef"]
    for key in (
        "fileHashMd5",
        "fileHashSha1",
        "fileSize",
        "isValidCertificate",
        "signer",
        "globalPrevalence",
        "isPeFile",
        "signerHash",
        "globalFirstObserved",
    ):
        assert key not in cef, key
    assert cef["fileHashSha256"] == hashes("wrong-types")["sha256"]  # the valid values survive
    assert cef["issuer"].startswith("DigiCert")
    assert result.summary["dropped_values"] == 9
    assert not any("{" in v or v in ("None", "True", "12.5") for v in cef.values() if isinstance(v, str))


def test_booleans_are_not_accepted_as_sizes_and_negative_sizes_are_dropped() -> None:
    result = build_artifacts(ALERT, [signed("bools", size=True), signed("neg", size=-1)])
    assert all("fileSize" not in a["cef"] for a in result.artifacts)
    assert result.summary["dropped_values"] == 2


def test_records_that_are_not_objects_are_skipped_and_counted() -> None:
    result = build_artifacts(ALERT, [None, "sha256", signed("ok")])  # type: ignore[list-item]
    assert len(result.artifacts) == 1
    assert result.summary["total_files"] == 3
    assert result.summary["dropped_values"] == 2


def test_long_strings_are_truncated_to_1024_characters_and_counted() -> None:
    result = build_artifacts(ALERT, load("long_strings"))
    cef = result.artifacts[0]["cef"]
    for key in ("fileProductName", "signer", "determinationValue"):
        assert len(cef[key]) == 1024
        assert cef[key].endswith("\u2026")
    assert cef["fileProductName"].startswith("Contoso Enterprise Enterprise")
    assert result.summary["truncated_values"] == 3
    assert len(result.artifacts[0]["name"]) < 80


def test_non_ascii_text_is_kept_as_received() -> None:
    arts = build_artifacts(ALERT, load("non_ascii")).artifacts
    assert arts[0]["cef"]["signer"] == "ООО «Лаборатория Касперского»"
    assert arts[1]["cef"]["fileProductName"] == "微信 (WeChat)"
    assert arts[2]["cef"]["filePublisher"] == "Müller & Söhne GmbH"
    assert arts[3]["cef"]["fileProductName"] == "Microsoft\ufffd Windows\ufffd Operating System"
    assert arts[1]["name"].startswith("腾讯科技(深圳)有限公司 file ")


def test_hash_with_non_hex_unicode_digits_is_rejected() -> None:
    # '٣' (Arabic-Indic three) is a digit to str.isdigit but not hex.
    bad = "٣" * 64
    result = build_artifacts(ALERT, [{"sha256": bad, "sha1": hashes("x")["sha1"]}])
    assert "fileHashSha256" not in result.artifacts[0]["cef"]
    assert result.summary["dropped_values"] == 1


# -- driven by the manifest ------------------------------------------------------------


def test_a_custom_mapping_changes_the_cef_keys_without_code_changes() -> None:
    mapping = copy.deepcopy(default_mapping())
    mapping["cef_mapping"] = {
        "fileHash": {"source": "sha256", "value_type": "sha256", "contains": ["sha256", "hash"]},
        "verdict": {"derived": "verdict", "value_type": "string", "contains": []},
    }
    mapping["source_data_identifier"] = "custom/{alert_id}/{identity}"
    art = build_artifacts(ALERT, load("documented_example"), mapping).artifacts[0]
    assert art["cef"] == {"fileHash": SHA256, "verdict": "no findings"}
    assert art["cef_types"] == {"fileHash": ["sha256", "hash"]}
    assert art["source_data_identifier"] == f"custom/{ALERT}/{SHA256}"
    # The verdict still sees the signer although the mapping does not map it.
    unsigned = build_artifacts(ALERT, [{"sha256": SHA256, "signer": None}], mapping).artifacts[0]
    assert unsigned["verdict"].startswith("unsigned")


def test_alert_id_with_braces_is_used_literally_in_the_identifier() -> None:
    art = build_artifacts("{identity}x", load("documented_example")).artifacts[0]
    assert art["source_data_identifier"] == f"mde:{{identity}}x:file:{SHA256}"


# -- any input, however malformed ---------------------------------------------------------

hex_strings = st.sampled_from(["0123456789abcdef", "0123456789ABCDEF"]).flatmap(
    lambda alphabet: st.sampled_from([32, 40, 64]).flatmap(lambda n: st.text(alphabet, min_size=n, max_size=n))
)
file_records = st.fixed_dictionaries(
    {},
    optional={
        "sha1": hex_strings | json_values,
        "sha256": hex_strings | json_values,
        "md5": hex_strings | json_values,
        **{name: json_values for name in ("size", "signer", "issuer", "isValidCertificate", "globalPrevalence",
                                            "determinationType", "fileProductName", "globalFirstObserved")},
    },
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(file_records, max_size=12))
def test_any_records_map_to_clean_artifacts(files: list[dict[str, Any]]) -> None:
    result = build_artifacts(ALERT, files)
    summary = result.summary
    assert summary["total_files"] == len(files)
    assert summary["distinct_files"] + summary["duplicates_collapsed"] == len(files)
    sdis = [a["source_data_identifier"] for a in result.artifacts]
    assert len(set(sdis)) == len(sdis)
    for art in result.artifacts:
        for key, value in art["cef"].items():
            assert value is not None and value != "" and not isinstance(value, (dict, list, float)), (key, value)
            assert not isinstance(value, str) or len(value) <= 1024
        assert set(art["cef_types"]) <= set(art["cef"])
        assert art["severity"] in ("informational", "low", "medium", "high")
    json.dumps(result.artifacts)

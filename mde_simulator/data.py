"""Deterministic, realistic Defender data for the simulator.

Everything is derived from the simulator's seed, so two simulators with the
same seed serve the same alert ids, files and hashes (timestamps are relative
to the moment the data set is built). File lists are produced by
:func:`generate_files` from a per-alert seed string, so a large alert's files
can be generated lazily, on first request, and still be identical every time.

Well-known alerts (present whatever the seed):

==========================  ===================================================
``EXAMPLE_ALERT_ID``        Microsoft's documented example; its first file is
                            exactly ``EXAMPLE_FILE``, followed by 3 more.
``DA_ALERT_ID``             an id in the ``da<ticks>_<n>`` shape.
``NEGATIVE_ALERT_ID``       ``da<ticks>_-<n>``: the part after ``_`` is negative.
``LARGE_ALERT_5K``          5,000 files.
``LARGE_ALERT_10K``         10,000 files.
``EMPTY_ALERT_ID``          no files (``"value": []``).
``DUPLICATES_ALERT_ID``     its list repeats files (same dict twice).
``UNICODE_ALERT_ID``        publishers/products in Cyrillic, Japanese, accents.
``SPARSE_ALERT_ID``         files with nulls in any field, md5 key missing.
``PUA_ALERT_ID``            potentially unwanted applications (``PUA:Win32/...``).
``MALWARE_ALERT_ID``        malware determinations, unsigned and invalid certs.
``INVALID_CERT_ALERT_ID``   signed files whose certificate did not verify.
==========================  ===================================================

Besides those, ``SEEDED_ALERT_COUNT`` alerts with mixed files are spread over
the 24 hours before the data set is built; some share the exact same
``alertCreationTime`` (and some the same ``lastUpdateTime``).
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .odata import TICKS_PER_SECOND, format_ticks

EXAMPLE_ALERT_ID = "636688558380765161_2136280442"
DA_ALERT_ID = "da637472900382838869_1364969609"
NEGATIVE_ALERT_ID = "da637308392288907382_-880718168"
LARGE_ALERT_5K = "da638391027183749201_1482205000"
LARGE_ALERT_10K = "da638391027183749202_-1379310000"
#: The alert added by ``SimulatorOptions(huge_alert_files=N)`` (not in the
#: default dataset): N generated files, made at its first request.
HUGE_ALERT_ID = "da638391027183749203_1000000000"
EMPTY_ALERT_ID = "da638402718394857120_903442817"
DUPLICATES_ALERT_ID = "da638402718394857121_-2077519334"
UNICODE_ALERT_ID = "da638402718394857122_1190556277"
SPARSE_ALERT_ID = "da638402718394857123_-43881916"
PUA_ALERT_ID = "da638402718394857124_620837401"
MALWARE_ALERT_ID = "da638402718394857125_-1566320855"
INVALID_CERT_ALERT_ID = "da638402718394857126_1848192330"

SEEDED_ALERT_COUNT = 40

#: The file of Microsoft's documented example response, byte for byte in meaning
#: (including the U+FFFD replacement characters of the product name).
EXAMPLE_FILE: dict[str, Any] = {
    "sha1": "f2a00fd2f2de1be0214b8529f1e9f67096c1aa70",
    "sha256": "dcd71ef5fff4362a9f64cf3f96f14f2b11d6f428f3badbedcb9ff3361e7079aa",
    "md5": "8d5b7cc9a832e21d22503057e1fec8e9",
    "globalPrevalence": 29,
    "globalFirstObserved": "2019-03-23T23:54:06.0135204Z",
    "globalLastObserved": "2019-04-23T00:43:20.0489831Z",
    "size": 113984,
    "fileType": None,
    "isPeFile": True,
    "filePublisher": "Microsoft Corporation",
    "fileProductName": "Microsoft\ufffd Windows\ufffd Operating System",
    "signer": "Microsoft Corporation",
    "issuer": "Microsoft Code Signing PCA",
    "signerHash": "9dc17888b5cfad98b3cb35c1994e96227f061675",
    "isValidCertificate": True,
    "determinationType": "Unknown",
    "determinationValue": None,
}
_EXAMPLE_FILE_NAME = ("csrss.exe", r"C:\Windows\System32")

FILE_FIELDS = tuple(EXAMPLE_FILE)

# (filePublisher, fileProductName, signer, issuer, file names, folder)
_SIGNED = [
    (
        "Microsoft Corporation",
        "Microsoft\u00ae Windows\u00ae Operating System",
        "Microsoft Windows",
        "Microsoft Windows Production PCA 2011",
        ["svchost.exe", "rundll32.exe", "powershell.exe", "cmd.exe", "mshta.exe", "regsvr32.exe",
         "certutil.exe", "wmic.exe", "lsass.exe", "schtasks.exe"],
        r"C:\Windows\System32",
    ),
    (
        "Microsoft Corporation",
        "Microsoft Office",
        "Microsoft Corporation",
        "Microsoft Code Signing PCA 2011",
        ["WINWORD.EXE", "EXCEL.EXE", "OUTLOOK.EXE", "POWERPNT.EXE"],
        r"C:\Program Files\Microsoft Office\root\Office16",
    ),
    (
        "Microsoft Corporation",
        "Microsoft Edge",
        "Microsoft Corporation",
        "Microsoft Code Signing PCA 2011",
        ["msedge.exe", "msedgewebview2.exe"],
        r"C:\Program Files (x86)\Microsoft\Edge\Application",
    ),
    (
        "Google LLC",
        "Google Chrome",
        "Google LLC",
        "DigiCert Trusted G4 Code Signing RSA4096 SHA384 2021 CA1",
        ["chrome.exe", "chrome_proxy.exe"],
        r"C:\Program Files\Google\Chrome\Application",
    ),
    (
        "Adobe Inc.",
        "Adobe Acrobat Reader",
        "Adobe Inc.",
        "DigiCert Trusted G4 Code Signing RSA4096 SHA384 2021 CA1",
        ["AcroRd32.exe", "Acrobat.exe", "AdobeARM.exe"],
        r"C:\Program Files\Adobe\Acrobat DC\Acrobat",
    ),
    (
        "Mozilla Corporation",
        "Firefox",
        "Mozilla Corporation",
        "DigiCert SHA2 Assured ID Code Signing CA",
        ["firefox.exe", "updater.exe"],
        r"C:\Program Files\Mozilla Firefox",
    ),
    (
        "Oracle America, Inc.",
        "Java(TM) Platform SE 8",
        "Oracle America, Inc.",
        "DigiCert Trusted G4 Code Signing RSA4096 SHA384 2021 CA1",
        ["java.exe", "javaw.exe"],
        r"C:\Program Files\Java\jre-1.8\bin",
    ),
    (
        "Zoom Video Communications, Inc.",
        "Zoom",
        "Zoom Video Communications, Inc.",
        "DigiCert Trusted G4 Code Signing RSA4096 SHA384 2021 CA1",
        ["Zoom.exe", "CptHost.exe"],
        r"C:\Users\{user}\AppData\Roaming\Zoom\bin",
    ),
]

_UNICODE = [
    (
        "ООО «Яндекс»",
        "Яндекс.Браузер",
        "Яндекс",
        "Sectigo Public Code Signing CA R36",
        ["browser.exe", "service_update.exe"],
        r"C:\Users\{user}\AppData\Local\Yandex\YandexBrowser\Application",
    ),
    (
        "株式会社ジャストシステム",
        "一太郎",
        "株式会社ジャストシステム",
        "DigiCert SHA2 Assured ID Code Signing CA",
        ["TARO.EXE", "JSTARO.DLL"],
        r"C:\Program Files (x86)\JustSystems\TARO",
    ),
    (
        "Société Générale",
        "Trésorerie Connect — édition entreprise",
        "Société Générale",
        "Sectigo Public Code Signing CA EV R36",
        ["TresoConnect.exe"],
        r"C:\Program Files\Société Générale\Trésorerie",
    ),
    (
        "Ünïcödé GmbH",
        "Ünïcödé Wërkzeug",
        "Ünïcödé GmbH",
        "GlobalSign GCC R45 EV CodeSigning CA 2020",
        ["wërkzeug.exe", "Überwachung.dll"],
        r"C:\Program Files\Ünïcödé\Wërkzeug",
    ),
]

_INVALID_SIGNERS = [
    ("Microsoft Corporation", "Microsoft Code Signing PCA 2011"),
    ("NVIDIA Corporation", "VeriSign Class 3 Code Signing 2010 CA"),
    ("Fortemedia Inc.", "Sectigo Public Code Signing CA R36"),
    ("TeamViewer Germany GmbH", "DigiCert SHA2 Assured ID Code Signing CA"),
]

_UNSIGNED_NAMES = [
    ("invoice_2026-11.exe", r"C:\Users\{user}\Downloads"),
    ("setup.exe", r"C:\Users\{user}\AppData\Local\Temp"),
    ("update.ps1", r"C:\ProgramData\Updater"),
    ("payload.dll", r"C:\Windows\Temp"),
    ("svch0st.exe", r"C:\Users\Public"),
    ("a.exe", r"C:\PerfLogs"),
    ("run.vbs", r"C:\Users\{user}\AppData\Roaming"),
    ("Rechnung_Überfällig.js", r"C:\Users\{user}\Downloads"),
]

_PUA = [
    ("PUA:Win32/FusionCore", "FusionCore Software Ltd", "FusionInstaller.exe"),
    ("PUA:Win32/Presenoker", "Presenoker Media", "PresenokerSetup.exe"),
    ("PUA:Win32/CandyOpen", "SweetLabs, Inc.", "candy_bundle.exe"),
    ("PUA:Win32/Softcnapp", None, "softcnapp_x64.exe"),
    ("PUA:Win32/Vigua.A", "Vigua Tech", "vigua.exe"),
]

_MALWARE = [
    ("Trojan:Win32/Emotet.RT!MTB", "Emotet", "Emotet"),
    ("Trojan:Win32/Qakbot.RPX!MTB", "Qakbot", "Qakbot"),
    ("Ransom:Win32/LockBit.PA!MTB", "LockBit", "LockBit"),
    ("HackTool:Win32/Mimikatz.D", "Mimikatz", "Mimikatz"),
    ("Trojan:Win32/AgentTesla!ml", "AgentTesla", "AgentTesla"),
    ("TrojanDownloader:O97M/Donoff.SS!MTB", "Donoff", "Donoff"),
    ("Backdoor:Win64/CobaltStrike.NP!dha", "CobaltStrike", "CobaltStrike"),
]

_USERS = ["jdoe", "a.kowalski", "m.müller", "svc_backup", "chen.wei", "o.petrenko", "admin"]
_HOSTS = [
    "desktop-7h2k1qv.contoso.local",
    "ws-fin-0042.corp.contoso.com",
    "lt-sales-118.corp.contoso.com",
    "srv-sql-02.contoso.local",
    "mbp-design-07",
    "vm-build-agent-3.dev.contoso.com",
    "kiosk-lobby-1",
]


@dataclass(frozen=True)
class FileRecord:
    """One related file: the API entity plus where it lived (for evidence)."""

    entity: dict[str, Any]
    file_name: str
    folder: str


def _hex(rng: random.Random, bits: int) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


def _signer_hash(signer: str, issuer: str) -> str:
    # Stable across seeds, as a real signing certificate's hash would be.
    return hashlib.sha1(f"{signer}|{issuer}".encode()).hexdigest()  # noqa: S324 - an identifier


def _stamp(base_ticks: int, rng: random.Random, max_days_back: float) -> str:
    back = int(rng.random() * max_days_back * 86400 * TICKS_PER_SECOND)
    return format_ticks(base_ticks - back)


def _prevalence(rng: random.Random, rare: bool) -> int:
    if rare:
        return rng.randint(1, 5)
    return rng.choice([rng.randint(20, 50_000), rng.randint(1_000_000, 950_000_000)])


def _base_file(
    rng: random.Random,
    now_ticks: int,
    *,
    publisher: str | None,
    product: str | None,
    signer: str | None,
    issuer: str | None,
    valid: bool | None,
    rare: bool,
    determination: tuple[str, str | None],
    file_name: str,
) -> dict[str, Any]:
    is_pe = file_name.lower().endswith((".exe", ".dll", ".sys", ".scr"))
    first_seen_days = 20.0 if rare else 2000.0
    first = now_ticks - int(rng.random() * first_seen_days * 86400 * TICKS_PER_SECOND)
    last = first + int(rng.random() * (now_ticks - first))
    return {
        "sha1": _hex(rng, 160),
        "sha256": _hex(rng, 256),
        "md5": _hex(rng, 128),
        "globalPrevalence": _prevalence(rng, rare),
        "globalFirstObserved": format_ticks(first),
        "globalLastObserved": format_ticks(last),
        "size": rng.randint(2_000, 180_000_000) if is_pe else rng.randint(300, 400_000),
        "fileType": "APP" if is_pe and rng.random() < 0.15 else None,
        "isPeFile": is_pe,
        "filePublisher": publisher,
        "fileProductName": product,
        "signer": signer,
        "issuer": issuer,
        "signerHash": _signer_hash(signer, issuer or "") if signer else None,
        "isValidCertificate": valid,
        "determinationType": determination[0],
        "determinationValue": determination[1],
    }


def _folder(template: str, rng: random.Random) -> str:
    return template.replace("{user}", rng.choice(_USERS))


def make_file(rng: random.Random, kind: str, now_ticks: int) -> FileRecord:
    """One file of the given kind: ``signed``, ``unicode``, ``unsigned``,
    ``invalid``, ``pua``, ``malware`` or ``sparse``."""
    publisher: str | None
    product: str | None
    signer: str | None
    issuer: str | None
    if kind in ("signed", "unicode"):
        publisher, product, signer, issuer, names, folder = rng.choice(
            _SIGNED if kind == "signed" else _UNICODE
        )
        name = rng.choice(names)
        clean = rng.random() < 0.5
        entity = _base_file(
            rng, now_ticks, publisher=publisher, product=product, signer=signer, issuer=issuer,
            valid=True, rare=rng.random() < 0.1,
            determination=("Clean", None) if clean else ("Unknown", None), file_name=name,
        )
        return FileRecord(entity, name, _folder(folder, rng))
    if kind == "unsigned":
        name, folder = rng.choice(_UNSIGNED_NAMES)
        entity = _base_file(
            rng, now_ticks, publisher=None, product=None, signer=None, issuer=None,
            valid=rng.choice([False, None]), rare=True,
            determination=("Unknown", None), file_name=name,
        )
        return FileRecord(entity, name, _folder(folder, rng))
    if kind == "invalid":
        signer, issuer = rng.choice(_INVALID_SIGNERS)
        name, folder = rng.choice(_UNSIGNED_NAMES)
        entity = _base_file(
            rng, now_ticks, publisher=signer, product=None, signer=signer, issuer=issuer,
            valid=False, rare=True, determination=("Unknown", None), file_name=name,
        )
        return FileRecord(entity, name, _folder(folder, rng))
    if kind == "pua":
        value, pua_publisher, name = rng.choice(_PUA)
        publisher = pua_publisher
        entity = _base_file(
            rng, now_ticks, publisher=publisher, product=None, signer=publisher,
            issuer="Sectigo Public Code Signing CA R36" if publisher else None,
            valid=bool(publisher) and rng.random() < 0.7, rare=rng.random() < 0.5,
            determination=("Pua", value), file_name=name,
        )
        return FileRecord(entity, name, _folder(r"C:\Users\{user}\Downloads", rng))
    if kind == "malware":
        value, _family, _ = rng.choice(_MALWARE)
        name, folder = rng.choice(_UNSIGNED_NAMES)
        signed = rng.random() < 0.25
        signer = issuer = None
        if signed:
            signer, issuer = rng.choice(_INVALID_SIGNERS)
        entity = _base_file(
            rng, now_ticks, publisher=signer, product=None, signer=signer, issuer=issuer,
            valid=False if signed else None, rare=True,
            determination=("Malware", value), file_name=name,
        )
        return FileRecord(entity, name, _folder(folder, rng))
    if kind == "sparse":
        base = make_file(rng, rng.choice(["signed", "unsigned", "malware", "unicode"]), now_ticks)
        entity = dict(base.entity)
        for field in FILE_FIELDS:
            if rng.random() < 0.35:
                entity[field] = None
        if entity["sha1"] is None and entity["sha256"] is None:
            entity["sha256"] = _hex(rng, 256)
        if rng.random() < 0.5:
            entity.pop("md5", None)
        return FileRecord(entity, base.file_name, base.folder)
    raise ValueError(f"unknown file kind {kind!r}")


_MIXED_KINDS = ["signed", "unsigned", "invalid", "pua", "malware", "unicode", "sparse"]
_MIXED_WEIGHTS = [45, 14, 8, 8, 12, 5, 8]


def iter_mixed(rng: random.Random, now_ticks: int) -> Iterator[FileRecord]:
    """An endless stream of mixed files; about one in ten lacks the md5 key."""
    while True:
        kind = rng.choices(_MIXED_KINDS, _MIXED_WEIGHTS)[0]
        record = make_file(rng, kind, now_ticks)
        if kind != "sparse" and rng.random() < 0.1:
            entity = dict(record.entity)
            entity.pop("md5", None)
            record = FileRecord(entity, record.file_name, record.folder)
        yield record


def generate_files(recipe: str, seed: str, now_ticks: int, limit: int | None = None) -> list[FileRecord]:
    """The related files of an alert, from its recipe and per-alert seed.

    ``limit`` stops early: the first ``limit`` records equal the first
    ``limit`` of the full list (used to build evidence without generating
    10,000 files).
    """
    rng = random.Random(seed)  # noqa: S311 - deterministic fake data, not crypto
    kind, _, count_text = recipe.partition(":")
    count = int(count_text) if count_text else 0
    want = count if limit is None else min(limit, count)
    records: list[FileRecord] = []
    if kind == "example":
        records.append(FileRecord(dict(EXAMPLE_FILE), *_EXAMPLE_FILE_NAME))
        stream = iter_mixed(rng, now_ticks)
        while len(records) < want:
            records.append(next(stream))
        return records
    if kind == "mixed":
        stream = iter_mixed(rng, now_ticks)
        return [next(stream) for _ in range(want)]
    if kind == "duplicates":
        stream = iter_mixed(rng, now_ticks)
        first, second, third = next(stream), next(stream), next(stream)
        records = [first, second, first, third, second, first]
        return records[:want]
    if kind in ("unicode", "sparse", "pua", "malware", "invalid", "unsigned"):
        return [make_file(rng, kind, now_ticks) for _ in range(want)]
    raise ValueError(f"unknown recipe {recipe!r}")


def recipe_size(recipe: str) -> int:
    """How many files a recipe produces."""
    _, _, count = recipe.partition(":")
    return int(count) if count else 0


def evidence_for(records: list[FileRecord], created: str) -> list[dict[str, Any]]:
    """Alert evidence (``$expand=evidence``) for the given files: File entities
    with sha1, sha256, fileName and filePath, but no md5, as MDE sends them."""
    evidence = []
    seen: set[tuple[Any, Any]] = set()
    for record in records:
        key = (record.entity.get("sha1"), record.entity.get("sha256"))
        if key in seen:
            continue
        seen.add(key)
        evidence.append(
            {
                "entityType": "File",
                "evidenceCreationTime": created,
                "sha1": record.entity.get("sha1"),
                "sha256": record.entity.get("sha256"),
                "fileName": record.file_name,
                "filePath": record.folder,
                "processId": None,
                "processCommandLine": None,
                "processCreationTime": None,
                "parentProcessId": None,
                "parentProcessCreationTime": None,
                "parentProcessFileName": None,
                "parentProcessFilePath": None,
                "ipAddress": None,
                "url": None,
                "registryKey": None,
                "registryHive": None,
                "registryValueType": None,
                "registryValue": None,
                "accountName": None,
                "domainName": None,
                "userSid": None,
                "aadUserId": None,
                "userPrincipalName": None,
                "detectionStatus": "Detected",
            }
        )
    return evidence


_SEVERITIES = ["Informational", "Low", "Medium", "High"]
_CATEGORIES = [
    "Malware", "SuspiciousActivity", "Execution", "Persistence", "DefenseEvasion",
    "CredentialAccess", "UnwantedSoftware", "Ransomware", "InitialAccess", "CommandAndControl",
]
_SOURCES = ["WindowsDefenderAv", "WindowsDefenderAtp", "AutomatedInvestigation", "CustomDetection"]
_TECHNIQUES = ["T1059.001", "T1204.002", "T1055", "T1003.001", "T1547.001", "T1105", "T1566.001",
               "T1486", "T1027", "T1218.011"]
_INVESTIGATION_STATES = ["Running", "PendingApproval", "Benign", "SuccessfullyRemediated",
                         "Unsupported_AlertType", "TerminatedBySystem", "Queued"]


@dataclass
class AlertSpec:
    """What the store keeps for one alert: its API entity (evidence filled on
    demand) and how to produce its files."""

    alert: dict[str, Any]
    recipe: str
    files_seed: str


def new_alert_id(rng: random.Random, created_ticks: int) -> str:
    """An id shaped like MDE's: ``da`` + .NET ticks of creation + ``_`` + a
    signed 32-bit number (negative about half of the time)."""
    dotnet_ticks = created_ticks + 621_355_968_000_000_000
    return f"da{dotnet_ticks}_{rng.randint(-(2**31), 2**31 - 1)}"


def make_alert(
    rng: random.Random,
    *,
    alert_id: str,
    created_ticks: int,
    updated_ticks: int,
    recipe: str,
    files_seed: str,
    tenant_id: str,
    now_ticks: int,
    title_hint: str | None = None,
) -> AlertSpec:
    """Build one alert entity (without evidence) from the RNG."""
    first_files = generate_files(recipe, files_seed, now_ticks, limit=3)
    determinations = [r.entity.get("determinationValue") for r in first_files]
    threat = next((d for d in determinations if d), None)
    family = threat.split("/")[-1].split(".")[0].split("!")[0] if threat else None
    status = rng.choices(["New", "InProgress", "Resolved"], [55, 25, 20])[0]
    severity = rng.choices(_SEVERITIES, [10, 25, 35, 30])[0]
    if threat and threat.startswith("PUA:"):
        title = f"An active '{family}' unwanted software was detected"
        category = "UnwantedSoftware"
    elif threat:
        title = f"'{family}' malware was detected"
        category = "Malware"
    else:
        title = rng.choice([
            "Suspicious PowerShell command line",
            "Suspicious process injection observed",
            "Possible credential theft activity",
            "Suspicious file dropped and launched",
            "Anomalous scheduled task created",
        ])
        category = rng.choice(_CATEGORIES)
    if title_hint:
        title = title_hint
    first_event = created_ticks - rng.randint(60, 3600) * TICKS_PER_SECOND
    last_event = first_event + int(rng.random() * (created_ticks - first_event))
    user = rng.choice(_USERS)
    host = rng.choice(_HOSTS)
    alert = {
        "id": alert_id,
        "incidentId": rng.randint(1, 99_999),
        "investigationId": rng.choice([None, rng.randint(1, 9_999)]),
        "assignedTo": None if status == "New" else rng.choice(
            ["secops@contoso.onmicrosoft.com", "Automation", "a.nowak@contoso.com"]
        ),
        "severity": severity,
        "status": status,
        "classification": None if status != "Resolved" else rng.choice(
            ["TruePositive", "FalsePositive", "InformationalExpectedActivity"]
        ),
        "determination": None if status != "Resolved" else rng.choice(
            ["Malware", "UnwantedSoftware", "SecurityTesting", "NotMalicious", "Other"]
        ),
        "investigationState": rng.choice(_INVESTIGATION_STATES),
        "detectionSource": "WindowsDefenderAv" if threat else rng.choice(_SOURCES),
        "detectorId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "category": category,
        "threatFamilyName": family,
        "title": title,
        "description": (
            f"{title} on {host}. Review the related files and the process tree; "
            "the files listed are the ones Defender associated with this alert."
        ),
        "alertCreationTime": format_ticks(created_ticks),
        "firstEventTime": format_ticks(first_event),
        "lastEventTime": format_ticks(last_event),
        "lastUpdateTime": format_ticks(updated_ticks),
        "resolvedTime": format_ticks(updated_ticks) if status == "Resolved" else None,
        "machineId": _hex(rng, 160),
        "computerDnsName": host,
        "rbacGroupName": rng.choice(["UnassignedGroup", "Finance workstations", "Servers"]),
        "aadTenantId": tenant_id,
        "threatName": threat,
        "mitreTechniques": sorted(rng.sample(_TECHNIQUES, rng.randint(0, 3))),
        "relatedUser": {"userName": user, "domainName": "CONTOSO"},
        "loggedOnUsers": [{"accountName": user, "domainName": "CONTOSO"}],
        "comments": [],
        "evidence": [],
    }
    return AlertSpec(alert=alert, recipe=recipe, files_seed=files_seed)


# (alert id, recipe, title) of the well-known alerts.
_WELL_KNOWN = [
    (EXAMPLE_ALERT_ID, "example:4", None),
    (DA_ALERT_ID, "mixed:6", None),
    (NEGATIVE_ALERT_ID, "mixed:3", None),
    (LARGE_ALERT_5K, "mixed:5000", "Mass file execution from removable media"),
    (LARGE_ALERT_10K, "mixed:10000", "Ransomware behavior detected in the file system"),
    (EMPTY_ALERT_ID, "mixed:0", "Suspicious sign-in activity"),
    (DUPLICATES_ALERT_ID, "duplicates:6", None),
    (UNICODE_ALERT_ID, "unicode:6", "Подозрительная активность: 不審なファイル — activité suspecte"),
    (SPARSE_ALERT_ID, "sparse:8", None),
    (PUA_ALERT_ID, "pua:4", None),
    (MALWARE_ALERT_ID, "malware:5", None),
    (INVALID_CERT_ALERT_ID, "invalid:4", "File with an invalid signature executed"),
]


def huge_alert_spec(count: int, seed: int, tenant_id: str, now_ticks: int) -> AlertSpec:
    """The alert :data:`HUGE_ALERT_ID` with ``count`` mixed files (e.g. 100,000
    for the benchmark). Deterministic per ``seed``; its files are generated
    from the recipe only when first served, never here."""
    rng = random.Random(f"mde-sim:{seed}:huge")  # noqa: S311 - deterministic fake data
    created = now_ticks - 3600 * TICKS_PER_SECOND
    return make_alert(rng, alert_id=HUGE_ALERT_ID, created_ticks=created, updated_ticks=created,
                      recipe=f"mixed:{count}", files_seed=f"mde-sim:{seed}:files:{HUGE_ALERT_ID}",
                      tenant_id=tenant_id, now_ticks=now_ticks,
                      title_hint="Mass file encryption across network shares")


def build_dataset(seed: int, tenant_id: str, now_ticks: int) -> list[AlertSpec]:
    """Every alert of a fresh simulator, oldest first.

    Creation times are spread over the 24 hours before ``now_ticks``; every
    sixth alert copies its predecessor's ``alertCreationTime`` exactly, and a
    few share a ``lastUpdateTime``, so pollers meet ties at their watermark.
    """
    rng = random.Random(f"mde-sim:{seed}:alerts")  # noqa: S311 - deterministic fake data
    day = 86400 * TICKS_PER_SECOND
    entries: list[tuple[str, str, str | None]] = list(_WELL_KNOWN)
    for _ in range(SEEDED_ALERT_COUNT):
        placeholder = ""  # id depends on the creation time, assigned below
        entries.append((placeholder, f"mixed:{rng.randint(1, 12)}", None))
    offsets = sorted((rng.randint(60, 86_000) * TICKS_PER_SECOND + rng.randint(0, 9_999_999)
                      for _ in entries), reverse=True)
    order = list(range(len(entries)))
    rng.shuffle(order)
    specs: list[AlertSpec] = []
    created_prev: int | None = None
    updated_prev: int | None = None
    for position, index in enumerate(order):
        alert_id, recipe, title = entries[index]
        created = now_ticks - offsets[position]
        if created_prev is not None and position % 6 == 5:
            created = created_prev  # an exact tie on alertCreationTime
        created = max(created, now_ticks - day)
        if updated_prev is not None and position % 9 == 8 and updated_prev >= created:
            updated = updated_prev  # an exact tie on lastUpdateTime
        elif rng.random() < 0.4:
            updated = created + int(rng.random() * (now_ticks - created))
        else:
            updated = created
        if not alert_id:
            # Deterministic per seed (not derived from the creation time, which
            # moves with the clock), in the same "da<18 digits>_<int32>" shape.
            fake_ticks = 638_700_000_000_000_000 + rng.randrange(10**15)
            alert_id = f"da{fake_ticks}_{rng.randint(-(2**31), 2**31 - 1)}"
        spec = make_alert(
            rng,
            alert_id=alert_id,
            created_ticks=created,
            updated_ticks=updated,
            recipe=recipe,
            files_seed=f"mde-sim:{seed}:files:{alert_id}",
            tenant_id=tenant_id,
            now_ticks=now_ticks,
            title_hint=title,
        )
        specs.append(spec)
        created_prev, updated_prev = created, updated
    return specs

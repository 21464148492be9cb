"""The CLI baseline: the least a script can do to get an alert's files.

``python bench/baseline_get.py URL CA_BUNDLE [STORE.sqlite]`` with the access
token in ``BENCH_TOKEN`` (so it needs no msal): one GET with requests, decode
the JSON, print it. What a user would otherwise write by hand.

With ``STORE.sqlite`` it also does the rest of the work a CLI run does, the
least way: keeps each file's record in a SQLite table (one transaction, WAL
journal as the connector's store) and so imports what that needs. That is
the fair baseline for ``mde-connector run`` (issue 13); without it, the
script of earlier results.
"""

import json
import os
import sys

import requests

response = requests.get(
    sys.argv[1],
    headers={"Authorization": "Bearer " + os.environ["BENCH_TOKEN"], "Accept": "application/json"},
    verify=sys.argv[2],
    timeout=30,
)
response.raise_for_status()
body = response.json()
if len(sys.argv) > 3:
    import sqlite3

    db = sqlite3.connect(sys.argv[3], isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS files (sha1 TEXT PRIMARY KEY, body TEXT NOT NULL)")
    db.execute("BEGIN IMMEDIATE")
    db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?)",
                   [(str(f.get("sha1")), json.dumps(f)) for f in body.get("value", [])])
    db.execute("COMMIT")
    db.close()
print(json.dumps(body, ensure_ascii=False, indent=2))

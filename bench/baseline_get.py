"""The CLI baseline: the least a script can do to get an alert's files.

``python bench/baseline_get.py URL CA_BUNDLE`` with the access token in
``BENCH_TOKEN`` (so it needs no msal): one GET with requests, decode the
JSON, print it. What a user would otherwise write by hand.
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
print(json.dumps(response.json(), ensure_ascii=False, indent=2))

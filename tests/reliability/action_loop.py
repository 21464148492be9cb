"""Run ``mde-connector run get_alert_related_files`` in-process, over and over
until a deadline, cycling through alert ids; print one JSON line of exit codes
and error sentences. Test code only (one of several processes that share a
rate budget and a store).

    python action_loop.py CONFIG DEADLINE_EPOCH ALERT_ID...
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time


def main() -> int:
    config, deadline, *alert_ids = sys.argv[1:]
    from connector.cli import main as cli_main

    codes: list[int] = []
    errors: list[str] = []
    i = 0
    while time.time() < float(deadline):
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            codes.append(cli_main(["run", "get_alert_related_files", "--param",
                                   f"alert_id={alert_ids[i % len(alert_ids)]}", "--config", config]))
        if err.getvalue():
            errors.append(err.getvalue())
        i += 1
    print(json.dumps({"codes": codes, "errors": errors}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

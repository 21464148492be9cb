"""Run ``mde-connector run get_alert_related_files`` in-process RUNS times,
cycling through alert ids; print one JSON line of the alert ids run, exit
codes and error sentences. Test code only (one of several processes that
share a rate budget and a store). A fixed amount of work, not a deadline: how
long it takes depends on the machine, and is never what is tested.

    python action_loop.py CONFIG RUNS ALERT_ID...
"""

from __future__ import annotations

import contextlib
import io
import json
import sys


def main() -> int:
    config, runs, *alert_ids = sys.argv[1:]
    from connector.cli.main import main as cli_main

    codes: list[int] = []
    errors: list[str] = []
    ran: list[str] = []
    for i in range(int(runs)):
        alert_id = alert_ids[i % len(alert_ids)]
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            codes.append(cli_main(["run", "get_alert_related_files", "--param", f"alert_id={alert_id}",
                                   "--config", config]))
        ran.append(alert_id)
        if err.getvalue():
            errors.append(err.getvalue())
    print(json.dumps({"alerts": ran, "codes": codes, "errors": errors}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

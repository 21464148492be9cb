"""Run the CLI in a process whose wall clock is off by SKEW seconds (test
code only): ``time.time`` is patched before the connector, msal or anything
else reads it.

    python skew_driver.py SKEW -- mde-connector arguments...
"""

from __future__ import annotations

import sys
import time


def main() -> int:
    skew, sep, *args = sys.argv[1:]
    assert sep == "--"
    real = time.time
    offset = float(skew)
    time.time = lambda: real() + offset  # type: ignore[assignment]
    from connector.cli.main import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())

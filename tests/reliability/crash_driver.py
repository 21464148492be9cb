"""Run the CLI with the process killed (SIGKILL) at a chosen point of saving
an action result. Test code only: the product has no such hook.

    python crash_driver.py POINT -- mde-connector arguments...

POINT:
  before-save      after the HTTP response and the mapping, before the store is touched
  mid-transaction  inside the write transaction, after the artifacts were written
  after-commit     right after the transaction committed
"""

from __future__ import annotations

import os
import signal
import sys


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> int:
    point, sep, *args = sys.argv[1:]
    assert sep == "--"
    from connector.cli.main import main as cli_main
    from connector.runtime.store import Store

    save, upsert = Store.save_action_result, Store.upsert_artifacts

    def save_action_result(self: Store, *a: object, **kw: object) -> int:
        if point == "before-save":
            _die()
        run_id = save(self, *a, **kw)  # type: ignore[arg-type]
        if point == "after-commit":
            _die()
        return run_id

    def upsert_artifacts(self: Store, *a: object, **kw: object) -> int:
        new = upsert(self, *a, **kw)  # type: ignore[arg-type]
        if point == "mid-transaction":
            _die()
        return new

    Store.save_action_result = save_action_result  # type: ignore[method-assign]
    Store.upsert_artifacts = upsert_artifacts  # type: ignore[method-assign]
    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())

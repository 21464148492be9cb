"""``python -m connector`` is the same as the ``mde-connector`` command."""

from connector.cli.main import main

raise SystemExit(main())

"""`python -m ops ...`: see ops/cli.py and docs/operations.md."""

from ops.cli import main

raise SystemExit(main())

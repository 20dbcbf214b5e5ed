"""`python -m ops ...`: see ops/cli.py and README "Operating the stacks"."""

from ops.cli import main

raise SystemExit(main())

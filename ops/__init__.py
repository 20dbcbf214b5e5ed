"""Operating the stacks from other tools: the Automation API entry point and the outputs contract.

- `ops` (the console script; `python -m ops`): preview, up, refresh, destroy, drift, outputs, backend,
  status, diagram, dashboard, schema (ops/cli.py; `ops COMMAND --help`);
- `ops.operations` — the same operations as functions returning a `Report`;
- `ops.outputs.StackOutputs` — the typed stack outputs and their loaders.

Importing this package starts nothing: no CLI call happens before an operation is asked for.
"""

from ops.errors import ExitCode, OpsError
from ops.outputs import OutputsContractError, StackOutputs

__all__ = ["ExitCode", "OpsError", "OutputsContractError", "StackOutputs"]

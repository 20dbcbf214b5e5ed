"""The identity platform: load config, build the stacks and the trust chain, export outputs.

The wiring lives in `components/assembly.py`; the exports are the contract that
`ops/outputs.py` (`StackOutputs`, schema/stack-outputs.schema.json) types for consumers.
"""

import pulumi

import stack_config
from components.assembly import build_platform

config = stack_config.load()
platform = build_platform(config, stack_config.load_secrets(config))

for key, value in platform.exports().items():
    pulumi.export(key, value)

"""The identity platform: load config, build the stacks, wire the trust chain, export outputs."""

import pulumi

import stack_config

config = stack_config.load()

pulumi.export("environment", config.environment)
pulumi.export("nodes", sorted(config.nodes))

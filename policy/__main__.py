"""Entry point of the policy pack: `pulumi preview --policy-pack policy`.

The CLI runs this file with `python -m pulumi.policy`; building the `PolicyPack` starts the
analyzer's gRPC server and blocks, so nothing else may import this module. The rules live in
`policy/validators.py`, which tests import directly.
"""

import sys
from pathlib import Path

# The analyzer runs this directory as a script; make `policy.validators` importable as in tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack

from policy.validators import PACK_NAME, policies

PolicyPack(
    name=PACK_NAME,
    policies=policies(),
    enforcement_level=EnforcementLevel.MANDATORY,
    description="Guard rails for the identity platform's Swarm services and Spaces buckets.",
)

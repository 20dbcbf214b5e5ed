"""Time the program's evaluation under the mock engine, per stack file and mode.

Prints the median of several runs and the resource count. Usage:
    .venv/bin/python bench/eval_program.py [--runs N] [--stack NAME ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dynamic_providers._serialization import serialize_provider
from dynamic_providers.keycloak.provider import KeycloakClientProvider, KeycloakRealmProvider
from dynamic_providers.spire.provider import SpireEntryProvider
from dynamic_providers.ziti.provider import CertificateAuthorityProvider, EdgeRouterProvider, IdentityProvider
from tests.harness.mock_engine import run_program, stack_files

PROVIDERS = (
    KeycloakRealmProvider,
    KeycloakClientProvider,
    CertificateAuthorityProvider,
    IdentityProvider,
    EdgeRouterProvider,
    SpireEntryProvider,
)


def print_provider_sizes() -> None:
    """Bytes of `__provider` (base64 dill) each dynamic resource stores in state, twice: inputs and outputs."""
    print(f"\n{'provider':<60} {'bytes':>6}")
    for cls in PROVIDERS:
        print(f"{cls.__module__ + '.' + cls.__name__:<60} {len(serialize_provider(cls())):>6}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--stack", action="append", help="stack name (default: every Pulumi.<stack>.yaml)")
    args = parser.parse_args()
    stacks = args.stack or stack_files()
    medians: dict[tuple[str, str], float] = {}
    print(f"{'stack':<10} {'mode':<8} {'resources':>9} {'median ms':>10} {'min ms':>8} {'runs':>5}")
    for stack in stacks:
        for preview in (True, False):
            times = []
            count = 0
            for _ in range(args.runs):
                start = time.perf_counter()
                result = run_program(stack, preview)
                times.append((time.perf_counter() - start) * 1000)
                count = len(result.resources)
            mode = "preview" if preview else "update"
            medians[(stack, mode)] = statistics.median(times)
            print(
                f"{stack:<10} {mode:<8} {count:>9} {statistics.median(times):>10.1f} {min(times):>8.1f} {args.runs:>5}"
            )
    if ("prod", "update") in medians:
        print(
            f"prod program evaluation: {medians[('prod', 'update')]:.1f} ms (update), "
            f"{medians[('prod', 'preview')]:.1f} ms (preview), median of {args.runs}"
        )
    print_provider_sizes()


if __name__ == "__main__":
    main()

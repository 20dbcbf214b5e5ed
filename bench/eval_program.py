"""Time the program's evaluation under the mock engine, per stack file and mode, and at scale.

1. Each stack file as it is, preview and update: the median of several runs and the resources.
2. prod with 1,000 workloads (a SPIRE entry and a Ziti identity each) next to the floor: the same
   number of trivial dynamic resources (one plain input, a provider that does nothing) under the
   same mock engine. The ratio is what the program costs beyond registering that many resources
   (target: at most 1.3 in preview and update).
3. The bytes each provider stores as `__provider`.

Usage:
    .venv/bin/python bench/eval_program.py [--runs N] [--stack NAME ...] [--workloads N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _timing import median_ms
from pulumi import dynamic

from dynamic_providers._serialization import serialize_provider
from dynamic_providers.keycloak.provider import KeycloakClientProvider, KeycloakRealmProvider
from dynamic_providers.spire.provider import SpireEntryProvider
from dynamic_providers.ziti.provider import CertificateAuthorityProvider, EdgeRouterProvider, IdentityProvider
from tests.harness.mock_engine import run, run_program, stack_files

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


TARGET_RATIO = 1.3
PROD_NODES = ("manager-1", "worker-1", "worker-2")


def workloads(n: int) -> dict[str, dict[str, object]]:
    """`n` workloads spread over prod's nodes, each with its own SPIFFE path and selectors."""
    return {
        f"svc-{i:04d}": {
            "spiffePath": f"/ns/team-{i % 37}/sa/svc-{i:04d}",
            "node": PROD_NODES[i % len(PROD_NODES)],
            "selectors": [f"docker:label:com.docker.swarm.service.name:svc_{i:04d}"],
            "zitiRoleAttributes": [f"team-{i % 37}"],
        }
        for i in range(n)
    }


class _NothingProvider(dynamic.ResourceProvider):
    def create(self, props: dict[str, object]) -> dynamic.CreateResult:
        return dynamic.CreateResult(id_="nothing", outs=props)


class Trivial(dynamic.Resource):
    """The floor's resource: a dynamic resource with one plain input and no work."""

    def __init__(self, name: str, value: int) -> None:
        super().__init__(_NothingProvider(), name, {"value": value})



def at_scale(n: int, runs: int) -> None:
    """prod with `n` workloads next to as many trivial dynamic resources, preview and update."""
    config = {"identity-platform:workloads": json.dumps(workloads(n))}
    print(f"\n== prod with {n} workloads vs the floor (mock engine, median of {runs}; target <= {TARGET_RATIO}) ==")
    print(f"{'mode':<8} {'resources':>9} {'program ms':>11} {'floor ms':>9} {'ratio':>6} {'target':>7}")
    for preview in (True, False):
        ms, result = median_ms(lambda p=preview: run_program("prod", p, config=config), runs)
        count = len(result.resources)  # type: ignore[attr-defined]

        def floor(count: int = count) -> None:
            for i in range(count):
                Trivial(f"trivial-{i}", i)

        floor_ms, _ = median_ms(lambda p=preview: run(floor, stack="prod", preview=p), runs)
        mode = "preview" if preview else "update"
        ratio = ms / floor_ms
        verdict = "ok" if ratio <= TARGET_RATIO else "above"
        target = f"<= {TARGET_RATIO}"
        print(f"{mode:<8} {count:>9} {ms:>11.0f} {floor_ms:>9.0f} {ratio:>6.2f} {target:>7} {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--stack", action="append", help="stack name (default: every Pulumi.<stack>.yaml)")
    parser.add_argument("--workloads", type=int, default=1000, help="workloads of the prod run at scale (0: skip)")
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
    if args.workloads:
        at_scale(args.workloads, args.runs)
    print_provider_sizes()


if __name__ == "__main__":
    main()

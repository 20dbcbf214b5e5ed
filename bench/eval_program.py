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
import runpy
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pulumi
from _timing import paired_ms
from pulumi import dynamic

from dynamic_providers._serialization import serialize_provider
from dynamic_providers.keycloak.provider import KeycloakClientProvider, KeycloakRealmProvider
from dynamic_providers.spire.provider import SpireEntryProvider
from dynamic_providers.ziti.provider import CertificateAuthorityProvider, EdgeRouterProvider, IdentityProvider
from tests.harness.mock_engine import ROOT, run, run_program, stack_files

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
    """The floor's resource: a dynamic resource with one plain input (or `width` of them) and no work."""

    def __init__(self, name: str, value: int, width: int = 1) -> None:
        super().__init__(_NothingProvider(), name, {"value": value, **{f"p{k}": value for k in range(1, width)}})


def property_counts(config: dict[str, str], preview: bool) -> list[int]:
    """How many properties (inputs and outputs, each an `Output` attribute the SDK resolves) each
    resource of the program registers, counted by a stack transformation in a run of its own."""
    counts: list[int] = []

    def count(args: pulumi.ResourceTransformationArgs) -> None:
        props = args.props if isinstance(args.props, dict) else vars(args.props)
        counts.append(len(props))

    def body() -> None:
        pulumi.runtime.register_stack_transformation(count)
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")

    run(body, stack="prod", preview=preview, config=config)
    return counts


def at_scale(n: int, runs: int) -> None:
    """prod with `n` workloads next to as many trivial dynamic resources, preview and update.

    Program and floor run in turn, after a warm-up each (`_timing.paired_ms`). A third line, for
    reading the ratio: the floor's resources given as many plain inputs as the program's resources
    have properties (the SDK makes an `Output` of every one), which is what the SDK costs for the
    program's shape before the program does anything of its own."""
    config = {"identity-platform:workloads": json.dumps(workloads(n))}
    print(f"\n== prod with {n} workloads vs the floor (mock engine; program and floor in turn, median of {runs}) ==")
    print(f"target: ratio <= {TARGET_RATIO}; CPU is process time (all threads), wall includes waiting for the CPU")
    print(f"{'mode':<8} {'resources':>9} {'program ms':>17} {'floor ms':>17} {'ratio':>11} {'':>7}")
    print(f"{'':<8} {'':>9} {'wall':>8} {'CPU':>8} {'wall':>8} {'CPU':>8} {'wall':>5} {'CPU':>5}")
    for preview in (True, False):
        mode = "preview" if preview else "update"
        count = len(run_program("prod", preview, config=config).resources)
        widths = property_counts(config, preview)
        widths += [1] * (count - len(widths))  # resources the transformation does not see: one input

        def floor(count: int = count, p: bool = preview) -> None:
            def body() -> None:
                for i in range(count):
                    Trivial(f"trivial-{i}", i)

            run(body, stack="prod", preview=p)

        def shaped(widths: list[int] = widths, p: bool = preview) -> None:
            def body() -> None:
                for i, width in enumerate(widths):
                    Trivial(f"trivial-{i}", i, max(width - 1, 1))  # less `__provider`, which Trivial adds

            run(body, stack="prod", preview=p)

        t = paired_ms(lambda p=preview: run_program("prod", p, config=config), floor, runs)
        verdict = "ok" if max(t.wall_ratio, t.cpu_ratio) <= TARGET_RATIO else "above"
        print(
            f"{mode:<8} {count:>9} {t.wall_ms[0]:>8.0f} {t.cpu_ms[0]:>8.0f} {t.wall_ms[1]:>8.0f} {t.cpu_ms[1]:>8.0f} "
            f"{t.wall_ratio:>5.2f} {t.cpu_ratio:>5.2f} {verdict}"
        )
        s = paired_ms(shaped, floor, runs)
        per_resource = sum(widths) / len(widths)
        print(
            f"{'  floor, the program shape (' + format(per_resource, '.1f') + ' properties a resource; floor: 2)':<60} "
            f"{s.wall_ratio:>5.2f} {s.cpu_ratio:>5.2f}"
        )


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

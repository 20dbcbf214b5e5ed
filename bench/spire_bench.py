"""SPIRE registration entries: evaluation time at 1,000 entries, and round trips per operation.

1. Program evaluation under Pulumi's mock engine with 1,000 configured workloads: the
   `SpireRegistrations` component alone, and the whole `__main__.py` with the workloads map
   replaced by 1,000 entries (median of several runs, preview and update mode).
2. Provider round trips per operation and transport, counted at the fake server (gRPC calls)
   or the fake CLIs (docker/kubectl executions), next to the floor: the fewest any client can
   make for the same guarantees. Wall time is the median per operation on this machine (the
   exec transports start a fake CLI process per call; a real `docker exec` over ssh is slower).

Usage:
    .venv/bin/python bench/spire_bench.py [--entries 1000] [--runs 3] [--reps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pulumi
from _timing import median_ms

from components.spire_registrations import Registration, SpireRegistrations, SpireRegistrationsArgs
from dynamic_providers.spire.provider import SpireEntryProvider
from tests.fakes.spire_env import make_target
from tests.fakes.spire_server import FakeSpireServer
from tests.harness.mock_engine import run, run_program

ENTRY = "pulumi-python:dynamic/spire:Entry"
TD = "example.org"
NODES = ("manager-1", "worker-1", "worker-2")


def workloads(n: int, nodes: tuple[str, ...] = NODES) -> dict[str, dict[str, Any]]:
    return {
        f"svc-{i:04d}": {
            "spiffePath": f"/ns/team-{i % 37}/sa/svc-{i:04d}",
            "node": nodes[i % len(nodes)],
            "selectors": [f"docker:label:com.docker.swarm.service.name:svc_{i:04d}", "unix:uid:1000"],
            "dnsNames": [f"svc-{i:04d}.internal"],
        }
        for i in range(n)
    }



def evaluation(entries: int, runs: int) -> None:
    print(f"== program evaluation with {entries} configured entries (mock engine, median of {runs}) ==")
    print(f"{'what':<34} {'mode':<8} {'resources':>9} {'entries':>8} {'median ms':>10} {'ms/entry':>9}")
    agents = {n: f"spiffe://{TD}/spire/agent/x509pop/{n}" for n in NODES}
    typed = {
        k: Registration(f"spiffe://{TD}{w['spiffePath']}", agents[w["node"]], tuple(w["selectors"]),
                        dns_names=tuple(w["dnsNames"]))
        for k, w in workloads(entries).items()
    }  # fmt: skip
    conn = {"transport": "docker-exec", "docker_host": "ssh://root@10.0.0.2", "service": "spire-server",
            "trust_domain": TD}  # fmt: skip

    def component() -> None:
        reg = SpireRegistrations("spire-registrations", SpireRegistrationsArgs(entries=typed, connection=conn))
        pulumi.export("spireEntryIds", reg.entry_ids)

    for preview in (True, False):
        ms, result = median_ms(lambda p=preview: run(component, stack="prod", preview=p), runs)
        n = len(result.of_type(ENTRY))
        mode = "preview" if preview else "update"
        print(
            f"{'SpireRegistrations component':<34} {mode:<8} {len(result.resources):>9} {n:>8} {ms:>10.0f} "
            f"{ms / max(n, 1):>9.2f}"
        )

    for stack, nodes in (("dev", ("local",)), ("prod", NODES)):
        config = {"identity-platform:workloads": json.dumps(workloads(entries, nodes))}
        for preview in (True, False):
            ms, result = median_ms(lambda s=stack, p=preview, c=config: run_program(s, p, config=c), runs)
            n = len(result.of_type(ENTRY))
            mode = "preview" if preview else "update"
            note = "" if n else "  (SpireRegistrations not wired into __main__.py)"
            print(
                f"{'__main__.py ' + stack:<34} {mode:<8} {len(result.resources):>9} {n:>8} {ms:>10.0f} "
                f"{ms / max(n, 1) if n else 0:>9.2f}{note}"
            )


# --- round trips ------------------------------------------------------------------------------

# Fewest requests that give the same guarantees, per transport. Exec transports through a Swarm
# service add one `docker ps` per provider call to find the task container.
FLOOR = {
    "create": (1, "one BatchCreateEntry / `entry create`"),
    "check+diff (preview)": (0, "no server contact during preview"),
    # Adoption writes the entry even when it holds the declared fields: the revision that moves on tells the
    # delete of a resource it replaced to leave it (docs/providers/spire.md, Lifecycle).
    "create, lost state (adopt)": (2, "create (gRPC returns the similar entry) + masked update; CLI: + show (3)"),
    "create, adopt + fix drift": (2, "create + masked update; CLI: create + show + update (3)"),
    "read (refresh)": (1, "GetEntry / `entry show -entryID`"),
    "update ttl": (1, "masked BatchUpdateEntry; the CLI has no mask: show + update (2) keeps unowned fields"),
    "update connection only": (0, "nothing changes on the server"),
    "delete": (1, "BatchDeleteEntry / `entry delete`"),
    "delete, already gone": (1, "NOT_FOUND counts as success"),
}
CLI_FLOOR = {"create, lost state (adopt)": 3, "create, adopt + fix drift": 3, "update ttl": 2}


def _ops(props: dict[str, Any]) -> list[tuple[str, Callable[[SpireEntryProvider, dict[str, Any]], Any]]]:
    changed = {**props, "x509_svid_ttl": 900}

    def create(p: SpireEntryProvider, st: dict[str, Any]) -> None:
        res = p.create(dict(props))
        st.update(id=res.id, outs=res.outs)

    def drift(p: SpireEntryProvider, st: dict[str, Any]) -> None:
        p.create({**props, "hint": "drifted"})

    return [
        ("create", create),
        ("check+diff (preview)", lambda p, st: p.diff(st["id"], st["outs"], p.check(st["outs"], props).inputs)),
        ("create, lost state (adopt)", lambda p, st: p.create(dict(props))),
        ("create, adopt + fix drift", drift),
        ("read (refresh)", lambda p, st: p.read(st["id"], st["outs"])),
        ("update ttl", lambda p, st: p.update(st["id"], st["outs"], changed)),
        (
            "update connection only",
            lambda p, st: p.update(
                st["id"], st["outs"], {**props, "connection": {**props["connection"], "timeout_seconds": 9}}
            ),
        ),
        ("delete", lambda p, st: p.delete(st["id"], st["outs"])),
        ("delete, already gone", lambda p, st: p.delete(st["id"], st["outs"])),
    ]


def round_trips(reps: int) -> None:
    print("\n== provider round trips per operation (counted at the fakes) ==")
    print(f"{'transport':<24} {'operation':<28} {'trips':>5} {'floor':>5} {'rpcs':>5} {'median ms':>10}")
    variants = [
        ("grpc", "grpc", {}),
        ("docker-exec (service)", "docker-exec", {}),
        ("docker-exec (container)", "docker-exec", {"service": None, "container": "spire-server.1.p4k2x9f0d1c3"}),
        ("kubectl-exec", "kubectl-exec", {}),
    ]
    saved_env = dict(os.environ)
    for label, kind, conn_override in variants:
        with FakeSpireServer(trust_domain=TD) as server, tempfile.TemporaryDirectory() as tmp:
            target = make_target(kind, server, Path(tmp))
            if conn_override:
                name = target.world.docker["ssh://root@10.0.0.2"]["containers"][0]
                name["name"] = conn_override["container"]
                target.world.save()
            os.environ.update(target.env)
            connection = {**target.connection, **conn_override}
            props = {
                "spiffe_id": f"spiffe://{TD}/ns/bench/sa/api",
                "parent_id": f"spiffe://{TD}/spire/agent/x509pop/worker-1",
                "selectors": ["docker:label:app:api", "unix:uid:1000"],
                "x509_svid_ttl": 0,
                "jwt_svid_ttl": 0,
                "dns_names": ["api.bench.internal"],
                "federates_with": [],
                "admin": False,
                "downstream": False,
                "hint": "",
                "store_svid": False,
                "connection": connection,
            }
            provider = SpireEntryProvider()
            samples: dict[str, list[tuple[int, int, float]]] = {}
            for _ in range(reps):
                server.entries.clear()
                state: dict[str, Any] = {}
                for op, fn in _ops(props):
                    trips0, rpcs0 = target.round_trips(), server.round_trips()
                    start = time.perf_counter()
                    fn(provider, state)
                    ms = (time.perf_counter() - start) * 1000
                    samples.setdefault(op, []).append((target.round_trips() - trips0, server.round_trips() - rpcs0, ms))
            for op, runs in samples.items():
                trips, rpcs = runs[-1][0], runs[-1][1]
                floor = FLOOR[op][0] if kind == "grpc" else CLI_FLOOR.get(op, FLOOR[op][0])
                if label == "docker-exec (service)" and floor:
                    floor += 1
                ms = statistics.median(r[2] for r in runs)
                print(f"{label:<24} {op:<28} {trips:>5} {floor:>5} {rpcs:>5} {ms:>10.1f}")
        os.environ.clear()
        os.environ.update(saved_env)
    print("\nfloor notes:")
    for op, (_, note) in FLOOR.items():
        print(f"  {op:<28} {note}")
    print("  docker-exec (service)        +1 per call: `docker ps` finds the running task of the Swarm service")
    print("  rpcs = gRPC calls the server saw (the CLI makes one per command, two for `entry update` with")
    print("         additional-attribute flags, which it merges with a GetEntry)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3, help="program evaluations per mode")
    parser.add_argument("--reps", type=int, default=5, help="repetitions of each provider operation")
    args = parser.parse_args()
    evaluation(args.entries, args.runs)
    round_trips(args.reps)


if __name__ == "__main__":
    main()

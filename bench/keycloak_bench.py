"""Round trips and wall time of the Keycloak client provider against the loopback Keycloak.

Creates N clients, then refreshes them N times with nothing changed, with a fixed latency
injected into every HTTP answer (default 20 ms, about a cross-region hop), and prints, per
phase, the requests actually sent next to the floor: one request per operation plus the
amortised admin token (one login per 90 % of a 60 s master token).

    .venv/bin/python bench/keycloak_bench.py [--clients 200] [--latency-ms 20] [--workers 1]
                                             [--confidential] [--via-host]

`--workers 4` runs operations concurrently, as the engine's dynamic-provider host does (4 gRPC
threads); `--via-host` sends every operation through `python -m pulumi.dynamic` over gRPC.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dynamic_providers.keycloak.client import RetryPolicy, forget_tokens
from dynamic_providers.keycloak.provider import KeycloakClientProvider
from tests.fakes.keycloak import KeycloakFake
from tests.harness.dynamic_host import DynamicProviderHost
from tests.harness.loopback import LoopbackServer

OWNER = "identity-platform/bench"
TOKEN_ROUTE = "POST /realms/{realm}/protocol/openid-connect/token"  # noqa: S105 (a route, not a secret)
TOKEN_REUSE_SECONDS = 0.9 * 60  # the provider renews a 60 s master token at 90 %


def client_props(fake: KeycloakFake, i: int, confidential: bool) -> dict[str, Any]:
    props: dict[str, Any] = {
        "realm": "bench",
        "client_id": f"client-{i:04d}",
        "access_type": "CONFIDENTIAL" if confidential else "PUBLIC",
        "standard_flow_enabled": True,
        "direct_access_grants_enabled": False,
        "pkce_method": "S256",
        "redirect_uris": [f"https://app-{i}.bench.internal/cb"],
        "connection": fake.connection(),
        "owner": OWNER,
    }
    return props


def run_phase(
    name: str, server: LoopbackServer, ops: list[Callable[[], Any]], workers: int, latency: float
) -> dict[str, Any]:
    server.reset_log()
    start = time.perf_counter()
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(lambda op: op(), ops))
    else:
        for op in ops:
            op()
    wall = time.perf_counter() - start
    counts = server.counts()
    total = sum(counts.values())
    tokens = counts.get(TOKEN_ROUTE, 0)
    n = len(ops)
    floor_wall = n * latency / workers
    floor_tokens = max(1, math.ceil(floor_wall / TOKEN_REUSE_SECONDS))
    return {
        "phase": name,
        "ops": n,
        "requests": total,
        "tokens": tokens,
        "floor_requests": n + floor_tokens,
        "wall": wall,
        "floor_wall": (n + floor_tokens) * latency / workers,
        "routes": counts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--confidential", action="store_true", help="confidential clients (secret read too)")
    parser.add_argument("--via-host", action="store_true", help="through python -m pulumi.dynamic over gRPC")
    args = parser.parse_args()
    latency = args.latency_ms / 1000

    forget_tokens()
    fake = KeycloakFake()
    server = LoopbackServer(fake.app).start()
    fake.server = server
    fake.seed_realm("bench")
    provider = KeycloakClientProvider(retry=RetryPolicy(attempts=3, base_delay=0.05))
    host = (
        DynamicProviderHost(provider, resource_type="pulumi-python:dynamic/keycloak:Client") if args.via_host else None
    )
    if host:
        host.configure({})
    server.latency = latency
    try:
        states: dict[int, tuple[str, dict[str, Any]]] = {}

        def create(i: int) -> Callable[[], None]:
            def op() -> None:
                props = client_props(fake, i, args.confidential)
                if host:
                    state = host.up(f"c{i}", props)
                    states[i] = (state.id, state.outputs)
                else:
                    checked = provider.check({}, props)
                    result = provider.create(checked.inputs)
                    states[i] = (str(result.id), dict(result.outs or {}))

            return op

        def refresh(i: int) -> Callable[[], None]:
            def op() -> None:
                id_, outs = states[i]
                if host:
                    host.read(f"c{i}", id_, outs)
                else:
                    provider.read(id_, outs)

            return op

        n = args.clients
        results = [
            run_phase("create", server, [create(i) for i in range(n)], args.workers, latency),
            run_phase("refresh (no-op)", server, [refresh(i) for i in range(n)], args.workers, latency),
        ]
    finally:
        if host:
            host.close()
        server.stop()

    kind = "confidential" if args.confidential else "public"
    mode = "via python -m pulumi.dynamic" if args.via_host else "in-process"
    print(
        f"Keycloak client provider, {n} {kind} clients, {args.latency_ms:g} ms latency per answer, "
        f"{args.workers} worker(s), {mode}"
    )
    header = f"{'phase':<16} {'ops':>5} {'requests':>9} {'req/op':>7} {'tokens':>6} {'floor req':>9}"
    header += f" {'wall s':>8} {'floor s':>8} {'ms/op':>7}"
    print(header)
    for r in results:
        print(
            f"{r['phase']:<16} {r['ops']:>5} {r['requests']:>9} {r['requests'] / r['ops']:>7.2f} {r['tokens']:>6} "
            f"{r['floor_requests']:>9} {r['wall']:>8.2f} {r['floor_wall']:>8.2f} {1000 * r['wall'] / r['ops']:>7.1f}"
        )
    for r in results:
        routes = Counter(r["routes"])
        print(f"  {r['phase']}: " + ", ".join(f"{k} x{v}" for k, v in routes.most_common()))
    print(
        "floor = one request per operation + the amortised admin token (latency-bound wall time at this "
        "concurrency).\ncreate is one POST: the id comes from Location and the outputs are what Keycloak "
        "accepted; only a confidential client's secret (--confidential) is read back. The token is cached across "
        "calls, so the refresh phase reuses the create phase's login."
    )


if __name__ == "__main__":
    main()

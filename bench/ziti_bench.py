"""Round trips and wall time of ZitiCertificateAuthority create + verify against the loopback controller.

The floor for registering and verifying a CA is three requests: POST /cas, GET /cas/{id} (the
verification token: the create's answer carries only the id, on the real 1.7.2 controller too),
POST /cas/{id}/verify (its 200 is the verification). The provider also fetches the CA enrollment
JWT (a secret output), and logs in once per process (here: per run, each run is a new controller).
The table shows what one `create` sent, per route, next to that floor, and the median wall time
with an added per-request latency (the fake sleeps before answering), over several runs; "floor
ms" is three requests' latency, "sent x latency" what the requests sent cost (the rest is TLS and
crypto). Usage:
    .venv/bin/python bench/ziti_bench.py [--runs N] [--latency-ms 0 20 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dynamic_providers.ziti.provider import CertificateAuthorityProvider
from tests.fakes.ziti import API, ZitiController, connection, make_ca, owner
from tests.harness.loopback import LoopbackServer

FLOOR = [f"POST {API}/cas", f"GET {API}/cas/{{id}}", f"POST {API}/cas/{{id}}/verify"]
EXTRA = {
    f"POST {API}/authenticate": "login (once per provider process and controller)",
    f"GET {API}/cas/{{id}}/jwt": "enrollment_jwt output",
}


def create_once(latency: float) -> tuple[float, list[str]]:
    fake = ZitiController()
    srv = LoopbackServer(fake.app).start()
    fake.tls_ca_pem = srv.ca_pem
    try:
        cert, key = make_ca()
        props = {
            "name": "spire",
            "cert_pem": cert,
            "ca_key_pem": key,
            "identity_roles": ["spire"],
            "external_id_claim": {"location": "SAN_URI", "matcher": "SCHEME", "matcher_criteria": "spiffe"},
            "connection": connection(srv, fake),
            "owner": owner("bench"),
        }
        provider = CertificateAuthorityProvider()
        inputs = provider.check({}, props).inputs
        srv.latency = latency
        start = time.perf_counter()
        provider.create(inputs)
        elapsed = time.perf_counter() - start
        return elapsed, [f"{r.method} {r.pattern}" for r in srv.log]
    finally:
        srv.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, nargs="*", default=[0.0, 20.0, 50.0])
    args = parser.parse_args()

    _, requests = create_once(0.0)
    counts = {route: requests.count(route) for route in dict.fromkeys(requests)}
    floor_counts = {route: FLOOR.count(route) for route in dict.fromkeys(FLOOR)}
    print("CA create + verify: requests per route (one provider create)")
    print(f"{'route':<48} {'sent':>5} {'floor':>6}  note")
    for route in dict.fromkeys([*FLOOR, *counts]):
        print(f"{route:<48} {counts.get(route, 0):>5} {floor_counts.get(route, 0):>6}  {EXTRA.get(route, '')}")
    core = sum(counts.get(r, 0) for r in floor_counts)
    print(f"{'total':<48} {len(requests):>5} {len(FLOOR):>6}  create+verify itself: {core} (floor {len(FLOOR)})")
    print()
    print(
        f"{'latency/request ms':>18} {'median create ms':>17} {'min ms':>8} {'floor ms':>9}"
        f" {'sent x latency ms':>18} {'runs':>5}"
    )
    for latency_ms in args.latency_ms:
        times = [create_once(latency_ms / 1000)[0] * 1000 for _ in range(args.runs)]
        print(
            f"{latency_ms:>18.0f} {statistics.median(times):>17.1f} {min(times):>8.1f}"
            f" {latency_ms * len(FLOOR):>9.0f} {latency_ms * len(requests):>18.0f} {args.runs:>5}"
        )


if __name__ == "__main__":
    main()

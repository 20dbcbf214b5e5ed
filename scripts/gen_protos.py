#!/usr/bin/env python3
"""Generate (or verify) the Python code for our SPIRE Entry API protos.

The `.proto` files in `dynamic_providers/spire/_proto/` are ours, written from the documented
field numbers of spiffe/spire-api-sdk. The generated `*_pb2.py`, `*_pb2.pyi` and
`entry_pb2_grpc.py` are committed, so the runtime needs only grpcio and protobuf; this script
needs grpcio-tools (requirements-dev.txt).

The generated modules are rewritten to register their descriptors in the package's private
pool (`_proto.POOL`) instead of protobuf's default pool: the symbols are named exactly as
upstream (`spire.api.types.Entry`, ...), and another copy of the SPIRE protos in the same
process would otherwise fail with "duplicate symbol".

Usage:
    scripts/gen_protos.py           regenerate; rewrite files only when they differ (idempotent)
    scripts/gen_protos.py --check   exit 1 if the committed code is not what the protos generate
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO_DIR = Path("dynamic_providers/spire/_proto")
PROTOS = ("types.proto", "entry.proto")
# Only entry.proto defines a service; types_pb2_grpc.py would be an empty module.
GRPC_PROTOS = ("entry.proto",)

_DEFAULT_POOL = "_descriptor_pool.Default().AddSerializedFile("
_PRIVATE_POOL = "POOL.AddSerializedFile("
_BUILDER_IMPORT = "from google.protobuf.internal import builder as _builder\n"
_POOL_IMPORT = "from dynamic_providers.spire._proto import POOL\n"


def _private_pool(source: str, name: str) -> str:
    if source.count(_DEFAULT_POOL) != 1 or _BUILDER_IMPORT not in source:
        raise SystemExit(f"gen_protos: unexpected protoc output layout in {name}; update _private_pool()")
    return source.replace(_DEFAULT_POOL, _PRIVATE_POOL).replace(_BUILDER_IMPORT, _BUILDER_IMPORT + _POOL_IMPORT)


def generate(out: Path) -> dict[Path, str]:
    """Run protoc into `out`; return {repo-relative path: content} of the files we keep."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    protos = [str(PROTO_DIR / p) for p in PROTOS]
    args = ["protoc", f"-I{ROOT}", f"-I{include}", f"--python_out={out}", f"--pyi_out={out}", *protos]
    if protoc.main(args) != 0:
        raise SystemExit("gen_protos: protoc failed (see above)")
    grpc_args = ["protoc", f"-I{ROOT}", f"-I{include}", f"--grpc_python_out={out}"]
    if protoc.main(grpc_args + [str(PROTO_DIR / p) for p in GRPC_PROTOS]) != 0:
        raise SystemExit("gen_protos: protoc (grpc plugin) failed (see above)")
    files: dict[Path, str] = {}
    for path in sorted((out / PROTO_DIR).iterdir()):
        rel = PROTO_DIR / path.name
        text = path.read_text()
        if path.name.endswith("_pb2.py"):
            text = _private_pool(text, path.name)
        files[rel] = text
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="verify only; exit 1 when stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = generate(Path(tmp))
    stale = [rel for rel, text in files.items() if not (ROOT / rel).exists() or (ROOT / rel).read_text() != text]
    if not stale:
        print(f"gen_protos: {len(files)} generated files up to date")
        return 0
    if args.check:
        print("gen_protos: stale generated code: " + ", ".join(map(str, stale)) + " (run scripts/gen_protos.py)")
        return 1
    for rel in stale:
        (ROOT / rel).write_text(files[rel])
    print("gen_protos: wrote " + ", ".join(map(str, stale)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

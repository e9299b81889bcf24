"""Generate the code that derives from proto/: protobuf and gRPC modules with their typed stubs.

    python tools/generate.py          write the generated files into src/
    python tools/generate.py --check  exit 1 if a committed generated file is stale or missing

The generated files are committed, so using ledgerd never needs protoc; `make lint` runs the
check so they cannot drift from the .proto files.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import sys
import tempfile
from pathlib import Path

import google.api
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUTPUT_ROOT = ROOT / "src"
# google/api/*.proto ship inside googleapis-common-protos, beside their compiled modules.
GOOGLEAPIS_ROOT = Path(next(iter(google.api.__path__))).parent.parent
WELL_KNOWN_ROOT = Path(protoc.__file__).parent / "_proto"


def _generate(into: Path) -> list[Path]:
    protos = sorted(PROTO_ROOT.rglob("*.proto"))
    bin_dir = Path(sys.executable).parent  # protoc-gen-mypy lives beside this interpreter
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    arguments = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{GOOGLEAPIS_ROOT}",
        f"-I{WELL_KNOWN_ROOT}",
        f"--python_out={into}",
        f"--grpc_python_out={into}",
        f"--mypy_out=quiet:{into}",
        f"--mypy_grpc_out=quiet:{into}",
        *(str(proto) for proto in protos),
    ]
    if protoc.main(arguments) != 0:
        msg = "protoc failed"
        raise SystemExit(msg)
    return sorted(path.relative_to(into) for path in into.rglob("*") if path.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    check = parser.parse_args().check
    with tempfile.TemporaryDirectory() as scratch:
        generated = _generate(Path(scratch))
        stale = [
            path
            for path in generated
            if not (OUTPUT_ROOT / path).is_file()
            or not filecmp.cmp(Path(scratch) / path, OUTPUT_ROOT / path, shallow=False)
        ]
        if check:
            for path in stale:
                print(f"stale generated file: src/{path} (run `make generate`)", file=sys.stderr)
            return 1 if stale else 0
        for path in generated:
            (OUTPUT_ROOT / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(scratch) / path, OUTPUT_ROOT / path)
            print(f"generated src/{path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

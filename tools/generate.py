"""Generate the code and documents that derive from proto/.

    python tools/generate.py          write the generated files
    python tools/generate.py --check  exit 1 if a committed generated file is stale or missing

What it writes (paths from the repository root):
- src/ledgerd/v1/*_pb2*.py{,i}: protobuf and gRPC modules with their typed stubs;
- src/ledgerd/v1/descriptor_set.binpb: a FileDescriptorSet of every file under proto/ and its
  imports, with the comments (source info) of our own files, which the gateway reads;
- docs/openapi.yaml: the REST API's OpenAPI 3.1 document, built from that descriptor set;
- docs/api.md's error table (between its markers), from the transports' error catalogue.

The generated files are committed, so using ledgerd never needs protoc; `make lint` runs the
check so they cannot drift from the .proto files. Everything here is deterministic: the same
inputs give byte-identical files on any machine.
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
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

from ledgerd.gateway.openapi import openapi_yaml
from ledgerd.main.api_docs import ledgerd_openapi
from ledgerd.main.error_codes import ERROR_CODES
from ledgerd.platform.api.error_docs import with_error_table

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
# Where protoc's modules go, relative to ROOT (and to the scratch directory mirroring it).
MODULES = Path("src")
DESCRIPTOR_SET = MODULES / "ledgerd" / "v1" / "descriptor_set.binpb"
OPENAPI = Path("docs") / "openapi.yaml"
API_PAGE = Path("docs") / "api.md"
# google/api/*.proto ship inside googleapis-common-protos, beside their compiled modules.
GOOGLEAPIS_ROOT = Path(next(iter(google.api.__path__))).parent.parent
WELL_KNOWN_ROOT = Path(protoc.__file__).parent / "_proto"


def _protoc(protos: list[Path], modules: Path, descriptor_set: Path) -> None:
    bin_dir = Path(sys.executable).parent  # protoc-gen-mypy lives beside this interpreter
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    arguments = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{GOOGLEAPIS_ROOT}",
        f"-I{WELL_KNOWN_ROOT}",
        f"--python_out={modules}",
        f"--grpc_python_out={modules}",
        f"--mypy_out=quiet:{modules}",
        f"--mypy_grpc_out=quiet:{modules}",
        f"--descriptor_set_out={descriptor_set}",
        "--include_imports",
        "--include_source_info",
        *(str(proto) for proto in protos),
    ]
    if protoc.main(arguments) != 0:
        msg = "protoc failed"
        raise SystemExit(msg)


def _keep_own_comments(
    descriptor_set: descriptor_pb2.FileDescriptorSet, own: set[str]
) -> descriptor_pb2.FileDescriptorSet:
    """Drop the source info of imported files (google/...), keeping that of ours.

    Their comments document Google's protos, not ours, and would triple the file's size. Their
    descriptors stay, so the set is self-contained: a fresh descriptor pool (or grpcurl
    -protoset) can load it alone.
    """
    for file in descriptor_set.file:
        if file.name not in own:
            file.ClearField("source_code_info")
    return descriptor_set


def _write_error_table(into: Path) -> None:
    """docs/api.md as committed, its error table regenerated; not derived from proto/."""
    page = (ROOT / API_PAGE).read_text(encoding="utf-8")
    (into / API_PAGE).parent.mkdir(parents=True, exist_ok=True)
    (into / API_PAGE).write_text(with_error_table(page, ERROR_CODES), encoding="utf-8")


def _generate(into: Path) -> list[Path]:
    """Write every generated file under ``into`` (laid out like ROOT); their relative paths."""
    protos = sorted(PROTO_ROOT.rglob("*.proto"))
    (into / MODULES).mkdir(parents=True)
    with tempfile.TemporaryDirectory() as work:
        raw_set = Path(work) / "descriptor_set.binpb"
        _protoc(protos, into / MODULES, raw_set)
        descriptor_set = _keep_own_comments(
            descriptor_pb2.FileDescriptorSet.FromString(raw_set.read_bytes()),
            own={proto.relative_to(PROTO_ROOT).as_posix() for proto in protos},
        )
    (into / DESCRIPTOR_SET).write_bytes(descriptor_set.SerializeToString(deterministic=True))
    document = ledgerd_openapi(descriptor_set)
    (into / OPENAPI).parent.mkdir(parents=True, exist_ok=True)
    (into / OPENAPI).write_text(openapi_yaml(document), encoding="utf-8")
    _write_error_table(into)
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
            if not (ROOT / path).is_file()
            or not filecmp.cmp(Path(scratch) / path, ROOT / path, shallow=False)
        ]
        if check:
            for path in stale:
                print(f"stale generated file: {path} (run `make generate`)", file=sys.stderr)
            return 1 if stale else 0
        for path in generated:
            (ROOT / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(scratch) / path, ROOT / path)
            print(f"generated {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What the image's layer would weigh without some of its features (docs/deploy.md, the sizes).

Reads the layer `make image` unpacked to build/image/rootfs/, and for each variant copies it
(hard links) less a group of packages (from site-packages and from the dependencies' zip, which
is rewritten without them), then measures the copy as `tar | zstd -19 -T2`: uncompressed and
compressed bytes. The `zstd` command compresses a little better than `buildah push`'s zstd
writer, so compare the rows with each other, not with `make image`'s figures.

    python tools/image_without.py        # after `make image`; needs tar and zstd; ~3 minutes
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROOTFS = ROOT / "build" / "image" / "rootfs"
SITE = Path("usr/local/lib/python3.11/dist-packages")
DEPENDENCIES_ZIP = Path("usr/local/lib/python3.11/dependencies.zip")

BROKERS = (
    "aiokafka", "aio_pika", "aiormq", "pamqp", "aiobotocore", "botocore", "aiohttp",
    "aiosignal", "aiohappyeyeballs", "yarl", "multidict", "propcache", "frozenlist", "nats",
    "redis", "dateutil", "jmespath", "urllib3", "six", "wrapt", "aioitertools", "async_timeout",
)  # fmt: skip
GRPC = ("grpc", "grpc_health", "grpc_reflection", "grpc_status", "libstdc++")
TOKENS = ("cryptography", "joserfc")
VARIANTS: dict[str, tuple[str, ...]] = {
    "as built": (),
    "less the broker clients": BROKERS,
    "less grpcio (and libstdc++)": GRPC,
    "less cryptography and joserfc": TOKENS,
    "less grpcio, cryptography and joserfc": GRPC + TOKENS,
    "less all three groups": GRPC + TOKENS + BROKERS,
}


def _is_package(top: str, names: tuple[str, ...]) -> bool:
    """Whether a site-packages entry (``grpc``, ``grpcio-1.85.dist-info``, ``six.pyc``) is one."""
    return any(top == name or top.startswith((f"{name}-", f"{name}.")) for name in names)


def _left_out(relative: Path, names: tuple[str, ...]) -> bool:
    if relative == DEPENDENCIES_ZIP:
        return True  # written anew without them
    if "libstdc++" in names and relative.name.startswith("libstdc++"):
        return True
    if relative.parts[: len(SITE.parts)] == SITE.parts and len(relative.parts) > len(SITE.parts):
        return _is_package(relative.parts[len(SITE.parts)], names)
    return False


def _copy_without(names: tuple[str, ...], into: Path) -> None:
    for directory, _, files in os.walk(ROOTFS):
        for name in files:
            source = Path(directory) / name
            relative = source.relative_to(ROOTFS)
            if _left_out(relative, names):
                continue
            target = into / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_symlink():
                target.symlink_to(source.readlink())
            else:
                os.link(source, target)
    (into / DEPENDENCIES_ZIP).parent.mkdir(parents=True, exist_ok=True)
    with (
        zipfile.ZipFile(ROOTFS / DEPENDENCIES_ZIP) as whole,
        zipfile.ZipFile(into / DEPENDENCIES_ZIP, "w", zipfile.ZIP_STORED) as less,
    ):
        for entry in whole.infolist():
            if not _is_package(entry.filename.split("/")[0], names):
                less.writestr(entry, whole.read(entry))


def _measure(tree: Path) -> tuple[int, int]:
    layer = subprocess.run(  # noqa: S603 - fixed programs, our own arguments
        ["tar", "-cf", "-", "-C", str(tree), "."],  # noqa: S607 - tar on PATH
        capture_output=True,
        check=True,
    ).stdout
    compressed = subprocess.run(
        ["zstd", "-19", "-T2", "-c"],  # noqa: S607 - zstd on PATH
        input=layer,
        capture_output=True,
        check=True,
    ).stdout
    return len(layer), len(compressed)


def main() -> int:
    if not (ROOTFS / DEPENDENCIES_ZIP).exists():
        print(f"no image layer in {ROOTFS}: run `make image` first", file=sys.stderr)
        return 2
    print("| the image's files | uncompressed MB | zstd-19 MB |\n|---|---|---|")
    for variant, names in VARIANTS.items():
        with tempfile.TemporaryDirectory(dir=ROOTFS.parent) as scratch:
            copy = Path(scratch) / "rootfs"
            _copy_without(names, copy)
            uncompressed, compressed = _measure(copy)
            shutil.rmtree(copy)
        print(f"| {variant} | {uncompressed / 1e6:.1f} | {compressed / 1e6:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Build ledgerd's container image offline with buildah, and measure it (`make image`).

The steps (docs/deploy.md, "The image"):

1. a Debian root filesystem for the build stage, made by mmdebstrap from Debian's packages
   (build/image/rootfs.tar; kept between runs, ``--fresh`` makes it again);
2. that tarball imported into buildah's storage as the image BUILD_ROOT names;
3. the build context: the locked runtime requirements with their hashes (``uv export``), their
   wheels, ledgerd's wheel, uv itself and deploy/image/assemble.py;
4. ``buildah build`` of deploy/Containerfile (vfs storage, chroot isolation: no daemon, no
   overlay mounts, works as root inside a container);
5. the sizes: the image's single layer uncompressed, compressed with zstd (level 19) and with
   gzip, as ``buildah push`` writes them to OCI layouts under build/image/, and the largest
   files of the uncompressed layer, which is also unpacked to build/image/rootfs/ for tests.

Prints one line per step and the sizes; the exit status is the build's.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "image"
CONTAINERFILE = ROOT / "deploy" / "Containerfile"
ASSEMBLE = ROOT / "deploy" / "image" / "assemble.py"
UV = ROOT / ".tools" / "bin" / "uv"
PIP_PYTHON = ROOT / ".tools" / "bin" / "python"
SUITE = "bookworm"
# What the build stage needs from Debian: the interpreter and its standard library, the C++
# runtime grpcio links, and `strip`. mmdebstrap adds their dependencies (libc, libssl, ...).
BUILD_PACKAGES = ("python3.11-minimal", "libpython3.11-stdlib", "libstdc++6", "binutils")
BUILD_ROOT = f"localhost/ledgerd-build-root:{SUITE}"
IMAGE = "localhost/ledgerd"
BUILDAH = ("buildah", "--storage-driver", "vfs")
LARGEST = 8


@dataclass(frozen=True)
class ImageReport:
    image: str
    rootfs: Path  # the image's file tree, unpacked from its layer
    uncompressed_bytes: int
    zstd_bytes: int
    gzip_bytes: int
    largest: list[tuple[int, str]]
    seconds: float

    def lines(self) -> list[str]:
        mb = 1_000_000
        lines = [
            f"image {self.image} built in {self.seconds:.0f} s",
            f"  uncompressed layer: {self.uncompressed_bytes / mb:6.1f} MB",
            f"  zstd-19 layer:      {self.zstd_bytes / mb:6.1f} MB",
            f"  gzip layer:         {self.gzip_bytes / mb:6.1f} MB",
            "  largest files:",
        ]
        lines += [f"    {size / mb:6.1f} MB  {path}" for size, path in self.largest]
        return lines


def step(message: str) -> None:
    print(f">> {message}", flush=True)


def run(*argv: str | Path, capture: bool = False) -> str:
    result = subprocess.run(  # noqa: S603 - fixed programs, our own arguments, no shell
        [str(arg) for arg in argv],
        check=True,
        text=True,
        stdout=subprocess.PIPE if capture else None,
    )
    return result.stdout if capture else ""


def make_rootfs(tarball: Path, *, fresh: bool) -> None:
    if tarball.exists() and not fresh:
        step(f"build root: {tarball.relative_to(ROOT)} (kept; --fresh makes it again)")
        return
    step(f"build root: mmdebstrap {SUITE} with {', '.join(BUILD_PACKAGES)}")
    partial = tarball.with_suffix(".partial.tar")
    run(
        "mmdebstrap",
        "--quiet",
        "--variant=extract",
        f"--include={','.join(BUILD_PACKAGES)}",
        SUITE,
        partial,
    )
    partial.replace(tarball)


def image_id(name: str) -> str | None:
    """The id of the image tagged ``name`` in buildah's storage, if any."""
    result = subprocess.run(  # noqa: S603 - buildah, fixed arguments
        [*BUILDAH, "images", "--quiet", "--no-trunc", name],
        check=False,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip() or None if result.returncode == 0 else None


def drop_replaced(name: str, old_id: str | None) -> None:
    """Remove the image ``name`` named before a rebuild moved the name (vfs keeps full copies)."""
    if old_id is not None and image_id(name) != old_id:
        subprocess.run([*BUILDAH, "rmi", old_id], check=False, capture_output=True)  # noqa: S603


def import_rootfs(tarball: Path) -> None:
    """The tarball as an image in buildah's storage (what ``docker import`` does)."""
    step(f"import the build root as {BUILD_ROOT}")
    replaced = image_id(BUILD_ROOT)
    container = run(*BUILDAH, "from", "--quiet", "scratch", capture=True).strip()
    try:
        run(*BUILDAH, "add", "--quiet", container, tarball, "/")
        run(*BUILDAH, "commit", "--quiet", "--rm", container, BUILD_ROOT, capture=True)
    except subprocess.CalledProcessError:
        run(*BUILDAH, "rm", container)
        raise
    drop_replaced(BUILD_ROOT, replaced)


def make_context(context: Path) -> str:
    """The build context; returns ledgerd's version."""
    step("build context: locked requirements, their wheels, ledgerd's wheel, uv")
    shutil.rmtree(context, ignore_errors=True)
    (context / "ledgerd").mkdir(parents=True)
    requirements = context / "requirements.txt"
    exported = run(
        UV,
        "export",
        "--quiet",
        "--frozen",
        "--no-dev",
        "--no-emit-project",
        "--format",
        "requirements-txt",
        capture=True,
    )
    requirements.write_text(exported)
    run(
        PIP_PYTHON,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--quiet",  # and pip's warnings about the machine's extra indexes
        "--no-deps",
        "--require-hashes",
        "--only-binary=:all:",
        "-r",
        requirements,
        "-d",
        context / "wheels",
    )
    run(UV, "build", "--quiet", "--wheel", "--out-dir", context / "ledgerd", ROOT)
    shutil.copy2(UV, context / "uv")
    shutil.copy2(ASSEMBLE, context / "assemble.py")
    (wheel,) = (context / "ledgerd").glob("ledgerd-*.whl")
    return wheel.name.split("-")[1]


def revision() -> str:
    result = subprocess.run(  # noqa: S603 - git, fixed arguments
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"],  # noqa: S607 - git from PATH, as make does
        check=False,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip() or "unknown"


def source_url() -> str:
    """Where the sources live, for the image's label: the git remote ``origin``, if any."""
    result = subprocess.run(  # noqa: S603 - git, fixed arguments
        ["git", "-C", str(ROOT), "config", "--get", "remote.origin.url"],  # noqa: S607
        check=False,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip() or "unknown"


def build(context: Path, tag: str, version: str, source: str) -> None:
    step(f"buildah build {tag}")
    replaced = image_id(tag)
    run(
        *BUILDAH,
        "build",
        "--quiet",
        "--isolation",
        "chroot",
        "--layers=false",
        "--build-arg",
        f"BUILD_ROOT={BUILD_ROOT}",
        "--build-arg",
        f"VERSION={version}",
        "--build-arg",
        f"REVISION={revision()}",
        "--build-arg",
        f"SOURCE={source}",
        "--file",
        CONTAINERFILE,
        "--tag",
        tag,
        context,
    )
    drop_replaced(tag, replaced)


def push_layer(tag: str, layout: Path, *compression: str) -> Path:
    """Push ``tag`` to an OCI layout at ``layout``; the path of its one layer blob."""
    shutil.rmtree(layout, ignore_errors=True)
    run(*BUILDAH, "push", "--quiet", *compression, tag, f"oci:{layout}")
    index = json.loads((layout / "index.json").read_text())
    manifest = _blob(layout, index["manifests"][0]["digest"])
    (layer,) = json.loads(manifest.read_text())["layers"]
    return _blob(layout, layer["digest"])


def _uncompressed_size(gzip_layer: Path) -> int:
    """The layer's tar stream in bytes (what the image takes once pulled and unpacked)."""
    size = 0
    with gzip.open(gzip_layer) as stream:
        while chunk := stream.read(1 << 20):
            size += len(chunk)
    return size


def _blob(layout: Path, digest: str) -> Path:
    algorithm, value = digest.split(":")
    return layout / "blobs" / algorithm / value


def unpack(layer: Path, rootfs: Path) -> list[tuple[int, str]]:
    """Unpack the uncompressed ``layer`` into ``rootfs``; its largest files, largest first."""
    shutil.rmtree(rootfs, ignore_errors=True)
    rootfs.mkdir(parents=True)
    with tarfile.open(layer) as archive:
        members = archive.getmembers()
        archive.extractall(rootfs, filter="fully_trusted")  # noqa: S202 - our own image
    files = [(member.size, "/" + member.name.lstrip("./")) for member in members if member.isfile()]
    return sorted(files, reverse=True)[:LARGEST]


def build_image(*, fresh: bool = False, source: str | None = None) -> ImageReport:
    """Build the image and measure it (``make image``)."""
    started = time.monotonic()
    OUT.mkdir(parents=True, exist_ok=True)
    tarball = OUT / "rootfs.tar"
    make_rootfs(tarball, fresh=fresh)
    import_rootfs(tarball)
    context = OUT / "context"
    version = make_context(context)
    tag = f"{IMAGE}:{version}"
    build(context, tag, version, source or source_url())
    step("measure: push to OCI layouts, uncompressed, zstd-19 and gzip")
    zstd = push_layer(
        tag, OUT / "oci-zstd", "--compression-format", "zstd", "--compression-level", "19"
    )
    gzipped = push_layer(tag, OUT / "oci-gzip", "--compression-format", "gzip")
    largest = unpack(gzipped, OUT / "rootfs")
    return ImageReport(
        image=tag,
        rootfs=OUT / "rootfs",
        uncompressed_bytes=_uncompressed_size(gzipped),
        zstd_bytes=zstd.stat().st_size,
        gzip_bytes=gzipped.stat().st_size,
        largest=largest,
        seconds=time.monotonic() - started,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh", action="store_true", help="make the Debian build root again")
    parser.add_argument(
        "--source", help="the image's source label (a URL; default: git's remote origin)"
    )
    arguments = parser.parse_args()
    missing = [tool for tool in ("buildah", "mmdebstrap") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"{' and '.join(missing)} not found: apt-get install -y buildah mmdebstrap")
    report = build_image(fresh=arguments.fresh, source=arguments.source)
    print("\n".join(report.lines()))


if __name__ == "__main__":
    main()

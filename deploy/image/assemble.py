"""Assemble the final image's file tree under /out, inside the build stage of deploy/Containerfile.

It runs on the build stage's own interpreter (Debian's python3.11, standard library only), as
root, with no shell: the build root filesystem has none, so every step that a Dockerfile would
write as shell lines is here. What it leaves in /out is everything ``ledgerd`` loads and
nothing else:

- the interpreter, and every shared library that the loader resolves for it and for each
  extension module kept (found with the loader itself, ``ld.so --list``: ``ldd`` is a shell
  script and there is no shell);
- the standard library as one zip of ``-OO`` bytecode (``/usr/lib/python311.zip``, which the
  interpreter puts on ``sys.path`` by itself), less the parts a server never imports; its
  extension modules stay files (the loader cannot map a library out of a zip);
- site-packages as installed by uv from the locked wheels (hash-checked, no index), with
  bytecode in place of the sources (ledgerd's own package keeps them: Alembic reads the
  migration scripts as files), shared objects stripped, and botocore's models cut to the
  services ledgerd calls; the dependencies' pure-Python bytecode in one zip
  (``/usr/local/lib/python3.11/dependencies.zip``, put on ``sys.path`` by a ``.pth`` file);
- all bytecode without column tables (``-X no_debug_ranges``: tracebacks keep their line
  numbers, not the carets under the failing expression); the zips are stored, not deflated,
  because the layer's zstd compresses their contents better than deflate did;
- /etc/passwd and /etc/group naming the unprivileged user, /etc/hosts for ``localhost``, and
  a world-writable /tmp.

The data directory is left for the Containerfile to copy with the user's ownership.
"""

from __future__ import annotations

import compileall
import gzip
import io
import os
import py_compile
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

BUILD = Path("/build")
OUT = Path("/out")
PYTHON = Path("/usr/bin/python3.11")
LOADER = Path("/lib64/ld-linux-x86-64.so.2")
STDLIB = Path("/usr/lib/python3.11")
DYNLOAD = STDLIB / "lib-dynload"
STDLIB_ZIP = Path("/usr/lib/python311.zip")
SITE = Path("/usr/local/lib/python3.11/dist-packages")
SCRIPTS = Path("/usr/local/bin")
ENTRY_POINT = "ledgerd"
USER_ID = 65532

# Parts of the standard library a server never imports: GUIs, the test suite, tooling for
# developers, packaging, terminal UIs, old database formats. An import of one of them fails
# loudly (ModuleNotFoundError), which the image test would catch on the paths it runs.
STDLIB_LEFT_OUT = frozenset(
    {
        "test",
        "idlelib",
        "tkinter",
        "turtledemo",
        "turtle.py",
        "lib2to3",
        "ensurepip",
        "venv",
        "distutils",
        "pydoc_data",
        "curses",
        "dbm",
        "config-3.11-x86_64-linux-gnu",
        "site-packages",
        "dist-packages",
        "lib-dynload",
        "__phello__",
        "__hello__.py",
        "antigravity.py",
        "this.py",
        # The pure-Python twins of C modules kept (decimal, io), clients of protocols ledgerd
        # does not speak, profilers (their C part is left out below), audio and image formats.
        "_pydecimal.py",
        "_pyio.py",
        "xmlrpc",
        "mailbox.py",
        "imaplib.py",
        "nntplib.py",
        "poplib.py",
        "ftplib.py",
        "smtplib.py",
        "telnetlib.py",
        "cgi.py",
        "cgitb.py",
        "mailcap.py",
        "doctest.py",
        "tabnanny.py",
        "pyclbr.py",
        "cProfile.py",
        "profile.py",
        "pstats.py",
        "trace.py",
        "aifc.py",
        "sunau.py",
        "wave.py",
        "chunk.py",
        "sndhdr.py",
        "imghdr.py",
    }
)
DYNLOAD_LEFT_OUT_PREFIXES = (
    "_curses",
    "_dbm",
    "_gdbm",
    "readline",
    "nis",
    "_test",
    "_xxtest",
    "xxlimited",
    "_ctypes_test",
    "audioop",
    "ossaudiodev",
    "_crypt",
    "_tkinter",
    "_codecs_",  # the CJK codecs (a server speaking UTF-8 never looks them up)
    "_lsprof",
    "_xxsubinterpreters",
)
# botocore reads its service models by name: ledgerd calls SQS (events) and Secrets Manager
# (secret://aws/...), and the credential chain may call STS and SSO (roles, web identity).
BOTOCORE_SERVICES = frozenset({"sqs", "secretsmanager", "sts", "sso", "sso-oidc"})
# Parts of the dependencies nothing imports at run time: their test helpers, pydantic's v1
# copy, stubs for type checkers, and SQLAlchemy's dialects for the
# databases ledgerd does not accept (settings take SQLite and PostgreSQL only; SQLAlchemy
# loads a dialect when a URL names it, and Alembic names the others only for type checkers).
SITE_LEFT_OUT = (
    "sqlalchemy/testing",
    "alembic/testing",
    "pydantic/v1",
    "wrapt-stubs",
    "sqlalchemy/dialects/mysql",
    "sqlalchemy/dialects/mssql",
    "sqlalchemy/dialects/oracle",
    # botocore's copy of the CA bundle: it takes certifi's when certifi is installed, as here.
    "botocore/cacert.pem",
)
# Pygments' lexers, but for the ones Rich asks for: it highlights Python source in a traceback
# (`python`, by name) and falls back to plain text (`special`). The registry of every lexer
# (`_mapping`) stays, so a lexer that is gone is "not found", not an import error.
PYGMENTS_LEXERS_KEPT = frozenset({"__init__", "_mapping", "python", "special"})
# Of a distribution's metadata, what importlib.metadata reads (METADATA's headers: name,
# version, requirements; entry points; top-level names) and the licences, which travel with
# the code they cover. The rest is for installers and uv's cache.
DIST_INFO_LEFT_OUT = frozenset({"WHEEL", "INSTALLER", "REQUESTED", "uv_cache.json", "zip-safe"})
# The dependencies' pure-Python bytecode goes into one zip on sys.path (zipimport), fewer and
# smaller files. These stay files: ledgerd (Alembic reads its migrations as files, and it its
# descriptor set), and the packages that read data files next to their modules by path:
# botocore (service models, endpoints), certifi (the CA bundle by path), dateutil (time zones).
# A package holding an extension module stays files too (the loader maps a library from a
# file, and a package's modules are found in one place).
SITE_ZIP = Path("/usr/local/lib/python3.11/dependencies.zip")
SITE_ZIP_PTH = SITE / "dependencies.pth"
SITE_KEPT_AS_FILES = frozenset({"ledgerd", "botocore", "certifi", "dateutil"})
SITE_ZIP_COMPRESSION = zipfile.ZIP_STORED
# What the extension modules were built from (Cython and C sources, headers) and the markers
# for type checkers: nothing loads them at run time.
BUILD_ONLY_SUFFIXES = frozenset(
    {".pyx", ".pxd", ".pxi", ".h", ".hpp", ".c", ".cc", ".cpp", ".asm", ".obj", ".cmd"}
)
PASSWD = (
    "root:x:0:0:root:/root:/nonexistent\n"
    f"ledgerd:x:{USER_ID}:{USER_ID}:ledgerd:/var/lib/ledgerd:/nonexistent\n"
)
GROUP = f"root:x:0:\nledgerd:x:{USER_ID}:\n"
HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def run(*argv: str | Path) -> None:
    print("+", " ".join(map(str, argv)), flush=True)
    subprocess.run([str(arg) for arg in argv], check=True)  # noqa: S603 - fixed programs, no shell


def install_packages() -> None:
    """The locked runtime dependencies (hashes checked, no index), then ledgerd's wheel."""
    common: list[str | Path] = ["--offline", "--no-index", "--find-links", BUILD / "wheels"]
    common += ["--python", PYTHON, "--break-system-packages", "--no-cache"]
    run("uv", "pip", "install", *common, "--require-hashes", "-r", BUILD / "requirements.txt")
    (wheel,) = (BUILD / "ledgerd").glob("ledgerd-*.whl")
    run("uv", "pip", "install", *common, "--no-deps", wheel)


def prune_site_packages() -> None:
    prune_botocore_models()
    for tests in SITE.glob("*/tests"):  # the dependencies' own test suites (greenlet's)
        shutil.rmtree(tests)
    for unused in map(SITE.joinpath, SITE_LEFT_OUT):
        if unused.is_dir():
            shutil.rmtree(unused)
        else:
            unused.unlink()
    prune_distribution_metadata()
    for lexer in (SITE / "pygments" / "lexers").glob("*.py"):
        if lexer.stem not in PYGMENTS_LEXERS_KEPT:
            lexer.unlink()
    for path in list(SITE.rglob("*")):
        if path.is_file() and (path.suffix in BUILD_ONLY_SUFFIXES or path.name == "py.typed"):
            path.unlink()
    for cache in SITE.rglob("__pycache__"):
        shutil.rmtree(cache)
    for stub in SITE.rglob("*.pyi"):
        stub.unlink()


def prune_distribution_metadata() -> None:
    for record in SITE.glob("*.dist-info/RECORD"):  # what an uninstaller reads; none runs here
        record.unlink()
    for info in SITE.glob("*.dist-info/*"):
        if info.name in DIST_INFO_LEFT_OUT:
            info.unlink()
    for metadata in SITE.glob("*.dist-info/METADATA"):
        metadata.write_text(metadata_headers(metadata.read_text("utf-8")), "utf-8")


def metadata_headers(metadata: str) -> str:
    """A METADATA file without its body: the long description (a README) nothing reads here."""
    headers, _, _ = metadata.partition("\n\n")
    return headers + "\n"


def prune_botocore_models() -> None:
    data = SITE / "botocore" / "data"
    for service in data.iterdir():
        if service.is_dir() and service.name not in BOTOCORE_SERVICES:
            shutil.rmtree(service)
    for kept in BOTOCORE_SERVICES:
        versions = sorted(path for path in (data / kept).iterdir() if path.is_dir())
        for old in versions[:-1]:  # every model version but the newest: botocore loads that
            shutil.rmtree(old)
    for examples in data.glob("*/*/examples-1.json"):  # for generated documentation only
        examples.unlink()
    # Every client reads the endpoints file; botocore opens a .json.gz as readily as a .json,
    # and it is the one large file left in its data (1.2 MB of JSON, a tenth gzipped).
    endpoints = data / "endpoints.json"
    with gzip.open(endpoints.with_suffix(".json.gz"), "wb", compresslevel=9) as compressed:
        compressed.write(endpoints.read_bytes())
    endpoints.unlink()


def compile_site_packages() -> None:
    """Bytecode in place of the sources (``-b``), except for ledgerd's own package.

    The dependencies' bytecode is ``-OO`` (no docstrings, no asserts): a third of the size.
    ledgerd's keeps its docstrings, which are its commands' ``--help``.
    """
    ok = compileall.compile_dir(SITE, quiet=1, legacy=True, optimize=2, workers=0)
    if not ok:
        sys.exit("compileall failed on site-packages")
    keep_sources = SITE / "ledgerd"
    for source in SITE.rglob("*.py"):
        if not source.is_relative_to(keep_sources):
            source.unlink()
    for stray in keep_sources.rglob("*.pyc"):  # ledgerd keeps its sources; no duplicate
        stray.unlink()
    # ledgerd's bytecode, where the interpreter looks for it next to the sources.
    if not compileall.compile_dir(keep_sources, quiet=1, workers=0):
        sys.exit("compileall failed on ledgerd")


def zip_site_packages() -> bytes:
    """The dependencies' bytecode that can be imported from a zip, moved into one.

    Returns the zip; what went into it is removed from site-packages. Metadata (``*.dist-info``)
    stays files, where importlib.metadata looks for it.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", SITE_ZIP_COMPRESSION, compresslevel=9) as archive:
        for entry in sorted(SITE.iterdir()):
            if not _zippable(entry):
                continue
            # Directories too: zipimport finds a namespace package by its directory's entry.
            for path in [entry, *sorted(entry.rglob("*"))] if entry.is_dir() else [entry]:
                archive.write(path, str(path.relative_to(SITE)))
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    return buffer.getvalue()


def _zippable(entry: Path) -> bool:
    if entry.name.endswith(".dist-info") or entry.name in SITE_KEPT_AS_FILES:
        return False
    if entry.is_file():
        return entry.suffix == ".pyc"
    return not any(path.is_file() and _is_elf(path) for path in entry.rglob("*"))


def shared_objects(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*.so*") if path.is_file() and _is_elf(path))


def _is_elf(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(4) == b"\x7fELF"


def strip(objects: list[Path]) -> None:
    run("strip", "--strip-unneeded", *objects)


def stdlib_zip() -> bytes:
    """The standard library as ``-OO`` bytecode in one zip, the parts left out excepted."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", SITE_ZIP_COMPRESSION) as archive:
        for source in sorted(STDLIB.rglob("*.py")):
            relative = source.relative_to(STDLIB)
            if relative.parts[0] in STDLIB_LEFT_OUT or "__pycache__" in relative.parts:
                continue
            if _needs_cjk_codecs(source):
                continue
            compiled = Path("/tmp/stdlib-bytecode") / relative.with_suffix(".pyc")  # noqa: S108
            py_compile.compile(
                str(source),
                cfile=str(compiled),
                dfile=str(STDLIB / relative),
                doraise=True,
                optimize=2,
            )
            archive.write(compiled, str(relative.with_suffix(".pyc")))
    return buffer.getvalue()


def _needs_cjk_codecs(source: Path) -> bool:
    """An encoding that imports one of the CJK codec modules left out: it could not load."""
    return source.parent == STDLIB / "encodings" and "import _codecs_" in source.read_text()


def kept_extension_modules() -> list[Path]:
    return [
        module
        for module in sorted(DYNLOAD.glob("*.so"))
        if not module.name.startswith(DYNLOAD_LEFT_OUT_PREFIXES)
    ]


def needed_libraries(elf_files: list[Path]) -> set[Path]:
    """Every library the loader resolves for ``elf_files``, and the loader itself."""
    libraries = {LOADER}
    for elf in elf_files:
        listing = subprocess.run(  # noqa: S603 - the loader, on our own files
            [str(LOADER), "--list", str(elf)], check=True, capture_output=True, text=True
        ).stdout
        for line in listing.splitlines():
            if "=>" not in line:
                continue
            target = line.split("=>", 1)[1].strip().split(" (", 1)[0]
            if target == "not found":
                sys.exit(f"{elf}: a library is missing from the build root: {line.strip()}")
            if target.startswith("/"):
                libraries.add(Path(target))
    return libraries


def copy_into_out(path: Path) -> None:
    """Copy ``path`` to the same place under /out, with the symbolic links on its way."""
    current = Path("/")
    for part in path.parts[1:]:
        current /= part
        destination = OUT / current.relative_to("/")
        if current.is_symlink():
            if not destination.is_symlink():
                destination.parent.mkdir(parents=True, exist_ok=True)
                destination.symlink_to(current.readlink())
            target = (current.parent / current.readlink()).resolve()
            copy_into_out(target)
            if current != path:  # a linked directory: the rest of the path lies behind it
                copy_into_out(target / path.relative_to(current))
            return
    destination = OUT / path.relative_to("/")
    if path.is_dir():
        destination.mkdir(parents=True, exist_ok=True)
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, destination)


def write(path: Path, text: str | bytes, mode: int = 0o644) -> None:
    destination = OUT / path.relative_to("/")
    destination.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        text = text.encode()
    destination.write_bytes(text)
    destination.chmod(mode)


def main() -> None:
    if not sys._xoptions.get("no_debug_ranges"):  # noqa: SLF001 - the interpreter's own options
        # Without it every code object carries its column table: a quarter more compressed
        # bytecode, for the carets under a failing expression in a traceback.
        sys.exit("run assemble.py with -X no_debug_ranges (deploy/Containerfile does)")
    install_packages()
    prune_site_packages()
    compile_site_packages()
    dependencies_zip = zip_site_packages()
    site_objects = shared_objects(SITE)
    modules = kept_extension_modules()
    for path in [PYTHON, *modules, SITE, SCRIPTS / ENTRY_POINT]:
        copy_into_out(path)
    shutil.copytree(SITE, OUT / SITE.relative_to("/"), symlinks=True, dirs_exist_ok=True)
    for library in sorted(needed_libraries([PYTHON, *modules, *site_objects])):
        copy_into_out(library)
    # The copies, never the originals: strip rewrites a file in place, and this very process
    # has some of the originals mapped (zipfile's _bz2 and _lzma): it would crash.
    strip([OUT / path.relative_to("/") for path in [*site_objects, *modules]])
    write(STDLIB_ZIP, stdlib_zip())
    write(SITE_ZIP, dependencies_zip)
    write(SITE_ZIP_PTH, f"{SITE_ZIP}\n")
    # The interpreter takes its prefix from this directory (and says it found none without it).
    (OUT / DYNLOAD.relative_to("/")).mkdir(parents=True, exist_ok=True)
    write(Path("/etc/passwd"), PASSWD)
    write(Path("/etc/group"), GROUP)
    write(Path("/etc/hosts"), HOSTS)
    tmp = OUT / "tmp"
    tmp.mkdir(exist_ok=True)
    tmp.chmod(0o1777)
    # The data directory's parents, root's: the Containerfile's COPY --chown makes only the
    # directory itself the user's (it would give the user every parent it had to create).
    (OUT / "var" / "lib").mkdir(parents=True, exist_ok=True)
    data = Path("/data")
    data.mkdir(exist_ok=True)
    os.chown(data, USER_ID, USER_ID)


if __name__ == "__main__":
    main()

"""Zip a Lambda package directory reproducibly and say how big it is and what makes it so.

``make lambda-zip`` installs ledgerd and its locked runtime dependencies into a directory;
this zips it (sorted entries, fixed timestamps: the same inputs give the same archive, so
CloudFormation sees no change when there is none) and prints the zipped and unzipped sizes
against Lambda's limits (50 MB zipped for a direct upload, 250 MB unzipped).

usage: python tools/lambda_zip.py PACKAGE_DIR OUTPUT.zip
"""

from __future__ import annotations

import sys
import zipfile
from collections import Counter
from pathlib import Path

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip entry can carry
_MB = 1_000_000
_UPLOAD_LIMIT_MB = 50
_UNZIPPED_LIMIT_MB = 250
_SHOWN = 6


def build(package: Path, output: Path) -> tuple[int, Counter[str]]:
    """Zip ``package``'s contents into ``output``; the unzipped bytes per top-level entry."""
    sizes: Counter[str] = Counter()
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted(package.rglob("*")):
            if path.is_dir() or (path.name.endswith(".pyc") and "__pycache__" not in path.parts):
                continue
            name = path.relative_to(package).as_posix()
            entry = zipfile.ZipInfo(name, _FIXED_TIME)
            entry.external_attr = (0o755 if path.stat().st_mode & 0o100 else 0o644) << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            data = path.read_bytes()
            archive.writestr(entry, data, compresslevel=9)
            sizes[name.split("/", 1)[0]] += len(data)
    return output.stat().st_size, sizes


def main(argv: list[str]) -> int:
    if len(argv) != 2:  # noqa: PLR2004 - two arguments
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    package, output = Path(argv[0]), Path(argv[1])
    zipped, sizes = build(package, output)
    unzipped = sum(sizes.values())
    print(
        f"{output}: {zipped / _MB:.1f} MB zipped (direct upload limit {_UPLOAD_LIMIT_MB} MB; "
        f"larger goes through S3), {unzipped / _MB:.1f} MB unzipped (limit {_UNZIPPED_LIMIT_MB} MB)"
    )
    largest = ", ".join(f"{name} {size / _MB:.1f} MB" for name, size in sizes.most_common(_SHOWN))
    print(f"largest: {largest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

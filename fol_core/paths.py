"""Safe paths: what a user's file names can never do is write outside the folder the user chose.

File names from a folder, a zip or a dataset may hold spaces, unicode, "..", absolute paths or the
same name in several subfolders. Every exported file is named by `flat_name` (the relative path
flattened into one safe name, unique per project) and written through `safe_join`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import unicodedata
import zipfile
from pathlib import Path

from .errors import UserError
from .images import IMAGE_SUFFIXES

SEPARATOR = "__"
"""Joins the folders of a relative path in a flattened name: a/b/c.jpg -> a__b__c.jpg."""
MAX_NAME = 120
"""Longest flattened stem (characters); longer ones are cut and given a hash suffix."""

ZIP_MAX_FILES = 100_000
ZIP_MAX_BYTES = 8 * 1024**3
"""Zip bomb guard: at most this much uncompressed data in all, counted while extracting."""
ZIP_MAX_RATIO = 200
"""Zip bomb guard: a member larger than 1 MB that compresses more than this is refused (photos barely compress)."""


class UnsafePathError(UserError):
    """A path that would leave the folder it must stay in; one line for the user."""


def _clean_part(part: str) -> str:
    part = unicodedata.normalize("NFC", part)
    part = re.sub(r'[\x00-\x1f\x7f<>:"/\\|?*]', "_", part).strip().strip(".")
    return part


def relative_parts(name: str) -> list[str]:
    """The meaningful parts of a user's path: no root, drive, "." or ".." (a/../b -> [a, b])."""
    parts = [x for x in re.split(r"[\\/]+", name) if x not in ("", ".", "..") and not re.fullmatch(r"[A-Za-z]:", x)]
    return [p for p in map(_clean_part, parts) if p]


def flat_name(relative: str) -> str:
    """A relative path as one safe file name: folders joined by SEPARATOR, unicode and spaces kept."""
    parts = relative_parts(relative) or ["image"]
    name = SEPARATOR.join(parts)
    stem, suffix = os.path.splitext(name)
    if len(stem.encode("utf-8")) > MAX_NAME:
        digest = hashlib.sha1(relative.encode("utf-8")).hexdigest()[:8]
        stem = stem.encode("utf-8")[:MAX_NAME].decode("utf-8", "ignore") + "-" + digest
    return (stem or "image") + suffix.lower()


def unique_name(relative: str, taken: set[str]) -> str:
    """`flat_name`, with a short hash of the full path added when its stem is already taken (any case)."""
    name = flat_name(relative)
    stem, suffix = os.path.splitext(name)
    if stem.casefold() in taken:
        stem = f"{stem}-{hashlib.sha1(relative.encode('utf-8')).hexdigest()[:8]}"
        n = 1
        while stem.casefold() in taken:
            n += 1
            stem = f"{stem}-{n}"
    taken.add(stem.casefold())
    return stem + suffix


def safe_join(root: str | Path, *names: str) -> Path:
    """root / names, refusing anything that resolves outside root (links included)."""
    base = Path(root).resolve()
    target = base.joinpath(*names).resolve()
    if target != base and base not in target.parents:
        raise UnsafePathError(f"{'/'.join(names)!r} would be written outside {root}")
    return target


def extract_zip(archive: str | Path, dest: str | Path, suffixes: set[str] | None = None) -> list[Path]:
    """Extract the images (and CSV files) of a zip into dest, guarding against zip-slip and zip bombs.

    Members with absolute paths or ".." are placed by their cleaned relative path; links, folders and
    other files are skipped. Raises UnsafePathError when the archive is too large or too compressed.
    """
    keep = suffixes or (IMAGE_SUFFIXES | {".csv"})
    dest = Path(dest)
    out: list[Path] = []
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsafePathError(f"{Path(archive).name}: not a readable zip file ({exc})") from None
    with zf:
        members = zf.infolist()
        if len(members) > ZIP_MAX_FILES:
            raise UnsafePathError(f"{Path(archive).name}: {len(members)} files is too many (at most {ZIP_MAX_FILES})")
        total = 0
        for info in members:
            mode = info.external_attr >> 16
            if info.is_dir() or stat.S_ISLNK(mode):
                continue
            parts = relative_parts(info.filename)
            if not parts or parts[0] == "__MACOSX" or parts[-1].startswith("._"):
                continue
            if Path(parts[-1]).suffix.lower() not in keep:
                continue
            if info.file_size > 1_000_000 and info.file_size > ZIP_MAX_RATIO * max(info.compress_size, 1):
                raise UnsafePathError(f"{info.filename}: compressed {info.file_size // max(info.compress_size, 1)}:1, refused (a zip bomb?)")
            target = safe_join(dest, *parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                while chunk := src.read(1 << 20):
                    total += len(chunk)
                    if total > ZIP_MAX_BYTES:
                        dst.close()
                        target.unlink()
                        raise UnsafePathError(f"{Path(archive).name}: more than {ZIP_MAX_BYTES >> 30} GiB uncompressed, refused")
                    dst.write(chunk)
            out.append(target)
    return out


def copy_or_link(src: Path, dst: Path, link: bool = False) -> None:
    """Copy a file, or hard-link it (falling back to a copy across file systems)."""
    if link:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copyfile(src, dst)

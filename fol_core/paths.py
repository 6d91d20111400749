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
import tempfile
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from .errors import UserError, line, one_line
from .images import IMAGE_SUFFIXES

SEPARATOR = "__"
"""Joins the folders of a relative path in a flattened name: a/b/c.jpg -> a__b__c.jpg."""
MAX_NAME = 120
"""Longest flattened stem (characters); longer ones are cut and given a hash suffix."""

ZIP_MAX_FILES = 100_000
ZIP_MAX_BYTES = 8 * 1024**3
"""Zip bomb guard: at most this much uncompressed data in all (declared before extracting, counted while)."""
ZIP_MAX_RATIO = 200
"""Zip bomb guard: an archive whose members expand to more than this many times its own size is refused
(photos barely compress), checked on the declared sizes before extracting and on the bytes written."""
ZIP_SMALL = 1024**2
"""Archives expanding to at most this much are never refused for their ratio (a few compressible images)."""
ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
"""Compression methods Python's zipfile can read (not deflate64, not PPMd)."""


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


def folder_name(name: str | None) -> str:
    """One safe folder name for a name the user typed (a project's, a model's): its meaningful parts joined by
    "-", "" when it has none; longer than MAX_NAME bytes is refused (a file system takes 255 at most)."""
    clean = "-".join(relative_parts(name or ""))
    if len(clean.encode("utf-8")) > MAX_NAME:
        raise UnsafePathError(f"{clean[:40]}…: too long a name (at most {MAX_NAME} letters)")
    return clean


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


@dataclass
class Extraction:
    """What extract_zip wrote, and one line for each member it could not or would not extract."""

    files: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _short(part: str) -> str:
    """A path part that fits in a file name (255 bytes on most file systems): long ones are cut, with a hash."""
    if len(part.encode("utf-8")) <= MAX_NAME + 40:
        return part
    stem, suffix = os.path.splitext(part)
    digest = hashlib.sha1(part.encode("utf-8")).hexdigest()[:8]
    return stem.encode("utf-8")[:MAX_NAME].decode("utf-8", "ignore") + "-" + digest + suffix[:20]


def _unreadable(info: zipfile.ZipInfo) -> str | None:
    """Why a member cannot be read by zipfile (encrypted, an unsupported compression), or None."""
    if info.flag_bits & 0x1:
        return "encrypted (a password is needed)"
    if info.compress_type not in ZIP_METHODS:
        return f"compressed with method {info.compress_type} (e.g. deflate64), which cannot be read; re-zip it"
    return None


def member_name(info: zipfile.ZipInfo) -> str:
    """The member's name as its maker wrote it: zip tools on Linux and macOS store UTF-8 names without the
    UTF-8 flag, which zipfile then reads as the old DOS code page (dögs/ becoming d├╢gs/)."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("utf-8")
    except UnicodeError:  # not UTF-8 after all (or not cp437's): as zipfile read it
        return info.filename


def extract_zip(archive: str | Path, dest: str | Path, suffixes: set[str] | None = None) -> Extraction:
    """Extract the images (and CSV files) of a zip into dest, guarding against zip-slip and zip bombs.

    Members with absolute paths or ".." are placed by their cleaned relative path (long names cut);
    links, folders and other files are skipped. A member that cannot be read (bad CRC, encrypted, an
    unsupported compression) or a zip inside the zip is skipped with a line in `skipped`. Raises
    UnsafePathError when the archive is too large or too compressed, or yields nothing; then nothing
    is left in dest.
    """
    keep = suffixes or (IMAGE_SUFFIXES | {".csv"})
    name = Path(archive).name
    dest = Path(dest)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsafePathError(f"{name}: not a readable zip file ({exc})") from None
    made = not dest.exists()
    done = Extraction()
    try:
        with zf:
            members = zf.infolist()
            if len(members) > ZIP_MAX_FILES:
                raise UnsafePathError(f"{name}: {len(members)} files is too many (at most {ZIP_MAX_FILES})")
            wanted, nested = [], 0
            for info in members:
                named = member_name(info)
                parts = relative_parts(named)
                if info.is_dir() or stat.S_ISLNK(info.external_attr >> 16) or not parts:
                    continue
                if parts[0] == "__MACOSX" or parts[-1].startswith("._"):
                    continue
                suffix = Path(parts[-1]).suffix.lower()
                nested += suffix == ".zip"
                if suffix in keep:
                    wanted.append((info, named, [_short(p) for p in parts]))
            if nested:
                done.skipped.append(line(f"{nested} zip file(s) inside {name} were not opened: upload each one itself"))
            size = max(Path(archive).stat().st_size, 1)
            limit = min(ZIP_MAX_BYTES, max(ZIP_SMALL, ZIP_MAX_RATIO * size))
            declared = sum(info.file_size for info, _, _ in wanted)
            if declared > limit:
                raise UnsafePathError(f"{name}: {size:,} bytes would expand to {declared:,} bytes uncompressed "
                                      f"(at most {limit:,}), refused (a zip bomb?)")
            total = 0
            for info, named, parts in wanted:
                why = _unreadable(info)
                if why:
                    done.skipped.append(line(f"{named}: {why}"))
                    continue
                target = safe_join(dest, *parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with zf.open(info) as src, open(target, "wb") as dst:
                        while chunk := src.read(1 << 20):
                            total += len(chunk)
                            if total > limit:
                                raise UnsafePathError(f"{name}: more than {limit:,} bytes uncompressed, refused "
                                                      "(a zip bomb?)")
                            dst.write(chunk)
                except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as exc:
                    target.unlink(missing_ok=True)
                    done.skipped.append(line(f"{named}: cannot be extracted ({one_line(exc)})"))
                    continue
                done.files.append(target)
    except BaseException:
        if made:
            shutil.rmtree(dest, ignore_errors=True)
        else:
            for path in done.files:
                path.unlink(missing_ok=True)
        raise
    if not done.files:
        if made:
            shutil.rmtree(dest, ignore_errors=True)
        first = f" ({done.skipped[0]})" if done.skipped else ""
        raise UnsafePathError(line(f"{name}: no image could be extracted{first}"))
    return done


def copy_or_link(src: Path, dst: Path, link: bool = False) -> None:
    """Copy a file, or hard-link it (falling back to a copy across file systems)."""
    if link:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copyfile(src, dst)


class FolderBusyError(UserError):
    """Another run is writing the folder; one line for the user."""


@contextmanager
def exclusive(folder: str | Path, doing: str) -> Iterator[None]:
    """One run that writes `folder` at a time (a pre-label or improve run into a project, a training into a model
    folder, an export into its folder), across threads and processes (a double click, two browser tabs, the CLI
    beside the app); a second is refused at once with FolderBusyError ("PARENT/NAME is being {doing} by another
    run"). Two at once would extract the same upload or write the same checkpoint or export, and the one that made
    the folder could remove it under the other.
    The lock file lives in the system's temp folder, named after the folder's path: nothing is written beside the
    user's files."""
    path = Path(folder).resolve()
    key = hashlib.sha256(str(path).encode("utf-8")).hexdigest()[:24]
    lock = FileLock(Path(tempfile.gettempdir()) / f"fol-run-{key}.lock", timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise FolderBusyError(f"{path.parent.name}/{path.name} is being {doing} by another run: wait for it to end, "
                              "then run again") from None
    try:
        yield
    finally:
        lock.release()

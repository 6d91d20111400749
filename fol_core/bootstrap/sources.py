"""Where a project's images come from: a folder (recursive), a zip, or a Hugging Face `datasets` dataset.

Every source lists its images as `SourceItem`s (a stable key, a relative name and an optional
image-level label) and reads one image again by key, so a project can reopen its source later
(review, export) from the JSON-able `spec` it stored.

Image-level labels narrow the class to localize (the paper's class query): the class folder an image
sits in (`image_labels="folders"`, see `folder_labels`), a CSV file (columns `image` and `label`), or a
dataset's label column (a `ClassLabel`, as `imagefolder` makes from folder names).
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image

from ..errors import UserError, about, line
from ..images import IMAGE_SUFFIXES, image_files, load_image
from ..paths import UnsafePathError, extract_zip
from ..result import clean_label

CSV_IMAGE_COLUMNS = ("image", "file", "file_name", "filename", "path")
CSV_LABEL_COLUMNS = ("label", "class", "category")
NEGATIVE_LABELS = frozenset({"background", "none", "negative", "negatives", "no_object", "no object", "nothing"})
"""Image labels that mean "none of the classes is in this photo": a negative for training, and no object (no box)
for the pre-labeler."""
SHOW_FIRST = 3
"""How many examples a note about left-out rows or files names."""


def is_negative(label: str | None) -> bool:
    """Whether an image label is one of NEGATIVE_LABELS (any case)."""
    return bool(label) and label.lower() in NEGATIVE_LABELS


class SourceError(UserError):
    """A source that cannot be read; one line for the user."""


@dataclass(frozen=True)
class SourceItem:
    key: str
    """Unique and stable within the source: a relative POSIX path, or "split/row"."""
    name: str
    """The image's relative file name, from which its exported name is made."""
    label: str | None = None
    """The image-level label, if any."""


class Source:
    """Base: `items()` lists the images, `read_bytes(key)` returns one image file's bytes.

    `notes` says, one line each, what was left out while opening or listing (files a zip could not give,
    CSV rows naming no image), for the user to see."""

    notes: list[str]

    def items(self) -> Iterator[SourceItem]:
        raise NotImplementedError

    def read_bytes(self, key: str) -> bytes:
        raise NotImplementedError

    def open(self, key: str) -> Image.Image:
        """The image as upright RGB (raises ImageError or SourceError with a one-line reason)."""
        try:
            data = self.read_bytes(key)
        except FileNotFoundError:  # the project keeps its boxes, not its images: say where they went
            raise SourceError(f"{key}: no longer in the project's source (moved or deleted?): put it back to see it"
                              ) from None
        except OSError as exc:
            raise SourceError(about(key, exc)) from None
        return load_image(data, name=key)


def read_label_csv(path: str | Path) -> dict[str, str]:
    """{image path or file name: label} from a CSV with an image column and a label column (UTF-8)."""
    p = Path(path)
    if not p.is_file():
        raise SourceError(f"{path}: no such CSV file")
    try:
        with p.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            cols = {c.strip().lower(): c for c in reader.fieldnames or []}
            img = next((cols[c] for c in CSV_IMAGE_COLUMNS if c in cols), None)
            lab = next((cols[c] for c in CSV_LABEL_COLUMNS if c in cols), None)
            if img is None or lab is None:
                raise SourceError(f"{p.name}: needs an image column ({'/'.join(CSV_IMAGE_COLUMNS)}) "
                                  f"and a label column ({'/'.join(CSV_LABEL_COLUMNS)})")
            return {row[img].strip().replace("\\", "/"): clean_label(row[lab]) for row in reader
                    if row.get(img) and row.get(lab)}
    except UnicodeDecodeError as exc:
        raise SourceError(f"{p.name}: not UTF-8 text (byte {exc.start}); save the CSV as UTF-8") from None
    except (csv.Error, OSError) as exc:
        raise SourceError(f"{p.name}: not a readable CSV file ({exc})") from None


def _match_labels(keys: list[str], table: dict[str, str], notes: list[str] | None = None) -> dict[str, str]:
    """Labels by key: a CSV row names an image by its relative path, or by its file name when that is unique.

    Rows that name no image (or an ambiguous file name) are counted in `notes`, with the first few."""
    by_base: dict[str, list[str]] = {}
    for k in keys:
        by_base.setdefault(PurePosixPath(k).name, []).append(k)
    out, missing = {}, []
    for ref, label in table.items():
        ref = ref.lstrip("./")
        if ref in by_base.get(PurePosixPath(ref).name, []):
            out[ref] = label
        elif len(by_base.get(ref, [])) == 1:
            out[by_base[ref][0]] = label
        else:
            missing.append(ref)
    if missing and notes is not None:
        first = ", ".join(repr(m) for m in missing[:SHOW_FIRST])
        more = ", ..." if len(missing) > SHOW_FIRST else ""
        notes.append(line(f"{len(missing)} CSV row(s) name no image of the source (or a file name found twice), "
                          f"ignored: {first}{more}"))
    return out


class FolderSource(Source):
    """Every image file under a folder (recursively; hidden folders and `skip` are left out).

    With `within` (the app's --allow-folders root) a link is followed only while it stays inside that folder:
    files that lead out of it are neither listed nor read."""

    def __init__(self, root: str | Path, image_labels: str | None = None, skip: str | Path | None = None,
                 within: str | Path | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise SourceError(f"{root}: no such folder")
        self.image_labels = image_labels
        self.skip = Path(skip).resolve() if skip else None
        self.within = Path(within).resolve() if within else None
        self.notes = []

    def _inside(self, path: Path) -> bool:
        if self.within is None:
            return True
        real = path.resolve()
        return real == self.within or self.within in real.parents

    def _files(self) -> list[str]:
        out = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            here = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (here / d).resolve() != self.skip)
            for f in sorted(filenames):
                if Path(f).suffix.lower() in IMAGE_SUFFIXES and not f.startswith(".") and self._inside(here / f):
                    out.append((here / f).relative_to(self.root).as_posix())
        return out

    def items(self) -> Iterator[SourceItem]:
        keys = self._files()
        if self.image_labels == "folders":
            labels = folder_labels(keys)
        elif self.image_labels:
            labels = _match_labels(keys, read_label_csv(self.image_labels), self.notes)
        else:
            labels = {}
        for k in keys:
            yield SourceItem(k, k, labels.get(k) or None)

    def read_bytes(self, key: str) -> bytes:
        """The file at key; a key that climbs out of the folder is refused (links the user put inside are read,
        unless they lead out of `within`)."""
        return self.path(key).read_bytes()

    def path(self, key: str) -> Path:
        parts = PurePosixPath(key).parts
        if not parts or PurePosixPath(key).is_absolute() or ".." in parts or not self._inside(self.root / key):
            raise UnsafePathError(f"{key!r} is outside {self.root}")
        return self.root / key


def folder_labels(keys: list[str]) -> dict[str, str]:
    """Each image's class folder, as torchvision's ImageFolder reads one: the first folder under the source,
    whatever subfolders (a patient, a slide, a day) lie below it. Folders that only wrap the class folders
    (a zip of the folder itself: dataset/cat/, dataset/dog/) are looked through; images beside the class
    folders have no label."""
    parts = [PurePosixPath(k).parts for k in keys]
    depth = 0
    while all(len(p) > depth + 2 for p in parts) and len({p[depth] for p in parts}) == 1:
        depth += 1  # one folder holding only folders: a wrapper, not a class
    return {k: clean_label(p[depth]) for k, p in zip(keys, parts) if len(p) > depth + 1}


class DatasetSource(Source):
    """A Hugging Face `datasets` dataset: saved with `save_to_disk`, a local `imagefolder`, or from the Hub.

    The image column is the first `Image` feature; the label column (when image labels are asked
    for) is a `ClassLabel` or a string column named label/class/category.
    """

    def __init__(
        self, mode: str, path: str, split: str | None = None, image_labels: str | None = None,
        cache_dir: str | Path | None = None, within: str | Path | None = None,
    ) -> None:
        import datasets

        self.notes = []
        self.within = Path(within).resolve() if within else None
        try:
            if mode == "disk":
                loaded = datasets.load_from_disk(path)
            elif mode == "imagefolder":
                loaded = datasets.load_dataset("imagefolder", data_dir=path, cache_dir=str(cache_dir) if cache_dir else None)
            elif mode == "parquet":
                loaded = datasets.load_dataset("parquet", data_files=path, cache_dir=str(cache_dir) if cache_dir else None)
            else:
                loaded = datasets.load_dataset(path)
        except (OSError, ValueError) as exc:  # incl. FileNotFoundError, ConnectionError, DatasetNotFoundError
            raise SourceError(f"cannot load the dataset {path!r}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        if isinstance(loaded, datasets.DatasetDict):
            splits = [split] if split else list(loaded)
            if split and split not in loaded:
                raise SourceError(f"{path}: no split {split!r} (it has {', '.join(loaded)})")
            self.splits = {s: loaded[s] for s in splits}
        else:
            self.splits = {split or "train": loaded}
        if mode == "imagefolder" and not split:
            read, there = sum(len(d) for d in self.splits.values()), len(image_files(path))
            if read < there:  # `datasets` keeps only the files whose paths name a split, once any does
                self.notes.append(line(f"{path}: datasets' imagefolder read {read} of its {there} images (it takes "
                                       "train/val/test in file and folder names as splits): give the folder without "
                                       "hf: to read every image"))
        first = next(iter(self.splits.values()))
        if mode == "parquet" and not any(isinstance(f, datasets.Image) for f in first.features.values()):
            # Parquet from elsewhere: the first column of raw bytes holds the encoded images
            raw = next((n for n, f in first.features.items() if getattr(f, "dtype", None) in ("binary", "large_binary")), None)
            if raw is not None:
                self.splits = {s: d.cast_column(raw, datasets.Image(decode=False)) for s, d in self.splits.items()}
                first = next(iter(self.splits.values()))
        self.image_column = next((n for n, f in first.features.items() if isinstance(f, datasets.Image)), None)
        if self.image_column is None:
            raise SourceError(f"{path}: the dataset has no Image column")
        self.splits = {s: d.cast_column(self.image_column, datasets.Image(decode=False)) for s, d in self.splits.items()}
        self.label_column = None
        if image_labels:
            feats = first.features
            label_cols = [n for n in feats if n.lower() in CSV_LABEL_COLUMNS]
            class_cols = [n for n, f in feats.items() if isinstance(f, datasets.ClassLabel)]
            self.label_column = image_labels if image_labels in feats else (class_cols or label_cols or [None])[0]
            if image_labels.endswith(".csv"):
                self.label_column = None
            elif self.label_column is None:  # asked for, and nothing to read them from: say so
                self.notes.append(line(f"{path}: the dataset has no label column (a ClassLabel, or one named "
                                       f"{'/'.join(CSV_LABEL_COLUMNS)}): its images carry no image-level label"))
        self._csv = image_labels if image_labels and image_labels.endswith(".csv") else None

    def _label(self, ds, row: dict) -> str | None:
        import datasets

        if self.label_column is None or row.get(self.label_column) is None:
            return None
        feat = ds.features[self.label_column]
        value = row[self.label_column]
        return feat.int2str(value) if isinstance(feat, datasets.ClassLabel) else str(value)

    def items(self) -> Iterator[SourceItem]:
        rows = []
        for split, ds in self.splits.items():
            for i, row in enumerate(ds):
                img = row[self.image_column] or {}
                base = PurePosixPath(str(img.get("path") or "").replace("\\", "/")).name
                suffix = PurePosixPath(base).suffix.lower()
                name = f"{split}/{base}" if base and suffix in IMAGE_SUFFIXES else f"{split}/{i:06d}{self._guess_suffix(img)}"
                rows.append(SourceItem(f"{split}/{i}", name, self._label(ds, row)))
        if self._csv:
            labels = _match_labels([r.name for r in rows], read_label_csv(self._csv), self.notes)
            rows = [SourceItem(r.key, r.name, labels.get(r.name)) for r in rows]
        yield from rows

    @staticmethod
    def _guess_suffix(img: dict) -> str:
        data = img.get("bytes") or b""
        return ".jpg" if data[:3] == b"\xff\xd8\xff" else ".png"

    def _row(self, key: str) -> dict:
        split, _, index = key.rpartition("/")
        if split not in self.splits or not index.isdigit() or int(index) >= len(self.splits[split]):
            raise SourceError(f"{key}: no such row in the dataset")
        return self.splits[split][int(index)][self.image_column] or {}

    def read_bytes(self, key: str) -> bytes:
        img = self._row(key)
        if img.get("bytes"):
            return img["bytes"]
        if img.get("path") and Path(img["path"]).is_file():
            real = Path(img["path"]).resolve()
            if self.within is not None and self.within not in real.parents:
                raise UnsafePathError(f"{key}: the row's image file is outside {self.within}")
            return real.read_bytes()
        raise SourceError(f"{key}: the dataset row holds no image data")


def is_saved_dataset(path: Path) -> bool:
    """A folder written by `datasets`' save_to_disk (a Dataset or a DatasetDict)."""
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def source_spec(text: str, image_labels: str | None = None, split: str | None = None) -> dict:
    """What the user typed, as the JSON-able spec a project stores (and compares, to resume a run).

    - a folder: its images, recursively (a folder saved by `datasets.save_to_disk` is read as a dataset);
    - a .zip: extracted safely into the project's folder (`source/`), then read as a folder;
    - `hf:DIR` (a local folder): `datasets.load_dataset("imagefolder", data_dir=DIR)`;
    - `hf:OWNER/NAME`: a dataset from the Hugging Face Hub (online, or from the local cache);
    - a .parquet file: a column of encoded images (a `datasets` Image column, or the first binary column).
    """
    labels = str(Path(image_labels).resolve()) if image_labels and image_labels != "folders" and Path(image_labels).is_file() else image_labels
    if text.startswith("hf:"):
        target = text[3:]
        mode = "disk" if is_saved_dataset(Path(target)) else "imagefolder" if Path(target).is_dir() else "hub"
        path = str(Path(target).resolve()) if mode != "hub" else target
        return {"kind": "hf", "mode": mode, "path": path, "split": split, "image_labels": labels}
    path = Path(text)
    if path.is_file() and path.suffix.lower() == ".parquet":
        return {"kind": "hf", "mode": "parquet", "path": str(path.resolve()), "split": split, "image_labels": labels}
    if path.is_file() and path.suffix.lower() == ".zip":
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        return {"kind": "zip", "path": str(path.resolve()), "sha256": digest.hexdigest(), "image_labels": labels}
    if path.is_dir() and is_saved_dataset(path):
        return {"kind": "hf", "mode": "disk", "path": str(path.resolve()), "split": split, "image_labels": labels}
    if path.is_dir():
        return {"kind": "folder", "root": str(path.resolve()), "image_labels": labels}
    raise SourceError(f"{text}: no such folder, zip or dataset")


def same_source(a: dict | None, b: dict | None) -> bool:
    """Whether two specs name the same images: a zip by its content (an upload lands at a new temporary path)."""
    if a and b and a.get("kind") == b.get("kind") == "zip":
        return (a.get("sha256"), a.get("image_labels")) == (b.get("sha256"), b.get("image_labels"))
    return a == b


def open_source(spec: dict, workdir: str | Path | None = None) -> Source:
    """The source a spec describes; `workdir` is the project's folder (a zip is extracted into its source/,
    and a folder source skips it when it lies inside)."""
    kind = spec.get("kind")
    if kind == "folder":
        return FolderSource(spec["root"], spec.get("image_labels"), skip=workdir, within=spec.get("within"))
    if kind == "zip":
        if workdir is None:
            raise SourceError("a zip needs a project folder to be extracted into")
        dest = Path(workdir) / "source"
        skipped = []
        if not dest.is_dir():
            tmp = Path(workdir) / "source.partial"
            if tmp.exists():
                shutil.rmtree(tmp)
            skipped = extract_zip(spec["path"], tmp).skipped
            tmp.rename(dest)
        source = FolderSource(dest, spec.get("image_labels"))
        source.notes += skipped
        return source
    if kind == "hf":
        # an imagefolder's Arrow cache goes in the project's folder, not in a global cache
        cache = Path(workdir) / ".cache" if workdir and spec["mode"] in ("imagefolder", "parquet") else None
        return DatasetSource(spec["mode"], spec["path"], spec.get("split"), spec.get("image_labels"), cache,
                             spec.get("within"))
    raise SourceError(f"unknown source kind {kind!r}")

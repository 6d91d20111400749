"""A bad-input corpus, generated here: each hostile or broken input gets a one-line message for the user
(a UserError of at most 300 characters, no traceback), the rest of the work goes on, and nothing is left behind.

Also: what a visitor may reach on a shared server (server folders off unless --allow-folders ROOT, and then
confined to ROOT; each browser session sees only its own projects).
"""

from __future__ import annotations

import html
import json
import os
import struct
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from fol_core import paths, webapp
from fol_core.annotator import display_copy, from_annotator
from fol_core.bootstrap.prelabel import open_run, unknown_labels
from fol_core.bootstrap.sources import FolderSource, read_label_csv
from fol_core.draw import draw_boxes, explain_figure, heatmap_figure, overlay
from fol_core.errors import MAX_MESSAGE, UserError, about
from fol_core.formats import AnnotatedImage, category_list, yolo
from fol_core.images import ImageError, load_image
from fol_core.labelmap import LabelMap
from fol_core.result import Box, Explanation, Localization
from fol_core.webapp import prelabel as prelabel_tab
from fol_core.webapp import review

LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")
)
"""The billion laughs as a label map: about 400 bytes that a YAML loader expands to 9^9 strings."""


def assert_one_line(exc: BaseException) -> str:
    """The user's message: a UserError, one line, at most MAX_MESSAGE characters."""
    assert isinstance(exc, UserError), repr(exc)
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text and len(text) <= MAX_MESSAGE, text
    return text


def refused(fn, *args, **kwargs) -> str:
    """Call fn, which must refuse with a one-line UserError; its message."""
    with pytest.raises(UserError) as info:
        fn(*args, **kwargs)
    return assert_one_line(info.value)


@pytest.fixture
def photo(examples_dir) -> bytes:
    return (examples_dir / "rocket.jpg").read_bytes()


def zip_of(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def patch_member(archive: Path, name: str, flags: int = 0, method: int | None = None) -> None:
    """Set flag bits or the compression method of one member in both its local and central headers
    (zipfile cannot write an encrypted or deflate64 member)."""
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as z:
        local = z.getinfo(name).header_offset
    central = data.find(b"PK\x01\x02")
    while central >= 0:
        size = struct.unpack_from("<HHH", data, central + 28)
        if data[central + 46: central + 46 + size[0]].decode() == name:
            break
        central = data.find(b"PK\x01\x02", central + 46 + sum(size))
    for flag_at, method_at in ((local + 6, local + 8), (central + 8, central + 10)):
        struct.pack_into("<H", data, flag_at, struct.unpack_from("<H", data, flag_at)[0] | flags)
        if method is not None:
            struct.pack_into("<H", data, method_at, method)
    archive.write_bytes(bytes(data))


# --- label maps and CSV files ----------------------------------------------------------------------

def test_billion_laughs_is_refused_in_a_line(tmp_path):
    assert len(LAUGHS) < 500
    assert "alias" in refused(LabelMap.parse, LAUGHS)
    assert "alias" in prelabel_tab.check_map(LAUGHS) and len(prelabel_tab.check_map(LAUGHS)) < MAX_MESSAGE
    path = tmp_path / "laughs.yaml"
    path.write_text(LAUGHS)
    refused(LabelMap.load, path)
    assert "characters long" in refused(LabelMap.parse, "x: [" + "dog, " * 100_000 + "]")  # a cap on the text


def test_non_utf8_map_and_csv_are_one_line_errors(tmp_path):
    yaml_file, csv_file = tmp_path / "map.yaml", tmp_path / "labels.csv"
    yaml_file.write_bytes("labels:\n  chat: [tabby]\n  caf\xe9: [espresso]\n".encode("latin-1"))
    csv_file.write_bytes("image,label\nphoto.png,caf\xe9\n".encode("latin-1"))
    assert "UTF-8" in refused(LabelMap.load, yaml_file)
    assert "UTF-8" in refused(read_label_csv, csv_file)


def test_unknown_csv_labels_and_rows_for_missing_images_are_reported(tmp_path, photo):
    src = tmp_path / "photos"
    src.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (src / name).write_bytes(photo)
    table = tmp_path / "labels.csv"
    table.write_text("image,label\na.jpg,missile\nb.jpg,zebracorn\nc.jpg,zebracorn\ngone.jpg,dog\nlost.jpg,cat\n")
    project, new = open_run(str(src), str(tmp_path / "project"), image_labels=str(table))
    assert new == 3
    notes = project.source().notes
    assert len(notes) == 1 and notes[0].startswith("2 CSV row(s)") and "'gone.jpg'" in notes[0]
    (note,) = unknown_labels(project.todo(), LabelMap.imagenet())
    assert note.startswith("2 image(s) carry a label the map does not know (1 label(s): 'zebracorn')")
    project.close()


# --- zips --------------------------------------------------------------------------------------------

def test_zip_bombs_of_both_kinds_are_refused_before_writing(tmp_path):
    one = zip_of(tmp_path / "one.zip", {"huge.png": b"\0" * 5_000_000}, zipfile.ZIP_DEFLATED)
    many = zip_of(tmp_path / "many.zip", {f"z{i:03d}.png": b"\0" * 999_999 for i in range(300)},
                  zipfile.ZIP_DEFLATED)
    assert many.stat().st_size < 400_000  # 300 members under the old 1 MB per-member check: 300 MB unpacked
    for bomb in (one, many):
        dest = tmp_path / f"out-{bomb.stem}"
        assert "bomb" in refused(paths.extract_zip, bomb, dest)
        assert not dest.exists()


@pytest.mark.parametrize("kind", ["bad crc", "encrypted", "deflate64"])
def test_an_unreadable_member_is_skipped_with_a_line_and_the_rest_extracted(tmp_path, photo, kind):
    archive = zip_of(tmp_path / "upload.zip", {"bad.jpg": photo, "good.jpg": photo})
    if kind == "bad crc":
        data = bytearray(archive.read_bytes())
        data[data.find(photo[2000:2100]) + 10] ^= 0xFF  # the first member's bytes, stored
        archive.write_bytes(bytes(data))
    else:
        patch_member(archive, "bad.jpg", flags=1 if kind == "encrypted" else 0, method=9 if kind == "deflate64" else None)
    dest = tmp_path / "out"
    done = paths.extract_zip(archive, dest)
    assert [p.name for p in done.files] == ["good.jpg"] and (dest / "good.jpg").read_bytes() == photo
    assert not (dest / "bad.jpg").exists()
    (line,) = done.skipped
    assert line.startswith("bad.jpg: ") and len(line) <= MAX_MESSAGE
    assert {"bad crc": "CRC", "encrypted": "encrypted", "deflate64": "method 9"}[kind] in line


def test_a_long_member_name_is_cut_and_a_nested_zip_is_reported(tmp_path, photo):
    inner = zip_of(tmp_path / "inner.zip", {"x.jpg": photo}).read_bytes()
    long_name = "d" * 300 + ".jpg"
    done = paths.extract_zip(zip_of(tmp_path / "a.zip", {long_name: photo, "inner.zip": inner}), tmp_path / "out")
    (written,) = done.files
    assert written.suffix == ".jpg" and len(written.name.encode()) < 255 and written.read_bytes() == photo
    assert done.skipped == ["1 zip file(s) inside a.zip were not opened: upload each one itself"]
    only_nested = zip_of(tmp_path / "nested.zip", {"inner.zip": inner})
    assert "zip file(s) inside" in refused(paths.extract_zip, only_nested, tmp_path / "out2")
    assert not (tmp_path / "out2").exists()


@pytest.mark.parametrize("kind", ["bomb", "nested only", "all encrypted", "not a zip", "non-utf8 csv"])
def test_a_refused_zip_leaves_no_project_behind(tmp_path, photo, kind):
    root = tmp_path / "exports"
    archive = tmp_path / "upload.zip"
    labels = None
    if kind == "bomb":
        zip_of(archive, {f"z{i}.png": b"\0" * 999_999 for i in range(50)}, zipfile.ZIP_DEFLATED)
    elif kind == "nested only":
        zip_of(archive, {"inner.zip": zip_of(tmp_path / "inner.zip", {"x.jpg": photo}).read_bytes()})
    elif kind == "all encrypted":
        zip_of(archive, {"x.jpg": photo})
        patch_member(archive, "x.jpg", flags=1)
    elif kind == "not a zip":
        archive.write_bytes(b"PK\x03\x04 this is no zip")
    else:
        zip_of(archive, {"x.jpg": photo})
        labels = tmp_path / "labels.csv"
        labels.write_bytes("image,label\nx.jpg,caf\xe9\n".encode("latin-1"))
    refused(open_run, str(archive), str(root / "upload"), image_labels=str(labels) if labels else None)
    assert not (root / "upload").exists() and review.list_projects(root) == []


# --- files the batch must go on past ----------------------------------------------------------------

def unreadable(path: Path, monkeypatch) -> None:
    """Make path unreadable: chmod 000, or (as root, whom permissions do not stop) a PermissionError on read."""
    path.chmod(0)
    if os.geteuid() != 0:
        return
    real = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)


def test_an_unreadable_file_is_one_line(tmp_path, photo, monkeypatch):
    path = tmp_path / "locked.jpg"
    path.write_bytes(photo)
    unreadable(path, monkeypatch)
    message = refused(load_image, path)
    assert message == f"{path}: cannot be read (Permission denied)"
    assert about(str(path), ImageError(message)) == message  # named once, not "X: X: ..."
    assert about("a.jpg", PermissionError(13, "Permission denied")) == "a.jpg: [Errno 13] Permission denied"


def test_a_thin_strip_can_be_drawn_at_every_size():
    strip = Image.new("RGB", (16, 60000), (90, 120, 200))
    box = Box(0, 100, 16, 50000, "tall\nthing", 409, 0.5, "gradcam")
    heat = [[0.0, 1.0], [1.0, 0.0]]
    result = Localization(16, 60000, "m", "gradcam", [box], [(409, "analog clock", 0.5)],
                          [Explanation(409, "analog clock", 0.5, heatmap=np.array(heat, dtype=np.float32))])
    shown, scale = display_copy(strip)
    assert shown.width == 1  # the display copy of a 16 x 60000 strip is one pixel wide
    for image, boxes in ((strip, [box]), (shown, [Box(0, 2, 16 / scale, 1333, "tall", 409, 0.5, "gradcam")])):
        assert draw_boxes(image, boxes).size == image.size
    assert overlay(strip, result).size == strip.size
    assert heatmap_figure(shown, result).height > 0 and explain_figure(strip, result).width > 0


def test_control_characters_in_labels_never_split_a_class_list(tmp_path):
    lm = LabelMap.parse('labels:\n  "hot\\ndog": [hotdog]\n  "cup\\u2028board": [cup]\n')
    assert lm.names == ["hot dog", "cup board"]
    drawn = from_annotator([{"xmin": 1, "ymin": 1, "xmax": 30, "ymax": 30, "label": "new\r\nlabel\x00"}], 1.0, 40, 40)
    boxes = [Box(0, 0, 10, 10, "a\nb", 1, 1.0, "m"), Box(0, 0, 10, 10, "\x1e\x85", 1, 1.0, "m"), *drawn]
    assert [b.label for b in boxes] == ["a b", "object", "new label"]
    item = AnnotatedImage("x.jpg", 40, 40, boxes)
    names = category_list([item], lm.names)
    root = yolo.write_dataset([item], tmp_path / "yolo", names)
    classes = (root / "classes.txt").read_text().splitlines()
    assert classes == names and len(classes) == 5 == yaml.safe_load((root / "data.yaml").read_text())["nc"]


@pytest.mark.slow
def test_localize_goes_on_past_unreadable_and_long_named_files(tmp_path, examples_dir, capsys, monkeypatch):
    from fol_core.cli import main

    locked, long_name = tmp_path / "locked.png", tmp_path / ("n" * 246 + ".png")
    for path in (locked, long_name):
        path.write_bytes((examples_dir / "chelsea.png").read_bytes())
    assert len(long_name.name.encode()) == 250
    unreadable(locked, monkeypatch)
    out = tmp_path / "out"
    code = main(["localize", str(locked), str(long_name), str(examples_dir / "coffee.png"), "--method", "gradcam",
                 "--out", str(out), "--threads", "1"])
    captured = capsys.readouterr()
    assert code == 1
    (skipped,) = [line for line in captured.err.splitlines() if line.startswith("skipped")]
    assert skipped == f"skipped {locked}: cannot be read (Permission denied)"
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == 4 and "coffee.overlay.png" in written and all(len(n.encode()) < 255 for n in written)
    assert f"wrote 2 overlay PNG and JSON file(s) in {out}" in captured.out


# --- what a visitor may reach -----------------------------------------------------------------------

@pytest.fixture
def shared_root(tmp_path, photo) -> Path:
    """ROOT (what --allow-folders names) with photos, a link to a file outside it and a link to a folder
    outside it; and a secret folder beside it."""
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "private.jpg").write_bytes(photo)
    root = tmp_path / "root"
    (root / "photos").mkdir(parents=True)
    (root / "photos" / "ok.jpg").write_bytes(photo)
    (root / "photos" / "peek.jpg").symlink_to(secret / "private.jpg")
    (root / "photos" / "inside.jpg").symlink_to(root / "photos" / "ok.jpg")
    (root / "escape").symlink_to(secret, target_is_directory=True)
    return root


def test_server_folders_are_off_unless_allowed(shared_root):
    assert "--allow-folders" in refused(prelabel_tab.server_source, str(shared_root / "photos"), None)
    assert "--allow-folders" in refused(prelabel_tab.run, shared_root / "x", str(shared_root), None, "p", "",
                                        "none", None, "gradcam", 0, False)
    assert not (shared_root / "x").exists()


@pytest.mark.parametrize("text", ["/etc", "..", "../secret", "escape", "escape/private.jpg", "hf:../secret",
                                  "/tmp/gradio"])
def test_a_folder_outside_root_is_refused(shared_root, text):
    assert "outside" in refused(prelabel_tab.server_source, text, shared_root)


def test_links_are_followed_only_inside_root(shared_root, tmp_path):
    spec = prelabel_tab.server_source("photos", shared_root)
    assert spec["kind"] == "folder" and spec["within"] == str(shared_root.resolve())
    project, new = open_run(spec, str(tmp_path / "project"))
    assert new == 2
    assert sorted(r.key for r in project.images()) == ["inside.jpg", "ok.jpg"]  # peek.jpg leads out: not listed
    source = project.source()
    assert "outside" in refused(source.read_bytes, "peek.jpg")
    assert source.read_bytes("inside.jpg") == source.read_bytes("ok.jpg")
    project.close()
    assert FolderSource(shared_root / "photos").path("peek.jpg").is_file()  # the command line's own folder: read
    dataset = shared_root / "data"
    (dataset / "cat").mkdir(parents=True)
    (dataset / "cat" / "x.jpg").symlink_to(tmp_path / "secret" / "private.jpg")
    assert "a link out of" in refused(prelabel_tab.server_source, "hf:data", shared_root)


def test_each_session_sees_only_its_own_projects(tmp_path, photo, monkeypatch):
    monkeypatch.setattr(webapp.tempfile, "tempdir", str(tmp_path))
    access = webapp.Access(tmp_path / "exports", shared=False)
    mine, theirs = access.root("session-a"), access.root("session-b")
    assert mine != theirs and tmp_path in mine.parents and access.root("session-a") == mine
    project, _ = open_run(str(zip_of(tmp_path / "up.zip", {"x.jpg": photo})), str(mine / "holiday"))
    project.close()
    assert review.list_projects(mine) == ["holiday"] and review.list_projects(theirs) == []
    assert review.open_queue(mine, "holiday", "confidence", "all")["project"] == str(mine / "holiday")
    for name in ("holiday", f"../{mine.name}/holiday", str(mine / "holiday")):
        assert "no project called" in refused(review.open_queue, theirs, name, "confidence", "all")
    access.end_session("session-a")
    assert not mine.exists()
    refused(webapp.Access(tmp_path, shared=False).root, None)
    assert webapp.is_shared_by_default("127.0.0.1", None) and not webapp.is_shared_by_default("0.0.0.0", None)
    assert not webapp.is_shared_by_default("127.0.0.1", "owner/space")


@pytest.fixture(scope="module")
def server(tmp_path_factory, examples_dir):
    """The app as on a public Space: per-session projects, and --allow-folders ROOT; (url, ROOT, a zip)."""
    import tempfile

    from browser_support import free_port

    import app

    base = tmp_path_factory.mktemp("served")
    root = base / "root"
    (root / "photos").mkdir(parents=True)
    for name in ("chelsea.png", "coffee.png"):
        (root / "photos" / name).write_bytes((examples_dir / name).read_bytes())
    upload = zip_of(base / "upload.zip", {"cat.png": (examples_dir / "chelsea.png").read_bytes()})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tempfile, "tempdir", str(base / "tmp"))
        (base / "tmp").mkdir()
        port = free_port()
        demo = app.serve("127.0.0.1", port, allow_folders=root, shared_projects=False, prevent_thread_lock=True,
                         quiet=True)
        yield f"http://127.0.0.1:{port}/", root, upload
        demo.close()


def test_a_second_session_cannot_open_the_first_ones_project(server):
    from gradio_client import Client, handle_file

    url, root, upload = server
    first, second = Client(url, verbose=False), Client(url, verbose=False)

    def prelabel(client, folder, zip_file, name):
        return client.predict(folder, handle_file(str(zip_file)) if zip_file else None, name, "", "none", None,
                              "gradcam", 0, False, api_name="/prelabel")

    assert "**mine**: 1 new image;" in prelabel(first, "", upload, "mine")
    assert json.loads(urllib.request.urlopen(url + "config", timeout=30).read())["max_file_size"] == 1024**3  # 1 GB
    assert "**folder**: 2 new images" in prelabel(first, "photos", None, "folder")
    opened = first.predict("mine", "confidence", "all", api_name="/review_open")
    assert "1 / 1" in opened
    for client, folder, words in ((second, "", "no project called 'mine'"), (first, "/etc", "outside"),
                                  (first, "../", "outside")):
        with pytest.raises(Exception) as info:
            if folder:
                prelabel(client, folder, None, "sneaky")
            else:
                client.predict("mine", "confidence", "all", api_name="/review_open")
        message = html.unescape(str(info.value))  # the app escapes its messages for the page
        assert words in message and "\n" not in message.strip() and len(message) < 400
    assert not (root / "sneaky").exists() and not (root.parent / "root" / "mine").exists()


def test_a_failed_start_in_a_folder_of_other_files_removes_only_its_own(tmp_path):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    bomb = zip_of(tmp_path / "bomb.zip", {f"z{i}.png": b"\0" * 999_999 for i in range(50)}, zipfile.ZIP_DEFLATED)
    refused(open_run, str(bomb), str(folder), overwrite=True)
    assert [p.name for p in folder.iterdir()] == ["thesis.tex"] and (folder / "thesis.tex").read_text() == "precious"

"""Safe paths: flattened unique names, zip-slip and zip-bomb guards."""

from __future__ import annotations

import zipfile

import pytest

from fol_core import paths


def test_flat_names_are_safe_and_unique():
    taken: set[str] = set()
    names = [paths.unique_name(n, taken) for n in (
        "a/photo.png", "b/photo.png", "A/Photo.png", "../../etc/passwd.png", "/abs/x.jpg", "C:\\win\\y.JPG",
        "ü ni/co de.png", "x" * 300 + ".png",
    )]
    assert names[:2] == ["a__photo.png", "b__photo.png"]
    assert names[2].startswith("A__Photo-")  # same name but for case: a hash suffix
    assert names[3] == "etc__passwd.png" and names[4] == "abs__x.jpg" and names[5] == "win__y.jpg"
    assert names[6] == "ü ni__co de.png"
    assert len(names[7].encode()) < 140
    assert all("/" not in n and "\\" not in n and not n.startswith(".") for n in names)
    assert len({n.casefold() for n in names}) == len(names)
    with pytest.raises(paths.UnsafePathError):
        paths.safe_join("/tmp/x", "..", "y")


def test_zip_slip_is_contained(tmp_path, examples_dir):
    archive = tmp_path / "upload.zip"
    photo = (examples_dir / "chelsea.png").read_bytes()
    with zipfile.ZipFile(archive, "w") as z:
        for name in ("../evil.png", "/abs/evil2.png", "a/../../evil3.png", "ok/cat.png", "ok/readme.sh"):
            z.writestr(name, photo)
    dest = tmp_path / "project" / "source"
    written = paths.extract_zip(archive, dest).files
    assert sorted(p.relative_to(dest).as_posix() for p in written) == ["a/evil3.png", "abs/evil2.png", "evil.png", "ok/cat.png"]
    assert not list(tmp_path.glob("evil*")) and not (tmp_path / "project" / "evil3.png").exists()


def test_utf8_member_names_without_the_utf8_flag_keep_their_letters(tmp_path, examples_dir):
    archive = tmp_path / "linux-zip.zip"
    names = {"dögs/名前.png": "dögs/名前.png".encode(), "dos/café.png": b"dos/caf\x82.png"}  # cp437's é: not UTF-8
    with zipfile.ZipFile(archive, "w") as z:  # ASCII stand-ins of the same byte length: no UTF-8 flag
        for raw in names.values():
            z.writestr(bytes(c if c < 128 else ord("Q") for c in raw).decode(), (examples_dir / "chelsea.png").read_bytes())
    data = archive.read_bytes()
    for raw in names.values():  # then the bytes a Linux or DOS zip tool writes
        data = data.replace(bytes(c if c < 128 else ord("Q") for c in raw), raw)
    archive.write_bytes(data)
    assert not any(i.flag_bits & 0x800 for i in zipfile.ZipFile(archive).infolist())
    written = paths.extract_zip(archive, tmp_path / "out").files
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == sorted(names)


def test_zip_bombs_are_refused(tmp_path, monkeypatch, examples_dir):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("huge.png", b"\0" * 5_000_000)
    with pytest.raises(paths.UnsafePathError, match="bomb"):
        paths.extract_zip(bomb, tmp_path / "out1")
    many = tmp_path / "big.zip"
    with zipfile.ZipFile(many, "w") as z:
        for i in range(3):
            z.write(examples_dir / "coffee.png", f"c{i}.png")
    monkeypatch.setattr(paths, "ZIP_MAX_BYTES", 500_000)  # the absolute cap on the total
    with pytest.raises(paths.UnsafePathError, match="uncompressed"):
        paths.extract_zip(many, tmp_path / "out2")

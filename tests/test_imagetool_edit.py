"""ls / cat / add / rm on existing images; a change that cannot complete leaves the image as it was."""
from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from imagetool.check import verify
from imagetool.image import Image, Item, build_image
from tests.support import require_tool
from tests.test_imagetool_support import (MiB, fake_efi, fsck_fat, imagetool, mdir_entries, mtools,
                                          pseudo_random, sgdisk_verify)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(params=[8, 64], ids=["fat16", "fat32"])
def img(tmp_path: Path, request) -> Path:
    efi = fake_efi(tmp_path / "BOOTX64.EFI", 20_000)
    out = tmp_path / "disk.img"
    build_image(out, [Item("/EFI/BOOT/BOOTX64.EFI", src=efi), Item("/model.bin", data=pseudo_random(50_000, 5)),
                      Item("/docs/Read me first.txt", data=b"hello\n"), Item("/docs/b.txt", data=b"b\n")],
                size_mib=request.param)
    return out


def _one_error_line(r: subprocess.CompletedProcess) -> str:
    err = r.stderr.decode()
    assert r.returncode != 0
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_ls_and_cat(img, tmp_path):
    r = imagetool("ls", img)
    assert r.returncode == 0
    lines = r.stdout.decode().splitlines()
    assert any(line.endswith("  EFI/") and "<DIR>" in line for line in lines)
    assert any(line.split()[0] == "50000" and line.endswith("model.bin") for line in lines)
    r = imagetool("ls", "-l", img, "/docs")
    assert "README~1.TXT  Read me first.txt" in r.stdout.decode()  # spaces stripped, then truncated
    r = imagetool("ls", "-r", img)
    assert "/EFI/BOOT/BOOTX64.EFI" in r.stdout.decode()
    r = imagetool("cat", img, "/model.bin")
    assert r.returncode == 0 and r.stdout == pseudo_random(50_000, 5)
    # lookups are case-insensitive, and the 8.3 alias works too
    assert imagetool("cat", img, "/efi/boot/bootx64.efi").stdout == (tmp_path / "BOOTX64.EFI").read_bytes()
    assert imagetool("cat", img, "DOCS/README~1.TXT").stdout == b"hello\n"
    assert "docs" in imagetool("ls", img, "/docs/b.txt").stdout.decode() or \
        imagetool("ls", img, "/docs/b.txt").stdout.decode().strip().endswith("b.txt")


def test_add_file_dir_and_parents(img, tmp_path):
    src = tmp_path / "new model.bin"
    src.write_bytes(pseudo_random(123_457, 6))
    assert imagetool("add", img, src).returncode == 0
    assert imagetool("add", img, src, "/models/deep/x.bin").returncode == 0  # parents created
    assert imagetool("add", img, src, "/docs/").returncode == 0               # into a directory
    tree = tmp_path / "tree"
    (tree / "inner").mkdir(parents=True)
    (tree / "inner" / "f.txt").write_bytes(b"inner file\n")
    (tree / "top.txt").write_bytes(b"top\n")
    assert imagetool("add", img, tree, "/docs").returncode == 0                # existing dir: tree goes inside
    assert mtools("mtype", img, "::/new model.bin").stdout == src.read_bytes()
    assert mtools("mtype", img, "::/models/deep/x.bin").stdout == src.read_bytes()
    assert mtools("mtype", img, "::/docs/new model.bin").stdout == src.read_bytes()
    assert mtools("mtype", img, "::/docs/tree/inner/f.txt").stdout == b"inner file\n"
    fsck_fat(img, tmp_path)
    sgdisk_verify(img)
    assert verify(img).ok


def test_clash_needs_force_and_leaves_image_unchanged(img, tmp_path):
    src = tmp_path / "b.txt"
    src.write_bytes(b"replacement " * 1000)
    before = _digest(img)
    err = _one_error_line(imagetool("add", img, src, "/DOCS/B.TXT"))
    assert "already exists" in err and "--force" in err
    assert _digest(img) == before
    free_before = verify(img).info["free_bytes"]
    assert imagetool("add", "--force", img, src, "/docs/b.txt").returncode == 0
    assert mtools("mtype", img, "::/docs/b.txt").stdout == src.read_bytes()
    fsck_fat(img, tmp_path)
    rep = verify(img)
    assert rep.ok and rep.info["free_bytes"] < free_before
    # replace with something small again: the old clusters come back
    src.write_bytes(b"b\n")
    assert imagetool("add", "-f", img, src, "/docs/b.txt").returncode == 0
    assert verify(img).info["free_bytes"] == free_before
    fsck_fat(img, tmp_path)


def test_disk_full_leaves_image_unchanged(img, tmp_path):
    free = verify(img).info["free_bytes"]
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(free + 1))
    before = _digest(img)
    err = _one_error_line(imagetool("add", img, big, "/new/dir/big.bin"))
    assert "not enough space" in err
    assert _digest(img) == before
    # exactly the free space fits (no new directory needed)
    big.write_bytes(pseudo_random(free, 7))
    r = imagetool("add", img, big, "/big.bin")
    assert r.returncode == 0, r.stderr
    assert verify(img).info["free_bytes"] == 0
    assert mtools("mtype", img, "::/big.bin").stdout == big.read_bytes()
    fsck_fat(img, tmp_path)
    # a full disk: even an empty file fails once the directory needs a new cluster, image unchanged
    before = _digest(img)
    small = tmp_path / "s.txt"
    small.write_bytes(b"x")
    err = _one_error_line(imagetool("add", img, small, "/s.txt"))
    assert "not enough space" in err
    assert _digest(img) == before


def test_rm(img, tmp_path):
    free0 = verify(img).info["free_bytes"]
    assert imagetool("rm", img, "/model.bin").returncode == 0
    assert "model.bin" not in mdir_entries(img)
    assert verify(img).info["free_bytes"] > free0
    before = _digest(img)
    err = _one_error_line(imagetool("rm", img, "/docs"))
    assert "not empty" in err and _digest(img) == before
    err = _one_error_line(imagetool("rm", img, "/nothing/here"))
    assert "no such file" in err and _digest(img) == before
    err = _one_error_line(imagetool("rm", img, "/"))
    assert "root" in err and _digest(img) == before
    assert imagetool("rm", "-r", img, "/docs").returncode == 0
    assert set(mdir_entries(img)) == {"EFI"}
    fsck_fat(img, tmp_path)
    assert verify(img).ok
    # the freed slots and clusters are reused
    src = tmp_path / "again.txt"
    src.write_bytes(b"again\n")
    assert imagetool("add", img, src, "/docs/again and again.txt").returncode == 0
    assert mtools("mtype", img, "::/docs/again and again.txt").stdout == b"again\n"
    fsck_fat(img, tmp_path)


def test_fat16_root_full_leaves_image_unchanged(tmp_path):
    efi = fake_efi(tmp_path / "e.efi")
    out = tmp_path / "r.img"
    build_image(out, [Item("/EFI/BOOT/BOOTX64.EFI", src=efi)], size_mib=5)
    from imagetool.fat import FileSource
    with Image(out, writable=True) as im:
        assert im.volume.layout.root_entries == 512
        for i in range(510):  # 512 root entries: the label, EFI and 510 files
            im.volume.add_file(f"/F{i:05d}.TXT", FileSource(data=b""))
        im.volume.commit()
    assert len(mdir_entries(out)) == 511
    src = tmp_path / "one.txt"
    src.write_bytes(b"1")
    before = _digest(out)
    err = _one_error_line(imagetool("add", out, src))
    assert "root directory is full" in err
    assert _digest(out) == before
    # subdirectories have no such limit
    assert imagetool("add", out, src, "/EFI/one.txt").returncode == 0
    fsck_fat(out, tmp_path)


def test_invalid_destination_names(img, tmp_path):
    src = tmp_path / "f.txt"
    src.write_bytes(b"f")
    before = _digest(img)
    for dest in ["/bad:name", "/what?.txt", "/docs/trailing.", "/../up.txt"]:
        err = _one_error_line(imagetool("add", img, src, dest))
        assert "name" in err or "'..'" in err
        assert _digest(img) == before
    # a file where a directory is needed
    err = _one_error_line(imagetool("add", img, src, "/model.bin/inside.txt"))
    assert "not a directory" in err
    assert _digest(img) == before


# ---- images made by other tools ---------------------------------------------------------------
@pytest.mark.parametrize("fat, mib", [(12, 2), (16, 20), (32, 40)])
def test_edit_mkfs_fat_superfloppy(tmp_path, fat, mib):
    require_tool("mkfs.fat", "mcopy", "fsck.fat")
    out = tmp_path / f"fat{fat}.img"
    with open(out, "wb") as f:
        f.truncate(mib * MiB)
    subprocess.run(["mkfs.fat", "-F", str(fat), "-n", "OTHER", str(out)], check=True, capture_output=True)
    keep = tmp_path / "Keep this file.txt"
    keep.write_bytes(b"keep\n" * 300)
    assert mtools("mcopy", out, str(keep), "::/", offset="").returncode == 0
    src = tmp_path / "added by imagetool.bin"
    src.write_bytes(pseudo_random(10_000, 8))
    assert imagetool("add", out, src, "/sub/").returncode == 0
    assert imagetool("rm", out, "/Keep this file.txt").returncode == 0
    r = subprocess.run(["fsck.fat", "-n", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert mtools("mtype", out, "::/sub/added by imagetool.bin", offset="").stdout == src.read_bytes()
    assert "Keep this file.txt" not in mdir_entries(out, "::/", offset="")
    with Image(out) as im:
        assert im.location.scheme == "none" and im.volume.layout.fat_bits == fat
        assert im.volume.label == "OTHER"

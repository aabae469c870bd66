"""Our reader on images made by other tools: mkfs.fat + mcopy (+ sgdisk for GPT, a hand-made MBR)."""
from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from imagetool.check import verify
from imagetool.cli import run
from imagetool.image import Image
from tests.support import require_tool
from tests.test_imagetool_support import MiB, mtools, pseudo_random

NAMES = {
    "Hello World.txt": b"hello world\n",
    "UPPER.TXT": b"upper\n",
    "lower.bin": pseudo_random(70_000, 11),
    "caf\u00e9 \u65e5\u672c.md": b"unicode name\n",
    "x" * 150 + ".dat": b"long\n",
}


def _populate(img: Path, offset: str, tmp: Path) -> None:
    src = tmp / "src"
    src.mkdir(exist_ok=True)
    for name, data in NAMES.items():
        (src / name).write_bytes(data)
    for name in NAMES:
        r = mtools("mcopy", img, str(src / name), "::/", offset=offset)
        assert r.returncode == 0, r.stderr
    assert mtools("mmd", img, "::/Some Directory", offset=offset).returncode == 0
    assert mtools("mmd", img, "::/Some Directory/deeper", offset=offset).returncode == 0
    for i in range(60):  # enough entries to need several directory clusters
        f = src / f"entry {i:03d} with a long name.txt"
        f.write_bytes(f"{i}\n".encode())
        r = mtools("mcopy", img, str(f), "::/Some Directory/deeper/", offset=offset)
        assert r.returncode == 0, r.stderr


def _check_read(img: Path, scheme: str, fat_bits: int) -> None:
    with Image(img) as im:
        assert im.location.scheme == scheme
        vol = im.volume
        assert vol.layout.fat_bits == fat_bits
        names = {e.name for e in vol.listdir("/")}
        assert set(NAMES) | {"Some Directory"} <= names
        for name, data in NAMES.items():
            assert vol.read_file("/" + name) == data
        deeper = vol.listdir("/some directory/DEEPER")
        assert len(deeper) == 60
        assert vol.read_file("/Some Directory/deeper/entry 042 with a long name.txt") == b"42\n"
    rep = verify(img)
    assert rep.ok, rep.problems


def _mkfs(img: Path, mib: int, fat: int, *extra: str) -> None:
    require_tool("mkfs.fat", "mcopy", "mmd")
    with open(img, "wb") as f:
        f.truncate(mib * MiB)
    subprocess.run(["mkfs.fat", "-F", str(fat), *extra, str(img)], check=True, capture_output=True)


@pytest.mark.parametrize("fat, mib, extra", [
    (12, 4, ()), (16, 30, ()), (32, 64, ()), (32, 300, ("-s", "1")), (16, 200, ("-s", "64")),
    (16, 128, ("-S", "4096")), (32, 128, ("-S", "1024")),  # (mtools fails on FAT32 with 2K+ sectors)
])
def test_read_mkfs_superfloppy(tmp_path, fat, mib, extra):
    img = tmp_path / "s.img"
    _mkfs(img, mib, fat, *extra)
    _populate(img, "", tmp_path)
    _check_read(img, "none", fat)


def test_read_sgdisk_gpt_with_mkfs_fat(tmp_path):
    require_tool("sgdisk")
    img = tmp_path / "g.img"
    with open(img, "wb") as f:
        f.truncate(100 * MiB)
    subprocess.run(["sgdisk", "-n", "1:2048:+80M", "-t", "1:ef00", str(img)], check=True, capture_output=True)
    require_tool("mkfs.fat")
    subprocess.run(["mkfs.fat", "-F", "32", "--offset", "2048", str(img), str(80 * 1024)], check=True,
                   capture_output=True)
    _populate(img, "@@1M", tmp_path)
    _check_read(img, "gpt", 32)


def test_read_mbr_partition(tmp_path):
    # A classic MBR with one FAT16 partition (type 0x0E) at 4 MiB, written here by hand.
    img = tmp_path / "m.img"
    part = tmp_path / "p.img"
    _mkfs(part, 40, 16)
    with open(img, "wb") as f:
        f.truncate(48 * MiB)
        rec = struct.pack("<B3sB3sII", 0, b"\xff\xff\xfe", 0x0E, b"\xff\xff\xfe", 8192, 40 * 2048)
        f.seek(446)
        f.write(rec)
        f.seek(510)
        f.write(b"\x55\xaa")
        f.seek(4 * MiB)
        f.write(part.read_bytes())
    _populate(img, "@@4M", tmp_path)
    _check_read(img, "mbr", 16)


def test_cli_reads_foreign_image(tmp_path, capsysbinary):
    img = tmp_path / "s.img"
    _mkfs(img, 30, 16)
    _populate(img, "", tmp_path)
    assert run(["cat", str(img), "/lower.bin"]) == 0
    assert capsysbinary.readouterr().out == NAMES["lower.bin"]
    assert run(["ls", str(img), "/Some Directory/deeper"]) == 0
    assert len(capsysbinary.readouterr().out.splitlines()) == 60
    assert run(["verify", str(img)]) == 0

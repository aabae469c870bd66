"""Corrupt images: one clear error line, never a traceback, never a hang."""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from imagetool.cli import run
from imagetool.image import Image, Item, build_image
from tests.support import require_tool
from tests.test_imagetool_support import MiB, fake_efi, imagetool, pseudo_random


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("corrupt")
    efi = fake_efi(d / "BOOTX64.EFI", 30_000)
    img = d / "good.img"
    build_image(img, [Item("/EFI/BOOT/BOOTX64.EFI", src=efi), Item("/model.bin", data=pseudo_random(200_000, 1)),
                      Item("/second file.txt", data=b"two\n" * 600)], size_mib=40)  # FAT32
    return img


@pytest.fixture
def img(good, tmp_path) -> Path:
    out = tmp_path / "bad.img"
    shutil.copyfile(good, out)
    return out


def _layout(img: Path):
    with Image(img) as im:
        vol = im.volume
        e = vol.lookup("/model.bin")
        e2 = vol.lookup("/second file.txt")
        return im.location.offset, vol.layout, e.first_cluster, e2.first_cluster


def _patch(img: Path, offset: int, data: bytes) -> None:
    with open(img, "r+b") as f:
        f.seek(offset)
        f.write(data)


def _expect_error(img: Path, *commands: list[str], match: str) -> None:
    for cmd in commands:
        r = imagetool(*cmd, timeout=60)
        err = r.stderr.decode()
        assert r.returncode != 0, (cmd, r.stdout)
        assert "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1, err
        assert match.lower() in err.lower(), (cmd, err)


def test_bad_primary_header_crc(img):
    _patch(img, 512 + 40, b"\x99")  # inside FirstUsableLBA, CRC now wrong
    _expect_error(img, ["ls", img], ["cat", img, "/model.bin"], ["verify", img], match="HeaderCRC32")


def test_bad_entry_array_crc(img):
    _patch(img, 1024 + 100, b"\x01")
    _expect_error(img, ["ls", img], ["verify", img], match="PartitionEntryArrayCRC32")


def test_bad_backup_header_only_fails_verify(img):
    size = os.path.getsize(img)
    _patch(img, size - 512 + 30, b"\x55")
    assert imagetool("ls", img).returncode == 0  # the primary is fine: files are still readable
    _expect_error(img, ["verify", img], match="backup GPT header")


def test_backup_array_differs(img):
    size = os.path.getsize(img)
    _patch(img, size - 33 * 512 + 200, b"\x42")
    _expect_error(img, ["verify", img], match="backup")


@pytest.mark.parametrize("keep", [0, 100, 512, 2048, 3 * MiB, 40 * MiB - 4096])
def test_truncated(img, keep):
    with open(img, "r+b") as f:
        f.truncate(keep)
    _expect_error(img, ["ls", img], ["verify", img], ["cat", img, "/model.bin"],
                  match="truncated" if keep >= 512 * 34 else ("small" if keep < 512 else "truncated"))


def test_empty_and_garbage_files(tmp_path):
    empty = tmp_path / "empty.img"
    empty.write_bytes(b"")
    _expect_error(empty, ["ls", empty], ["verify", empty], match="too small")
    garbage = tmp_path / "garbage.img"
    garbage.write_bytes(pseudo_random(MiB, 3))
    _expect_error(garbage, ["ls", garbage], ["verify", garbage], match="no GPT")
    text = tmp_path / "notes.txt"
    text.write_text("just text\n" * 100)
    _expect_error(text, ["cat", text, "/x"], match="no GPT")
    _expect_error(tmp_path, ["ls", tmp_path], match="is a directory")


def test_garbage_bpb(img):
    part, *_ = _layout(img)
    _patch(img, part + 11, pseudo_random(80, 4))  # everything after the OEM name
    _expect_error(img, ["ls", img], ["verify", img], match="not a valid FAT file system")
    _patch(img, part, b"\x00" * 512)
    _expect_error(img, ["ls", img], match="not a valid FAT file system")


def test_looping_fat_chain(img):
    part, lay, first, _ = _layout(img)
    # the model's chain: make its 5th cluster point back to its 2nd
    fat_off = part + lay.fat_offset
    for copy in range(lay.num_fats):
        _patch(img, fat_off + copy * lay.fat_bytes + (first + 4) * 4, struct.pack("<I", first + 1))
    _expect_error(img, ["cat", img, "/model.bin"], ["verify", img], match="loop")
    assert imagetool("ls", img).returncode == 0  # the directory itself is fine


def test_self_loop_and_out_of_range(img):
    part, lay, first, _ = _layout(img)
    for copy in range(lay.num_fats):
        _patch(img, part + lay.fat_offset + copy * lay.fat_bytes + first * 4, struct.pack("<I", first))
    _expect_error(img, ["cat", img, "/model.bin"], ["verify", img], match="loop")
    for copy in range(lay.num_fats):
        _patch(img, part + lay.fat_offset + copy * lay.fat_bytes + first * 4, struct.pack("<I", 0x0FFFFF00))
    _expect_error(img, ["cat", img, "/model.bin"], ["verify", img], match="outside the volume")


def test_cross_linked_chains(img):
    part, lay, first, second = _layout(img)
    for copy in range(lay.num_fats):
        _patch(img, part + lay.fat_offset + copy * lay.fat_bytes + second * 4, struct.pack("<I", first + 3))
    _expect_error(img, ["verify", img], match="cross-linked")


def test_fat_copies_differ(img):
    part, lay, first, _ = _layout(img)
    _patch(img, part + lay.fat_offset + lay.fat_bytes + 4000 * 4, struct.pack("<I", 7))
    _expect_error(img, ["verify", img], match="FAT copy 2 differs")


def test_lost_clusters(img):
    part, lay, *_ = _layout(img)
    for copy in range(lay.num_fats):
        _patch(img, part + lay.fat_offset + copy * lay.fat_bytes + 60000 * 4, struct.pack("<I", 0x0FFFFFFF))
    _expect_error(img, ["verify", img], match="lost")


def test_directory_loop(img):
    # a subdirectory whose entry points at the root cluster: the tree walk must stop
    part, lay, *_ = _layout(img)
    with Image(img, writable=True) as im:
        im.volume.mkdir("/loopdir")
        im.volume.commit()
        e = im.volume.lookup("/loopdir")
    # rewrite the directory entry's first cluster (DIR_FstClusLO) to the root cluster
    root_off = part + lay.cluster_offset(lay.root_cluster)
    _patch(img, root_off + e.slot * 32 + 26, struct.pack("<H", lay.root_cluster))
    _expect_error(img, ["verify", img], ["ls", "-r", img], match="loop")


def test_random_damage_never_tracebacks(good, tmp_path, capsysbinary):
    """Flip bytes all over the metadata (seeded): every command ends cleanly with status 0/1."""
    part, lay, *_ = _layout(good)
    meta_end = part + lay.cluster_offset(2) + 8 * lay.cluster_bytes
    regions = [(0, 34 * 512), (part, meta_end - part), (os.path.getsize(good) - 33 * 512, 33 * 512)]
    rng = np.random.default_rng(1234)
    work = tmp_path / "fuzz.img"
    shutil.copyfile(good, work)
    statuses = []
    for trial in range(400):
        saved = []
        with open(work, "r+b") as f:
            for _ in range(int(rng.integers(1, 6))):
                start, length = regions[int(rng.integers(0, len(regions)))]
                pos = start + int(rng.integers(0, length))
                f.seek(pos)
                saved.append((pos, f.read(1)))
                f.seek(pos)
                f.write(bytes([int(rng.integers(0, 256))]))
        for cmd in (["ls", "-r", str(work)], ["cat", str(work), "/model.bin"], ["verify", str(work)]):
            status = run(cmd)  # an exception escaping here would be a traceback for the user
            out = capsysbinary.readouterr()
            assert status in (0, 1), (trial, cmd, status)
            statuses.append(status)
            if status:
                assert len(out.err.strip().splitlines()) == 1, (trial, cmd, out.err)
        with open(work, "r+b") as f:
            for pos, byte in reversed(saved):
                f.seek(pos)
                f.write(byte)
    assert statuses.count(1) > 50 and statuses.count(0) > 50  # the damage was noticed, and not always


def test_never_hangs_on_huge_loop(tmp_path):
    # a 2 GiB FAT32 image whose long file chain ends in a jump back to its start
    efi = fake_efi(tmp_path / "e.efi")
    img = tmp_path / "big.img"
    src = tmp_path / "zero.bin"
    with open(src, "wb") as f:
        f.truncate(200 * MiB)
    build_image(img, [Item("/EFI/BOOT/BOOTX64.EFI", src=efi), Item("/zero.bin", src=src)], size_mib=2048)
    part, lay, first = _layout_of(img, "/zero.bin")
    n = (200 * MiB) // lay.cluster_bytes
    last = first + n - 1
    for copy in range(lay.num_fats):
        _patch(img, part + lay.fat_offset + copy * lay.fat_bytes + last * 4, struct.pack("<I", first + 10))
    r = imagetool("cat", img, "/zero.bin", timeout=60)
    assert r.returncode == 1 and b"loop" in r.stderr
    _expect_error(img, ["verify", img], match="loop")


def _layout_of(img: Path, path: str):
    with Image(img) as im:
        return im.location.offset, im.volume.layout, im.volume.lookup(path).first_cluster


def test_sgdisk_agrees_about_bad_crc(img):
    """The judge sees the same damage (so these corruptions are real, not our own invention)."""
    require_tool("sgdisk")
    _patch(img, 512 + 40, b"\x99")
    r = subprocess.run(["sgdisk", "-v", str(img)], capture_output=True, text=True, input="")
    assert "Main header: ERROR" in r.stdout + r.stderr  # (sgdisk then rebuilds it from the backup)

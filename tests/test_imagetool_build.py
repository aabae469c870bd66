"""Building images, judged by fsck.fat, sgdisk and mtools (independent implementations)."""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

import pytest

from imagetool.check import verify
from imagetool.image import Item, build_image
from tests.support import require_tool
from tests.test_imagetool_support import (MiB, fake_efi, fsck_fat, imagetool, mdir_entries,
                                          mtools, pseudo_random, sgdisk_verify)


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    d = tmp_path / "in"
    d.mkdir()
    files = {
        "efi": fake_efi(d / "BOOTX64.EFI", 70_001),
        "model": d / "stories-small.bin",
        "tok": d / "tokenizer.bin",
        "cfg": d / "my.cfg",
    }
    files["model"].write_bytes(pseudo_random(300_000, 2))
    files["tok"].write_bytes(pseudo_random(4_321, 3))
    files["cfg"].write_text("temperature=0\nmax_tokens=20\n")
    extra = d / "extra"
    (extra / "sub dir").mkdir(parents=True)
    (extra / "sub dir" / "A rather long file name.txt").write_bytes(b"long name content\n")
    (extra / "README").write_bytes(b"readme\n")
    (extra / "empty.dat").write_bytes(b"")
    files["extra"] = extra
    return files


def _items(inp: dict[str, Path]) -> list[Item]:
    return [Item("/EFI/BOOT/BOOTX64.EFI", src=inp["efi"]), Item("/stories-small.bin", src=inp["model"]),
            Item("/tokenizer.bin", src=inp["tok"]), Item("/repl.cfg", src=inp["cfg"]),
            Item("/extra"), Item("/extra/sub dir"),
            Item("/extra/sub dir/A rather long file name.txt", src=inp["extra"] / "sub dir" / "A rather long file name.txt"),
            Item("/extra/README", src=inp["extra"] / "README"), Item("/extra/empty.dat", src=inp["extra"] / "empty.dat")]


def _judge_contents(img: Path, inp: dict[str, Path]) -> None:
    root = mdir_entries(img)
    assert root["EFI"][1] == "<DIR>"
    assert root["stories-small.bin"] == ("STORIE~1.BIN", "300000")
    assert root["tokenizer.bin"] == ("TOKENI~1.BIN", "4321")
    assert "repl.cfg" in {k.lower() for k in root}
    sub = mdir_entries(img, "::/extra/sub dir")
    assert sub["A rather long file name.txt"] == ("ARATHE~1.TXT", "18")
    for path, src in [("::/EFI/BOOT/BOOTX64.EFI", inp["efi"]), ("::/stories-small.bin", inp["model"]),
                      ("::/repl.cfg", inp["cfg"]), ("::/extra/sub dir/A rather long file name.txt",
                                                      inp["extra"] / "sub dir" / "A rather long file name.txt")]:
        r = mtools("mtype", img, path)
        assert r.returncode == 0, r.stderr
        assert r.stdout == src.read_bytes(), path


# Sizes from the smallest image up to several GiB (sparse files): FAT16 up to a 32 MiB partition,
# FAT32 from 33 MiB (the first size with room for 65525 clusters), and each FAT32 cluster size.
@pytest.mark.parametrize("size_mib, fat_bits", [
    (5, 16), (6, 16), (20, 16), (34, 16), (35, 32), (64, 32), (262, 32), (300, 32), (2048, 32),
    (9000, 32), (17000, 32), (33000, 32),
])
def test_matrix_judged_by_fsck_sgdisk_mtools(tmp_path, inputs, size_mib, fat_bits):
    img = tmp_path / "disk.img"
    res = build_image(img, _items(inputs), size_mib=size_mib)
    assert img.stat().st_size == size_mib * MiB
    assert res.fat_bits == fat_bits
    out = fsck_fat(img, tmp_path)
    entries = int(re.search(r"(\d+) bit entries", out).group(1))
    clusters = int(re.search(r"(\d+) data clusters", out).group(1))
    assert entries == fat_bits
    if fat_bits == 32:
        assert clusters >= 65525
    else:
        assert 4085 <= clusters < 65525
    assert "Checking free cluster summary" in out or fat_bits == 16
    sgdisk_verify(img)
    _judge_contents(img, inputs)
    rep = verify(img)
    assert rep.ok, rep.problems
    if size_mib >= 2048:  # the multi-GiB images stay sparse
        assert os.stat(img).st_blocks * 512 < 64 * MiB


def test_esp_partition_layout_seen_by_sgdisk(tmp_path, inputs):
    require_tool("sgdisk")
    img = tmp_path / "d.img"
    res = build_image(img, _items(inputs), size_mib=64)
    out = subprocess.run(["sgdisk", "-i", "1", str(img)], capture_output=True, text=True).stdout
    assert "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" in out  # EFI System Partition type
    assert "First sector: 2048 " in out                     # at 1 MiB
    assert str(res.partition_guid).upper() in out
    assert "'EFI System Partition'" in out


def test_auto_size_is_small_and_sufficient(tmp_path, inputs):
    img = tmp_path / "auto.img"
    res = build_image(img, _items(inputs))
    assert res.size == 5 * MiB  # the smallest image: everything fits with headroom
    fsck_fat(img, tmp_path)
    sgdisk_verify(img)
    big = tmp_path / "big.bin"
    big.write_bytes(pseudo_random(40 * MiB, 9))
    res = build_image(tmp_path / "auto2.img", [Item("/EFI/BOOT/BOOTX64.EFI", src=inputs["efi"]),
                                               Item("/big.bin", src=big)])
    assert 42 * MiB <= res.size <= 48 * MiB  # contents plus a few MiB of headroom
    assert res.free_bytes >= MiB
    fsck_fat(tmp_path / "auto2.img", tmp_path)
    assert mtools("mtype", tmp_path / "auto2.img", "::/big.bin").stdout == big.read_bytes()


def test_cli_build_places_files(tmp_path, inputs):
    img = tmp_path / "cli.img"
    r = imagetool("build", "-o", img, "--efi", inputs["efi"], "--model", inputs["model"],
                  "--model", f"{inputs['tok']}=models/second.bin", "--tokenizer", inputs["tok"],
                  "--cfg", inputs["cfg"], "--add", f"{inputs['extra']}=stuff/", "--label", "MyDisk")
    assert r.returncode == 0, r.stderr
    assert b"FAT16" in r.stdout
    root = mdir_entries(img)
    assert {"EFI", "stories-small.bin", "tokenizer.bin", "repl.cfg", "models", "stuff"} <= set(root)
    assert mdir_entries(img, "::/models")["second.bin"][1] == "4321"
    assert "README" in mdir_entries(img, "::/stuff/extra")
    assert mtools("mtype", img, "::/repl.cfg").stdout == inputs["cfg"].read_bytes()
    vol = mtools("mdir", img, "::/").stdout.decode()
    assert "Volume in drive : is MYDISK" in vol
    fsck_fat(img, tmp_path)
    sgdisk_verify(img)


def test_reproducible_byte_identical(tmp_path, inputs):
    a, b = tmp_path / "a.img", tmp_path / "sub" / "b.img"
    b.parent.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    args = ["--efi", inputs["efi"], "--model", inputs["model"], "--cfg", inputs["cfg"], "-q"]
    assert imagetool("build", "-o", a, *args, env=env).returncode == 0
    assert imagetool("build", "-o", b, *args, env=env).returncode == 0
    assert _sha(a) == _sha(b)
    # a different SOURCE_DATE_EPOCH gives other timestamps (and so other bytes)
    c = tmp_path / "c.img"
    assert imagetool("build", "-o", c, *args, env={**env, "SOURCE_DATE_EPOCH": "1700000000"}).returncode == 0
    assert _sha(c) != _sha(a)
    listing = mtools("mdir", c, "::/").stdout.decode()
    assert "2023-11-14  22:13" in listing
    assert "1980-01-01" in mtools("mdir", a, "::/").stdout.decode()


def test_guids_follow_content_unless_given(tmp_path, inputs):
    require_tool("sgdisk")

    def disk_guid(img: Path) -> str:
        out = subprocess.run(["sgdisk", "-p", str(img)], capture_output=True, text=True).stdout
        return re.search(r"Disk identifier \(GUID\): (\S+)", out).group(1)

    a, b = tmp_path / "a.img", tmp_path / "b.img"
    build_image(a, _items(inputs))
    g1 = disk_guid(a)
    inputs["cfg"].write_text("temperature=0.5\nmax_tokens=20\n")  # same size, other bytes
    build_image(b, _items(inputs))
    assert disk_guid(b) != g1
    assert os.path.getsize(a) == os.path.getsize(b)
    given = "11111111-2222-4333-8444-555555555555"
    c = tmp_path / "c.img"
    r = imagetool("build", "-q", "-o", c, "--efi", inputs["efi"], "--disk-guid", given,
                  "--partition-guid", "66666666-7777-4888-8999-aaaaaaaaaaaa")
    assert r.returncode == 0, r.stderr
    assert disk_guid(c) == given.upper()
    part = subprocess.run(["sgdisk", "-i", "1", str(c)], capture_output=True, text=True).stdout
    assert "66666666-7777-4888-8999-AAAAAAAAAAAA" in part


def test_long_names_aliases_and_unicode_read_back_by_mtools(tmp_path, inputs):
    names = ["Long File Name One.txt", "Long File Name Two.txt", "Long File Name Three.txt",
             "caf\u00e9 cr\u00e8me.txt", "\u65e5\u672c\u8a9e.md", "x" * 200 + ".bin", "UPPER.TXT", "lower.txt",
             "MiXeD.TxT", "two.dots.tar.gz", "spaces in name", ".dotfile",
             "exactly13.chr", "twenty-six characters.txt2", "y" * 255]  # 13, 26: no NUL terminator
    items = [Item("/EFI/BOOT/BOOTX64.EFI", src=inputs["efi"])]
    items += [Item(f"/names/{n}", data=n.encode("utf-8")) for n in names]
    img = tmp_path / "n.img"
    build_image(img, items)
    got = mdir_entries(img, "::/names")
    assert got["Long File Name One.txt"][0] == "LONGFI~1.TXT"
    assert got["Long File Name Two.txt"][0] == "LONGFI~2.TXT"
    assert got["Long File Name Three.txt"][0] == "LONGFI~3.TXT"
    assert got["two.dots.tar.gz"][0] == "TWODOT~1.GZ"
    assert got["MiXeD.TxT"][0] == "MIXED.TXT"
    assert got["UPPER.TXT"][0] == "UPPER.TXT"
    assert "lower.txt" in got or ("lower.txt" in {k.lower() for k in got})
    for n in names:
        key = n if n in got else next(k for k in got if k.lower() == n.lower())
        assert key in got, (n, got)
        r = mtools("mtype", img, f"::/names/{n}")
        assert r.returncode == 0 and r.stdout == n.encode("utf-8"), (n, r.stderr)
    fsck_fat(img, tmp_path)


def test_big_directories(tmp_path, inputs):
    # 3000 long names in one subdirectory (many clusters) and 700 entries in a FAT16 root
    items = [Item("/EFI/BOOT/BOOTX64.EFI", src=inputs["efi"])]
    items += [Item(f"/many/entry number {i:04d}.txt", data=str(i).encode()) for i in range(3000)]
    items += [Item(f"/R{i:05d}.TXT", data=b"") for i in range(700)]
    img = tmp_path / "big.img"
    res = build_image(img, items)
    assert res.fat_bits == 16
    fsck_fat(img, tmp_path)
    got = mdir_entries(img, "::/many")
    assert len(got) == 3000
    assert got["entry number 2999.txt"][1] == "4"
    assert mtools("mtype", img, "::/many/entry number 1234.txt").stdout == b"1234"
    assert len(mdir_entries(img)) == 702  # EFI, many, 700 files
    assert verify(img).ok


def test_file_size_limit_and_too_small_sizes(tmp_path, inputs):
    huge = tmp_path / "huge.bin"
    with open(huge, "wb") as f:
        f.truncate(4 << 30)  # 4 GiB: one byte past FAT's limit (sparse, costs nothing)
    r = imagetool("build", "-o", tmp_path / "x.img", "--efi", inputs["efi"], "--model", huge)
    assert r.returncode != 0
    err = r.stderr.decode().strip()
    assert len(err.splitlines()) == 1 and "4 GiB - 1" in err and "Traceback" not in err
    assert not (tmp_path / "x.img").exists()
    # too small an explicit size
    r = imagetool("build", "-o", tmp_path / "y.img", "--efi", inputs["efi"], "--size", "4")
    assert r.returncode != 0 and b"smallest image is 5 MiB" in r.stderr
    r = imagetool("build", "-o", tmp_path / "y.img", "--efi", inputs["efi"], "--model", inputs["model"],
                  "--add", inputs["extra"], "--size", "5")
    assert r.returncode == 0, r.stderr  # fits
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(6 * MiB))
    r = imagetool("build", "-o", tmp_path / "z.img", "--efi", inputs["efi"], "--model", big, "--size", "6")
    assert r.returncode != 0
    err = r.stderr.decode().strip()
    assert len(err.splitlines()) == 1 and "--size 6 MiB" in err and "use --size" in err
    assert not (tmp_path / "z.img").exists()


@pytest.mark.slow
def test_largest_file_fat_allows(tmp_path, inputs):
    """A file of 4 GiB - 1 bytes (sparse source) goes in and reads back with the right size."""
    src = tmp_path / "max.bin"
    with open(src, "wb") as f:
        f.truncate((4 << 30) - 1)
        f.seek((4 << 30) - 6)
        f.write(b"tail\n")
    img = tmp_path / "max.img"
    res = build_image(img, [Item("/EFI/BOOT/BOOTX64.EFI", src=inputs["efi"]), Item("/max.bin", src=src)])
    assert res.fat_bits == 32
    # Not fsck.fat here: dosfstools 4.2 computes the chain length (exactly 4 GiB) in 32 bits and
    # reports 0. mtools and our own checker judge this one.
    assert mdir_entries(img)["max.bin"][1] == str((4 << 30) - 1)
    from imagetool.image import Image
    with Image(img) as im:
        vol = im.volume
        runs = vol.chain_runs(vol.lookup("/max.bin").first_cluster)
        assert sum(k for _, k in runs) * vol.layout.cluster_bytes >= (4 << 30) - 1
        start, count = runs[-1]
        last = vol.region.read(vol.layout.cluster_offset(start + count - 1), vol.layout.cluster_bytes)
    assert last[:vol.layout.cluster_bytes - 1].endswith(b"tail\n")
    assert verify(img).ok


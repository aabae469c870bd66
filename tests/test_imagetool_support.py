"""Helpers shared by the imagetool tests (no tests here).

The independent judges: fsck.fat (dosfstools) on the partition, sgdisk -v on the disk, mtools
(mdir/mtype with -i IMG@@1M) reading files and long names back.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support import REPO, require_tool

MiB = 1 << 20
PART_OFFSET = MiB  # our images put the ESP at 1 MiB
MTOOLS_ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1", "MTOOLSRC": "/dev/null", "LC_ALL": "C.UTF-8"}


def fake_efi(path: Path, size: int = 4096, seed: int = 1) -> Path:
    """Bytes that start like a PE file ('MZ'); enough for imagetool's --efi check."""
    path.write_bytes(b"MZ" + pseudo_random(size - 2, seed))
    return path


def pseudo_random(n: int, seed: int = 0) -> bytes:
    """Deterministic incompressible bytes."""
    import numpy as np
    return np.random.default_rng(seed).bytes(n)


def imagetool(*args: str, input: bytes | None = None, env: dict | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess (so stderr and exit status are what a user sees)."""
    return subprocess.run([sys.executable, "-m", "imagetool", *map(str, args)], input=input,
                          capture_output=True, cwd=REPO, env=env, timeout=timeout)


def partition_range(img: Path) -> tuple[int, int]:
    """(offset, length) of partition 1 from the GPT, parsed here independently of imagetool."""
    import struct
    with open(img, "rb") as f:
        f.seek(512)
        hdr = f.read(92)
        assert hdr[:8] == b"EFI PART"
        entry_lba = struct.unpack_from("<Q", hdr, 72)[0]
        f.seek(entry_lba * 512)
        e = f.read(128)
        first, last = struct.unpack_from("<QQ", e, 32)
    return first * 512, (last - first + 1) * 512


def extract_partition(img: Path, out: Path) -> Path:
    """Copy partition 1 of `img` to its own (sparse) file, for fsck.fat, which has no offset option."""
    off, length = partition_range(img)
    src = os.open(img, os.O_RDONLY)
    dst = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(dst, length)
        pos = off
        end = off + length
        while pos < end:
            try:
                data_start = os.lseek(src, pos, os.SEEK_DATA)
            except OSError:
                break  # no more data
            if data_start >= end:
                break
            hole = min(os.lseek(src, data_start, os.SEEK_HOLE), end)
            while data_start < hole:
                n = min(hole - data_start, 8 * MiB)
                chunk = os.pread(src, n, data_start)
                os.pwrite(dst, chunk, data_start - off)
                data_start += len(chunk)
            pos = hole
    finally:
        os.close(src)
        os.close(dst)
    return out


def fsck_fat(img: Path, tmp: Path) -> str:
    """fsck.fat -n on the image's partition; asserts it is clean and returns its verbose output."""
    require_tool("fsck.fat")
    part = extract_partition(img, tmp / (img.name + ".part"))
    try:
        r = subprocess.run(["fsck.fat", "-n", "-v", str(part)], capture_output=True, text=True, timeout=120)
    finally:
        part.unlink()
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"fsck.fat rejected {img}:\n{out}"
    for bad in ("differ", "Orphan", "invalid", "Free cluster summary wrong", "lost", "Unable"):
        assert bad not in out, f"fsck.fat complains about {img}:\n{out}"
    return out


def sgdisk_verify(img: Path) -> str:
    require_tool("sgdisk")
    r = subprocess.run(["sgdisk", "-v", str(img)], capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "No problems found" in out, f"sgdisk -v rejected {img}:\n{out}"
    return out


def mtools(cmd: str, img: Path, *args: str, offset: str = "@@1M") -> subprocess.CompletedProcess:
    require_tool(cmd)
    return subprocess.run([cmd, "-i", f"{img}{offset}", *args], capture_output=True, env=MTOOLS_ENV, timeout=60)


_MDIR_LINE = re.compile(r"^(.{8}) (.{3}) +(<DIR>|\d+) +(\d{4}-\d\d-\d\d) +(\d+:\d\d)(?:  (.*?))? *$")


def mdir_entries(img: Path, path: str = "::/", offset: str = "@@1M") -> dict[str, tuple[str, str]]:
    """name -> (8.3 name, size or '<DIR>') as mdir shows them; name is the long name if any."""
    r = mtools("mdir", img, path, offset=offset)
    assert r.returncode == 0, r.stderr.decode()
    out: dict[str, tuple[str, str]] = {}
    for line in r.stdout.decode("utf-8", "replace").splitlines():
        m = _MDIR_LINE.match(line)
        if not m:
            continue
        base, ext = m.group(1).rstrip(), m.group(2).rstrip()
        short = f"{base}.{ext}" if ext else base
        if short in (".", ".."):
            continue
        out[m.group(6) or short] = (short, m.group(3))
    return out

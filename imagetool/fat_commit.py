"""Writing a FAT volume's planned changes (`FatCommit`, a part of `FatVolume`): new files'
bytes (zero blocks left as holes in a new image), the changed directories, the FATs, FSInfo
and, for a new volume, the boot sector with its "boots through UEFI only" stub.
Part of imagetool.fat.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ImageError
from .fat_layout import _runs
from .structs import FAT16_BOOT_SECTOR, FAT32_BOOT_SECTOR, FSINFO


@dataclass
class _DataWrite:
    clusters: np.ndarray
    source: str | Path | bytes
    size: int
    dest: str


BOOT_CODE = bytes.fromhex("31c08ed831dbbe0000fcac84c07406b40ecd10ebf5faf4ebfd")
BOOT_MESSAGE = b"This disk boots through UEFI only (EFI/BOOT/BOOTX64.EFI).\r\n\0"


def _boot_code(code_offset: int, room: int) -> bytes:
    code = bytearray(BOOT_CODE)
    msg_addr = 0x7C00 + code_offset + len(code)
    struct.pack_into("<H", code, 7, msg_addr)
    out = bytes(code) + BOOT_MESSAGE
    return out.ljust(room, b"\0")


class FatCommit:
    """FatVolume's writing half: every method here writes to the volume's region."""

    def commit(self, hasher=None, chunk: int = 1 << 22) -> None:
        """Write every planned change. `hasher` (hashlib object) receives each new file's path,
        size and bytes in order, so callers can derive IDs from the content."""
        if self._broken:
            raise RuntimeError("a planned change failed; this volume must not be committed")
        lay = self.layout
        cb = lay.cluster_bytes
        buf = bytearray(chunk)
        for w in self._writes:
            if hasher is not None:
                hasher.update(w.dest.encode("utf-8") + b"\0" + str(w.size).encode() + b"\0")
            _copy_into(self, w, buf, hasher, cb)
        if self.volume_id is None:
            seed = hasher.digest() if hasher is not None else b"\0" * 4
            self.volume_id = int.from_bytes(seed[:4], "little")
        for st in self._dirs.values():
            if not st.dirty:
                continue
            if st.clusters is None:
                self.region.write(lay.root_dir_offset, st.raw)
            else:
                base = 0
                for start, count in _runs(st.clusters):
                    self.region.write(lay.cluster_offset(start), st.raw[base:base + count * cb])
                    base += count * cb
            st.dirty = False
        self._write_fats()
        if self._fresh:
            self._write_boot()
            self._fresh = False
        elif lay.fat_bits == 32:
            self._update_fsinfo()
        self._writes = []

    def _write_fats(self) -> None:
        lay = self.layout
        encoded = self.kind.encode(self.fat, self._fat_raw[:len(self.fat) * 4] if lay.fat_bits == 32 else None)
        table = bytearray(self._fat_raw)
        table[:len(encoded)] = encoded[:len(table)]
        if bytes(table) == self._fat_raw and not self._fresh:
            return
        mirrored = not (lay.fat_bits == 32 and self.boot.get("BPB_ExtFlags", 0) & 0x80)
        targets = range(lay.num_fats) if mirrored else [self._active_fat]
        for i in targets:
            self.region.write(lay.fat_offset + i * lay.fat_bytes, table)
        self._fat_raw = bytes(table)

    def _fsinfo(self) -> bytes:
        free = self.free_clusters()
        nxt = self._next_free_hint()
        return FSINFO.pack(FSI_Free_Count=free, FSI_Nxt_Free=nxt)

    def _next_free_hint(self) -> int:
        idx = np.flatnonzero(self.fat[2:] == 0)
        return int(idx[0]) + 2 if len(idx) else 0xFFFFFFFF

    def _update_fsinfo(self) -> None:
        sector = self.boot.get("BPB_FSInfo", 0)
        if not 0 < sector < self.layout.reserved_sectors:
            return
        bps = self.layout.bytes_per_sector
        raw = self.region.read(sector * bps, 512)
        rec = FSINFO.unpack(raw)
        if rec["FSI_LeadSig"] != 0x41615252 or rec["FSI_StrucSig"] != 0x61417272:
            return
        rec["FSI_Free_Count"] = self.free_clusters()
        rec["FSI_Nxt_Free"] = self._next_free_hint()
        self.region.write(sector * bps, FSINFO.pack(rec))
        bk = self.boot.get("BPB_BkBootSec", 0)
        if 0 < bk and bk + sector < self.layout.reserved_sectors:
            braw = self.region.read((bk + sector) * bps, 512)
            if FSINFO.unpack(braw)["FSI_LeadSig"] == 0x41615252:
                self.region.write((bk + sector) * bps, FSINFO.pack(rec))

    def _write_boot(self) -> None:
        lay = self.layout
        lab = (self.label or "NO NAME").encode("ascii").ljust(11)
        common = dict(BS_OEMName=b"MSWIN4.1", BPB_BytsPerSec=lay.bytes_per_sector,
                      BPB_SecPerClus=lay.sectors_per_cluster, BPB_RsvdSecCnt=lay.reserved_sectors,
                      BPB_NumFATs=lay.num_fats, BPB_Media=0xF8, BPB_SecPerTrk=63, BPB_NumHeads=255,
                      BPB_HiddSec=self.boot.get("_hidden", 0), BS_DrvNum=0x80, BS_BootSig=0x29,
                      BS_VolID=self.volume_id & 0xFFFFFFFF, BS_VolLab=lab)
        if lay.fat_bits == 32:
            bs = FAT32_BOOT_SECTOR.pack(common, BS_jmpBoot=b"\xeb\x58\x90", BPB_RootEntCnt=0, BPB_TotSec16=0,
                                        BPB_FATSz16=0, BPB_TotSec32=lay.total_sectors, BPB_FATSz32=lay.fat_sectors,
                                        BPB_ExtFlags=0, BPB_FSVer=0, BPB_RootClus=lay.root_cluster,
                                        BPB_FSInfo=1, BPB_BkBootSec=6, BS_FilSysType=b"FAT32   ",
                                        BootCode=_boot_code(90, 420))
            fsinfo = self._fsinfo()
            self.region.write(0, bs)
            self.region.write(512, fsinfo)
            self.region.write(6 * 512, bs)
            self.region.write(7 * 512, fsinfo)
        else:
            small = lay.total_sectors < 0x10000
            bs = FAT16_BOOT_SECTOR.pack(common, BS_jmpBoot=b"\xeb\x3c\x90", BPB_RootEntCnt=lay.root_entries,
                                        BPB_TotSec16=lay.total_sectors if small else 0,
                                        BPB_TotSec32=0 if small else lay.total_sectors,
                                        BPB_FATSz16=lay.fat_sectors,
                                        BS_FilSysType=b"FAT16   " if lay.fat_bits == 16 else b"FAT12   ",
                                        BootCode=_boot_code(62, 448))
            self.region.write(0, bs)
        self.boot.update(FAT32_BOOT_SECTOR.unpack(bs) if lay.fat_bits == 32 else FAT16_BOOT_SECTOR.unpack(bs))


def _copy_into(vol: FatCommit, w: _DataWrite, buf: bytearray, hasher, cb: int) -> None:
    mv = memoryview(buf)
    src = w.source
    left = w.size
    if isinstance(src, (bytes, bytearray)):
        pos = 0
        for start, count in _runs(w.clusters):
            n = min(count * cb, left)
            piece = src[pos:pos + n]
            if hasher is not None:
                hasher.update(piece)
            vol.region.write(vol.layout.cluster_offset(start), piece)
            pos += n
            left -= n
        return
    try:
        f = open(src, "rb", buffering=0)
    except OSError as e:
        raise ImageError(f"cannot read {src}: {e.strerror}") from None
    with f:
        for start, count in _runs(w.clusters):
            n = min(count * cb, left)
            off = vol.layout.cluster_offset(start)
            done = 0
            while done < n:
                want = min(len(buf), n - done)
                got = f.readinto(mv[:want])
                if not got:
                    raise ImageError(f"{src} shrank while it was being copied")
                if hasher is not None:
                    hasher.update(mv[:got])
                # A new image reads as zeros already: leave zero blocks as holes (sparse images).
                if not (vol._fresh and not np.frombuffer(mv[:got], dtype=np.uint8).any()):
                    vol.region.write(off + done, mv[:got])
                done += got
            left -= n
        if f.read(1):
            raise ImageError(f"{src} grew while it was being copied")

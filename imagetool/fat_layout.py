"""FAT12/16/32 geometry: where a file system's areas lie (`Layout`), planned for a new volume
or read from its boot sector, and the byte range of an image that holds it (`Region`).
Part of imagetool.fat (which re-exports these names).
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import numpy as np

from .errors import ImageError
from .structs import FAT16_BOOT_SECTOR, FAT32_BOOT_SECTOR, FAT_BPB_COMMON

FAT32_MIN_CLUSTERS = 65525
FAT16_MIN_CLUSTERS = 4085
FAT32_MAX_CLUSTERS = 0x0FFFFFF5


class Region:
    """A byte range [offset, offset+length) of an open file, the home of one file system."""

    def __init__(self, fd: int, offset: int, length: int, what: str = "image"):
        self.fd, self.offset, self.length, self.what = fd, offset, length, what

    def read(self, off: int, n: int) -> bytes:
        if off < 0 or off + n > self.length:
            raise ImageError(f"{self.what}: read of {n} bytes at {off} is outside the file system "
                             f"({self.length} bytes)")
        data = os.pread(self.fd, n, self.offset + off)
        if len(data) != n:
            raise ImageError(f"{self.what}: image truncated (wanted {n} bytes at offset "
                             f"{self.offset + off}, got {len(data)})")
        return data

    def write(self, off: int, data: bytes | bytearray | memoryview) -> None:
        if off < 0 or off + len(data) > self.length:
            raise ImageError(f"{self.what}: write outside the file system")
        view = memoryview(data)
        pos = self.offset + off
        while view:
            n = os.pwrite(self.fd, view, pos)
            view, pos = view[n:], pos + n


# --------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    fat_bits: int
    bytes_per_sector: int
    sectors_per_cluster: int
    reserved_sectors: int
    num_fats: int
    fat_sectors: int
    root_entries: int         # FAT12/16 fixed root directory slots; 0 for FAT32
    total_sectors: int
    root_cluster: int = 0     # FAT32 only

    @property
    def root_dir_sectors(self) -> int:
        return (self.root_entries * 32 + self.bytes_per_sector - 1) // self.bytes_per_sector

    @property
    def first_data_sector(self) -> int:
        return self.reserved_sectors + self.num_fats * self.fat_sectors + self.root_dir_sectors

    @property
    def cluster_count(self) -> int:
        return (self.total_sectors - self.first_data_sector) // self.sectors_per_cluster

    @property
    def cluster_bytes(self) -> int:
        return self.sectors_per_cluster * self.bytes_per_sector

    @property
    def fat_offset(self) -> int:
        return self.reserved_sectors * self.bytes_per_sector

    @property
    def fat_bytes(self) -> int:
        return self.fat_sectors * self.bytes_per_sector

    @property
    def root_dir_offset(self) -> int:
        return (self.reserved_sectors + self.num_fats * self.fat_sectors) * self.bytes_per_sector

    def cluster_offset(self, cluster: int) -> int:
        return (self.first_data_sector + (cluster - 2) * self.sectors_per_cluster) * self.bytes_per_sector

    @property
    def capacity_bytes(self) -> int:
        return self.cluster_count * self.cluster_bytes


def _fit(total: int, bits: int, spc: int, reserved_min: int, root_entries: int,
         bps: int = 512) -> Layout | None:
    rds = (root_entries * 32 + bps - 1) // bps
    fat = 1
    for _ in range(64):
        clusters = (total - reserved_min - 2 * fat - rds) // spc
        if clusters <= 0:
            return None
        need = ((clusters + 2) * bits + 8 * bps - 1) // (8 * bps)
        if need <= fat:
            break
        fat = need
    # Pad the reserved area so the data region starts on a cluster boundary (flash friendly).
    reserved = reserved_min + (-(reserved_min + 2 * fat + rds)) % spc
    lay = Layout(bits, bps, spc, reserved, 2, fat, root_entries, total, 2 if bits == 32 else 0)
    if lay.cluster_count <= 0:
        return None
    assert (lay.cluster_count + 2) * bits <= fat * bps * 8
    return lay


def _fat32_default_spc(total: int) -> int:
    # Microsoft's FAT32 cluster-size table (512-byte sectors).
    for limit, spc in ((532480, 1), (16777216, 8), (33554432, 16), (67108864, 32)):
        if total <= limit:
            return spc
    return 64


def plan_layout(total_sectors: int, *, fat_bits: int | None = None, root_entries: int = 512) -> Layout:
    """FAT32 when the partition has room for FAT32's 65525-cluster minimum, otherwise FAT16."""
    if fat_bits in (None, 32):
        spc = _fat32_default_spc(total_sectors)
        while spc >= 1:
            lay = _fit(total_sectors, 32, spc, 32, 0)
            if lay and FAT32_MIN_CLUSTERS <= lay.cluster_count <= FAT32_MAX_CLUSTERS:
                return lay
            spc //= 2
        if fat_bits == 32:
            raise ImageError(f"partition of {total_sectors * 512 // 1024} KiB is too small for FAT32")
    if fat_bits in (None, 16):
        root_entries = max(16, (root_entries + 15) // 16 * 16)
        spc = 1
        while spc <= 128:
            lay = _fit(total_sectors, 16, spc, 1, root_entries)
            if lay and FAT16_MIN_CLUSTERS <= lay.cluster_count < FAT32_MIN_CLUSTERS:
                return lay
            spc *= 2
    raise ImageError(f"partition of {total_sectors * 512 // 1024} KiB is too small for a FAT16 "
                     f"file system ({FAT16_MIN_CLUSTERS} clusters minimum)")


def _bpb_error(msg: str) -> ImageError:
    return ImageError(f"not a valid FAT file system: {msg}")


def layout_from_boot_sector(bs: bytes, region_length: int) -> tuple[Layout, dict]:
    """Parse and check a boot sector; returns the layout and the decoded boot sector fields."""
    if len(bs) < 512:
        raise _bpb_error("boot sector truncated")
    common = FAT_BPB_COMMON.unpack(bs)
    if bs[0] not in (0xEB, 0xE9):
        raise _bpb_error(f"BS_jmpBoot starts with {bs[0]:#04x}, not a jump (0xEB/0xE9)")
    bps = common["BPB_BytsPerSec"]
    if bps not in (512, 1024, 2048, 4096):
        raise _bpb_error(f"BPB_BytsPerSec is {bps}")
    spc = common["BPB_SecPerClus"]
    if spc == 0 or spc & (spc - 1) or spc > 128 or spc * bps > 65536:
        raise _bpb_error(f"BPB_SecPerClus is {spc}")
    if common["BPB_RsvdSecCnt"] == 0:
        raise _bpb_error("BPB_RsvdSecCnt is 0")
    if not 1 <= common["BPB_NumFATs"] <= 4:
        raise _bpb_error(f"BPB_NumFATs is {common['BPB_NumFATs']}")
    if common["BPB_Media"] not in (0xF0,) + tuple(range(0xF8, 0x100)):
        raise _bpb_error(f"BPB_Media is {common['BPB_Media']:#04x}")
    if struct.unpack_from("<H", bs, 510)[0] != 0xAA55:
        raise _bpb_error("boot sector signature 0xAA55 missing")
    total = common["BPB_TotSec16"] or common["BPB_TotSec32"]
    if total == 0:
        raise _bpb_error("total sector count is 0")
    fat16_size = common["BPB_FATSz16"]
    if fat16_size == 0:
        fields = FAT32_BOOT_SECTOR.unpack(bs)
        fat_size = fields["BPB_FATSz32"]
    else:
        fields = FAT16_BOOT_SECTOR.unpack(bs)
        fat_size = fat16_size
    if fat_size == 0:
        raise _bpb_error("FAT size is 0")
    root_entries = common["BPB_RootEntCnt"]
    if (root_entries * 32) % bps and fat16_size:
        raise _bpb_error(f"BPB_RootEntCnt {root_entries} does not fill whole sectors")
    lay = Layout(32, bps, spc, common["BPB_RsvdSecCnt"], common["BPB_NumFATs"], fat_size,
                 root_entries, total, fields.get("BPB_RootClus", 0) if fat16_size == 0 else 0)
    if lay.first_data_sector >= total:
        raise _bpb_error("no room for data after the FATs")
    count = lay.cluster_count
    if fat16_size == 0:
        bits = 32
        if root_entries != 0 or common["BPB_TotSec16"] != 0:
            raise _bpb_error("FAT32 boot sector with BPB_RootEntCnt or BPB_TotSec16 set")
        if count < FAT32_MIN_CLUSTERS:
            raise _bpb_error(f"FAT32 volume with only {count} clusters")
        if not 2 <= lay.root_cluster < count + 2:
            raise _bpb_error(f"BPB_RootClus {lay.root_cluster} is outside the volume")
    else:
        bits = 12 if count < FAT16_MIN_CLUSTERS else 16
        if count >= FAT32_MIN_CLUSTERS:
            raise _bpb_error(f"FAT12/16 boot sector with {count} clusters")
        if root_entries == 0:
            raise _bpb_error("FAT12/16 boot sector with no root directory entries")
    lay = Layout(bits, bps, spc, lay.reserved_sectors, lay.num_fats, fat_size, root_entries, total,
                 lay.root_cluster)
    if (count + 2) * bits > fat_size * bps * 8:
        raise _bpb_error(f"FAT of {fat_size} sectors cannot map {count} clusters")
    if total * bps > region_length:
        raise ImageError(f"image truncated: the FAT file system needs {total * bps} bytes, "
                         f"{region_length} are present")
    return lay, fields


def _runs(clusters) -> list[tuple[int, int]]:
    """Contiguous runs [(start, count)] of a cluster list."""
    arr = np.asarray(clusters, dtype=np.int64)
    if len(arr) == 0:
        return []
    breaks = np.flatnonzero(np.diff(arr) != 1) + 1
    starts = np.concatenate(([0], breaks))
    ends = np.concatenate((breaks, [len(arr)]))
    return [(int(arr[s]), int(e - s)) for s, e in zip(starts, ends)]

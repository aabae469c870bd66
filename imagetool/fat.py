"""FAT12/16/32 file systems: layout planning, formatting, reading, changing and checking.

A `FatVolume` works on a `Region` (a byte range of an image file). Every change (format, mkdir,
add_file, remove) is planned in memory first: clusters are allocated in an in-memory copy of
the FAT, directories are edited as in-memory byte arrays, file data is remembered as a source.
Nothing touches the image until `commit()`, so a change that fails (disk full, name clash, bad
name, file too large) leaves the image byte-for-byte as it was.
"""
from __future__ import annotations

import datetime as _dt
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from . import names as N
from .errors import ImageError
from .structs import (DIR_ENTRY, FAT16_BOOT_SECTOR, FAT32_BOOT_SECTOR, FAT_BPB_COMMON, FAT_KINDS,
                      FSINFO, LFN_ENTRY)

ATTR_READ_ONLY, ATTR_HIDDEN, ATTR_SYSTEM, ATTR_VOLUME_ID = 0x01, 0x02, 0x04, 0x08
ATTR_DIRECTORY, ATTR_ARCHIVE = 0x10, 0x20
ATTR_LONG_NAME = 0x0F
MAX_FILE_SIZE = 0xFFFFFFFF
MAX_DIR_ENTRIES = 65536          # a directory may hold at most 2^16 32-byte entries
FAT32_MIN_CLUSTERS = 65525
FAT16_MIN_CLUSTERS = 4085
FAT32_MAX_CLUSTERS = 0x0FFFFFF5
DEFAULT_EPOCH = 315532800        # 1980-01-01T00:00:00Z, the FAT epoch: fixed, reproducible
LAST_LFN_FLAG = 0x40


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


# --------------------------------------------------------------------------------------------
# Timestamps
# --------------------------------------------------------------------------------------------
def source_date_epoch() -> int:
    raw = os.environ.get("SOURCE_DATE_EPOCH")
    if raw is None or raw.strip() == "":
        return DEFAULT_EPOCH
    try:
        return int(raw)
    except ValueError:
        raise ImageError(f"SOURCE_DATE_EPOCH={raw!r} is not an integer number of seconds") from None


def fat_timestamp(epoch: int) -> tuple[int, int, int]:
    """Seconds since 1970 (UTC) -> (FAT date, FAT time, tenths field), clamped to FAT's range."""
    t = _dt.datetime.fromtimestamp(max(epoch, DEFAULT_EPOCH), _dt.timezone.utc)
    if t.year > 2107:
        t = _dt.datetime(2107, 12, 31, 23, 59, 58, tzinfo=_dt.timezone.utc)
    date = ((t.year - 1980) << 9) | (t.month << 5) | t.day
    time = (t.hour << 11) | (t.minute << 5) | (t.second // 2)
    return date, time, (t.second % 2) * 100


def decode_timestamp(date: int, time: int) -> str:
    y, mo, d = 1980 + (date >> 9), (date >> 5) & 0xF, date & 0x1F
    h, mi, s = time >> 11, (time >> 5) & 0x3F, (time & 0x1F) * 2
    return f"{y:04d}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d}"


# --------------------------------------------------------------------------------------------
# Directory entries
# --------------------------------------------------------------------------------------------
@dataclass
class Entry:
    name: str                 # long name when present, else the short name as displayed
    short: bytes              # 11-byte short name
    attr: int
    first_cluster: int
    size: int
    ntres: int = 0
    wrt_date: int = 0
    wrt_time: int = 0
    slot: int = -1            # index of the short entry's slot in its directory
    n_slots: int = 1          # long-name slots + the short entry
    has_lfn: bool = False

    @property
    def is_dir(self) -> bool:
        return bool(self.attr & ATTR_DIRECTORY)

    @property
    def short_display(self) -> str:
        return N.short_to_display(self.short)

    @property
    def mtime(self) -> str:
        return decode_timestamp(self.wrt_date, self.wrt_time)


def _lfn_chars(rec: dict) -> bytes:
    return rec["LDIR_Name1"] + rec["LDIR_Name2"] + rec["LDIR_Name3"]


def parse_directory(raw: bytes | bytearray, problems: list[str] | None = None, where: str = "/",
                    bits: int = 32) -> tuple[list[Entry], list[Entry], str | None]:
    """Decode a directory's bytes into (entries, dot entries, volume label)."""
    entries: list[Entry] = []
    dots: list[Entry] = []
    label = None
    pending: list[tuple[int, dict]] = []  # collected long-name slots (slot index, record)

    def orphan(msg: str) -> None:
        if problems is not None and pending:
            problems.append(f"{where}: {msg}")

    for slot in range(len(raw) // 32):
        off = slot * 32
        first = raw[off]
        if first == 0x00:
            orphan("long-name entries without a short entry at the end of the directory")
            break
        if first == 0xE5:
            orphan("long-name entries followed by a deleted entry")
            pending = []
            continue
        attr = raw[off + 11]
        if attr & 0x3F == ATTR_LONG_NAME:
            rec = LFN_ENTRY.unpack(raw, off)
            if rec["LDIR_Ord"] & LAST_LFN_FLAG:
                orphan("incomplete long name (a new one starts before it ends)")
                pending = []
            pending.append((slot, rec))
            continue
        rec = DIR_ENTRY.unpack(raw, off)
        if attr & ATTR_VOLUME_ID and not attr & ATTR_DIRECTORY:
            label = rec["DIR_Name"].decode("cp437").rstrip()
            orphan("long-name entries before a volume label")
            pending = []
            continue
        short = rec["DIR_Name"]
        cluster = rec["DIR_FstClusLO"] | ((rec["DIR_FstClusHI"] << 16) if bits == 32 else 0)
        long_name = _assemble_lfn(pending, short, problems, where)
        has_lfn = long_name is not None
        n_slots = 1 + (len(pending) if has_lfn else 0)
        pending = []
        name = long_name if has_lfn else N.short_to_display(short, rec["DIR_NTRes"])
        e = Entry(name, short, attr, cluster, rec["DIR_FileSize"], rec["DIR_NTRes"], rec["DIR_WrtDate"],
                  rec["DIR_WrtTime"], slot, n_slots, has_lfn)
        if short in (b".          ", b"..         "):
            dots.append(e)
        else:
            entries.append(e)
    return entries, dots, label


def _assemble_lfn(pending: list[tuple[int, dict]], short: bytes, problems, where) -> str | None:
    if not pending:
        return None
    n = len(pending)
    checksum = N.lfn_checksum(short)
    first_ord = pending[0][1]["LDIR_Ord"]
    ok = (first_ord & LAST_LFN_FLAG) and (first_ord & 0x3F) == n
    if ok:
        for i, (_, rec) in enumerate(pending):
            want = n - i
            if (rec["LDIR_Ord"] & 0x3F) != want or rec["LDIR_Chksum"] != checksum \
                    or rec["LDIR_Type"] != 0 or rec["LDIR_FstClusLO"] != 0:
                ok = False
                break
    if not ok:
        if problems is not None:
            problems.append(f"{where}: long name before {N.short_to_display(short)!r} does not match "
                            f"it (bad sequence or checksum); it is ignored")
        return None
    units = b"".join(_lfn_chars(rec) for _, rec in reversed(pending))
    text = units.decode("utf-16-le", "replace")
    return text.split("\0", 1)[0]


def lfn_records(name: str, short: bytes) -> list[bytes]:
    """Long-name slots for `name`, in on-disk order (last part first)."""
    units = name.encode("utf-16-le")
    n = N.lfn_slots(name)
    padded = units + (b"\0\0" if len(units) < n * 26 else b"")
    padded = padded + b"\xff" * (n * 26 - len(padded))
    checksum = N.lfn_checksum(short)
    out = []
    for i in range(n, 0, -1):
        part = padded[(i - 1) * 26:i * 26]
        out.append(LFN_ENTRY.pack(
            LDIR_Ord=i | (LAST_LFN_FLAG if i == n else 0), LDIR_Name1=part[:10], LDIR_Attr=ATTR_LONG_NAME,
            LDIR_Type=0, LDIR_Chksum=checksum, LDIR_Name2=part[10:22], LDIR_FstClusLO=0,
            LDIR_Name3=part[22:26]))
    return out


def split_path(path: str) -> list[str]:
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ImageError(f"path {path!r} may not contain '..'")
    return parts


def _key(name: str) -> str:
    return name.casefold()


@dataclass
class DirState:
    first_cluster: int                  # 0 for a FAT12/16 fixed root
    clusters: list[int] | None          # None for a fixed root
    raw: bytearray
    path: str
    entries: list[Entry] = field(default_factory=list)
    dirty: bool = False
    reserved_shorts: set[bytes] = field(default_factory=set)   # e.g. the volume label's 11 bytes
    free_hint: int = 0                  # no free slot lies before this one
    tails: dict = field(default_factory=dict)  # basis name -> next numeric tail to try
    _index: dict[str, Entry] | None = field(default=None, repr=False)
    _shorts: set[bytes] | None = field(default=None, repr=False)

    def names(self) -> dict[str, Entry]:
        """Case-insensitive long and short names -> entry (cached; kept up to date)."""
        if self._index is None:
            out: dict[str, Entry] = {}
            for e in self.entries:
                out.setdefault(_key(e.short_display), e)
            for e in self.entries:
                out[_key(e.name)] = e
            self._index = out
        return self._index

    def shorts(self) -> set[bytes]:
        if self._shorts is None:
            self._shorts = {e.short for e in self.entries} | self.reserved_shorts
        return self._shorts

    def add(self, e: Entry) -> None:
        self.entries.append(e)
        if self._index is not None:
            self._index.setdefault(_key(e.short_display), e)
            self._index[_key(e.name)] = e
        if self._shorts is not None:
            self._shorts.add(e.short)

    def drop(self, e: Entry) -> None:
        self.entries.remove(e)
        self._index = self._shorts = None
        self.tails.clear()
        self.free_hint = min(self.free_hint, e.slot - e.n_slots + 1)


@dataclass
class _DataWrite:
    clusters: np.ndarray
    source: str | Path | bytes
    size: int
    dest: str


def file_too_large(name, size: int) -> ImageError:
    """The one line for a file FAT cannot hold (its sizes are 32-bit); a model gets the way out."""
    hint = ("; use a smaller quantization of the model (Q4_0 or Q5_0 instead of Q8_0 or F16)"
            if str(name).lower().endswith((".gguf", ".bin")) else "")
    return ImageError(f"{name}: {size} bytes is larger than FAT's file size limit of {MAX_FILE_SIZE} bytes "
                      f"(4 GiB - 1){hint}")


class FileSource:
    """Where a new file's bytes come from: a host path or bytes in memory."""

    def __init__(self, data: bytes | None = None, path: Path | None = None):
        self.data, self.path = data, path
        if data is not None:
            self.size = len(data)
        else:
            try:
                self.size = os.stat(path).st_size
            except OSError as e:
                raise ImageError(f"cannot read {path}: {e.strerror}") from None


# --------------------------------------------------------------------------------------------
# The volume
# --------------------------------------------------------------------------------------------
BOOT_CODE = bytes.fromhex("31c08ed831dbbe0000fcac84c07406b40ecd10ebf5faf4ebfd")
BOOT_MESSAGE = b"This disk boots through UEFI only (EFI/BOOT/BOOTX64.EFI).\r\n\0"


def _boot_code(code_offset: int, room: int) -> bytes:
    code = bytearray(BOOT_CODE)
    msg_addr = 0x7C00 + code_offset + len(code)
    struct.pack_into("<H", code, 7, msg_addr)
    out = bytes(code) + BOOT_MESSAGE
    return out.ljust(room, b"\0")


def _planning(method):
    """Mark the volume unusable for commit when a planned change fails half-way."""
    import functools

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except BaseException:
            self._broken = True
            raise
    return wrapper


class FatVolume:
    def __init__(self, region: Region, layout: Layout, boot: dict, fat: np.ndarray, fat_raw: bytes,
                 *, fresh: bool = False, label: str | None = None):
        self.region = region
        self.layout = layout
        self.kind = FAT_KINDS[layout.fat_bits]
        self.boot = boot
        self.fat = fat
        self._fat_raw = fat_raw
        self._fat_orig = fat.copy()
        self._fresh = fresh
        self._dirs: dict[int, DirState] = {}
        self._writes: list[_DataWrite] = []
        self._low_free = 2
        self._broken = False
        self.label = label
        self.epoch = source_date_epoch()
        self._stamp = fat_timestamp(self.epoch)
        self.volume_id: int | None = boot.get("BS_VolID")

    # ---- opening / formatting ------------------------------------------------------------
    @classmethod
    def open(cls, region: Region) -> "FatVolume":
        bs = region.read(0, 512) if region.length >= 512 else b""
        lay, boot = layout_from_boot_sector(bs, region.length)
        if lay.bytes_per_sector > 512:
            bs = region.read(0, lay.bytes_per_sector)
        active = 0
        if lay.fat_bits == 32 and boot["BPB_ExtFlags"] & 0x80:
            active = boot["BPB_ExtFlags"] & 0x0F
            if active >= lay.num_fats:
                raise _bpb_error(f"BPB_ExtFlags names FAT {active} of {lay.num_fats}")
        raw = region.read(lay.fat_offset + active * lay.fat_bytes, lay.fat_bytes)
        kind = FAT_KINDS[lay.fat_bits]
        fat = kind.decode(raw, lay.cluster_count + 2).copy()
        vol = cls(region, lay, boot, fat, raw)
        vol._active_fat = active
        root = vol._root()
        vol.label = vol._label_from(root)
        return vol

    @classmethod
    def format(cls, region: Region, *, label: str | None = None, volume_id: int | None = None,
               hidden_sectors: int = 0, fat_bits: int | None = None, root_entries: int = 512,
               layout: Layout | None = None) -> "FatVolume":
        """A new, empty file system on `region` (written on commit; the region must read as zeros
        or be overwritten completely by the caller: only metadata areas are written)."""
        lay = layout or plan_layout(region.length // 512, fat_bits=fat_bits, root_entries=root_entries)
        lab = normalize_label(label)
        boot = {"BS_VolID": volume_id, "_hidden": hidden_sectors}
        fat = np.zeros(lay.cluster_count + 2, dtype=np.uint32)
        kind = FAT_KINDS[lay.fat_bits]
        fat[0] = kind.mask & (0xFFFFFF00 | 0xF8)
        fat[1] = kind.eoc
        vol = cls(region, lay, boot, fat, bytes(lay.fat_bytes), fresh=True, label=lab)
        vol._active_fat = 0
        vol.volume_id = volume_id
        if lay.fat_bits == 32:
            root_cluster = lay.root_cluster
            vol.fat[root_cluster] = kind.eoc
            vol._low_free = root_cluster + 1
            raw = bytearray(lay.cluster_bytes)
            root = DirState(root_cluster, [root_cluster], raw, "/", dirty=True)
        else:
            root = DirState(0, None, bytearray(lay.root_entries * 32), "/", dirty=True)
        if lab is not None:
            d, t, tenth = vol._stamp
            root.reserved_shorts.add(lab.encode("ascii").ljust(11))
            root.raw[0:32] = DIR_ENTRY.pack(DIR_Name=lab.encode("ascii").ljust(11), DIR_Attr=ATTR_VOLUME_ID,
                                            DIR_WrtDate=d, DIR_WrtTime=t)
        vol._dirs[root.first_cluster] = root
        return vol

    # ---- FAT chains ----------------------------------------------------------------------
    @property
    def max_cluster(self) -> int:
        return self.layout.cluster_count + 1

    def chain_runs(self, first: int, what: str = "file") -> list[tuple[int, int]]:
        """The clusters of a chain as contiguous runs [(start, count)], checked: every cluster
        in range, no free or bad cluster inside, no loop (a jump back to a cluster already
        seen, or more clusters than the volume has)."""
        if first == 0:
            return []
        runs: list[tuple[int, int]] = []
        jumps: set[int] = set()
        fat, kind, top = self.fat, self.kind, self.max_cluster
        total = 0
        c = first
        while True:
            if not 2 <= c <= top:
                raise ImageError(f"{what}: FAT chain points to cluster {c}, outside the volume "
                                 f"(2..{top})")
            if c in jumps:
                raise ImageError(f"{what}: FAT chain loops back to cluster {c}")
            jumps.add(c)
            # Follow the contiguous run starting at c (fat[c+i] == c+i+1) in bulk.
            n = 1
            window = 64
            while c + n <= top:
                w = min(window, top + 1 - (c + n))
                seg = fat[c + n - 1:c + n - 1 + w]
                expect = np.arange(c + n, c + n + w, dtype=np.int64)
                bad = np.flatnonzero(seg != expect)
                if len(bad):
                    n += int(bad[0])
                    break
                n += w
                window = min(window * 4, 1 << 20)
            n = min(n, top + 1 - c)
            runs.append((c, n))
            total += n
            if total > self.layout.cluster_count:
                raise ImageError(f"{what}: FAT chain is longer than the volume (it loops)")
            last = c + n - 1
            nxt = int(fat[last])
            if nxt >= kind.eoc_min:
                return runs
            if nxt == kind.bad:
                raise ImageError(f"{what}: FAT chain runs into a cluster marked bad (after {last})")
            if nxt == 0:
                raise ImageError(f"{what}: FAT chain runs into a free cluster (after {last})")
            if any(s <= nxt < s + k for s, k in runs[-8:]):
                raise ImageError(f"{what}: FAT chain loops back to cluster {nxt}")
            c = nxt

    def chain(self, first: int, what: str = "file") -> list[int]:
        out: list[int] = []
        for start, count in self.chain_runs(first, what):
            out.extend(range(start, start + count))
        return out

    def free_clusters(self) -> int:
        return int(np.count_nonzero(self.fat[2:] == 0))

    def _alloc(self, n: int, what: str) -> np.ndarray:
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        found: list[np.ndarray] = []
        have = 0
        pos = self._low_free
        end = len(self.fat)
        while have < n and pos < end:
            window = max(65536, 2 * (n - have))
            chunk = self.fat[pos:pos + window]
            idx = np.flatnonzero(chunk == 0)[: n - have] + pos
            found.append(idx)
            have += len(idx)
            pos += window
        if have < n:
            free = self.free_clusters()
            cb = self.layout.cluster_bytes
            raise ImageError(f"{what}: not enough space: need {n * cb} bytes ({n} clusters), "
                             f"{free * cb} bytes free")
        clusters = np.concatenate(found).astype(np.int64)
        self.fat[clusters[:-1]] = clusters[1:]
        self.fat[clusters[-1]] = self.kind.eoc
        self._low_free = int(clusters[-1]) + 1
        return clusters

    def _free_chain(self, clusters) -> None:
        if len(clusters):
            arr = np.asarray(clusters, dtype=np.int64)
            self.fat[arr] = 0
            self._low_free = min(self._low_free, int(arr.min()))

    # ---- directories ---------------------------------------------------------------------
    def _root(self) -> DirState:
        key = self.layout.root_cluster if self.layout.fat_bits == 32 else 0
        if key not in self._dirs:
            if self.layout.fat_bits == 32:
                self._dirs[key] = self._load_dir(key, "/")
            else:
                raw = bytearray(self.region.read(self.layout.root_dir_offset, self.layout.root_entries * 32))
                st = DirState(0, None, raw, "/")
                st.entries, _, label = parse_directory(raw, None, "/", self.layout.fat_bits)
                if label:
                    st.reserved_shorts.add(label.encode("cp437", "replace").ljust(11)[:11])
                self._dirs[0] = st
        return self._dirs[key]

    def _label_from(self, root: DirState) -> str | None:
        lab = parse_directory(root.raw, None, "/", self.layout.fat_bits)[2]
        if lab:
            return lab
        raw = self.boot.get("BS_VolLab", b"")
        text = raw.decode("cp437", "replace").rstrip() if raw else ""
        return text if text and text != "NO NAME" else None

    def _load_dir(self, first: int, path: str) -> DirState:
        clusters = self.chain(first, f"directory {path}")
        if len(clusters) * self.layout.cluster_bytes > MAX_DIR_ENTRIES * 32:
            raise ImageError(f"directory {path}: larger than FAT's limit of {MAX_DIR_ENTRIES} entries")
        raw = bytearray(self._read_clusters(clusters))
        st = DirState(first, clusters, raw, path)
        st.entries, _, label = parse_directory(raw, None, path, self.layout.fat_bits)
        if label:
            st.reserved_shorts.add(label.encode("cp437", "replace").ljust(11)[:11])
        return st

    def _read_clusters(self, clusters: list[int]) -> bytes:
        cb = self.layout.cluster_bytes
        parts = []
        for start, count in _runs(clusters):
            parts.append(self.region.read(self.layout.cluster_offset(start), count * cb))
        return b"".join(parts)

    def _dir_state(self, entry: Entry | None, path: str) -> DirState:
        if entry is None:
            return self._root()
        if not entry.is_dir:
            raise ImageError(f"{path} is not a directory")
        if entry.first_cluster == 0:
            # ".." style reference to root, or a broken directory entry
            if path in ("", "/"):
                return self._root()
            raise ImageError(f"directory {path} has no clusters")
        if entry.first_cluster not in self._dirs:
            self._dirs[entry.first_cluster] = self._load_dir(entry.first_cluster, path)
        return self._dirs[entry.first_cluster]

    def lookup(self, path: str) -> Entry | None:
        """The entry at `path` (None for the root). Raises ImageError if it does not exist."""
        parts = split_path(path)
        entry = None
        walked = ""
        for part in parts:
            st = self._dir_state(entry, walked or "/")
            walked += "/" + part
            found = st.names().get(_key(part))
            if found is None:
                raise ImageError(f"{walked}: no such file or directory in the image")
            entry = found
        return entry

    def exists(self, path: str) -> bool:
        try:
            self.lookup(path)
            return True
        except ImageError:
            return False

    def listdir(self, path: str = "/") -> list[Entry]:
        entry = self.lookup(path)
        if entry is not None and not entry.is_dir:
            return [entry]
        return list(self._dir_state(entry, "/" + "/".join(split_path(path))).entries)

    def walk(self, path: str = "/", _seen: set[int] | None = None) -> Iterator[tuple[str, Entry]]:
        """(path, entry) for everything below `path`, depth first, directory order."""
        base = "/" + "/".join(split_path(path))
        if _seen is None:
            start = self.lookup(path)
            _seen = {start.first_cluster if start is not None else self._root().first_cluster}
        for e in self.listdir(path):
            p = base.rstrip("/") + "/" + e.name
            yield p, e
            if e.is_dir:
                if e.first_cluster in _seen or e.first_cluster == self._root().first_cluster:
                    raise ImageError(f"{p}: directory loop (cluster {e.first_cluster} is already in the tree)")
                _seen.add(e.first_cluster)
                yield from self.walk(p, _seen)

    # ---- reading files -------------------------------------------------------------------
    def iter_file(self, path: str, chunk: int = 1 << 22) -> Iterator[bytes]:
        entry = self.lookup(path)
        if entry is None or entry.is_dir:
            raise ImageError(f"{path}: is a directory")
        runs = self.chain_runs(entry.first_cluster, path)
        cb = self.layout.cluster_bytes
        need = (entry.size + cb - 1) // cb
        have = sum(k for _, k in runs)
        if have < need:
            raise ImageError(f"{path}: FAT chain has {have} clusters, the size {entry.size} needs {need}")
        left = entry.size
        for start, count in runs:
            if left <= 0:
                break
            off = self.layout.cluster_offset(start)
            total = min(count * cb, left)
            done = 0
            while done < total:
                n = min(chunk, total - done)
                yield self.region.read(off + done, n)
                done += n
            left -= total

    def read_file(self, path: str) -> bytes:
        return b"".join(self.iter_file(path))

    # ---- changing ------------------------------------------------------------------------
    def _dir_entry_bytes(self, short: bytes, attr: int, cluster: int, size: int, ntres: int) -> bytes:
        d, t, tenth = self._stamp
        hi = (cluster >> 16) if self.layout.fat_bits == 32 else 0
        return DIR_ENTRY.pack(DIR_Name=short, DIR_Attr=attr, DIR_NTRes=ntres, DIR_CrtTimeTenth=tenth,
                              DIR_CrtTime=t, DIR_CrtDate=d, DIR_LstAccDate=d, DIR_FstClusHI=hi,
                              DIR_WrtTime=t, DIR_WrtDate=d, DIR_FstClusLO=cluster & 0xFFFF,
                              DIR_FileSize=size)

    def _insert(self, st: DirState, name: str, attr: int, cluster: int, size: int) -> Entry:
        N.validate_long_name(name)
        where = st.path.rstrip("/") + "/" + name
        if st.names().get(_key(name)) is not None:
            raise ImageError(f"{where}: already exists in the image (use --force to replace a file)")
        plan = N.plan_short_name(name, st.shorts(), st.tails)
        slots = (lfn_records(name, plan.short) if plan.needs_lfn else [])
        slots.append(self._dir_entry_bytes(plan.short, attr, cluster, size, plan.ntres))
        n = len(slots)
        total_slots = len(st.raw) // 32
        while st.free_hint < total_slots and st.raw[st.free_hint * 32] not in (0, 0xE5):
            st.free_hint += 1
        end = _end_marker(st.raw, st.free_hint)
        start = _find_free_run(st.raw, n, st.free_hint)
        while start is None:
            if st.clusters is None:
                raise ImageError(f"{where}: the root directory is full ({self.layout.root_entries} entries)")
            cb = self.layout.cluster_bytes
            if len(st.raw) + cb > MAX_DIR_ENTRIES * 32:
                raise ImageError(f"{where}: directory {st.path} is full (FAT allows {MAX_DIR_ENTRIES} "
                                 f"entries per directory)")
            new = int(self._alloc(1, where)[0])
            self.fat[st.clusters[-1]] = new
            st.clusters.append(new)
            st.raw.extend(bytes(cb))
            start = _find_free_run(st.raw, n, st.free_hint)
        if start == st.free_hint:
            st.free_hint = start + n
        for i, s in enumerate(slots):
            st.raw[(start + i) * 32:(start + i + 1) * 32] = s
        if start + n > end:
            # We used slots past the end-of-directory marker: everything after is free, make it 0.
            st.raw[(start + n) * 32:] = bytes(len(st.raw) - (start + n) * 32)
        st.dirty = True
        e = Entry(name if plan.needs_lfn else N.short_to_display(plan.short, plan.ntres), plan.short, attr,
                  cluster, size, plan.ntres, self._stamp[0], self._stamp[1], start + n - 1, n, plan.needs_lfn)
        st.add(e)
        return e

    @_planning
    def mkdir(self, path: str) -> Entry | None:
        """Create `path` and any missing parents; returns the directory's entry."""
        parts = split_path(path)
        entry = None
        walked = ""
        for part in parts:
            st = self._dir_state(entry, walked or "/")
            walked += "/" + part
            found = st.names().get(_key(part))
            if found is not None:
                if not found.is_dir:
                    raise ImageError(f"{walked}: exists and is not a directory")
                entry = found
                continue
            N.validate_long_name(part)
            cl = self._alloc(1, walked)
            c = int(cl[0])
            raw = bytearray(self.layout.cluster_bytes)
            parent_cluster = 0 if st.clusters is None or st is self._root() else st.first_cluster
            raw[0:32] = self._dir_entry_bytes(b".          ", ATTR_DIRECTORY, c, 0, 0)
            raw[32:64] = self._dir_entry_bytes(b"..         ", ATTR_DIRECTORY, parent_cluster, 0, 0)
            entry = self._insert(st, part, ATTR_DIRECTORY, c, 0)
            self._dirs[c] = DirState(c, [c], raw, walked, dirty=True)
        return entry

    @_planning
    def add_file(self, path: str, source: FileSource, *, replace: bool = False) -> Entry:
        parts = split_path(path)
        if not parts:
            raise ImageError("a file needs a name (destination is the root directory)")
        dest = "/" + "/".join(parts)
        if source.size > MAX_FILE_SIZE:
            raise file_too_large(source.path or dest, source.size)
        parent = self.mkdir("/".join(parts[:-1])) if len(parts) > 1 else None
        st = self._dir_state(parent, "/" + "/".join(parts[:-1]))
        existing = st.names().get(_key(parts[-1]))
        if existing is not None:
            if existing.is_dir:
                raise ImageError(f"{dest}: is a directory in the image")
            if not replace:
                raise ImageError(f"{dest}: already exists in the image (use --force to replace it)")
            self._remove_entry(st, existing, dest)
        N.validate_long_name(parts[-1])
        cb = self.layout.cluster_bytes
        clusters = self._alloc((source.size + cb - 1) // cb, dest)
        first = int(clusters[0]) if len(clusters) else 0
        entry = self._insert(st, parts[-1], ATTR_ARCHIVE, first, source.size)
        if len(clusters):
            self._writes.append(_DataWrite(clusters, source.data if source.data is not None else source.path,
                                           source.size, dest))
        return entry

    def _remove_entry(self, st: DirState, e: Entry, where: str) -> None:
        if e.first_cluster:
            self._free_chain(self.chain(e.first_cluster, where))
            self._dirs.pop(e.first_cluster, None)
            self._writes = [w for w in self._writes if int(w.clusters[0]) != e.first_cluster]
        for s in range(e.slot - e.n_slots + 1, e.slot + 1):
            st.raw[s * 32] = 0xE5
        st.drop(e)
        st.dirty = True

    @_planning
    def remove(self, path: str, *, recursive: bool = False) -> None:
        parts = split_path(path)
        if not parts:
            raise ImageError("refusing to remove the root directory")
        dest = "/" + "/".join(parts)
        parent = self.lookup("/".join(parts[:-1])) if len(parts) > 1 else None
        st = self._dir_state(parent, "/" + "/".join(parts[:-1]))
        e = st.names().get(_key(parts[-1]))
        if e is None:
            raise ImageError(f"{dest}: no such file or directory in the image")
        if e.is_dir:
            sub = self._dir_state(e, dest)
            if sub.entries and not recursive:
                raise ImageError(f"{dest}: directory not empty (use -r to remove it with its contents)")
            for child in list(sub.entries):
                self.remove(dest + "/" + child.name, recursive=True)
        self._remove_entry(st, e, dest)

    # ---- committing ----------------------------------------------------------------------
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

    # ---- planning helpers ----------------------------------------------------------------
    def clusters_for(self, size: int) -> int:
        cb = self.layout.cluster_bytes
        return (size + cb - 1) // cb


def normalize_label(label: str | None) -> str | None:
    if label is None:
        return None
    lab = label.strip().upper()
    if not lab:
        return None
    if len(lab) > 11:
        raise ImageError(f"volume label {label!r} is longer than 11 characters")
    bad = sorted({c for c in lab if not (N._short_char_ok(c) or c == " ")})
    if bad:
        raise ImageError(f"volume label {label!r} contains character(s) not allowed: "
                         + ", ".join(repr(c) for c in bad))
    return lab


def _runs(clusters) -> list[tuple[int, int]]:
    """Contiguous runs [(start, count)] of a cluster list."""
    arr = np.asarray(clusters, dtype=np.int64)
    if len(arr) == 0:
        return []
    breaks = np.flatnonzero(np.diff(arr) != 1) + 1
    starts = np.concatenate(([0], breaks))
    ends = np.concatenate((breaks, [len(arr)]))
    return [(int(arr[s]), int(e - s)) for s, e in zip(starts, ends)]


def _end_marker(raw: bytearray, first: int = 0) -> int:
    for slot in range(first, len(raw) // 32):
        if raw[slot * 32] == 0:
            return slot
    return len(raw) // 32


def _find_free_run(raw: bytearray, n: int, first: int = 0) -> int | None:
    total = len(raw) // 32
    run = 0
    for slot in range(first, total):
        b = raw[slot * 32]
        if b == 0:
            # Everything from here is free.
            start = slot - run
            return start if total - start >= n else None
        if b == 0xE5:
            run += 1
            if run == n:
                return slot - n + 1
        else:
            run = 0
    return None


def _copy_into(vol: FatVolume, w: _DataWrite, buf: bytearray, hasher, cb: int) -> None:
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

"""GUID Partition Table: protective MBR, primary and backup headers and entry arrays.

Layout written (512-byte logical blocks, N = number of blocks on the disk):
  LBA 0            protective MBR (one record of type 0xEE covering the disk)
  LBA 1            primary GPT header
  LBA 2..33        primary partition entry array (128 entries x 128 bytes)
  ...              partitions (the first at LBA 2048 = 1 MiB)
  LBA N-33..N-2    backup partition entry array
  LBA N-1          backup GPT header
"""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field

from .errors import ImageError
from .structs import GPT_ENTRY, GPT_HEADER, MBR, MBR_PARTITION_RECORD, crc32

ESP_TYPE = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
BASIC_DATA_TYPE = uuid.UUID("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7")
SECTOR = 512
ENTRY_COUNT = 128
ENTRY_ARRAY_SECTORS = ENTRY_COUNT * GPT_ENTRY.size // SECTOR  # 32
ALIGN_SECTORS = 2048  # 1 MiB


@dataclass
class Partition:
    index: int            # 1-based, as shown by sgdisk
    type_guid: uuid.UUID
    guid: uuid.UUID
    first_lba: int
    last_lba: int
    attributes: int = 0
    name: str = ""

    @property
    def offset(self) -> int:
        return self.first_lba * SECTOR

    @property
    def size(self) -> int:
        return (self.last_lba - self.first_lba + 1) * SECTOR


@dataclass
class GptDisk:
    disk_sectors: int
    disk_guid: uuid.UUID
    partitions: list[Partition]
    header: dict = field(repr=False, default_factory=dict)


def _chs(lba: int) -> bytes:
    heads, spt = 255, 63
    c, rem = divmod(lba, heads * spt)
    if c > 1023:
        return b"\xff\xff\xff"
    h, s = divmod(rem, spt)
    s += 1
    return bytes([h, s | ((c >> 2) & 0xC0), c & 0xFF])


def protective_mbr(disk_sectors: int) -> bytes:
    rec = MBR_PARTITION_RECORD.pack(
        BootIndicator=0, StartingCHS=b"\x00\x02\x00", OSType=0xEE,
        EndingCHS=_chs(disk_sectors - 1), StartingLBA=1,
        SizeInLBA=min(disk_sectors - 1, 0xFFFFFFFF))
    return MBR.pack(PartitionRecord=rec + bytes(48))


def usable_range(disk_sectors: int) -> tuple[int, int]:
    return 2 + ENTRY_ARRAY_SECTORS, disk_sectors - 2 - ENTRY_ARRAY_SECTORS


def layout(disk_sectors: int, disk_guid: uuid.UUID, partitions: list[Partition]) -> list[tuple[int, bytes]]:
    """The (byte offset, bytes) writes that put a complete GPT on a disk of `disk_sectors`."""
    first_usable, last_usable = usable_range(disk_sectors)
    if len(partitions) > ENTRY_COUNT:
        raise ImageError("too many partitions")
    array = bytearray(ENTRY_COUNT * GPT_ENTRY.size)
    for i, p in enumerate(partitions):
        if not (first_usable <= p.first_lba <= p.last_lba <= last_usable):
            raise ImageError(f"partition {p.index} (LBA {p.first_lba}-{p.last_lba}) does not fit "
                             f"the usable range {first_usable}-{last_usable}")
        array[i * GPT_ENTRY.size:(i + 1) * GPT_ENTRY.size] = GPT_ENTRY.pack(
            PartitionTypeGUID=p.type_guid, UniquePartitionGUID=p.guid, StartingLBA=p.first_lba,
            EndingLBA=p.last_lba, Attributes=p.attributes, PartitionName=p.name)
    array_crc = crc32(array)
    common = dict(FirstUsableLBA=first_usable, LastUsableLBA=last_usable, DiskGUID=disk_guid,
                  NumberOfPartitionEntries=ENTRY_COUNT, SizeOfPartitionEntry=GPT_ENTRY.size,
                  PartitionEntryArrayCRC32=array_crc)
    last = disk_sectors - 1
    primary = GPT_HEADER.pack(common, MyLBA=1, AlternateLBA=last, PartitionEntryLBA=2)
    backup_entries_lba = last - ENTRY_ARRAY_SECTORS
    backup = GPT_HEADER.pack(common, MyLBA=last, AlternateLBA=1, PartitionEntryLBA=backup_entries_lba)
    return [
        (0, protective_mbr(disk_sectors)),
        (SECTOR, primary),
        (2 * SECTOR, bytes(array)),
        (backup_entries_lba * SECTOR, bytes(array)),
        (last * SECTOR, backup),
    ]


# --------------------------------------------------------------------------------------------
# Reading and checking
# --------------------------------------------------------------------------------------------
def _pread(fd: int, n: int, off: int) -> bytes:
    data = os.pread(fd, n, off)
    return data


def has_protective_mbr(sector0: bytes) -> bool:
    if len(sector0) < 512:
        return False
    mbr = MBR.unpack(sector0)
    if mbr["Signature"] != 0xAA55:
        return False
    recs = [MBR_PARTITION_RECORD.unpack(mbr["PartitionRecord"], i * 16) for i in range(4)]
    return any(r["OSType"] == 0xEE for r in recs)


def _check_header(fd: int, file_size: int, lba: int, what: str, problems: list[str]) -> dict | None:
    off = lba * SECTOR
    if off + SECTOR > file_size:
        problems.append(f"{what} GPT header at LBA {lba} lies beyond the end of the image "
                        f"({file_size} bytes): image truncated")
        return None
    raw = _pread(fd, SECTOR, off)
    hdr = GPT_HEADER.unpack(raw)
    if hdr["Signature"] != b"EFI PART":
        problems.append(f"{what} GPT header at LBA {lba}: no 'EFI PART' signature")
        return None
    if not 92 <= hdr["HeaderSize"] <= SECTOR:
        problems.append(f"{what} GPT header at LBA {lba}: bad HeaderSize {hdr['HeaderSize']}")
        return None
    want = GPT_HEADER.computed_crc(raw)
    if want != hdr["HeaderCRC32"]:
        problems.append(f"{what} GPT header at LBA {lba}: HeaderCRC32 is {hdr['HeaderCRC32']:#010x}, "
                        f"computed {want:#010x}")
        return None
    if hdr["MyLBA"] != lba:
        problems.append(f"{what} GPT header at LBA {lba}: MyLBA says {hdr['MyLBA']}")
    if hdr["SizeOfPartitionEntry"] < 128 or hdr["SizeOfPartitionEntry"] % 8:
        problems.append(f"{what} GPT header: bad SizeOfPartitionEntry {hdr['SizeOfPartitionEntry']}")
        return None
    if not 0 < hdr["NumberOfPartitionEntries"] <= 4096:
        problems.append(f"{what} GPT header: implausible NumberOfPartitionEntries "
                        f"{hdr['NumberOfPartitionEntries']}")
        return None
    return hdr


def _read_entries(fd: int, file_size: int, hdr: dict, what: str, problems: list[str]) -> bytes | None:
    n = hdr["NumberOfPartitionEntries"] * hdr["SizeOfPartitionEntry"]
    off = hdr["PartitionEntryLBA"] * SECTOR
    if off + n > file_size:
        problems.append(f"{what} GPT partition entry array at LBA {hdr['PartitionEntryLBA']} lies beyond "
                        f"the end of the image: image truncated")
        return None
    raw = _pread(fd, n, off)
    got = crc32(raw)
    if got != hdr["PartitionEntryArrayCRC32"]:
        problems.append(f"{what} GPT partition entry array: PartitionEntryArrayCRC32 is "
                        f"{hdr['PartitionEntryArrayCRC32']:#010x}, computed {got:#010x}")
        return None
    return raw


def _parse_entries(raw: bytes, hdr: dict) -> list[Partition]:
    parts = []
    step = hdr["SizeOfPartitionEntry"]
    for i in range(hdr["NumberOfPartitionEntries"]):
        e = GPT_ENTRY.unpack(raw, i * step)
        if e["PartitionTypeGUID"].int == 0:
            continue
        parts.append(Partition(i + 1, e["PartitionTypeGUID"], e["UniquePartitionGUID"], e["StartingLBA"],
                               e["EndingLBA"], e["Attributes"], e["PartitionName"]))
    return parts


def check(fd: int, file_size: int, warnings: list[str] | None = None) -> tuple[GptDisk | None, list[str]]:
    """Parse and check the whole GPT. Returns (disk from the primary header or None, problems);
    legal-but-odd states go to `warnings` when given."""
    problems: list[str] = []
    if warnings is None:
        warnings = []
    sector0 = _pread(fd, SECTOR, 0)
    if not has_protective_mbr(sector0):
        problems.append("LBA 0: no protective MBR (signature 0xAA55 with a type 0xEE record)")
    primary = _check_header(fd, file_size, 1, "primary", problems)
    if primary is None:
        return None, problems
    disk_sectors = primary["AlternateLBA"] + 1
    if disk_sectors * SECTOR > file_size:
        problems.append(f"image truncated: the GPT describes a disk of {disk_sectors * SECTOR} bytes, "
                        f"the image has {file_size}")
    elif disk_sectors * SECTOR < file_size:
        warnings.append(f"the GPT covers {disk_sectors * SECTOR} bytes of {file_size}: its backup header is "
                        f"not in the last block (normal after writing an image to a larger disk)")
    raw_entries = _read_entries(fd, file_size, primary, "primary", problems)
    if raw_entries is None:
        return None, problems
    parts = _parse_entries(raw_entries, primary)
    first, last = primary["FirstUsableLBA"], primary["LastUsableLBA"]
    if not (primary["PartitionEntryLBA"] >= 2 and first > primary["PartitionEntryLBA"]
            and last < primary["AlternateLBA"] and first <= last):
        problems.append(f"primary GPT header: inconsistent usable range {first}-{last}")
    for p in parts:
        if not first <= p.first_lba <= p.last_lba <= last:
            problems.append(f"partition {p.index}: LBA {p.first_lba}-{p.last_lba} outside the usable "
                            f"range {first}-{last}")
    ordered = sorted(parts, key=lambda p: p.first_lba)
    for a, b in zip(ordered, ordered[1:]):
        if b.first_lba <= a.last_lba:
            problems.append(f"partitions {a.index} and {b.index} overlap")
    disk = GptDisk(disk_sectors, primary["DiskGUID"], parts, primary)

    backup = _check_header(fd, file_size, primary["AlternateLBA"], "backup", problems)
    if backup is not None:
        for key in ("FirstUsableLBA", "LastUsableLBA", "DiskGUID", "NumberOfPartitionEntries",
                    "SizeOfPartitionEntry", "PartitionEntryArrayCRC32", "Revision"):
            if backup[key] != primary[key]:
                problems.append(f"backup GPT header differs from the primary in {key}")
        if backup["AlternateLBA"] != 1:
            problems.append(f"backup GPT header: AlternateLBA is {backup['AlternateLBA']}, not 1")
        b_entries = _read_entries(fd, file_size, backup, "backup", problems)
        if b_entries is not None and b_entries != raw_entries:
            problems.append("backup GPT partition entry array differs from the primary")
    return disk, problems


def read(fd: int, file_size: int) -> GptDisk:
    """The GPT for reading files: the primary header and entries must be intact and the image
    must hold the whole disk the GPT describes; anything else is a one-line ImageError."""
    disk, problems = check(fd, file_size)
    fatal = [p for p in problems if "truncated" in p]
    if disk is None or fatal:
        raise ImageError((fatal or problems or ["no GPT"])[0])
    return disk


def guid_from_hash(digest: bytes) -> uuid.UUID:
    """A version-4-shaped GUID from 16+ bytes of a hash (stable for the same content)."""
    b = bytearray(digest[:16])
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    return uuid.UUID(bytes=bytes(b))


__all__ = ["ESP_TYPE", "SECTOR", "Partition", "GptDisk", "layout", "check", "read", "protective_mbr",
           "has_protective_mbr", "guid_from_hash", "usable_range", "ALIGN_SECTORS"]

"""Unit tests: declared on-disk structures, CRCs, 8.3 names and long-name checksums."""
from __future__ import annotations

import struct
import uuid
import zlib

import numpy as np
import pytest

from imagetool import ImageError
from imagetool import names as N
from imagetool.structs import (DIR_ENTRY, FAT16_BOOT_SECTOR, FAT32_BOOT_SECTOR, FAT_KINDS, FSINFO,
                               GPT_ENTRY, GPT_HEADER, LFN_ENTRY, MBR)


def test_sizes_match_the_specifications():
    assert GPT_HEADER.body_size == 92 and GPT_ENTRY.size == 128 and MBR.size == 512
    assert FAT32_BOOT_SECTOR.size == FAT16_BOOT_SECTOR.size == FSINFO.size == 512
    assert DIR_ENTRY.size == LFN_ENTRY.size == 32
    # a few spec offsets
    assert GPT_HEADER.offsets["PartitionEntryLBA"] == 72
    assert GPT_HEADER.offsets["DiskGUID"] == 56
    assert FAT32_BOOT_SECTOR.offsets["BPB_RootClus"] == 44
    assert FAT32_BOOT_SECTOR.offsets["BS_VolLab"] == 71
    assert FAT16_BOOT_SECTOR.offsets["BS_VolLab"] == 43
    assert FSINFO.offsets["FSI_Free_Count"] == 488
    assert LFN_ENTRY.offsets["LDIR_Chksum"] == 13 and LFN_ENTRY.offsets["LDIR_Name3"] == 28
    assert DIR_ENTRY.offsets["DIR_FstClusLO"] == 26 and DIR_ENTRY.offsets["DIR_FileSize"] == 28


def test_round_trip_every_field():
    g = uuid.UUID("01234567-89ab-cdef-0123-456789abcdef")
    rec = dict(PartitionTypeGUID=g, UniquePartitionGUID=uuid.UUID(int=5), StartingLBA=2048, EndingLBA=99999,
               Attributes=1 << 63, PartitionName="EFI System Partition")
    raw = GPT_ENTRY.pack(rec)
    assert GPT_ENTRY.unpack(raw) == rec
    # GUIDs are stored mixed-endian (first three fields little-endian)
    assert raw[:16] == g.bytes_le and raw[:4] == bytes.fromhex("67452301")
    assert raw[56:56 + 6] == "EFI".encode("utf-16-le")


def test_gpt_header_crc_is_computed_from_the_declaration():
    raw = GPT_HEADER.pack(MyLBA=1, AlternateLBA=100, FirstUsableLBA=34, LastUsableLBA=67,
                          DiskGUID=uuid.UUID(int=7), PartitionEntryLBA=2, NumberOfPartitionEntries=128,
                          SizeOfPartitionEntry=128, PartitionEntryArrayCRC32=0x1234)
    assert len(raw) == 512
    # independent recomputation: CRC32 of the 92 header bytes with the CRC field zeroed
    hdr = bytearray(raw[:92])
    stored = struct.unpack_from("<I", hdr, 16)[0]
    hdr[16:20] = bytes(4)
    assert stored == zlib.crc32(bytes(hdr)) & 0xFFFFFFFF
    assert GPT_HEADER.crc_ok(raw)
    broken = bytearray(raw)
    broken[40] ^= 1
    assert not GPT_HEADER.crc_ok(bytes(broken))


def test_pack_rejects_unknown_fields():
    with pytest.raises(KeyError):
        DIR_ENTRY.pack(DIR_Nmae=b"X")


@pytest.mark.parametrize("bits", [12, 16, 32])
def test_fat_table_encode_decode(bits):
    kind = FAT_KINDS[bits]
    rng = np.random.default_rng(bits)
    vals = rng.integers(0, kind.mask + 1, size=1001, dtype=np.uint64).astype(np.uint32)
    raw = kind.encode(vals)
    assert len(raw) >= kind.table_bytes(1001)
    assert np.array_equal(kind.decode(raw, 1001), vals)


def test_fat12_packing_matches_the_spec_example():
    # entries 0x123, 0x456 pack as 23 61 45 (spec: two 12-bit entries share 3 bytes)
    assert FAT_KINDS[12].encode(np.array([0x123, 0x456]))[:3] == bytes([0x23, 0x61, 0x45])


def test_fat32_keeps_reserved_high_bits():
    old = struct.pack("<2I", 0xF0000000, 0x30000005)
    new = FAT_KINDS[32].encode(np.array([7, 9], dtype=np.uint32), reserved_high=old)
    assert struct.unpack("<2I", new) == (0xF0000007, 0x30000009)


# ---- names -----------------------------------------------------------------------------------
def _reference_checksum(short: bytes) -> int:
    # the specification's ChkSum(): Sum = ((Sum & 1) ? 0x80 : 0) + (Sum >> 1) + *pFcbName++
    total = 0
    for b in short:
        total = ((0x80 if total & 1 else 0) + (total >> 1) + b) & 0xFF
    return total


@pytest.mark.parametrize("short", [b"README  TXT", b"LONGFI~1TXT", b"A          ", b"\x05BC     DAT"])
def test_lfn_checksum(short):
    assert N.lfn_checksum(short) == _reference_checksum(short)


@pytest.mark.parametrize("name, short, ntres, lfn", [
    ("README.TXT", b"README  TXT", 0, False),
    ("readme.txt", b"README  TXT", 0x18, False),      # NT case bits, no long name
    ("README.txt", b"README  TXT", 0x10, False),
    ("Readme.txt", b"README  TXT", 0, True),          # mixed case: long name, no tail needed
    ("BOOTX64.EFI", b"BOOTX64 EFI", 0, False),
    ("stories260K.bin", b"STORIE~1BIN", 0, True),
    ("A long file name.txt", b"ALONGF~1TXT", 0, True),
    ("tokenizer.bin", b"TOKENI~1BIN", 0, True),
    ("x.tar.gz", b"XTAR~1  GZ ", 0, True),
    (".hidden", b"HIDDEN~1   ", 0, True),
    ("a+b.txt", b"A_B~1   TXT", 0, True),
    ("caf\u00e9.txt", b"CAF_~1  TXT", 0, True),
    ("ext.long", b"EXT~1   LON", 0, True),
])
def test_short_names(name, short, ntres, lfn):
    plan = N.plan_short_name(name, set())
    assert (plan.short, plan.ntres, plan.needs_lfn) == (short, ntres, lfn)


def test_numeric_tails_on_collision():
    taken: set[bytes] = set()
    got = []
    for name in ["Long File Name One.txt", "Long File Name Two.txt", "Long File Name 3.txt"]:
        plan = N.plan_short_name(name, taken)
        taken.add(plan.short)
        got.append(plan.short)
    assert got == [b"LONGFI~1TXT", b"LONGFI~2TXT", b"LONGFI~3TXT"]
    # an exact 8.3 name that collides with an alias gets a tail of its own
    plan = N.plan_short_name("LONGFI~1.TXT", taken)
    assert (plan.short, plan.needs_lfn) == (b"LONGFI~4TXT", True)


def test_tail_grows_into_the_basis():
    taken = {N.format_short(f"LONGFI~{i}", "TXT") for i in range(1, 10)}
    assert N.plan_short_name("Long File Name.txt", taken).short == b"LONGF~10TXT"


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "a:b", "what?", "tab\there", "trailing.", "trailing "])
def test_invalid_long_names(bad):
    with pytest.raises(ImageError):
        N.validate_long_name(bad)


def test_name_length_limit():
    N.validate_long_name("x" * 255)
    with pytest.raises(ImageError, match="longer than 255"):
        N.validate_long_name("x" * 256)

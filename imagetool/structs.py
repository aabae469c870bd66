"""On-disk structures, each declared once and both packed and unpacked from that declaration.

Field names follow the specifications they come from: the UEFI specification (chapter "GUID
Partition Table (GPT) Disk Layout") for the protective MBR, GPT header and partition entries,
and Microsoft's "FAT: General Overview of On-Disk Format" for the boot sector/BPB, FSInfo,
directory entries and long-name entries. All integers are little-endian.

A declaration is a list of (name, kind) pairs. Kinds: "B", "H", "I", "Q" (unsigned 8..64 bit
integers), "Ns" (N raw bytes), "guid" (16 bytes, mixed-endian as stored by UEFI, exposed as a
uuid.UUID) and "utf16:N" (N bytes of UTF-16LE, NUL padded, exposed as str). A structure can
name one CRC32 field and the byte range it covers; `pack` then fills it in and `crc_ok` checks
it, so CRCs are computed from the same declaration the bytes come from.
"""
from __future__ import annotations

import struct
import uuid
import zlib
from typing import Any, Callable, Iterable

__all__ = [
    "Struct", "MBR", "MBR_PARTITION_RECORD", "GPT_HEADER", "GPT_ENTRY", "FAT_BPB_COMMON",
    "FAT32_BOOT_SECTOR", "FAT16_BOOT_SECTOR", "FSINFO", "DIR_ENTRY", "LFN_ENTRY", "FAT_KINDS",
    "FatKind", "crc32",
]


def crc32(data: bytes | bytearray | memoryview) -> int:
    """The CRC32 used by GPT (IEEE 802.3 polynomial, reflected, init/xorout 0xFFFFFFFF)."""
    return zlib.crc32(data) & 0xFFFFFFFF


class Struct:
    """A fixed-size little-endian record described by (field name, kind) pairs."""

    def __init__(self, name: str, fields: Iterable[tuple[str, str]], *, size: int | None = None,
                 crc: tuple[str, Callable[[dict], int]] | None = None,
                 defaults: dict[str, Any] | None = None):
        self.name = name
        self.fields: list[tuple[str, str]] = list(fields)
        codes, self._decode, self._encode = [], [], []
        self.offsets: dict[str, int] = {}
        pos = 0
        for fname, kind in self.fields:
            if fname in self.offsets:
                raise ValueError(f"{name}: duplicate field {fname}")
            self.offsets[fname] = pos
            if kind == "guid":
                code, width = "16s", 16
                dec = lambda b: uuid.UUID(bytes_le=bytes(b))
                enc = lambda v: (v if isinstance(v, uuid.UUID) else uuid.UUID(str(v))).bytes_le
            elif kind.startswith("utf16:"):
                width = int(kind[6:])
                code = f"{width}s"
                dec = lambda b: bytes(b).decode("utf-16-le", "replace").split("\0", 1)[0]
                enc = (lambda w: lambda v: _utf16_field(v, w))(width)
            elif kind.endswith("s"):
                width = int(kind[:-1])
                code = kind
                dec = bytes
                enc = bytes
            elif kind in ("B", "H", "I", "Q"):
                code, width = kind, struct.calcsize("<" + kind)
                dec = enc = int
            else:
                raise ValueError(f"{name}.{fname}: unknown kind {kind!r}")
            codes.append(code)
            self._decode.append(dec)
            self._encode.append(enc)
            pos += width
        self._struct = struct.Struct("<" + "".join(codes))
        assert self._struct.size == pos
        self.body_size = pos
        self.size = size if size is not None else pos
        if self.size < pos:
            raise ValueError(f"{name}: fields take {pos} bytes, more than size {self.size}")
        self.crc = crc
        if crc is not None and crc[0] not in self.offsets:
            raise ValueError(f"{name}: CRC field {crc[0]} is not declared")
        self.defaults = dict(defaults or {})

    # -- decoding -------------------------------------------------------------------------
    def unpack(self, buf: bytes | bytearray | memoryview, offset: int = 0) -> dict[str, Any]:
        if len(buf) - offset < self.body_size:
            raise ValueError(f"{self.name}: need {self.body_size} bytes, have {len(buf) - offset}")
        raw = self._struct.unpack_from(buf, offset)
        return {f[0]: dec(v) for f, dec, v in zip(self.fields, self._decode, raw)}

    def iter_unpack(self, buf: bytes | bytearray | memoryview):
        """Decode consecutive records (stride `size`) from buf."""
        for off in range(0, len(buf) - self.size + 1, self.size):
            yield self.unpack(buf, off)

    # -- encoding -------------------------------------------------------------------------
    def pack(self, values: dict[str, Any] | None = None, **kw: Any) -> bytes:
        """Encode a record; missing fields take their declared default or zero. When the
        structure declares a CRC field it is computed here (over the declared range)."""
        merged = dict(self.defaults)
        if values:
            merged.update(values)
        merged.update(kw)
        unknown = set(merged) - set(self.offsets)
        if unknown:
            raise KeyError(f"{self.name}: unknown field(s) {sorted(unknown)}")
        out = bytearray(self._pack_raw(merged))
        if self.crc is not None:
            fname, length = self.crc
            off = self.offsets[fname]
            out[off:off + 4] = b"\0\0\0\0"
            n = length(merged)
            struct.pack_into("<I", out, off, crc32(out[:n]))
        return bytes(out)

    def _pack_raw(self, merged: dict[str, Any]) -> bytes:
        vals = []
        for (fname, kind), enc in zip(self.fields, self._encode):
            v = merged.get(fname)
            if v is None:
                v = b"" if (kind.endswith("s") and not kind.startswith("utf16")) else (
                    uuid.UUID(int=0) if kind == "guid" else ("" if kind.startswith("utf16") else 0))
            vals.append(enc(v))
        body = self._struct.pack(*vals)
        return body + bytes(self.size - len(body))

    # -- CRC ------------------------------------------------------------------------------
    def computed_crc(self, buf: bytes | bytearray | memoryview, offset: int = 0) -> int:
        """The CRC the record at buf[offset:] should carry (its CRC field taken as zero)."""
        assert self.crc is not None
        fname, length = self.crc
        rec = self.unpack(buf, offset)
        n = length(rec)
        if not 0 < n <= len(buf) - offset:
            raise ValueError(f"{self.name}: CRC range of {n} bytes is out of bounds")
        data = bytearray(buf[offset:offset + n])
        off = self.offsets[fname]
        data[off:off + 4] = b"\0\0\0\0"
        return crc32(data)

    def crc_ok(self, buf: bytes | bytearray | memoryview, offset: int = 0) -> bool:
        rec = self.unpack(buf, offset)
        try:
            return rec[self.crc[0]] == self.computed_crc(buf, offset)
        except ValueError:
            return False

    def field_slice(self, fname: str) -> slice:
        off = self.offsets[fname]
        kind = dict(self.fields)[fname]
        width = 16 if kind == "guid" else (int(kind[6:]) if kind.startswith("utf16:") else
                                            (int(kind[:-1]) if kind.endswith("s") else
                                             struct.calcsize("<" + kind)))
        return slice(off, off + width)


def _utf16_field(value: str, width: int) -> bytes:
    data = value.encode("utf-16-le")
    if len(data) > width:
        raise ValueError(f"name {value!r} longer than {width // 2} UTF-16 units")
    return data + bytes(width - len(data))


# --------------------------------------------------------------------------------------------
# UEFI: protective MBR, GPT header, GPT partition entry
# --------------------------------------------------------------------------------------------
MBR_PARTITION_RECORD = Struct("MBR partition record", [
    ("BootIndicator", "B"),
    ("StartingCHS", "3s"),
    ("OSType", "B"),
    ("EndingCHS", "3s"),
    ("StartingLBA", "I"),
    ("SizeInLBA", "I"),
])

MBR = Struct("MBR", [
    ("BootCode", "440s"),
    ("UniqueMBRDiskSignature", "I"),
    ("Unknown", "H"),
    ("PartitionRecord", "64s"),
    ("Signature", "H"),
], defaults={"Signature": 0xAA55})

GPT_HEADER = Struct("GPT header", [
    ("Signature", "8s"),
    ("Revision", "I"),
    ("HeaderSize", "I"),
    ("HeaderCRC32", "I"),
    ("Reserved", "I"),
    ("MyLBA", "Q"),
    ("AlternateLBA", "Q"),
    ("FirstUsableLBA", "Q"),
    ("LastUsableLBA", "Q"),
    ("DiskGUID", "guid"),
    ("PartitionEntryLBA", "Q"),
    ("NumberOfPartitionEntries", "I"),
    ("SizeOfPartitionEntry", "I"),
    ("PartitionEntryArrayCRC32", "I"),
], size=512, crc=("HeaderCRC32", lambda h: h["HeaderSize"]),
    defaults={"Signature": b"EFI PART", "Revision": 0x00010000, "HeaderSize": 92})

GPT_ENTRY = Struct("GPT partition entry", [
    ("PartitionTypeGUID", "guid"),
    ("UniquePartitionGUID", "guid"),
    ("StartingLBA", "Q"),
    ("EndingLBA", "Q"),
    ("Attributes", "Q"),
    ("PartitionName", "utf16:72"),
])

# --------------------------------------------------------------------------------------------
# FAT: boot sector / BPB (common part + FAT12/16 or FAT32 extension), FSInfo, directory entries
# --------------------------------------------------------------------------------------------
_BPB_COMMON_FIELDS = [
    ("BS_jmpBoot", "3s"),
    ("BS_OEMName", "8s"),
    ("BPB_BytsPerSec", "H"),
    ("BPB_SecPerClus", "B"),
    ("BPB_RsvdSecCnt", "H"),
    ("BPB_NumFATs", "B"),
    ("BPB_RootEntCnt", "H"),
    ("BPB_TotSec16", "H"),
    ("BPB_Media", "B"),
    ("BPB_FATSz16", "H"),
    ("BPB_SecPerTrk", "H"),
    ("BPB_NumHeads", "H"),
    ("BPB_HiddSec", "I"),
    ("BPB_TotSec32", "I"),
]
FAT_BPB_COMMON = Struct("FAT BPB", _BPB_COMMON_FIELDS)

FAT32_BOOT_SECTOR = Struct("FAT32 boot sector", _BPB_COMMON_FIELDS + [
    ("BPB_FATSz32", "I"),
    ("BPB_ExtFlags", "H"),
    ("BPB_FSVer", "H"),
    ("BPB_RootClus", "I"),
    ("BPB_FSInfo", "H"),
    ("BPB_BkBootSec", "H"),
    ("BPB_Reserved", "12s"),
    ("BS_DrvNum", "B"),
    ("BS_Reserved1", "B"),
    ("BS_BootSig", "B"),
    ("BS_VolID", "I"),
    ("BS_VolLab", "11s"),
    ("BS_FilSysType", "8s"),
    ("BootCode", "420s"),
    ("Signature_word", "H"),
], defaults={"Signature_word": 0xAA55})

FAT16_BOOT_SECTOR = Struct("FAT12/16 boot sector", _BPB_COMMON_FIELDS + [
    ("BS_DrvNum", "B"),
    ("BS_Reserved1", "B"),
    ("BS_BootSig", "B"),
    ("BS_VolID", "I"),
    ("BS_VolLab", "11s"),
    ("BS_FilSysType", "8s"),
    ("BootCode", "448s"),
    ("Signature_word", "H"),
], defaults={"Signature_word": 0xAA55})

FSINFO = Struct("FSInfo", [
    ("FSI_LeadSig", "I"),
    ("FSI_Reserved1", "480s"),
    ("FSI_StrucSig", "I"),
    ("FSI_Free_Count", "I"),
    ("FSI_Nxt_Free", "I"),
    ("FSI_Reserved2", "12s"),
    ("FSI_TrailSig", "I"),
], defaults={"FSI_LeadSig": 0x41615252, "FSI_StrucSig": 0x61417272,
             "FSI_TrailSig": 0xAA550000})

DIR_ENTRY = Struct("directory entry", [
    ("DIR_Name", "11s"),
    ("DIR_Attr", "B"),
    ("DIR_NTRes", "B"),
    ("DIR_CrtTimeTenth", "B"),
    ("DIR_CrtTime", "H"),
    ("DIR_CrtDate", "H"),
    ("DIR_LstAccDate", "H"),
    ("DIR_FstClusHI", "H"),
    ("DIR_WrtTime", "H"),
    ("DIR_WrtDate", "H"),
    ("DIR_FstClusLO", "H"),
    ("DIR_FileSize", "I"),
])

LFN_ENTRY = Struct("long name entry", [
    ("LDIR_Ord", "B"),
    ("LDIR_Name1", "10s"),
    ("LDIR_Attr", "B"),
    ("LDIR_Type", "B"),
    ("LDIR_Chksum", "B"),
    ("LDIR_Name2", "12s"),
    ("LDIR_FstClusLO", "H"),
    ("LDIR_Name3", "4s"),
])

assert MBR.size == 512 and MBR_PARTITION_RECORD.size == 16 and GPT_ENTRY.size == 128
assert GPT_HEADER.body_size == 92 and FAT_BPB_COMMON.size == 36
assert FAT32_BOOT_SECTOR.size == 512 and FAT16_BOOT_SECTOR.size == 512 and FSINFO.size == 512
assert DIR_ENTRY.size == 32 and LFN_ENTRY.size == 32


class FatKind:
    """One FAT entry format: the File Allocation Table itself is an array of these."""

    def __init__(self, bits: int, mask: int, bad: int, eoc_min: int, eoc: int):
        self.bits, self.mask, self.bad, self.eoc_min, self.eoc = bits, mask, bad, eoc_min, eoc

    def table_bytes(self, entries: int) -> int:
        return (entries * self.bits + 7) // 8

    def decode(self, raw: bytes | bytearray | memoryview, entries: int):
        """FAT bytes -> numpy uint32 array of `entries` values (upper 4 bits of FAT32 masked)."""
        import numpy as np
        if self.bits == 32:
            return np.frombuffer(raw, dtype="<u4", count=entries).astype(np.uint32) & self.mask
        if self.bits == 16:
            return np.frombuffer(raw, dtype="<u2", count=entries).astype(np.uint32)
        # FAT12: entries n (even) and n+1 share 3 bytes: n = b0 | (b1 & 0xF) << 8, n+1 = b1>>4 | b2<<4
        n3 = (entries + 1) // 2
        b = np.frombuffer(bytes(raw[:n3 * 3]).ljust(n3 * 3, b"\0"), dtype=np.uint8)
        b = b.reshape(-1, 3).astype(np.uint32)
        out = np.empty(n3 * 2, dtype=np.uint32)
        out[0::2] = b[:, 0] | ((b[:, 1] & 0x0F) << 8)
        out[1::2] = (b[:, 1] >> 4) | (b[:, 2] << 4)
        return out[:entries]

    def encode(self, table, reserved_high: bytes | None = None) -> bytes:
        """numpy values -> FAT bytes. For FAT32, `reserved_high` (the original bytes) keeps the
        4 reserved top bits of each entry as they were, as the specification asks."""
        import numpy as np
        t = np.asarray(table, dtype=np.uint32)
        if self.bits == 32:
            vals = t & self.mask
            if reserved_high is not None:
                old = np.frombuffer(reserved_high, dtype="<u4", count=len(t))
                vals = vals | (old & np.uint32(0xF0000000))
            return vals.astype("<u4").tobytes()
        if self.bits == 16:
            return t.astype("<u2").tobytes()
        if len(t) % 2:
            t = np.append(t, np.uint32(0))
        a, b = t[0::2], t[1::2]
        out = np.empty((len(a), 3), dtype=np.uint8)
        out[:, 0] = a & 0xFF
        out[:, 1] = ((a >> 8) & 0x0F) | ((b & 0x0F) << 4)
        out[:, 2] = (b >> 4) & 0xFF
        return out.tobytes()


FAT_KINDS = {
    12: FatKind(12, 0xFFF, 0xFF7, 0xFF8, 0xFFF),
    16: FatKind(16, 0xFFFF, 0xFFF7, 0xFFF8, 0xFFFF),
    32: FatKind(32, 0x0FFFFFFF, 0x0FFFFFF7, 0x0FFFFFF8, 0x0FFFFFFF),
}

"""FAT directories: entry timestamps, 32-byte entries and their long-name (LFN) records, path
names, one directory's editable state (`DirState`) and the volume label's rules.
Part of imagetool.fat (which re-exports these names).
"""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field

from . import names as N
from .errors import ImageError
from .structs import DIR_ENTRY, LFN_ENTRY

ATTR_READ_ONLY, ATTR_HIDDEN, ATTR_SYSTEM, ATTR_VOLUME_ID = 0x01, 0x02, 0x04, 0x08
ATTR_DIRECTORY, ATTR_ARCHIVE = 0x10, 0x20
ATTR_LONG_NAME = 0x0F
MAX_DIR_ENTRIES = 65536          # a directory may hold at most 2^16 32-byte entries
DEFAULT_EPOCH = 315532800        # 1980-01-01T00:00:00Z, the FAT epoch: fixed, reproducible
LAST_LFN_FLAG = 0x40


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

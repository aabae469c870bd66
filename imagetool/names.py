"""FAT names: validation, 8.3 short names (basis name + numeric tail), long-name checksums.

Follows the "Name Rules" and "Basis-Name Generation Algorithm" / "Numeric-Tail Generation
Algorithm" of Microsoft's FAT specification. Short names are stored as 11 bytes (8 + 3, space
padded). Like Windows NT and Linux, a name that is a valid 8.3 name except that its base and/or
extension are entirely lower case is stored as a short entry with the DIR_NTRes case bits
instead of a long-name entry.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import ImageError

# Characters allowed in a long name besides letters and digits are everything except these.
LFN_FORBIDDEN = set('"*/:<>?\\|') | {chr(c) for c in range(0x20)} | {"\x7f"}
# Characters additionally not allowed in a short name (they are replaced by "_").
SHORT_EXTRA_FORBIDDEN = set("+,;=[]")
MAX_LFN = 255

NTRES_LOWER_BASE = 0x08
NTRES_LOWER_EXT = 0x10


def lfn_checksum(short_name: bytes) -> int:
    """The checksum of an 11-byte short name stored in every long-name entry."""
    if len(short_name) != 11:
        raise ValueError("short name must be 11 bytes")
    s = 0
    for b in short_name:
        s = (((s & 1) << 7) | (s >> 1)) + b
        s &= 0xFF
    return s


def validate_long_name(name: str) -> str:
    """Check that `name` can be a FAT long file name; returns it unchanged."""
    if name in ("", ".", ".."):
        raise ImageError(f"invalid file name {name!r}")
    bad = sorted({c for c in name if c in LFN_FORBIDDEN})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise ImageError(f"file name {name!r} contains character(s) not allowed in FAT: {shown}")
    if name[-1] in ". ":
        raise ImageError(f"file name {name!r} may not end in a period or a space")
    if len(name.encode("utf-16-le")) // 2 > MAX_LFN:
        raise ImageError(f"file name {name[:40]!r}... is longer than {MAX_LFN} characters")
    return name


def _short_char_ok(c: str) -> bool:
    if c in LFN_FORBIDDEN or c in SHORT_EXTRA_FORBIDDEN or c in ". ":
        return False
    o = ord(c)
    return 0x20 < o < 0x7F  # we only emit ASCII into short names (code page independent)


def format_short(base: str, ext: str) -> bytes:
    raw = (base.ljust(8) + ext.ljust(3)).encode("ascii")
    assert len(raw) == 11
    if raw[0] == 0xE5:
        raw = b"\x05" + raw[1:]
    return raw


def short_to_display(raw: bytes, ntres: int = 0) -> str:
    """11-byte short name -> "NAME.EXT" (lower-cased per the NT case bits)."""
    if raw[0] == 0x05:
        raw = b"\xe5" + raw[1:]
    base = raw[:8].decode("cp437").rstrip(" ")
    ext = raw[8:].decode("cp437").rstrip(" ")
    if ntres & NTRES_LOWER_BASE:
        base = base.lower()
    if ntres & NTRES_LOWER_EXT:
        ext = ext.lower()
    return f"{base}.{ext}" if ext else base


@dataclass(frozen=True)
class ShortPlan:
    """How a long name is stored: its short name, NT case bits, and whether LFN entries are needed."""
    short: bytes
    ntres: int
    needs_lfn: bool


def exact_short(name: str) -> ShortPlan | None:
    """If `name` is itself a valid 8.3 name (in one case per part), the short entry alone."""
    if name.count(".") > 1:
        return None
    base, dot, ext = name.partition(".")
    if not base or len(base) > 8 or len(ext) > 3 or (dot and not ext):
        return None
    if not all(_short_char_ok(c) for c in base + ext):
        return None
    ntres = 0
    for part, flag in ((base, NTRES_LOWER_BASE), (ext, NTRES_LOWER_EXT)):
        if part.upper() == part:
            continue
        if part.lower() == part:
            ntres |= flag
        else:
            return None  # mixed case in one part: needs a long name
    return ShortPlan(format_short(base.upper(), ext.upper()), ntres, False)


def basis_name(name: str) -> tuple[str, str, bool]:
    """Basis-name generation: (base <= 8, ext <= 3, lossy) for a long name."""
    lossy = False
    up = name.upper()
    chars = []
    for c in up:
        if c == " ":
            lossy = True  # spaces are stripped; the name cannot round-trip through 8.3
            continue
        if c != "." and not _short_char_ok(c):
            chars.append("_")
            lossy = True
        else:
            chars.append(c)
    s = "".join(chars)
    stripped = s.lstrip(".")
    if stripped != s:
        lossy = True
    s = stripped
    if "." in s:
        i = s.rindex(".")
        base_full, ext_full = s[:i].replace(".", ""), s[i + 1:]
        if "." in s[:i]:
            lossy = True
    else:
        base_full, ext_full = s, ""
    base, ext = base_full[:8], ext_full[:3]
    if len(base_full) > 8 or len(ext_full) > 3:
        lossy = True
    if not base:
        base = "_"
        lossy = True
    return base, ext, lossy


def plan_short_name(name: str, existing_shorts: set[bytes], tails: dict | None = None) -> ShortPlan:
    """Choose the short entry for long name `name` in a directory already holding `existing_shorts`.

    `tails` (optional, per directory) remembers the last numeric tail used for each basis name, so
    thousands of similar names do not each retry ~1, ~2, ... from the start."""
    exact = exact_short(name)
    if exact is not None and exact.short not in existing_shorts:
        return exact
    base, ext, lossy = basis_name(name)
    if not lossy and exact is None:
        candidate = format_short(base, ext)
        if candidate not in existing_shorts:
            return ShortPlan(candidate, 0, True)
    start = tails.get((base, ext), 1) if tails is not None else 1
    for n in range(start, 1000000):
        tail = f"~{n}"
        cand = format_short(base[:8 - len(tail)] + tail, ext)
        if cand not in existing_shorts:
            if tails is not None:
                tails[(base, ext)] = n + 1
            return ShortPlan(cand, 0, True)
    raise ImageError(f"no free 8.3 alias for {name!r}")


def lfn_slots(name: str) -> int:
    units = len(name.encode("utf-16-le")) // 2
    return (units + 12) // 13

"""Linking: sources -> one assembly unit -> bytes at two bases -> a relocatable image.

Why one unit, not one assembly per section with a symbol resolver (the first plan): keystone's
`sym_resolver` hook computes RIP-relative displacements to resolved symbols wrongly (off by the
bytes that follow the displacement, and it drops `+ offset` addends: see
tests/test_keystone_facts.py). Inside one unit keystone resolves every label itself, and
relaxes jumps itself, so there is nothing to iterate. peasm.source gives the unit the per-file
scopes a real linker would have.

The unit is laid out as

    prelude (macros, constants) | .text | align 4K | .rdata | align 4K | .data | .bss | table

where the trailing table is `.quad` of every label and of a label before every statement: its
values, read back from the output, give the symbol map and a line table (address -> file:line)
without any support from the assembler. The table is dropped from the image.

Relocations: the unit is assembled at two image bases; every 8-byte field whose value moved by
exactly the difference is an absolute address and gets an IMAGE_REL_BASED_DIR64 entry. Any
other difference is a 32-bit absolute address, a link error (use RIP-relative addressing).
"""
from __future__ import annotations

import bisect
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from peasm import generated
from peasm.backends import AsmError, Backend, get_backend
from peasm.errors import Origin, PeasmError
from peasm.source import SECTIONS, Program, SourceSet, preprocess

DEFAULT_IMAGE_BASE = 0x4000_0000
SECTION_ALIGN = 0x1000
FIRST_RVA = 0x1000
# The second base used to find absolute addresses: page-aligned, and not a multiple of 2**32 so
# that a truncated 32-bit address differs too.
DIFF_DELTA = 0x7_6543_2000

PE_SECTIONS = {  # our section -> (PE name, characteristics)
    ".text": (".text", 0x6000_0020),   # code | execute | read
    ".rdata": (".rdata", 0x4000_0040),  # initialized data | read
    ".data": (".data", 0xC000_0040),   # initialized data | read | write (+ .bss as its tail)
}
_BSS_OK = re.compile(r"^\.(skip|space|zero|balign|p2align|align|rept|endr)\b(?!.*,\s*[^0\s])", re.I)
_ALIGN_NO_FILL = re.compile(r"^\.(balign|p2align|align)\s+[^,]+$", re.I)
_BLOCK_OPEN = re.compile(r"^\.(macro|rept|irp|irpc)\b", re.I)
_BLOCK_CLOSE = re.compile(r"^\.(endm|endr)\b", re.I)
_KS_MESSAGE = re.compile(r"\s*\(KS_ERR_[A-Z_]+\)\s*$")


@dataclass
class Section:
    name: str            # PE name
    rva: int
    data: bytes          # initialized bytes
    vsize: int           # in memory (>= len(data); .data includes .bss)
    characteristics: int


@dataclass
class Symbol:
    name: str            # as users see it
    unit_name: str
    rva: int
    size: int
    section: str
    origin: Origin
    is_global: bool


@dataclass
class LinkedImage:
    image_base: int
    entry: str
    entry_rva: int
    sections: list[Section]
    relocs: list[int]                      # RVAs of DIR64 fields
    symbols: list[Symbol]
    lines: list[tuple[int, Origin]] = field(default_factory=list)  # sorted by rva

    @property
    def size_of_image(self) -> int:
        end = max(s.rva + s.vsize for s in self.sections)
        return (end + SECTION_ALIGN - 1) // SECTION_ALIGN * SECTION_ALIGN

    def symbol(self, name: str) -> Symbol:
        for s in self.symbols:
            if s.name == name or s.unit_name == name:
                return s
        raise KeyError(name)

    def flat(self, base: int | None = None) -> bytearray:
        """The image as the loader would place it in memory (headers left zero), with the
        relocations applied for `base` (default: the image base it was linked at)."""
        mem = bytearray(self.size_of_image)
        for s in self.sections:
            mem[s.rva:s.rva + len(s.data)] = s.data
        if base is not None and base != self.image_base:
            delta = base - self.image_base
            for rva in self.relocs:
                v = int.from_bytes(mem[rva:rva + 8], "little")
                mem[rva:rva + 8] = ((v + delta) & (2**64 - 1)).to_bytes(8, "little")
        return mem

    def locate(self, rva: int) -> str:
        """`symbol+0xOFF (file:line)` for an address inside the image, for fault reports."""
        best = None
        for s in self.symbols:
            if s.rva <= rva and (best is None or s.rva >= best.rva) and not _is_local(s.name):
                best = s
        where = ""
        i = bisect.bisect_right([r for r, _ in self.lines], rva) - 1
        if i >= 0:
            where = f" ({self.lines[i][1]})"
        if best is None:
            return f"rva 0x{rva:x}{where}"
        return f"{best.name}+0x{rva - best.rva:x}{where}"

    def map_text(self) -> str:
        out = [f"# peasm map: image base 0x{self.image_base:x}, entry {self.entry} at rva 0x{self.entry_rva:x}",
               "# sections: name rva vsize rawsize",]
        for s in self.sections:
            out.append(f"section {s.name} 0x{s.rva:08x} 0x{s.vsize:x} 0x{len(s.data):x}")
        out.append("# symbols: rva size section name source")
        for s in sorted(self.symbols, key=lambda s: (s.rva, s.name)):
            flag = " global" if s.is_global else ""
            out.append(f"symbol 0x{s.rva:08x} 0x{s.size:x} {s.section} {s.name} {s.origin}{flag}")
        out.append(f"# {len(self.relocs)} DIR64 relocations")
        for r in self.relocs:
            out.append(f"reloc 0x{r:08x}")
        out.append("# lines: rva source (the first byte of each statement)")
        for rva, origin in self.lines:
            out.append(f"line 0x{rva:08x} {origin}")
        return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------


@dataclass
class Manifest:
    path: Path
    name: str
    entry: str
    sources: list[Path]
    include_dirs: list[Path]


def load_manifest(path: Path) -> Manifest:
    """A program manifest (TOML): name, entry, sources (relative to the manifest), include_dirs."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PeasmError(f"manifest not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise PeasmError(f"{path}: not a valid TOML manifest: {e}") from None
    origin = Origin(str(path), 1)
    for key, kind in (("entry", str), ("sources", list)):
        if not isinstance(data.get(key), kind):
            raise PeasmError(f"manifest needs `{key}` ({kind.__name__})", origin)
    unknown = set(data) - {"name", "entry", "sources", "include_dirs", "description"}
    if unknown:
        raise PeasmError(f"unknown manifest key(s): {', '.join(sorted(unknown))}", origin)
    base = path.parent
    sources = []
    for i, s in enumerate(data["sources"]):
        p = (base / s)
        if not p.is_file():
            line = _toml_line_of(path, s) or 1
            raise PeasmError(f"source file not found: {s}", Origin(str(path), line, f'"{s}"'))
        sources.append(p.resolve())
    return Manifest(path, data.get("name", path.stem), data["entry"], sources,
                    [(base / d).resolve() for d in data.get("include_dirs", [])])


def _toml_line_of(path: Path, needle: str) -> int | None:
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return i
    return None


# ----------------------------------------------------------------------------------------


@dataclass
class _Unit:
    statements: list[str]
    origins: list[Origin | None]
    cuttable: list[bool]              # a prefix may end before this statement
    table: list[str]                  # unit names whose addresses the table records
    line_labels: dict[str, Origin]


def _build_unit(program: Program) -> _Unit:
    stmts: list[str] = []
    origins: list[Origin | None] = []
    table: list[str] = []
    line_labels: dict[str, Origin] = {}

    def add(text: str, origin: Origin | None = None) -> None:
        stmts.append(text)
        origins.append(origin)

    for s in program.prelude:
        add(s.text, s.origin)
    for sec in SECTIONS:
        marker = f"__psec_{sec[1:]}"
        if sec == ".bss":
            add(".balign 64, 0")
        elif sec != ".text":
            add(".balign 4096, 0")
        add(f"{marker}:")
        table.append(marker)
        for s in program.sections[sec]:
            if sec == ".bss" and not s.text.endswith(":") and not _BSS_OK.match(s.text):
                raise PeasmError("only labels, .skip/.zero/.space and alignment may stand in .bss", s.origin)
            if s.addressable:
                label = f"__pline{len(line_labels)}"
                line_labels[label] = s.origin
                table.append(label)
                add(f"{label}:", s.origin)
            text = s.text
            if sec != ".text" and _ALIGN_NO_FILL.match(text):
                text += ", 0"         # data pads with zeros: keystone and gas fill with different nops
            add(text, s.origin)
        add(f"{marker}_end:")
        table.append(f"{marker}_end")
    table.extend(program.labels)
    depth, cuttable = 0, []
    for text in stmts:
        cuttable.append(depth == 0)
        if _BLOCK_OPEN.match(text):
            depth += 1
        elif _BLOCK_CLOSE.match(text):
            depth = max(0, depth - 1)
    return _Unit(stmts, origins, cuttable, table, line_labels)


def _table_statements(table: list[str]) -> list[str]:
    out = [".balign 8, 0"]
    for i in range(0, len(table), 16):
        out.append(".quad " + ", ".join(table[i:i + 16]))
    return out


def _assemble(backend: Backend, unit: _Unit, program: Program, base: int) -> tuple[bytes, dict[str, int]]:
    statements = unit.statements + _table_statements(unit.table)
    try:
        out = backend.assemble(statements, base)
    except AsmError as e:
        raise _locate_error(backend, unit, program, base, e) from None
    n = len(unit.table)
    raw = out[len(out) - 8 * n:]
    addrs = {name: int.from_bytes(raw[8 * i:8 * i + 8], "little") - base
             for i, name in enumerate(unit.table)}
    return out[:len(out) - 8 * n], addrs


def _token_in(name: str, text: str) -> bool:
    return re.search(r"(?<![\w.$@])" + re.escape(name) + r"(?![\w.$@])", text) is not None


def _locate_error(backend: Backend, unit: _Unit, program: Program, base: int, err: AsmError) -> PeasmError:
    """Turn a backend failure into `file:line: problem`."""
    if err.missing:
        name = err.missing[0]
        for text, origin in zip(unit.statements, unit.origins):
            if origin is not None and _token_in(name, text):
                pretty = program.pretty(name)
                owner = next((o for u, (n, o) in program.private.items() if n.endswith(":" + name)), None)
                hint = f" (defined at {owner} but not .global there)" if owner else ""
                return PeasmError(f"undefined symbol {pretty!r}{hint}", origin)
        return PeasmError(f"undefined symbol {program.pretty(name)!r}")
    message = _KS_MESSAGE.sub("", err.message).strip() or "assembly failed"
    message = message[0].lower() + message[1:] if message[:1].isupper() and message[1:2].islower() else message
    if err.index is not None and 0 <= err.index < len(unit.statements) and unit.origins[err.index]:
        return PeasmError(message, unit.origins[err.index])
    # Bisect prefixes (cut only between top-level statements) for the first failing one.
    cuts = [i for i in range(1, len(unit.statements) + 1)
            if i == len(unit.statements) or unit.cuttable[i]]

    def fails(k: int) -> bool:
        try:
            backend.assemble(unit.statements[:k], base, lenient=True)
            return False
        except AsmError:
            return True

    if not fails(cuts[-1]):
        return PeasmError(message)
    lo, hi = 0, len(cuts) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if fails(cuts[mid]):
            hi = mid
        else:
            lo = mid + 1
    k = cuts[lo]
    start = cuts[lo - 1] if lo > 0 else 0
    origin = next((unit.origins[i] for i in range(k - 1, start - 1, -1) if unit.origins[i]), None)
    return PeasmError(message, origin)


def link(sources: list[Path], entry: str, *, backend: Backend | str = "keystone",
         include_dirs: list[Path] = (), image_base: int = DEFAULT_IMAGE_BASE,
         display_root: Path | None = None) -> LinkedImage:
    """Link a program. Raises PeasmError with a location for every user error."""
    if isinstance(backend, str):
        backend = get_backend(backend)
    source_set = SourceSet(include_dirs, generated.includes(),
                           display_root if display_root is not None else Path.cwd())
    program = preprocess([Path(s) for s in sources], source_set)
    if entry not in program.globals:
        hint = ""
        if any(n.endswith(":" + entry) for n, _ in program.private.values()):
            hint = " (it is defined but not declared .global)"
        raise PeasmError(f"entry symbol {entry!r} is not defined{hint}")
    unit = _build_unit(program)

    base1 = image_base + FIRST_RVA
    bytes1, addrs = _assemble(backend, unit, program, base1)
    try:
        bytes2, addrs2 = _assemble(backend, unit, program, base1 + DIFF_DELTA)
    except PeasmError as e:
        # It assembled at the low base: what fails above 4 GiB is a 32-bit absolute address.
        raise PeasmError("32-bit absolute address (not relocatable; use RIP-relative "
                         "addressing, or a .quad for a data pointer)", e.origin) from None
    if len(bytes1) != len(bytes2) or addrs != addrs2:
        moved = next((n for n in unit.table if addrs.get(n) != addrs2.get(n)), None)
        origin = unit.line_labels.get(moved) if moved else None
        raise PeasmError("code size depends on the load address (an absolute address in an "
                         "instruction? use RIP-relative addressing)", _line_before(unit, addrs, addrs.get(moved, 0)) or origin)
    relocs = _find_relocations(bytes1, bytes2, unit, addrs)

    sec_rva = {sec: addrs[f"__psec_{sec[1:]}"] + FIRST_RVA for sec in SECTIONS}
    sec_end = {sec: addrs[f"__psec_{sec[1:]}_end"] + FIRST_RVA for sec in SECTIONS}
    sections = []
    for sec in (".text", ".rdata", ".data"):
        start, end = sec_rva[sec], sec_end[sec]
        vend = sec_end[".bss"] if sec == ".data" else end
        if vend == start:
            continue
        data = bytes1[start - FIRST_RVA:end - FIRST_RVA]
        pe_name, chars = PE_SECTIONS[sec]
        sections.append(Section(pe_name, start, data, vend - start, chars))
    if not sections:
        raise PeasmError("the program is empty")
    if program.labels[entry].section != ".text":
        raise PeasmError(f"entry symbol {entry!r} is not in .text", program.labels[entry].origin)

    symbols = _symbols(program, addrs, sec_end)
    lines = sorted(((addrs[n] + FIRST_RVA, o) for n, o in unit.line_labels.items()), key=lambda t: t[0])
    return LinkedImage(image_base, entry, addrs[entry] + FIRST_RVA, sections,
                       [r + FIRST_RVA for r in relocs], symbols, lines)


def _line_before(unit: _Unit, addrs: dict[str, int], offset: int) -> Origin | None:
    best, best_off = None, -1
    for name, origin in unit.line_labels.items():
        a = addrs.get(name, -1)
        if best_off < a <= offset:
            best, best_off = origin, a
    return best


def _find_relocations(b1: bytes, b2: bytes, unit: _Unit, addrs: dict[str, int]) -> list[int]:
    """Offsets (from the unit start) of 8-byte fields that hold absolute addresses."""
    relocs, i, n = [], 0, len(b1)
    while i < n:
        if b1[i] == b2[i]:
            i += 1
            continue
        # The base delta's low 12 bits are zero, so a relocated field starts 1 or 2 bytes
        # before its first differing byte.
        for start in (i - 1, i - 2, i):
            if 0 <= start <= n - 8:
                v1 = int.from_bytes(b1[start:start + 8], "little")
                v2 = int.from_bytes(b2[start:start + 8], "little")
                if (v2 - v1) % 2**64 == DIFF_DELTA:
                    relocs.append(start)
                    i = start + 8
                    break
        else:
            raise PeasmError("32-bit absolute address (not relocatable; use RIP-relative "
                             "addressing, or a .quad for a data pointer)", _line_before(unit, addrs, i))
    return relocs


def _symbols(program: Program, addrs: dict[str, int], sec_end: dict[str, int]) -> list[Symbol]:
    by_section: dict[str, list[tuple[int, str]]] = {s: [] for s in SECTIONS}
    for name, label in program.labels.items():
        by_section[label.section].append((addrs[name] + FIRST_RVA, name))
    out = []
    for sec, items in by_section.items():
        items.sort()
        for k, (rva, name) in enumerate(items):
            label = program.labels[name]
            # a function's size runs to the next function; a local label's to the next label
            local = _is_local(label.pretty)
            nxt = next((r for r, n in items[k + 1:]
                        if r > rva and (local or not _is_local(program.labels[n].pretty))), sec_end[sec])
            out.append(Symbol(label.pretty, name, rva, nxt - rva, sec, label.origin, label.is_global))
    return out


def _is_local(pretty: str) -> bool:
    return ".L" in pretty or "#" in pretty


def assemble_flat(path: Path, base: int = 0, *, backend: Backend | str = "keystone",
                  include_dirs: list[Path] = ()) -> tuple[bytes, dict[str, int]]:
    """One source file to a flat binary at `base` (sections back to back, page-aligned, with
    .bss zero-filled) and its global symbols' addresses. For `peasm asm` and the runners."""
    if isinstance(backend, str):
        backend = get_backend(backend)
    source_set = SourceSet(include_dirs, generated.includes(), Path.cwd())
    program = preprocess([Path(path)], source_set)
    unit = _build_unit(program)
    data, addrs = _assemble(backend, unit, program, base)
    end = addrs["__psec_bss_end"]
    data = data + bytes(max(0, end - len(data)))
    return bytes(data[:end]), {n: base + addrs[n] for n in program.globals}

"""Load a PE32+ EFI image (what users run) back into a LinkedImage for the hosted runners.

Sections, entry point and DIR64 relocations come from the PE (parsed by LIEF); symbols and
the line table come from the map peasm wrote beside it, when there is one, so that a fault
can be reported as `symbol+offset (file:line)`.
"""
from __future__ import annotations

from pathlib import Path

import lief

from peasm.errors import Origin, PeasmError
from peasm.linker import LinkedImage, Section, Symbol


def load_pe(path: Path, map_path: Path | None = None) -> LinkedImage:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise PeasmError(f"cannot read {path}: {e.strerror}") from None
    pe = lief.PE.parse(list(data)) if data[:2] == b"MZ" else None
    if pe is None:
        raise PeasmError(f"{path}: not a PE image")
    if pe.header.machine != lief.PE.Header.MACHINE_TYPES.AMD64:
        raise PeasmError(f"{path}: not an x86-64 image ({pe.header.machine})")
    sections = []
    for s in pe.sections:
        if s.name == ".reloc":
            continue
        content = bytes(s.content)[:max(s.virtual_size, 0) or len(s.content)]
        sections.append(Section(s.name, s.virtual_address, content, max(s.virtual_size, len(content)),
                                s.characteristics))
    relocs = sorted(e.address for r in pe.relocations for e in r.entries
                    if e.type == lief.PE.RelocationEntry.BASE_TYPES.DIR64)
    entry_rva = pe.optional_header.addressof_entrypoint
    symbols, lines = [], []
    map_path = map_path or path.with_suffix(".map")
    if map_path.is_file():
        symbols, lines = parse_map(map_path.read_text(encoding="utf-8", errors="replace"))
    entry = next((s.name for s in symbols if s.rva == entry_rva and s.is_global), "entry")
    return LinkedImage(pe.optional_header.imagebase, entry, entry_rva, sections, relocs, symbols, lines)


def _origin(text: str) -> Origin:
    file, _, line = text.rpartition(":")
    return Origin(file, int(line) if line.isdigit() else 0)


def parse_map(text: str) -> tuple[list[Symbol], list[tuple[int, Origin]]]:
    symbols, lines = [], []
    for ln in text.splitlines():
        parts = ln.split()
        if len(parts) >= 6 and parts[0] == "symbol":
            _, rva, size, section, name, source, *flags = parts
            symbols.append(Symbol(name, name, int(rva, 16), int(size, 16), section, _origin(source),
                                  "global" in flags))
        elif len(parts) == 3 and parts[0] == "line":
            lines.append((int(parts[1], 16), _origin(parts[2])))
    return symbols, lines

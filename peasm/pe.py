"""PE32+ output through LIEF; the only module that talks to LIEF.

LIEF 1.0 cannot construct a PE from nothing, so we write a header-only PE32+ skeleton from the
declarations below (AMD64, EFI application, no sections), let LIEF parse it, add our sections
and base relocations, and write. Fields LIEF does not maintain itself (SizeOfCode and friends)
are set here; every image is parsed back and checked before it is returned.
"""
from __future__ import annotations

import struct

import lief

from peasm.errors import PeasmError
from peasm.linker import FIRST_RVA, SECTION_ALIGN, LinkedImage

IMAGE_FILE_MACHINE_AMD64 = 0x8664
IMAGE_SUBSYSTEM_EFI_APPLICATION = 10
FILE_ALIGN = 0x200
HEADERS_SIZE = 0x400  # room for the headers and up to 12 section headers
IMAGE_FILE_EXECUTABLE_IMAGE = 0x0002
IMAGE_FILE_LARGE_ADDRESS_AWARE = 0x0020
DLL_HIGH_ENTROPY_VA, DLL_DYNAMIC_BASE, DLL_NX_COMPAT = 0x20, 0x40, 0x100
OPTIONAL_HEADER_SIZE = 112 + 16 * 8  # PE32+ fixed part + 16 data directories
PE_OFFSET = 0x40

# (format, name) in file order; the skeleton is packed from these, so field offsets live in
# one place.
DOS_HEADER = [("2s", "e_magic"), ("58x", None), ("I", "e_lfanew")]
COFF_HEADER = [("4s", "Signature"), ("H", "Machine"), ("H", "NumberOfSections"),
               ("I", "TimeDateStamp"), ("I", "PointerToSymbolTable"), ("I", "NumberOfSymbols"),
               ("H", "SizeOfOptionalHeader"), ("H", "Characteristics")]
OPTIONAL_HEADER = [("H", "Magic"), ("B", "MajorLinkerVersion"), ("B", "MinorLinkerVersion"),
                   ("I", "SizeOfCode"), ("I", "SizeOfInitializedData"),
                   ("I", "SizeOfUninitializedData"), ("I", "AddressOfEntryPoint"),
                   ("I", "BaseOfCode"), ("Q", "ImageBase"), ("I", "SectionAlignment"),
                   ("I", "FileAlignment"), ("H", "MajorOperatingSystemVersion"),
                   ("H", "MinorOperatingSystemVersion"), ("H", "MajorImageVersion"),
                   ("H", "MinorImageVersion"), ("H", "MajorSubsystemVersion"),
                   ("H", "MinorSubsystemVersion"), ("I", "Win32VersionValue"),
                   ("I", "SizeOfImage"), ("I", "SizeOfHeaders"), ("I", "CheckSum"),
                   ("H", "Subsystem"), ("H", "DllCharacteristics"), ("Q", "SizeOfStackReserve"),
                   ("Q", "SizeOfStackCommit"), ("Q", "SizeOfHeapReserve"),
                   ("Q", "SizeOfHeapCommit"), ("I", "LoaderFlags"), ("I", "NumberOfRvaAndSizes"),
                   ("128x", None)]


def _pack(fields: list[tuple[str, str | None]], values: dict) -> bytes:
    fmt = "<" + "".join(f for f, _ in fields)
    return struct.pack(fmt, *[values.get(n, 0) for f, n in fields if n is not None])


def skeleton(image_base: int) -> bytes:
    """A valid, section-less PE32+ EFI application header."""
    dos = _pack(DOS_HEADER, {"e_magic": b"MZ", "e_lfanew": PE_OFFSET})
    coff = _pack(COFF_HEADER, {
        "Signature": b"PE\0\0", "Machine": IMAGE_FILE_MACHINE_AMD64,
        "SizeOfOptionalHeader": OPTIONAL_HEADER_SIZE,
        "Characteristics": IMAGE_FILE_EXECUTABLE_IMAGE | IMAGE_FILE_LARGE_ADDRESS_AWARE})
    opt = _pack(OPTIONAL_HEADER, {
        "Magic": 0x20B, "ImageBase": image_base, "SectionAlignment": SECTION_ALIGN,
        "FileAlignment": FILE_ALIGN, "SizeOfImage": FIRST_RVA, "SizeOfHeaders": HEADERS_SIZE,
        "Subsystem": IMAGE_SUBSYSTEM_EFI_APPLICATION,
        "DllCharacteristics": DLL_HIGH_ENTROPY_VA | DLL_DYNAMIC_BASE | DLL_NX_COMPAT,
        "SizeOfStackReserve": 0x10000, "SizeOfStackCommit": 0x10000,
        "SizeOfHeapReserve": 0x10000, "SizeOfHeapCommit": 0x10000, "NumberOfRvaAndSizes": 16})
    assert len(opt) == OPTIONAL_HEADER_SIZE
    head = dos + coff + opt
    return head + bytes(HEADERS_SIZE - len(head))


def build_pe(image: LinkedImage) -> bytes:
    """The PE32+ bytes of a linked image."""
    binary = lief.PE.parse(list(skeleton(image.image_base)))
    if binary is None:  # pragma: no cover - our own skeleton
        raise PeasmError("internal error: LIEF rejected the PE skeleton")
    placed = {}
    for s in image.sections:
        section = lief.PE.Section(s.name)
        section.content = list(s.data)
        # LIEF writes an empty section unless the sizes are set by hand.
        section.virtual_size = s.vsize
        section.characteristics = s.characteristics
        added = binary.add_section(section)
        if added.virtual_address != s.rva:
            raise PeasmError(f"internal error: LIEF placed {s.name} at 0x{added.virtual_address:x}, "
                             f"linked for 0x{s.rva:x}")
        placed[s.name] = added
    for page in sorted({r & ~0xFFF for r in image.relocs}):
        block = lief.PE.Relocation()
        block.virtual_address = page
        for r in image.relocs:
            if r & ~0xFFF == page:
                entry = lief.PE.RelocationEntry()
                entry.position = r & 0xFFF
                entry.type = lief.PE.RelocationEntry.BASE_TYPES.DIR64
                block.add_entry(entry)
        binary.add_relocation(block)
    opt = binary.optional_header
    opt.addressof_entrypoint = image.entry_rva
    code = [s for s in image.sections if s.characteristics & 0x20]
    opt.sizeof_code = sum(_file_aligned(len(s.data)) for s in code)
    opt.baseof_code = code[0].rva if code else 0
    opt.sizeof_initialized_data = sum(_file_aligned(len(s.data)) for s in image.sections
                                      if not s.characteristics & 0x20)
    config = lief.PE.Builder.config_t()
    config.relocations = bool(image.relocs)
    data = bytes(binary.write_to_bytes(config)) if hasattr(binary, "write_to_bytes") else None
    if data is None:  # pragma: no cover - older LIEF
        raise PeasmError("this LIEF cannot write to memory; upgrade LIEF")
    check_pe(data, image)
    return data


def _file_aligned(n: int) -> int:
    return (n + FILE_ALIGN - 1) // FILE_ALIGN * FILE_ALIGN


def check_pe(data: bytes, image: LinkedImage) -> None:
    """Parse the written bytes back and check what the loader will rely on."""
    pe = lief.PE.parse(list(data))
    problems = []
    if pe is None:
        raise PeasmError("internal error: the written PE does not parse")
    if pe.header.machine != lief.PE.Header.MACHINE_TYPES.AMD64:
        problems.append("machine is not AMD64")
    if int(pe.optional_header.subsystem.value) != IMAGE_SUBSYSTEM_EFI_APPLICATION:
        problems.append("subsystem is not EFI application")
    if pe.optional_header.addressof_entrypoint != image.entry_rva:
        problems.append("entry point moved")
    found = sorted(e.address for r in pe.relocations for e in r.entries
                   if e.type == lief.PE.RelocationEntry.BASE_TYPES.DIR64)
    if found != sorted(image.relocs):
        problems.append(f"{len(found)} DIR64 relocations written, {len(image.relocs)} expected")
    for s in image.sections:
        got = pe.get_section(s.name)
        if got is None or got.virtual_address != s.rva or bytes(got.content)[:len(s.data)] != s.data:
            problems.append(f"section {s.name} was not written as linked")
    if problems:
        raise PeasmError("internal error: PE check failed: " + "; ".join(problems))


def describe(data: bytes) -> dict:
    """What `peasm inspect` shows: header facts, sections, relocations."""
    pe = lief.PE.parse(list(data))
    if pe is None:
        raise PeasmError("not a PE file (LIEF cannot parse it)")
    return {
        "machine": str(pe.header.machine).split(".")[-1],
        "subsystem": str(pe.optional_header.subsystem).split(".")[-1],
        "image_base": pe.optional_header.imagebase,
        "entry_rva": pe.optional_header.addressof_entrypoint,
        "size_of_image": pe.optional_header.sizeof_image,
        "sections": [(s.name, s.virtual_address, s.virtual_size, s.sizeof_raw_data, s.characteristics)
                     for s in pe.sections],
        "relocations": sorted((e.address, str(e.type).split(".")[-1]) for r in pe.relocations
                              for e in r.entries if str(e.type).split(".")[-1] != "ABS"),
    }

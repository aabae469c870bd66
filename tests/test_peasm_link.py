"""peasm: preprocessing, linking, relocations and the PE it writes (LIEF as the judge)."""
from __future__ import annotations

import lief
import pytest

from peasm.linker import DEFAULT_IMAGE_BASE, link
from peasm.pe import build_pe
from peasm.programs import default_manifest, manifest_path
from tests.peasm_helpers import manifest, peasm, write

ENTRY = """
.section .text
.global efi_main
efi_main:
    xor eax, eax
    ret
"""


def test_default_link_is_reproducible_and_an_amd64_efi_application(tmp_path):
    a, b = tmp_path / "a.efi", tmp_path / "b.efi"
    assert peasm("link", "-o", a).returncode == 0
    assert peasm("link", "-o", b).returncode == 0
    assert a.read_bytes() == b.read_bytes()
    pe = lief.PE.parse(str(a))
    assert pe.header.machine == lief.PE.Header.MACHINE_TYPES.AMD64
    assert pe.optional_header.subsystem == lief.PE.OptionalHeader.SUBSYSTEM.EFI_APPLICATION
    assert pe.optional_header.magic == lief.PE.PE_TYPE.PE32_PLUS
    text = pe.get_section(".text")
    assert text is not None and text.virtual_address <= pe.optional_header.addressof_entrypoint
    assert pe.optional_header.addressof_entrypoint < text.virtual_address + text.virtual_size
    for s in pe.sections:
        assert s.virtual_address % 0x1000 == 0


def test_quad_labels_become_dir64_relocations_and_inspect_shows_them(tmp_path):
    write(tmp_path, "main.s", ENTRY + """
    .section .data
    .global table
    table:
        .quad efi_main, message + 3, 0x1234
    pointer:
        .quad table
    .section .rdata
    message: .asciz "hi"
    .section .text
    get_table:
        movabs rax, table
        ret
    """)
    m = manifest(tmp_path, ["main.s"])
    out, mapf = tmp_path / "p.efi", tmp_path / "p.map"
    r = peasm("link", m, "-o", out, "--map", mapf)
    assert r.returncode == 0, r.stderr
    image = link([tmp_path / "main.s"], "efi_main")
    table = image.symbol("table")
    getter = image.symbol("main.s:get_table")
    expected = {table.rva, table.rva + 8, image.symbol("main.s:pointer").rva, getter.rva + 2}
    assert set(image.relocs) == expected          # the 0x1234 constant is not relocated
    # values are absolute addresses at the linked base, and move with the load address
    flat = image.flat()
    message = image.symbol("main.s:message").rva
    assert int.from_bytes(flat[table.rva + 8:table.rva + 16], "little") == DEFAULT_IMAGE_BASE + message + 3
    moved = image.flat(base=0x7000_0000)
    assert int.from_bytes(moved[table.rva:table.rva + 8], "little") == 0x7000_0000 + image.entry_rva
    assert int.from_bytes(moved[table.rva + 16:table.rva + 24], "little") == 0x1234
    pe = lief.PE.parse(str(out))
    written = sorted(e.address for r in pe.relocations for e in r.entries
                     if e.type == lief.PE.RelocationEntry.BASE_TYPES.DIR64)
    assert written == sorted(expected)
    shown = peasm("inspect", out)
    assert shown.returncode == 0
    for rva in expected:
        assert f"0x{rva:08x} DIR64" in shown.stdout
    assert "table" in shown.stdout and "main.s:" in shown.stdout  # symbols from the map beside it


def test_private_symbols_are_per_file_and_globals_are_shared(tmp_path):
    write(tmp_path, "a.s", ENTRY + """
    .extern helper
    .equ SIZE, 4
    .section .data
    buffer: .long SIZE
    .section .text
    call_helper:
        call helper
        mov eax, dword ptr [rip + buffer]
        ret
    """)
    write(tmp_path, "b.s", """
    .equ SIZE, 8
    .section .data
    buffer: .long SIZE
    .section .text
    .global helper
    helper:
        mov eax, dword ptr [rip + buffer]
        ret
    """)
    image = link([tmp_path / "a.s", tmp_path / "b.s"], "efi_main")
    flat = image.flat()
    a_buf, b_buf = image.symbol("a.s:buffer"), image.symbol("b.s:buffer")
    assert a_buf.rva != b_buf.rva
    assert int.from_bytes(flat[a_buf.rva:a_buf.rva + 4], "little") == 4
    assert int.from_bytes(flat[b_buf.rva:b_buf.rva + 4], "little") == 8


def test_local_labels_are_scoped_per_function_and_numeric_labels_work(tmp_path):
    write(tmp_path, "m.s", ENTRY + """
    first:
        mov ecx, 3
    .Lloop:
        dec ecx
        jnz .Lloop
    1:  jmp 1f
    1:  jmp 1b
        ret
    second:
        mov ecx, 3
    .Lloop:
        dec ecx
        jnz .Lloop
        ret
    """)
    image = link([tmp_path / "m.s"], "efi_main")
    names = {s.name for s in image.symbols}
    assert {"m.s:first.Lloop", "m.s:second.Lloop"} <= names or \
        {"first.Lloop", "second.Lloop"} <= {n.split(":")[-1] for n in names}
    flat = image.flat()
    first = image.symbol("m.s:first").rva
    # mov ecx,3 (5) ; dec ecx (2) ; jnz back to .Lloop: 75 fc
    assert flat[first + 7:first + 9] == bytes([0x75, 0xFC])
    # 1: jmp 1f -> the next "1:" two bytes on: eb 00 ; then jmp 1b -> itself: eb fe
    assert flat[first + 9:first + 13] == bytes([0xEB, 0x00, 0xEB, 0xFE])


def test_ucs2_directive_and_uefi_offsets(tmp_path):
    write(tmp_path, "m.s", ENTRY + """
    .include "uefi.inc"
    .section .rdata
    .global msg, off
    msg: .ucs2 "Hé\\r\\n"
    off: .long EFI_SYSTEM_TABLE_ConOut, EFI_BOOT_SERVICES_SetWatchdogTimer, EFI_FILE_INFO_FileName
    """)
    image = link([tmp_path / "m.s"], "efi_main")
    flat = image.flat()
    msg = image.symbol("msg").rva
    assert bytes(flat[msg:msg + 10]) == "Hé\r\n\0".encode("utf-16-le")
    off = image.symbol("off").rva
    vals = [int.from_bytes(flat[off + 4 * i:off + 4 * i + 4], "little") for i in range(3)]
    assert vals == [64, 256, 80]   # UEFI spec: ConOut, SetWatchdogTimer, FileName


def test_shipped_manifests_exist():
    assert default_manifest().is_file()
    assert manifest_path("hello") is not None


def test_build_pe_checks_itself(tmp_path):
    write(tmp_path, "m.s", ENTRY)
    data = build_pe(link([tmp_path / "m.s"], "efi_main"))
    assert data[:2] == b"MZ"
    assert len(data) % 0x200 == 0


@pytest.mark.parametrize("base", [0, 0x10000])
def test_asm_command_writes_a_flat_binary(tmp_path, base):
    src = write(tmp_path, "k.s", """
    .global f
    f:  lea rax, [rip + data]
        ret
    .section .rdata
    data: .long 7
    """)
    out = tmp_path / "k.bin"
    r = peasm("asm", src, "-o", out, "--base", hex(base))
    assert r.returncode == 0, r.stderr
    blob = out.read_bytes()
    assert blob[:3] == bytes([0x48, 0x8D, 0x05])
    disp = int.from_bytes(blob[3:7], "little", signed=True)
    assert blob[7 + disp:7 + disp + 4] == (7).to_bytes(4, "little")  # rdata is a page on
    assert 7 + disp == 0x1000


@pytest.mark.parametrize("directive", [".balign 16", ".p2align 4", ".align 16"])
def test_data_alignment_pads_with_zeros(tmp_path, directive):
    """Alignment in a data section pads with zeros, whatever the backend: left to themselves
    keystone and gas fill with nops, and different ones (the binutils cross-check caught it)."""
    write(tmp_path, "m.s", ENTRY + f"""
    .section .rdata
    .global a, b
    a: .byte 1
    {directive}
    b: .byte 2
    """)
    image = link([tmp_path / "m.s"], "efi_main")
    flat = image.flat()
    a, b = image.symbol("a").rva, image.symbol("b").rva
    assert b % 16 == 0 and b > a + 1
    assert bytes(flat[a:b + 1]) == b"\x01" + bytes(b - a - 1) + b"\x02"

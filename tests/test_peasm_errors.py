"""Bad input to peasm: one line naming file:line and the problem, exit status 1, no traceback."""
from __future__ import annotations

import pytest

from tests.peasm_helpers import assert_one_line_error, manifest, peasm, write

ENTRY = """
.section .text
.global efi_main
efi_main:
    xor eax, eax
    ret
"""

# (name, extra source appended to a working file, expected line in m.s, text expected in the message)
CASES = [
    ("bad mnemonic", "    movz eax, 1\n", 6, "mnemonic"),
    ("bad operand", "    mov rax, [rax*3]\n", 6, "operand"),
    ("undefined symbol", "    call nowhere\n", 6, "undefined symbol 'nowhere'"),
    ("undefined symbol after a big constant",
     ".equ BIG, 0x40000000\n    cmp rcx, BIG\n    lea r12, [rip + ghost]\n", 8,
     "undefined symbol 'ghost'"),
    ("undefined local label", "    jmp .Lnowhere\n", 6, "undefined local label .Lnowhere"),
    ("numeric label not found", "    jmp 3b\n", 6, "no local label 3"),
    ("32-bit absolute address", ".section .data\nv: .long 1\n.section .text\nf:\n    mov ecx, dword ptr [v]\n", 10, "32-bit absolute"),
    ("keystone LLVM ERROR", "    mov ah, byte ptr [r8]\n", 6, "LLVM ERROR"),
    ("missing include", '.include "nothere.inc"\n', 6, "include file not found"),
    ("unknown section", ".section .weird\n", 6, "unknown section"),
    ("duplicate label", "efi_main2:\nefi_main2:\n", 7, "defined twice"),
    ("data in bss", ".section .bss\n.long 5\n", 7, ".bss"),
    ("unclosed macro", ".macro M\n    nop\n", 6, "never closed"),
    ("bad string escape", '.section .rdata\ns: .ucs2 "a\\q"\n', 7, "escape"),
]


@pytest.mark.parametrize("name,extra,line,needle", CASES, ids=[c[0] for c in CASES])
def test_source_errors_name_file_line_and_problem(tmp_path, name, extra, line, needle):
    write(tmp_path, "m.s", ENTRY.lstrip("\n") + extra)
    m = manifest(tmp_path, ["m.s"])
    r = peasm("link", m, "-o", tmp_path / "x.efi")
    msg = assert_one_line_error(r, needle)
    assert f"m.s:{line}:" in msg, msg
    assert not (tmp_path / "x.efi").exists()


def test_duplicate_global_names_both_places(tmp_path):
    write(tmp_path, "a.s", ENTRY + ".global twice\ntwice: ret\n")
    write(tmp_path, "b.s", ".global twice\ntwice: ret\n")
    r = peasm("link", manifest(tmp_path, ["a.s", "b.s"]), "-o", tmp_path / "x.efi")
    assert_one_line_error(r, "duplicate symbol 'twice'", "b.s:2:", "a.s:")


def test_symbol_of_another_file_that_is_not_global(tmp_path):
    write(tmp_path, "a.s", ENTRY + "    call helper\n")
    write(tmp_path, "b.s", "helper: ret\n")
    r = peasm("link", manifest(tmp_path, ["a.s", "b.s"]), "-o", tmp_path / "x.efi")
    assert_one_line_error(r, "a.s:6:", "undefined symbol 'helper'", "b.s:1", "not .global")


def test_extern_that_nobody_defines(tmp_path):
    write(tmp_path, "a.s", ENTRY + ".extern ghost\n")
    r = peasm("link", manifest(tmp_path, ["a.s"]), "-o", tmp_path / "x.efi")
    assert_one_line_error(r, "a.s:6:", "undefined symbol 'ghost' declared .extern")


def test_manifest_naming_a_missing_file(tmp_path):
    write(tmp_path, "a.s", ENTRY)
    m = write(tmp_path, "prog.toml", 'entry = "efi_main"\nsources = [\n  "a.s",\n  "gone.s",\n]\n')
    r = peasm("link", m, "-o", tmp_path / "x.efi")
    assert_one_line_error(r, "prog.toml:4:", "source file not found: gone.s")


def test_manifest_errors(tmp_path):
    assert_one_line_error(peasm("link", tmp_path / "none.toml", "-o", tmp_path / "x.efi"), "manifest not found")
    bad = write(tmp_path, "bad.toml", "entry = \n")
    assert_one_line_error(peasm("link", bad, "-o", tmp_path / "x.efi"), "not a valid TOML manifest")
    noentry = write(tmp_path, "noentry.toml", 'sources = ["a.s"]\n')
    assert_one_line_error(peasm("link", noentry, "-o", tmp_path / "x.efi"), "needs `entry`")


def test_entry_symbol_missing_or_private(tmp_path):
    write(tmp_path, "a.s", "main: ret\n")
    r = peasm("link", manifest(tmp_path, ["a.s"], entry="main"), "-o", tmp_path / "x.efi")
    assert_one_line_error(r, "entry symbol 'main'", "not declared .global")


def test_asm_command_errors(tmp_path):
    src = write(tmp_path, "k.s", "f:\n    nop\n    bogus rax\n")
    assert_one_line_error(peasm("asm", src, "-o", tmp_path / "k.bin"), "k.s:3:")
    assert_one_line_error(peasm("asm", tmp_path / "missing.s", "-o", tmp_path / "k.bin"), "not found")
    r = peasm("asm", src, "-o", tmp_path / "k.bin", "--base", "zz")
    assert r.returncode != 0 and "Traceback" not in r.stderr and "not a number" in r.stderr


def test_inspect_of_a_non_pe_file(tmp_path):
    junk = tmp_path / "junk.efi"
    junk.write_bytes(b"not a pe file at all")
    assert_one_line_error(peasm("inspect", junk), "not a PE")


def test_unknown_backend(tmp_path):
    write(tmp_path, "a.s", ENTRY)
    r = peasm("link", manifest(tmp_path, ["a.s"]), "-o", tmp_path / "x.efi", "--backend", "nasm")
    # --backend is a choice: click's usage error (status 2) names the value and the choices
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "'nasm' is not one of 'gas', 'keystone'" in r.stderr

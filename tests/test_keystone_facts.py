"""Facts about keystone 0.9.2 that shaped peasm's design (see peasm/linker.py and
peasm/backends/keystone_backend.py).

Each experiment runs in a fresh interpreter: once any Ks object in a process has had a
`sym_resolver`, alignment is broken for every later assembly in that process, which would
poison other tests. If one of these starts failing, keystone changed and a workaround may no
longer be needed.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

PRELUDE = """
import json, sys
from keystone import KS_ARCH_X86, KS_MODE_64, Ks
def asm(text, base, resolver=None):
    ks = Ks(KS_ARCH_X86, KS_MODE_64)
    if resolver is not None:
        ks.sym_resolver = resolver
    return ks.asm(text, base, as_bytes=True)[0]
"""


def _run(body: str):
    code = PRELUDE + textwrap.dedent(body)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_resolver_symbols_get_wrong_rip_relative_displacements():
    targets = _run("""
        def resolver(name, value):
            value[0] = 0x5000
            return name == b"ext"
        out = []
        for text in ("lea rcx, [rip + ext]", "mov dword ptr [rip + ext], 5"):
            code = asm(text, 0x1000, resolver)
            disp = int.from_bytes(code[2 if text.startswith("mov") else 3:][:4], "little", signed=True)
            out.append(0x1000 + len(code) + disp)
        print(json.dumps(out))
    """)
    assert targets[0] != 0x5000 and targets[1] != 0x5000   # the fixups are misplaced


def test_labels_inside_one_unit_are_right():
    target = _run("""
        code = asm("lea rcx, [rip + ext]\\n.skip 0x3ff9\\next: nop", 0x1000)
        print(json.dumps(0x1000 + 7 + int.from_bytes(code[3:7], "little", signed=True)))
    """)
    assert target == 0x5000


def test_a_resolver_disables_alignment_for_the_whole_process():
    sizes = _run("""
        plain = len(asm("nop\\n.balign 4096, 0\\nx: .quad x", 0x40001000))
        asm("nop", 0, lambda n, v: False)
        after = len(asm("nop\\n.balign 4096, 0\\nx: .quad x", 0x40001000))
        print(json.dumps([plain, after]))
    """)
    assert sizes == [4096 + 8, 1 + 8]


def test_with_a_resolver_decimal_immediates_are_read_as_hex():
    # why peasm writes folded constants in hex (peasm/constants.py): its error-locating runs
    # install a resolver, and a decimal constant would otherwise move an error's line
    codes = _run("""
        out = [asm("cmp rcx, 1000", 0).hex(), asm("cmp rcx, 1000", 0, lambda n, v: False).hex(),
               asm("cmp rcx, 0x3e8", 0, lambda n, v: False).hex()]
        try:
            asm("cmp rcx, 1073741824", 0, lambda n, v: False)
            out.append("accepted")
        except Exception as e:
            out.append("refused")
        print(json.dumps(out))
    """)
    assert codes[0] == "4881f9e8030000" == codes[2]          # 1000 = 0x3e8
    assert codes[1] == "4881f900100000"                      # read as 0x1000
    assert codes[3] == "refused"


def test_some_garbage_is_accepted_silently():
    # why every shipped .s file is cross-checked against binutils
    ok = _run("""
        print(json.dumps([len(asm("add rax, -", 0)), len(asm("mov rax, [rip+rip]", 0))]))
    """)
    assert all(ok)


def test_equ_symbols_in_memory_operands_are_misencoded():
    # why peasm.constants folds constants to numbers before keystone sees them
    out = _run("""
        def disp32(text):
            code = asm(".equ E, 24\\n" + text, 0)
            return int.from_bytes(code[2:3], "little", signed=True)   # 8b 43 disp8
        print(json.dumps([disp32("mov eax, dword ptr [rbx - E]"), disp32("mov eax, dword ptr [rbx - 24]")]))
    """)
    assert out == [24, -24]


def test_peasm_folds_constants_so_keystone_gets_them_right(tmp_path):
    from peasm.linker import link
    src = tmp_path / "m.s"
    src.write_text(".equ E, 24\n.global f\nf:\n    mov eax, dword ptr [rbx - E]\n"
                   "    lea rcx, [rip + data + E]\n    ret\n.section .data\ndata: .skip 64\n")
    image = link([src], "f")
    code = image.flat()[image.entry_rva:image.entry_rva + 16]
    assert code[:3] == bytes([0x8B, 0x43, 0xE8])          # mov eax, [rbx - 24]
    disp = int.from_bytes(code[6:10], "little", signed=True)
    assert image.entry_rva + 3 + 7 + disp == image.symbol("m.s:data").rva + 24

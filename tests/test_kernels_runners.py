"""The kernel runners judge what they claim to judge, and the dispatch table is right.

Each check is made against a deliberately broken routine (an overrun, a clobbered
callee-saved register, a misaligned call, a dirty x87 stack) so that a runner that stopped
checking would fail here, not silently pass the real kernels.
"""
from __future__ import annotations

import re
import subprocess
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

from peasm.linker import link
from peasm.runners import native
from peasm.runners.kernels import (CPU_AVX, CPU_AVX2, CPU_F16C, CPU_FMA, CPU_SSE2, TABLE, Kernels, body,
                                   kernels_image, manifest_path, open_machine)
from peasm.runners.unicorn_kernels import KernelFault, UnicornKernelMachine
from peasm.linker import load_manifest
from tests.support import REPO, require, require_tool

ALL = CPU_SSE2 | CPU_AVX | CPU_AVX2 | CPU_FMA | CPU_F16C


def need_native():
    ok, why = native.supported()
    require(ok, why)


def build(tmp_path: Path, source: str, entry: str):
    path = tmp_path / "t.s"
    path.write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")
    return link([path], entry)


# ----------------------------------------------------------------------------------------
# unicorn: faults and ABI


def test_overrun_by_one_element_is_reported_with_kernel_line_and_buffer():
    m = UnicornKernelMachine(kernels_image())
    k = Kernels(m, "sse2")
    W = np.ones((4, 9), np.float32)
    px = k.put(np.ones(8, np.float32), "x")                   # one element short
    pw, po = k.put(W, "W"), m.alloc(16, "out")
    with pytest.raises(KernelFault) as e:
        m.call("matvec_sse2", po, pw, px, 9, 4)
    message = str(e.value)
    assert "matvec_sse2" in message and "matvec.s:" in message
    assert "0 bytes past the end of buffer 'x' (32 bytes)" in message
    m.free_all()


def test_write_past_output_is_caught():
    m = UnicornKernelMachine(kernels_image())
    k = Kernels(m, "sse2")
    pa, pb = k.put(np.ones(9, np.float32), "a"), k.put(np.ones(9, np.float32), "b")
    short = m.alloc(4 * 8, "dst")
    with pytest.raises(KernelFault, match=r"write to unmapped.*expf_sse2.*past the end of buffer 'dst'"):
        m.call("expf_sse2", short, pa, 9)
    del pb


def test_avx_instruction_under_unicorn_is_named():
    m = UnicornKernelMachine(kernels_image())
    k = Kernels(m, "avx2")
    with pytest.raises(KernelFault, match=r"dot_avx2\+0x[0-9a-f]+ \(.*vecops\.s:\d+\)"):
        k.dot(np.ones(9, np.float32), np.ones(9, np.float32))


BROKEN = """
.section .text
.global clobber_rbx, clobber_xmm7, misaligned_call, dirty_x87, leaves_df, good_call

clobber_rbx:
    mov rbx, 1
    ret

clobber_xmm7:
    xorps xmm7, xmm7
    ret

misaligned_call:
    sub rsp, 32                       # 8 + 32: rsp is 8 off alignment at the call
    call helper
    add rsp, 32
    ret

good_call:
    sub rsp, 40
    call helper
    add rsp, 40
    ret

helper:
    ret

dirty_x87:
    fld1
    ret

leaves_df:
    std
    ret
"""


@pytest.mark.parametrize("fn,pattern", [
    ("clobber_rbx", "did not preserve rbx"),
    ("clobber_xmm7", "did not preserve xmm7"),
    ("misaligned_call", r"call at misaligned_call\+0x4 \(.*t.s:14\) with rsp=0x[0-9a-f]+8 \(not 16-byte aligned\)"),
    ("dirty_x87", "x87 stack not left empty"),
    ("leaves_df", "direction flag left set"),
])
def test_unicorn_catches_abi_breaches(tmp_path, fn, pattern):
    m = UnicornKernelMachine(build(tmp_path, BROKEN, "good_call"))
    m.call("good_call")
    assert len(m.call_sites) == 2
    with pytest.raises(KernelFault, match=pattern):
        m.call(fn)


@pytest.mark.parametrize("fn,reg", [("clobber_rbx", "rbx"), ("clobber_xmm7", "xmm7")])
def test_native_thunk_catches_clobbered_callee_saved(tmp_path, fn, reg):
    need_native()
    img = native.NativeImage(build(tmp_path, BROKEN, "good_call"))
    native.call(img.address("good_call"))
    with pytest.raises(native.NativeError, match=f"{fn}.*did not preserve {reg}"):
        native.call(img.address(fn), where=img.where)


# ----------------------------------------------------------------------------------------
# native calling convention: stack args, floats, callbacks


ARGS = """
.section .text
.global sum10, fsum, call_back, keep_all

# sum10(a..j) = a + 2b + 3c + ... + 10j   (4 in registers, 6 on the stack)
sum10:
    mov rax, rcx
    lea rax, [rax + rdx * 2]
    lea r10, [r8 + r8 * 2]
    add rax, r10
    lea rax, [rax + r9 * 4]
    mov r10, [rsp + 40]
    lea r10, [r10 + r10 * 4]
    add rax, r10
    mov r10, [rsp + 48]
    imul r10, r10, 6
    add rax, r10
    mov r10, [rsp + 56]
    imul r10, r10, 7
    add rax, r10
    mov r10, [rsp + 64]
    shl r10, 3
    add rax, r10
    mov r10, [rsp + 72]
    imul r10, r10, 9
    add rax, r10
    mov r10, [rsp + 80]
    imul r10, r10, 10
    add rax, r10
    ret

# fsum(float a, int b, float c, float d, float e on the stack) = a + b + c + d + e
fsum:
    cvtsi2ss xmm1, rdx
    addss xmm0, xmm1
    addss xmm0, xmm2
    addss xmm0, xmm3
    addss xmm0, dword ptr [rsp + 40]
    ret

# call_back(fn, a) = fn(a, a+1, a+2, a+3, a+4, a+5, a+6) + 1, with xmm6..15 / rsi / rdi live
call_back:
    push rsi
    push rdi
    sub rsp, 72
    movups [rsp + 56], xmm6
    mov rax, rcx
    mov rsi, 0x1234
    mov rdi, 0x5678
    pcmpeqd xmm6, xmm6
    lea r10, [rdx + 4]
    mov [rsp + 32], r10
    lea r10, [rdx + 5]
    mov [rsp + 40], r10
    lea r10, [rdx + 6]
    mov [rsp + 48], r10
    mov rcx, rdx
    lea r8, [rdx + 2]
    lea r9, [rdx + 3]
    lea rdx, [rdx + 1]
    call rax
    cmp rsi, 0x1234
    jne .Lbad
    cmp rdi, 0x5678
    jne .Lbad
    pcmpeqd xmm0, xmm0
    pcmpeqd xmm0, xmm6
    pmovmskb ecx, xmm0
    cmp ecx, 0xFFFF
    jne .Lbad
    inc rax
    jmp .Lout
.Lbad:
    mov rax, -1
.Lout:
    movups xmm6, [rsp + 56]
    add rsp, 72
    pop rdi
    pop rsi
    ret

keep_all:
    ret
"""


def test_native_call_passes_stack_and_float_args(tmp_path):
    need_native()
    img = native.NativeImage(build(tmp_path, ARGS, "keep_all"))
    vals = [3, -5, 7, 11, 13, 17, 19, 23, 29, 31]
    assert native.call(img.address("sum10"), *vals).rax == sum((i + 1) * v for i, v in enumerate(vals)) % 2**64
    r = native.call(img.address("fsum"), 1.5, 2, 0.25, 0.125, 4.0)
    assert r.f32 == 1.5 + 2 + 0.25 + 0.125 + 4.0
    r = native.call(img.address("fsum"), 0, 2, floats={0: 1.0, 2: 2.0, 3: 3.0, 4: -8.0})
    assert r.f32 == 0.0
    assert native.call_many(img.address("sum10"), [vals, [1] * 10]) == 55


def test_native_callback_from_ms_code_preserves_ms_callee_saved(tmp_path):
    need_native()
    img = native.NativeImage(build(tmp_path, ARGS, "keep_all"))
    seen = []
    cbs = native.Callbacks()

    def py(*args):
        seen.append(args)
        # plenty of Python (and numpy) in between: rsi, rdi, xmm6-15 get used
        return int(np.sum(np.arange(1000, dtype=np.float64) * 0.5)) + sum(args)

    fn = cbs.callback(py, 7)
    r = native.call(img.address("call_back"), fn, 100, where=img.where)
    assert seen == [(100, 101, 102, 103, 104, 105, 106)]
    assert r.rax == 249750 + sum(range(100, 107)) + 1


# ----------------------------------------------------------------------------------------
# dispatch


@pytest.mark.parametrize("where", ["unicorn", "native"])
def test_kernels_init_fills_the_table(where):
    if where == "native":
        need_native()
    m = open_machine(where)
    k = Kernels(m, "sse2")
    cases = [
        (ALL, 0, "avx2"), (ALL, 2, "avx2"), (ALL, 1, "sse2"), (ALL, 7, "avx2"),
        (CPU_SSE2, 0, "sse2"), (CPU_SSE2, 2, "sse2"),                 # forced avx2 falls back
        (CPU_SSE2 | CPU_AVX | CPU_AVX2, 2, "sse2"),                   # no FMA
        (CPU_SSE2 | CPU_AVX | CPU_AVX2 | CPU_FMA, 0, "sse2"),         # no F16C
        (CPU_SSE2 | CPU_AVX | CPU_FMA, 0, "sse2"),                    # no AVX2
        (CPU_AVX2 | CPU_FMA | CPU_SSE2, 0, "sse2"),                   # AVX state not usable
        (0xFFFF_FFFF, 0, "avx2"),
    ]
    for bits, choice, want in cases:
        path, table = k.init(bits, choice)
        assert path == {"sse2": 1, "avx2": 2}[want], (bits, choice)
        assert table == {name: m.address(body(name, want)) for name in TABLE}, (bits, choice)
        assert int.from_bytes(m.read(m.address("kernels_path"), 4), "little") == path


def test_cpu_bits_agree_with_the_runtime():
    inc = (REPO / "efi_stubs" / "runtime.inc").read_text()
    ours = (Path(manifest_path()).parent / "kernels.inc").read_text()
    for name, value in [("SSE2", CPU_SSE2), ("AVX", CPU_AVX), ("AVX2", CPU_AVX2), ("FMA", CPU_FMA),
                        ("F16C", CPU_F16C)]:
        assert re.search(rf"\.equ CPU_{name}, {value}\b", inc)
        assert re.search(rf"\.equ K_CPU_{name}, {value}\b", ours)


def test_kernels_inc_documents_every_table_entry():
    inc = (Path(manifest_path()).parent / "kernels.inc").read_text()
    dispatch = (Path(manifest_path()).parent / "dispatch.s").read_text()
    for name in TABLE:
        assert re.search(rf"^#\s+k_{name}\s*\(", inc, re.M), name
        assert f"k_{name}:" in dispatch


# ----------------------------------------------------------------------------------------
# the sources


def test_kernels_manifest_links_every_kernel_source():
    """So tests/test_binutils_crosscheck.py (keystone vs binutils, byte for byte) covers them."""
    m = load_manifest(manifest_path())
    shipped = sorted(p.name for p in Path(manifest_path()).parent.glob("*.s"))
    assert sorted(p.name for p in m.sources) == shipped


SSE3_AND_LATER = {
    "haddps", "hsubps", "addsubps", "movshdup", "movsldup", "movddup", "lddqu", "pshufb",
    "palignr", "phaddd", "pabsd", "psignd", "pmaddubsw", "pmulhrsw", "blendps", "blendvps",
    "pblendvb", "pblendw", "dpps", "roundps", "roundss", "insertps", "extractps", "pinsrd",
    "pextrd", "pminsd", "pmaxsd", "pminud", "pmaxud", "pmulld", "ptest", "pcmpeqq", "pcmpgtq",
    "pmovzxbd", "pmovsxbd", "packusdw", "crc32", "popcnt", "lzcnt", "tzcnt", "movbe", "andn",
}


def test_sse2_bodies_use_only_sse2():
    require_tool("objdump")
    image = kernels_image()
    text = next(s for s in image.sections if s.name == ".text")
    names = [f"{n}_sse2" for n in TABLE if n != "rope_table"] + ["rope_table_x87", "kernels_init"]
    spans = [(s.rva, s.size, s.name) for s in image.symbols
             if s.name in names or s.name.endswith(":attention_common")]
    assert len(spans) == len(names) + 1
    bad = []
    with tempfile.NamedTemporaryFile(suffix=".bin") as f:
        f.write(text.data)
        f.flush()
        out = subprocess.run(["objdump", "-D", "-b", "binary", "-m", "i386:x86-64", "-M", "intel",
                              f"--adjust-vma=0x{text.rva:x}", f.name], capture_output=True, text=True).stdout
    for line in out.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s+(?:[0-9a-f]{2} )+\s*([a-z0-9]+)", line)
        if not m:
            continue
        addr, mnem = int(m.group(1), 16), m.group(2)
        owner = next((name for rva, size, name in spans if rva <= addr < rva + size), None)
        if owner and (mnem.startswith("v") or mnem in SSE3_AND_LATER or "ymm" in line):
            bad.append(f"{owner}: {line.strip()}")
    assert not bad, "\n".join(bad[:20])

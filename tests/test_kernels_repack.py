"""The load-time repack into the "8 rows interleaved" types (kernels_asm/ggml_repack.s:
ggml_repack_r8, ggml_unpack_r8): the bytes written equal peasm.ggml_r8's numpy statement of
the layout (pack, unpack), for Q4_0, Q4_1, Q4_K and F32 at several shapes; refusals (the repack's
0, the unpack's GGML_TYPE_COUNT) leave every byte (the weight's and the scratch's) as it was.
Under unicorn (every buffer flush
against a guard page: the weight, and a scratch of exactly 8 rows) and natively."""
from __future__ import annotations

import numpy as np
import pytest

from peasm import ggml, ggml_r8
from peasm.generated import constants
from peasm.runners.kernels import open_machine
from tests.support import require

C = constants()
SHAPES = [(8, 32), (16, 64), (24, 576), (8, 1536), (40, 160)]    # (rows, n)


@pytest.fixture(scope="module", params=["unicorn", "native"])
def machine(request):
    if request.param == "native":
        from peasm.runners import native
        ok, why = native.supported()
        require(ok, why)
    return open_machine(request.param)


def _raw(rng, base: str, rows: int, n: int) -> bytes:
    t = ggml.BY_NAME[base]
    return rng.integers(0, 256, rows * n // t.block_size * t.block_bytes, dtype=np.uint8).tobytes()


def _run(m, fn: str, raw: bytes, type_id: int, rows: int, row_bytes: int, scratch_bytes: int):
    w = m.alloc(len(raw), "W")
    m.write(w, raw)
    s = m.alloc(scratch_bytes, "scratch")
    fill = bytes([0xA5]) * scratch_bytes
    m.write(s, fill)
    r = m.call(fn, w, type_id, rows, row_bytes, s)
    out, scratch = m.read(w, len(raw)), m.read(s, scratch_bytes)
    m.free_all()
    return r.eax if hasattr(r, "eax") else r, out, scratch == fill


K_SHAPES = [(8, 256), (16, 512), (24, 768), (8, 1536)]    # Q4_K: rows of whole super-blocks


@pytest.mark.parametrize("base", ["Q4_0", "Q4_1", "Q4_K", "F32"])
def test_repack_equals_numpy_and_unpack_inverts(machine, base):
    rng = np.random.default_rng(len(base) + ord(base[-1]))
    t, r8 = ggml.BY_NAME[base], ggml.BY_NAME[ggml.R8_OF[base]]
    for rows, n in (K_SHAPES if t.block_size == 256 else SHAPES):
        rb = n // t.block_size * t.block_bytes
        raw = _raw(rng, base, rows, n)
        got, packed, _ = _run(machine, "ggml_repack_r8", raw, t.id, rows, rb, 8 * rb)
        assert got == r8.id == C[f"GGML_TYPE_{r8.name}"]
        assert packed == ggml_r8.pack(raw, base, rows, n), (base, rows, n)
        got, back, _ = _run(machine, "ggml_unpack_r8", packed, r8.id, rows, rb, 8 * rb)
        assert got == t.id
        assert back == raw == ggml_r8.unpack(packed, base, rows, n), (base, rows, n)


def test_refusals_change_nothing(machine):
    rng = np.random.default_rng(7)
    q40, q41 = ggml.BY_NAME["Q4_0"], ggml.BY_NAME["Q4_1"]
    r8 = ggml.BY_NAME["Q4_0_R8"]
    raw = _raw(rng, "Q4_0", 16, 64)
    rb = 2 * q40.block_bytes
    cases = [
        ("ggml_repack_r8", ggml.BY_NAME["Q8_0"].id, 16, rb),      # no R8 form
        ("ggml_repack_r8", ggml.BY_NAME["F16"].id, 16, rb),
        ("ggml_repack_r8", ggml.BY_NAME["Q5_K"].id, 16, rb),
        ("ggml_repack_r8", ggml.BY_NAME["F32"].id, 16, rb),       # F32: not whole 32-byte
        ("ggml_repack_r8", ggml.BY_NAME["F32"].id, 8, 48),        # chunks (n % 8)
        ("ggml_repack_r8", ggml.BY_NAME["Q4_K"].id, 16, rb),      # not whole super-blocks
        ("ggml_repack_r8", r8.id, 16, rb),                        # already internal
        ("ggml_repack_r8", ggml.TYPE_COUNT, 16, rb),              # not a file type id
        ("ggml_repack_r8", 0xFFFFFFFF, 16, rb),
        ("ggml_repack_r8", q40.id, 12, rb),                       # rows % 8
        ("ggml_repack_r8", q40.id, 7, rb),
        ("ggml_repack_r8", q40.id, 0, rb),
        ("ggml_repack_r8", q40.id, 16, rb - 1),                   # not whole blocks
        ("ggml_repack_r8", q40.id, 16, 0),
        ("ggml_unpack_r8", q40.id, 16, rb),                       # a file type
        ("ggml_unpack_r8", ggml.TABLE_ROWS, 16, rb),
        ("ggml_unpack_r8", r8.id, 4, rb),
        ("ggml_unpack_r8", q41.id, 16, rb),
    ]
    for fn, tid, rows, row_bytes in cases:
        got, out, scratch_same = _run(machine, fn, raw, tid, rows, row_bytes, 8 * rb)
        refused = ggml.TYPE_COUNT if fn == "ggml_unpack_r8" else 0     # (0 is F32's id)
        assert got == refused and out == raw and scratch_same, (fn, tid, rows, row_bytes)


def test_r8_type_found_from_the_table():
    """The repack finds an R8 type by the table's BASE_TYPE column, not a pair in code:
    every internal type is some file type's form, and the file types with one are exactly
    peasm.ggml's R8_OF."""
    forms = {t.base for t in ggml.INTERNAL_TYPES if t.group_rows > 1}
    assert forms == set(ggml.R8_OF) == {"Q4_0", "Q4_1", "Q4_K", "F32"}
    src = (ggml_r8.__file__.rsplit("peasm", 1)[0] + "kernels_asm/ggml_repack.s")
    text = open(src, encoding="utf-8").read()
    assert not any(f"GGML_TYPE_{t}" in text for t in ("Q4_0", "Q4_1", "Q4_K", "F32"))

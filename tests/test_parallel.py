"""The job board (kernels_asm/parallel.s): rows split across cores, results bit for bit those
of one core. Under unicorn the workers are emulated cores taking turns with the caller (every
buffer and every worker stack between guard pages); natively they are host threads."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from peasm.runners import native
from peasm.runners.kernels import CPU_SSE2, Kernels, body, open_machine
from tests.support import require

SHAPES = [(64, 64), (172, 64), (7, 5), (1, 9), (9, 1), (100, 33), (288, 288), (513, 40)]


def _chunks_by_workers(m) -> int:
    return struct.unpack("<Q", m.read(m.address("k_par_worker_chunks"), 8))[0]


@pytest.fixture(scope="module")
def unicorn_board():
    m = open_machine("unicorn")
    m.start_workers(4)
    return m


@pytest.mark.parametrize("workers", [0, 1, 2, 4])
def test_unicorn_split_equals_one_core_bit_for_bit(unicorn_board, workers):
    m = unicorn_board
    k = Kernels(m, "sse2")
    rng = np.random.default_rng(workers)
    before = _chunks_by_workers(m)
    for d, n in SHAPES:
        W = rng.standard_normal((d, n)).astype(np.float32)
        x = rng.standard_normal(n).astype(np.float32)
        one = k.matvec(W, x)
        assert k.par_matvec(W, x, workers).tobytes() == one.tobytes(), (d, n, workers)
    taken = _chunks_by_workers(m) - before
    assert (taken > 0) == (workers > 0), taken      # the workers really took rows


def test_unicorn_misaligned_rows_and_guarded_edges(unicorn_board):
    """Odd row lengths (unaligned rows) with every buffer's end at a guard page: a chunk that
    ran one row past its end, or read past x, would fault."""
    m = unicorn_board
    k = Kernels(m, "sse2", misalign=0)
    rng = np.random.default_rng(5)
    for d, n in [(37, 13), (64, 3), (130, 17)]:
        W = rng.standard_normal((d, n)).astype(np.float32)
        x = rng.standard_normal(n).astype(np.float32)
        assert k.par_matvec(W, x, 4).tobytes() == k.matvec(W, x).tobytes()


@pytest.fixture(scope="module")
def native_board():
    ok, why = native.supported()
    require(ok, why)
    m = open_machine("native")
    m.start_workers(4)
    yield m
    m.stop_workers()


@pytest.mark.parametrize("path", ["sse2", "avx2"])
@pytest.mark.parametrize("workers", [1, 2, 4])
def test_native_threads_split_equals_one_core_bit_for_bit(native_board, path, workers):
    if path == "avx2":
        require(native.host_has_avx2_fma(), "host CPU has no AVX2+FMA")
    k = Kernels(native_board, path)
    rng = np.random.default_rng(workers)
    for d, n in SHAPES + [(2048, 768), (768, 2048)]:
        W = rng.standard_normal((d, n)).astype(np.float32)
        x = rng.standard_normal(n).astype(np.float32)
        one = k.matvec(W, x)
        for _ in range(3):
            assert k.par_matvec(W, x, workers).tobytes() == one.tobytes(), (d, n, workers)


@pytest.mark.parametrize("where", ["unicorn", "native"])
def test_k_matvec_entry_goes_through_the_board_when_there_are_workers(where):
    if where == "native":
        ok, why = native.supported()
        require(ok, why)
    m = open_machine(where)
    k = Kernels(m, "sse2")
    entry = m.address("k_matvec")
    read = lambda: struct.unpack("<Q", m.read(entry, 8))[0]  # noqa: E731
    k.init(CPU_SSE2, 1)                              # sse2
    assert read() == m.address("matvec_sse2")
    m.call("k_par_set_workers", 2)
    assert read() == m.address("par_matvec")
    k.init(CPU_SSE2, 1)                              # a new path keeps the board
    assert read() == m.address("par_matvec")
    rng = np.random.default_rng(3)
    W = rng.standard_normal((96, 40)).astype(np.float32)
    x = rng.standard_normal(40).astype(np.float32)
    pw, px, po = k.put(W, "W"), k.put(x, "x"), m.alloc(4 * 96, "out")
    m.call("par_matvec", po, pw, px, 40, 96)             # no workers started: the caller does it all
    assert k.get(po, 96).tobytes() == k.matvec(W, x).tobytes()
    m.call("k_par_set_workers", 0)
    assert read() == m.address(body("matvec", "sse2"))
    att = lambda: struct.unpack("<Q", m.read(m.address("k_attention"), 8))[0]  # noqa: E731
    assert att() == m.address("attention_sse2")
    m.call("k_par_set_workers", 1)
    assert att() == m.address("par_attention")
    m.call("k_par_set_workers", 0)
    assert att() == m.address("attention_sse2")
    k._done()


def _attention_inputs(rng, pos, n_heads, n_kv_heads, hs, seq_len):
    kv = n_kv_heads * hs
    q = rng.standard_normal(n_heads * hs).astype(np.float32)
    kc = rng.standard_normal((seq_len, kv)).astype(np.float32)
    vc = rng.standard_normal((seq_len, kv)).astype(np.float32)
    return q, kc, vc


@pytest.mark.parametrize("where", ["unicorn", "native"])
def test_attention_heads_split_equals_one_core(where, request):
    """par_attention (k_attention with workers): every head's output and scores bit for bit
    those of attention_<path> on one core (GQA, odd head counts, several positions)."""
    m = request.getfixturevalue("unicorn_board" if where == "unicorn" else "native_board")
    path = "sse2" if where == "unicorn" else ("avx2" if native.host_has_avx2_fma() else "sse2")
    k = Kernels(m, path)
    assert k.init(0xFFFF_FFFF, 1 if path == "sse2" else 2)[0] == (1 if path == "sse2" else 2)
    rng = np.random.default_rng(11)
    before = _chunks_by_workers(m)
    for pos, n_heads, n_kv_heads, hs, seq_len in [(0, 8, 4, 8, 16), (5, 6, 2, 12, 9), (17, 12, 12, 16, 20),
                                                  (3, 7, 1, 6, 8)]:
        q, kc, vc = _attention_inputs(rng, pos, n_heads, n_kv_heads, hs, seq_len)
        for style in (0, 1):                  # ATT_STYLE: llama2.c's arithmetic, ggml's
            want = k.attention(q, kc, vc, pos, n_heads, n_kv_heads, hs, seq_len, style=style)
            for workers in (1, 2, 4):
                m.call("k_par_set_workers", workers)
                try:
                    got = _call_entry_attention(k, m, q, kc, vc, pos, n_heads, n_kv_heads, hs, seq_len, style)
                finally:
                    m.call("k_par_set_workers", 0)
                assert got[0].tobytes() == want[0].tobytes(), (pos, n_heads, workers, style)
                assert got[1][:, :pos + 1].tobytes() == want[1][:, :pos + 1].tobytes()
    if where == "unicorn":
        assert _chunks_by_workers(m) > before


def _call_entry_attention(k, m, q, kc, vc, pos, n_heads, n_kv_heads, hs, seq_len, style=0):
    """k.attention, but through the dispatch table's k_attention entry (par_attention now)."""
    entry = struct.unpack("<Q", m.read(m.address("k_attention"), 8))[0]
    assert entry == m.address("par_attention")
    dim = n_heads * hs
    try:
        po = m.alloc(4 * dim, "out")
        pq, pk, pv = k.put(q, "q"), k.put(kc, "key_cache"), k.put(vc, "value_cache")
        pa = m.alloc(4 * n_heads * seq_len, "att")
        m.write(pa, bytes(4 * n_heads * seq_len))
        block = struct.pack("<5Q6I", po, pq, pk, pv, pa, pos, n_heads, n_kv_heads, hs, seq_len, 0) \
            + struct.pack("<I4x", style)          # ATT_KV_TYPE f32, ATT_STYLE: 72 bytes
        pp = k.put(np.frombuffer(block, np.uint8), "params")
        m.call(entry, pp)
        return k.get(po, dim), k.get(pa, n_heads * seq_len).reshape(n_heads, seq_len)
    finally:
        k._done()

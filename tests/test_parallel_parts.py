"""Queued matvecs posted as one job (kernels_asm/parallel_queue.s: k_par_rows_queue, k_par_rows_flush):
the decode step's products that share an input (wq/wk/wv, w_gate/w_up) run as one job whose
chunks span several matrices. Every output bit for bit that of the matvec body on one core,
however the chunks fell; under unicorn the workers are emulated cores taking turns (every
buffer ends at a guard page, so a chunk running past its matrix's last row faults); natively
they are host threads."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from peasm.runners import native
from peasm.runners.kernels import Kernels, body, open_machine
from tests.support import REPO, inc_constants, require

GRAIN = inc_constants(REPO / "kernels_asm" / "parallel.inc", {})["PAR_GRAIN"]

# groups of (rows, n): a group is queued, then flushed. Same n within a group as in the
# program (one input); the last groups have mixed n, more parts than one job holds (4: the
# fifth flushes the first four), single rows, rows not a multiple of 4, and one tiny part.
GROUPS = [
    [(64, 64), (16, 64), (16, 64)],
    [(172, 40), (172, 40)],
    [(7, 5)],
    [(288, 288)],
    [(96, 48), (32, 48), (32, 48)],
    [(513, 40), (1, 40), (9, 40), (37, 40), (130, 40), (3, 40)],
    [(37, 13), (64, 3), (130, 17)],
]


def _chunks_by_workers(m) -> int:
    return struct.unpack("<Q", m.read(m.address("k_par_worker_chunks"), 8))[0]


def _run_group(k, m, group, rng, workers, grain=1):
    """Queue every part (f32 matvec body of k's path, the weight's rows in groups of `grain`
    for the cut), flush; returns (outputs, expected)."""
    parts = []
    for d, n in group:
        W = rng.standard_normal((d, n)).astype(np.float32)
        x = rng.standard_normal(n).astype(np.float32)
        parts.append((W, x))
    want = [k.matvec(W, x) for W, x in parts]        # one core (frees the machine's buffers)
    f = m.address(body("matvec", k.path))
    try:
        m.call("k_par_set_workers", workers)
        outs = []
        for W, x in parts:
            d, n = W.shape
            pw, px, po = k.put(W, "W"), k.put(x, "x"), m.alloc(4 * d, "out")
            m.write(po, b"\xff" * (4 * d))               # NaN bits: a row left unwritten shows
            m.call("k_par_rows_queue", f, po, pw, px, n, d, 4 * n, grain)
            outs.append((po, d))
        m.call("k_par_rows_flush")
        m.call("k_par_rows_flush")                       # nothing queued: returns at once
        got = [k.get(po, d) for po, d in outs]
    finally:
        m.call("k_par_set_workers", 0)
        k._done()
    return got, want


@pytest.fixture(scope="module")
def unicorn_board():
    m = open_machine("unicorn")
    m.start_workers(4)
    return m


@pytest.mark.parametrize("workers", [0, 1, 2, 4])
def test_unicorn_queued_jobs_equal_one_core_bit_for_bit(unicorn_board, workers):
    m = unicorn_board
    k = Kernels(m, "sse2")
    rng = np.random.default_rng(100 + workers)
    before = _chunks_by_workers(m)
    for group in GROUPS:
        got, want = _run_group(k, m, group, rng, workers)
        for (d, n), g, w in zip(group, got, want):
            assert g.tobytes() == w.tobytes(), (group, d, n, workers)
    taken = _chunks_by_workers(m) - before
    assert (taken > 0) == (workers > 0), taken


def test_unicorn_without_workers_queue_runs_at_once(unicorn_board):
    """No workers: k_par_rows_queue is the body called now (the output is there before any
    flush), as k_par_rows is."""
    m = unicorn_board
    k = Kernels(m, "sse2")
    rng = np.random.default_rng(7)
    W = rng.standard_normal((40, 24)).astype(np.float32)
    x = rng.standard_normal(24).astype(np.float32)
    want = k.matvec(W, x)
    try:
        m.call("k_par_set_workers", 0)
        pw, px, po = k.put(W, "W"), k.put(x, "x"), m.alloc(4 * 40, "out")
        m.call("k_par_rows_queue", m.address("matvec_sse2"), po, pw, px, 24, 40, 96, 1)
        assert k.get(po, 40).tobytes() == want.tobytes()
    finally:
        k._done()


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
def test_native_threads_queued_jobs_equal_one_core_bit_for_bit(native_board, path, workers):
    if path == "avx2":
        require(native.host_has_avx2_fma(), "host CPU has no AVX2+FMA")
    m = native_board
    k = Kernels(m, path)
    rng = np.random.default_rng(200 + workers)
    for group in GROUPS + [[(2048, 256), (256, 256), (256, 256)], [(768, 288), (768, 288)]]:
        for _ in range(2):
            got, want = _run_group(k, m, group, rng, workers)
            for (d, n), g, w in zip(group, got, want):
                assert g.tobytes() == w.tobytes(), (group, d, n, workers)


def test_native_threads_queued_quantized_decode_shapes(native_board):
    """SmolLM2's layer products in Q4_1 (q, k, v of one input; gate, up of another) through
    the queue: bit for bit the Q4_1 matvec body's rows on one core."""
    require(native.host_has_avx2_fma(), "host CPU has no AVX2+FMA")
    m = native_board
    k = Kernels(m, "avx2")
    rng = np.random.default_rng(9)
    for group, n in [([576, 192, 192], 576), ([1536, 1536], 576)]:
        x = rng.standard_normal(n).astype(np.float32)
        xq = k.quantize("Q8_1", x)
        mats = [_random_q4_1(rng, d, n) for d in group]
        want = [k.matvec_q("Q4_1", W, xq, n, d) for W, d in zip(mats, group)]
        f = k.ggml_body("Q4_1", "matvec")
        row_bytes = n // 32 * 20
        for workers in (1, 2, 4):
            try:
                m.call("k_par_set_workers", workers)
                px = k.put(np.frombuffer(xq, np.uint8), "xq")
                outs = []
                for W, d in zip(mats, group):
                    pw, po = k.put(np.frombuffer(W, np.uint8), "W"), m.alloc(4 * d, "out")
                    m.call("k_par_rows_queue", f, po, pw, px, n, d, row_bytes, 1)
                    outs.append((po, d))
                m.call("k_par_rows_flush")
                for (po, d), w in zip(outs, want):
                    assert k.get(po, d).tobytes() == w.tobytes(), (group, d, workers)
            finally:
                m.call("k_par_set_workers", 0)
                k._done()


def _random_q4_1(rng, d, n) -> bytes:
    """d rows of Q4_1 blocks: random nibbles, finite f16 scale and minimum."""
    blocks = rng.integers(0, 256, size=(d, n // 32, 20), dtype=np.uint8)
    blocks[..., 0:2] = np.frombuffer(rng.uniform(0.001, 0.05, (d, n // 32)).astype(np.float16).tobytes(),
                                     np.uint8).reshape(d, n // 32, 2)
    blocks[..., 2:4] = np.frombuffer(np.float16(-0.1).tobytes(), np.uint8)
    return blocks.tobytes()


MAX_CHUNKS = 256 + 2 * 4 + 2         # parallel_queue.s: PAR_MAX_CHUNKS (4 parts a job)


def _guided_cut(parts, cores, grain=1):
    """The chunks k_par_rows_flush cuts, as its contract (par_cut) states them: (part, first
    row, rows), cut from the front and the back of the job's rows in turn (the queue's parts
    one after the other), each 1/(2 * cores) of the weight bytes not yet cut, at least 8 KiB
    and 1/256 of the job's bytes, in rows rounded up to whole PAR_GRAIN-row blocks and whole
    groups of `grain` rows, at most the rows free at that end of the part; a back chunk
    starts that many rows before the last back cut, rounded down to the grain, not before
    the front's cut. Returns (the front chunks, the back chunks), each in row order."""
    g = max(GRAIN, grain)
    total = sum(d * rb for d, rb in parts)
    least = max(1 << 13, total >> 8)
    left, front, back = total, [], []
    fp, fr, bp, br = 0, 0, len(parts) - 1, parts[-1][0]

    def rows_for(free, rb):
        want = max(left // (2 * cores), least)
        return min((-(-want // rb) + g - 1) & -g, free)
    while True:
        while (free := (br if fp == bp else parts[fp][0]) - fr) == 0:
            if fp == bp:
                return front, back
            fp, fr = fp + 1, 0
        rows = rows_for(free, parts[fp][1])
        front.append((fp, fr, rows))
        fr += rows
        left -= rows * parts[fp][1]
        while (free := br - (lo := fr if fp == bp else 0)) == 0:
            if fp == bp:
                return front, back
            bp, br = bp - 1, parts[bp - 1][0]
        start = max(lo, (br - rows_for(free, parts[bp][1])) & -g)
        back.insert(0, (bp, start, br - start))
        left -= (br - start) * parts[bp][1]
        br = start


@pytest.mark.parametrize("workers, grain", [(1, 1), (3, 1), (255, 1), (1, 8), (3, 8), (255, 8), (3, 0)])
def test_unicorn_queued_chunks_shrink_as_the_contract_says(unicorn_board, workers, grain):
    """The posted job's chunk table (par_chunks: the front chunks at its start, the back ones
    at its end) and count (the claim word's top 16 bits) are the guided cut from both ends:
    big chunks at the ends, small ones where they meet, never more than the table holds (255
    workers allowed while 4 run: the cores there take every chunk), every row in exactly one
    chunk, and the products are still bit for bit one core's. A weight stored in groups of 8
    rows (grain 8: the R8 types) is cut only at multiples of 8; grain 0 reads as 1."""
    m = unicorn_board
    k = Kernels(m, "sse2")
    rng = np.random.default_rng(300 + workers)
    table, word = m.address("parallel_queue.s:par_chunks"), m.address("parallel.s:par_word")
    parts_base = m.address("parallel_queue.s:par_parts")
    for group in [[(2048, 256), (256, 256), (256, 256)], [(1536, 64), (1536, 64)], [(513, 40), (9, 40)],
                  [(8, 4096), (513, 40), (9, 40), (300, 300)]]:
        got, want = _run_group(k, m, group, rng, workers, grain)
        for g, w in zip(got, want):
            assert g.tobytes() == w.tobytes(), (group, workers)
        front, back = _guided_cut([(d, 4 * n) for d, n in group], workers + 1, grain)
        cut = front + back
        assert all(i0 % max(GRAIN, grain) == 0 for _, i0, _ in cut)
        assert sorted((p, i0) for p, i0, _ in cut) == [(p, i0) for p, i0, _ in cut]      # row order
        for p, (d, _) in enumerate(group):                                         # every row once
            mine = [(i0, rows) for q, i0, rows in cut if q == p]
            assert [i0 for i0, _ in mine] == [0] + [i0 + rows for i0, rows in mine[:-1]]
            assert mine[-1][0] + mine[-1][1] == d
        assert len(cut) <= MAX_CHUNKS and len(back) >= 1
        raw = m.read(table, 16 * MAX_CHUNKS)
        entries = [struct.unpack_from("<QII", raw, 16 * i) for i in
                   [*range(len(front)), *range(MAX_CHUNKS - len(back), MAX_CHUNKS)]]
        assert [((a - parts_base) // 64, i0, rows) for a, i0, rows in entries] == cut, (group, workers)
        if len(cut) >= 2:
            assert struct.unpack("<Q", m.read(word, 8))[0] >> 48 == len(cut)


def _run_glu(k, m, shapes, rng, workers, grain=1):
    """Queue matvecs of `shapes` (the first two write a and b), then k_par_rows_flush_glu
    with the path's swiglu body over a, b and b's length n; returns (a after it, the other
    outputs, one core's a = swiglu(W0 x0, W1 x1) over n and its other outputs)."""
    mats = [(rng.standard_normal((d, n)).astype(np.float32), rng.standard_normal(n).astype(np.float32))
            for d, n in shapes]
    prods = [k.matvec(W, x) for W, x in mats]
    n_glu = shapes[1][0]
    want_a = np.concatenate([k.swiglu(prods[0][:n_glu], prods[1]), prods[0][n_glu:]])
    f = m.address(body("matvec", k.path))
    try:
        m.call("k_par_set_workers", workers)
        outs = []
        for W, x in mats:
            d, n = W.shape
            pw, px, po = k.put(W, "W"), k.put(x, "x"), m.alloc(4 * d, "out")
            m.write(po, b"\xff" * (4 * d))
            m.call("k_par_rows_queue", f, po, pw, px, n, d, 4 * n, grain)
            outs.append((po, d))
        m.call("k_par_rows_flush_glu", m.address(body("swiglu", k.path)), outs[0][0], outs[1][0], n_glu)
        got = [k.get(po, d) for po, d in outs]
    finally:
        m.call("k_par_set_workers", 0)
        k._done()
    return got[0], got[1:], want_a, prods[1:]


GLU_SHAPES = [[(1536, 64), (1536, 64)], [(172, 40), (172, 40)], [(37, 13), (37, 13)], [(5, 8), (5, 8)],
              [(64, 16), (64, 16), (8, 16)],      # three queued: flushed, then glu here
              [(64, 16), (60, 16)]]               # a longer than n: not a pair, glu over b's 60 here


@pytest.mark.parametrize("workers, grain", [(0, 1), (1, 1), (3, 1), (3, 8)])
def test_unicorn_glu_job_equals_one_core(unicorn_board, workers, grain):
    """The gate/up job with SwiGLU done per chunk (k_par_rows_flush_glu): a bit for bit the
    matvecs then swiglu on one core, b untouched by it; every buffer ends at a guard page
    (a chunk's glu past n would fault). Not a pair (three queued, other lengths): the same
    result through the plain flush and one glu call."""
    m = unicorn_board
    k = Kernels(m, "sse2")
    rng = np.random.default_rng(400 + workers)
    for shapes in GLU_SHAPES:
        a, rest, want_a, want_rest = _run_glu(k, m, shapes, rng, workers, grain)
        assert a.tobytes() == want_a.tobytes(), (shapes, workers)
        for g, w in zip(rest, want_rest):
            assert g.tobytes() == w.tobytes(), (shapes, workers)


@pytest.mark.parametrize("path", ["sse2", "avx2"])
def test_native_threads_glu_job_equals_one_core(native_board, path):
    if path == "avx2":
        require(native.host_has_avx2_fma(), "host CPU has no AVX2+FMA")
    k = Kernels(native_board, path)
    rng = np.random.default_rng(500)
    for workers in (1, 2, 4):
        for shapes in GLU_SHAPES[:4] + [[(5632, 32), (5632, 32)]]:
            for _ in range(2):
                a, rest, want_a, want_rest = _run_glu(k, native_board, shapes, rng, workers)
                assert a.tobytes() == want_a.tobytes(), (shapes, workers)
                for g, w in zip(rest, want_rest):
                    assert g.tobytes() == w.tobytes(), (shapes, workers)

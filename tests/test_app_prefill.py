"""The batched prefill (app_asm/forward_batch.s, issue 14): model_forward_batch against n calls
of model_forward on the same model. The judge is the token-by-token forward pass itself (which
is judged against the numpy references in test_app_model.py and test_app_gguf_model.py).

Most weight types: the batched pass runs the same kernels on the same numbers per row (its
products are the types' matmat bodies, bit for bit their matvec bodies, or the matvec bodies
over cache-sized tiles of rows, k_par_matmat in kernels_asm/parallel_matmat.s), so the last token's
logits and the whole KV cache must be EQUAL, bit for bit, and greedy decoding on from there
must give the same tokens.

Q4_0 and Q4_1 (ROUNDED_TYPES) in the file's layout: their matmat bodies (kernels_asm/ggml_mm8.inc)
add each block's exact integer sum with one FMA per block, where the matvec sums 8 lanes and
reduces them: the same exact terms, other f32 roundings (repacked into 8-row groups, Q4_0_R8 and
Q4_1_R8, their matvec rounds as the batched bodies do: a model whose every Q4 product weight is
repacked is bit for bit again, plain_rounded_products; tests/test_app_repack.py) (each product within (m + 1) u of the exact sum,
tests/test_kernels_matmat.py). A rounding difference is invisible until an activation is
quantized to Q8 again: there a value that sits at a rounding boundary can land on the
neighbouring quant, one step (1/127 of its block's largest magnitude) away, and from then on
the two passes carry different (equally valid) quantization errors. Judged so (assert_close):

* the next token is the same (the issue's requirement), unless the token-by-token pass's two
  best logits are closer than the tolerated difference below (a near-tie, where either is the
  model's answer);
* the last logits of each turn and the whole KV cache differ by at most TOL in relative RMS
  (RMS of the difference over RMS of the token-by-token values), with TOL = sqrt(q) / 254
  for q = 4 * layers + 1 quantizations of activations on the way to the logits (per layer:
  the attention input, the attention output, the FFN input, the FFN's hidden; then the
  classifier's input): each quantization may move quants by one step where the other pass's
  by none, a relative RMS change of at most about half a step (1/254) of the block maxima
  (Q8's own quantization error has that size), and independent changes add in quadrature.
  Measured (2 seeds each, prompts of 2..37 tokens; SmolLM2 41): stories260K-Q4_0 (5 layers,
  TOL 1.8e-2) logits up to 3.7e-3, KV 7.7e-4; tiny256-Q4_0/Q4_1 (2 layers, TOL 1.2e-2) 4.1e-3,
  3.9e-4; SmolLM2 (30 layers, TOL 4.3e-2) logits 1.2e-2, KV 1.9e-2;
* and the batch is consistent with itself bit for bit: the same prompt through the job board
  with 1, 2 or 4 worker threads gives the bits the boot core alone gives (the 8-row bodies'
  outputs do not depend on how the rows are split).

Natively (AVX2 bodies where the host has them; workers are host threads) and under unicorn
(SSE2 bodies, every buffer and worker stack between guard pages, the cores taking turns at
the job board's pause/lock instructions; the SSE2 path has no matmat bodies: bit for bit)."""
from __future__ import annotations

import math
import struct
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from peasm import generated
from peasm.linker import link, load_manifest
from peasm.runners.emu import Emu
from tests.support import REPO, model_file, require

APP = REPO / "app_asm"
KERNELS = REPO / "kernels_asm"
C = generated.constants()
for _line in (APP / "model.inc").read_text().splitlines():
    if _line.startswith((".equ MODEL_E_", ".equ MODEL_F_", ".equ MODEL_OK")):
        _k, _v = _line[5:].split(",", 1)
        C[_k.strip()] = int(_v.split("#")[0].strip(), 0)
B = C["MODEL_BATCH"]
U32 = 0xFFFF_FFFF


@lru_cache(maxsize=None)
def image():
    sources = [APP / s for s in ("model.s", "model_state.s", "model_msg.s", "model_gguf.s",
                                  "model_gguf_keys.s", "model_gguf_msg.s", "forward.s",
                                  "forward_batch.s", "model_repack.s", "gguf.s", "gguf_get.s",
                                  "gguf_msg.s")]
    sources += [Path(p) for p in load_manifest(KERNELS / "kernels.toml").sources]
    return link(sources, "model_forward_batch", include_dirs=[KERNELS])


class Machine:
    """The image on a CPU with `workers` worker cores at the job board."""

    def __init__(self, where: str, workers: int = 0):
        self.where = where
        if where == "unicorn":
            self.mc = Emu(image())
            assert self.mc.call("kernels_init", 1, 0) == 1     # K_PATH_SSE2
            for i in range(workers):
                self.mc.start_core(self.mc.address("k_par_worker"), i)
            self.threads = []
        else:
            from peasm.runners import native
            from tests.model_support import NativeMachine
            ok, why = native.supported()
            require(ok, why)
            self.mc = NativeMachine(image())
            self.mc.call("kernels_init", native.host_cpu_bits(), 0)
            self.threads = [native.HostThread(self.mc.loaded.address("k_par_worker"), i)
                            for i in range(workers)]
        self.mc.call("k_par_set_workers", workers)

    def close(self) -> None:
        if self.threads:
            self.mc.call("k_par_quit", 1)
            for t in self.threads:
                t.join()
            self.threads.clear()
            self.mc.call("k_par_quit", 0)
        if self.where == "native":
            self.mc.free()


class Model:
    """A model file loaded through the asm (llama2.c .bin or GGUF) into one Model struct.
    kv_type: the caches' element type; None as the program's `kv_type=auto` (f16 for GGUF,
    f32 for llama2.c files). repack: the weights repacked after the load as the program does
    with `repack = on` (app_asm/model_repack.s: Q4_0/Q4_1 matrices into 8-row groups where
    the path has their bodies); off by default here (tests/test_app_repack.py turns it on)."""

    def __init__(self, m: Machine, path: Path, ctx: int = 96, kv_type: str | None = None,
                 repack: bool = False):
        mc = self.mc = m.mc
        data = path.read_bytes()
        self.file = mc.alloc(len(data), data, align=64)
        self.m = mc.alloc(C["MODEL_SIZE"], align=8)
        if data[:4] == b"GGUF":
            g = mc.alloc(C["GGUF_SIZE"], align=8)
            assert mc.call("gguf_open", g, self.file, len(data)) == 0
            assert mc.call("model_gguf_config", self.m, g) == 0
            layers = mc.call("model_layers_bytes", self.m)
            assert mc.call("model_gguf_bind", self.m, g, mc.alloc(layers, align=8)) == 0
        else:
            assert mc.call("model_check_header", self.m, self.file, len(data)) == 0
            layers = mc.call("model_layers_bytes", self.m)
            assert mc.call("model_bind_weights", self.m, self.file, mc.alloc(layers, align=8)) == 0
        kv_type = kv_type or ("f16" if data[:4] == b"GGUF" else "f32")   # (the loaders clear it)
        mc.write(self.m + C["MODEL_KV_TYPE"], struct.pack("<I", C[f"GGML_TYPE_{kv_type.upper()}"]))
        self.ctx = min(ctx, self.u32("MODEL_SEQ_LEN"))
        self.need = mc.call("model_state_bytes", self.m, self.ctx)
        self.state = mc.alloc(self.need, align=64)
        self.reset()
        self.repacked = mc.call("model_repack", self.m, 1) if repack else 0
        self.vocab = self.u32("MODEL_VOCAB_SIZE")
        self.toks = mc.alloc(4 * 1024, align=4)

    def u32(self, name: str) -> int:
        return struct.unpack("<I", self.mc.read(self.m + C[name], 4))[0]

    def u64(self, name: str) -> int:
        return struct.unpack("<Q", self.mc.read(self.m + C[name], 8))[0]

    def reset(self) -> None:
        assert self.mc.call("model_init_state", self.m, self.state, self.ctx, self.need) == 0

    def _logits(self, p: int) -> np.ndarray:
        assert p, self.u32("MODEL_ERROR")
        return np.frombuffer(self.mc.read(p, 4 * self.vocab), "<f4").copy()

    def forward(self, token: int, pos: int) -> np.ndarray:
        return self._logits(self.mc.call("model_forward", self.m, token, pos))

    def batch_call(self, tokens: list[int], pos0: int, n: int | None = None) -> int:
        self.mc.write(self.toks, struct.pack(f"<{len(tokens)}I", *[t & U32 for t in tokens]))
        return self.mc.call("model_forward_batch", self.m, self.toks,
                            len(tokens) if n is None else n, pos0)

    def batch(self, tokens: list[int], pos0: int) -> np.ndarray:
        return self._logits(self.batch_call(tokens, pos0))

    def kv(self) -> bytes:
        size = self.u32("MODEL_N_LAYERS") * self.u64("MODEL_KV_LAYER_BYTES")
        return (self.mc.read(self.u64("MODEL_S_KEY_CACHE"), size)
                + self.mc.read(self.u64("MODEL_S_VALUE_CACHE"), size))


def prompt(vocab: int, n: int, seed: int) -> list[int]:
    return [int(t) for t in np.random.default_rng(seed).integers(0, vocab, n)]


def one_by_one(model: Model, turns: list[list[int]], decode: int):
    """Every token through model_forward: (last logits of each turn, greedy tokens after the
    last turn, the KV cache at the end)."""
    model.reset()
    pos, lasts = 0, []
    for turn in turns:
        for t in turn:
            logits = model.forward(t, pos)
            pos += 1
        lasts.append(logits)
    out = []
    for _ in range(decode):
        t = int(np.argmax(logits))
        out.append(t)
        logits = model.forward(t, pos)
        pos += 1
    return lasts, out, model.kv()


def batched(model: Model, turns: list[list[int]], decode: int):
    """Each turn through one model_forward_batch call, then greedy decode by model_forward."""
    model.reset()
    pos, lasts = 0, []
    for turn in turns:
        logits = model.batch(turn, pos)
        pos += len(turn)
        lasts.append(logits)
    out = []
    for _ in range(decode):
        t = int(np.argmax(logits))
        out.append(t)
        logits = model.forward(t, pos)
        pos += 1
    return lasts, out, model.kv()


ROUNDED_TYPES = {"Q4_0", "Q4_1"}     # their AVX2 matmat bodies round otherwise than the matvec
PRODUCT_FIELDS = ("ATTN_Q", "ATTN_K", "ATTN_V", "ATTN_OUTPUT", "FFN_GATE", "FFN_UP", "FFN_DOWN")


def product_types(model: "Model") -> list[int]:
    """The ggml type ids of the weights the products read (each layer's matrices and the
    classifier, the token embedding's descriptor when tied), as the model holds them now."""
    mc, layers = model.mc, model.u64("MODEL_LAYERS")
    at = [layers + l * C["LAYER_SIZE"] + C[f"LAYER_{f}"] for l in range(model.u32("MODEL_N_LAYERS"))
          for f in PRODUCT_FIELDS] + [model.m + C["MODEL_OUTPUT"]]
    return [struct.unpack("<I", mc.read(a + C["TENSOR_TYPE"], 4))[0] for a in at]


def plain_rounded_products(model: "Model") -> bool:
    """Whether a product still reads a ROUNDED_TYPES weight in its file form: a Q4_0/Q4_1
    weight repacked into its 8-row form (Q4_0_R8, Q4_1_R8) has matvec and batched bodies
    that round alike (Q4_0_R8's matvec as ggml_mm8.inc's matmat, Q4_1_R8's matmat as its
    matvec, ggml's vec_dot_q4_1_q8_1), so a model whose
    every Q4 product weight is repacked gives bit for bit the token-by-token numbers."""
    ids = {C[f"GGML_TYPE_{t}"] for t in ROUNDED_TYPES}
    return any(t in ids for t in product_types(model))


@lru_cache(maxsize=None)
def rounded(path: Path) -> bool:
    """Whether the batched pass of this model file may differ from token by token (a GGUF
    with a Q4_0 or Q4_1 tensor, as gguf-py reads it) on this host (the AVX2 path)."""
    from peasm.runners import native
    if path.read_bytes()[:4] != b"GGUF" or not native.host_has_avx2_fma():
        return False
    from gguf import GGUFReader
    return any(t.tensor_type.name in ROUNDED_TYPES for t in GGUFReader(str(path)).tensors)


def tolerance(model: Model) -> float:
    """The relative RMS difference allowed between the batched and the token-by-token pass
    of a ROUNDED_TYPES model (module docstring)."""
    return math.sqrt(4 * model.u32("MODEL_N_LAYERS") + 1) / 254


def kv_values(model: Model, kv: bytes) -> np.ndarray:
    f16 = model.u64("MODEL_KV_LAYER_BYTES") == model.ctx * model.u32("MODEL_KV_DIM") * 2
    return np.frombuffer(kv, np.float16 if f16 else np.float32).astype(np.float64)


def rel_rms(got: np.ndarray, want: np.ndarray) -> float:
    scale = float(np.sqrt(np.mean(want ** 2)))
    return float(np.sqrt(np.mean((got - want) ** 2))) / scale if scale else float(np.abs(got).max())


def assert_close(model: Model, a, b) -> None:
    """b (batched) against a (token by token), both (last logits per turn, tokens, KV): the
    rule for ROUNDED_TYPES models (module docstring)."""
    tol = tolerance(model)
    for i, (x, y) in enumerate(zip(a[0], b[0])):
        x, y = x.astype(np.float64), y.astype(np.float64)
        assert rel_rms(y, x) <= tol, (i, rel_rms(y, x), tol)
        top, got = int(np.argmax(x)), int(np.argmax(y))
        if top != got:
            # a near-tie: the two tokens' logits within what the tolerance allows each
            assert x[top] - x[got] <= 2 * tol * float(np.sqrt(np.mean(x ** 2))), (i, top, got)
    ka, kb = kv_values(model, a[2]), kv_values(model, b[2])
    assert rel_rms(kb, ka) <= tol, (rel_rms(kb, ka), tol)


def assert_same(model: Model, turns: list[list[int]], decode: int = 4, path: Path | None = None) -> None:
    """The batched pass against the token-by-token one: equal bit for bit, the same greedy
    tokens after (or, for a ROUNDED_TYPES model at `path`, assert_close on the logits and
    the cache the prompt leaves)."""
    if path is not None and rounded(path) and plain_rounded_products(model):   # the cache as the prompt leaves it
        assert_close(model, one_by_one(model, turns, 0), batched(model, turns, 0))
        return
    a_lasts, a_out, a_kv = one_by_one(model, turns, decode)
    b_lasts, b_out, b_kv = batched(model, turns, decode)
    for i, (x, y) in enumerate(zip(a_lasts, b_lasts)):
        assert x.tobytes() == y.tobytes(), (i, np.abs(x - y).max())
    assert a_kv == b_kv
    assert a_out == b_out


SIZES = [1, 2, 7, B, B + 5]


@pytest.fixture(scope="module")
def native0():
    m = Machine("native")
    yield m
    m.close()


# one file per kernel family (F32 .bin and GGUF, F16, BF16, Q4_0, Q4_1, Q5_0, Q8_0, K-quants;
# stories260K-Q4_0 mixes Q4_0, F16 ffn_down and a Q8_0 classifier)
NATIVE_FILES = ["stories260K.bin", "stories260K.gguf", "quant/stories260K-Q4_0.gguf"] + [
    f"quant/tiny256-{t}.gguf" for t in ("f32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q8_0",
                                       "Q4_K_M", "Q6_K")]


@pytest.mark.parametrize("name", NATIVE_FILES)
def test_native_batch_equals_token_by_token(native0, name):
    model = Model(native0, model_file(name))
    for n in SIZES:
        assert_same(model, [prompt(model.vocab, n, seed=n)], decode=4 if n == 7 else 1,
                    path=model_file(name))
    if rounded(model_file(name)):            # other prompts: more chances of a quant moved
        for n in (7, B + 5):
            assert_same(model, [prompt(model.vocab, n, seed=n + 100)], path=model_file(name))


@pytest.mark.parametrize("name,kv_type", [("stories260K.bin", "f16"), ("stories260K.gguf", "f32"),
                                          ("quant/tiny256-Q4_0.gguf", "f32")])
def test_native_batch_equals_token_by_token_other_cache_type(native0, name, kv_type):
    """The cache type the format does not default to: the batch stores its rows as one token
    would (f16 rounding included)."""
    model = Model(native0, model_file(name), kv_type=kv_type)
    assert model.u64("MODEL_KV_LAYER_BYTES") == model.ctx * model.u32("MODEL_KV_DIM") * (
        2 if kv_type == "f16" else 4)
    for n in (3, B + 5):
        assert_same(model, [prompt(model.vocab, n, seed=n)], decode=2, path=model_file(name))


@pytest.mark.parametrize("name", ["stories260K.bin", "quant/tiny256-Q4_K_M.gguf", "quant/tiny256-Q4_1.gguf"])
def test_native_second_turn(native0, name):
    """pos0 > 0: a second turn attends over the first one's cache rows."""
    model = Model(native0, model_file(name))
    path = model_file(name)
    assert_same(model, [prompt(model.vocab, 9, 1), prompt(model.vocab, B + 3, 2)], decode=6, path=path)
    assert_same(model, [prompt(model.vocab, B, 3), prompt(model.vocab, 1, 4), prompt(model.vocab, 5, 5)],
                path=path)


@pytest.mark.parametrize("workers", [1, 2, 4])
@pytest.mark.parametrize("name", ["stories260K.bin", "quant/tiny256-Q4_0.gguf"])
def test_native_workers(native0, name, workers):
    """Host threads take chunks of the batched products (and of attention's heads): the same
    bits as one core (and as token by token, or close to it: assert_same)."""
    m = Machine("native", workers)
    turns = lambda model: [prompt(model.vocab, 11, 7), prompt(model.vocab, B + 2, 8)]
    try:
        model = Model(m, model_file(name))
        assert_same(model, turns(model), path=model_file(name))
        got = batched(model, turns(model), 2)
    finally:
        m.close()
    alone = Model(native0, model_file(name))
    want = batched(alone, turns(alone), 2)
    assert [x.tobytes() for x in got[0]] == [x.tobytes() for x in want[0]]
    assert got[1:] == want[1:]


def test_native_smollm2():
    """A real model: 30 layers, Q4_1 weights with Q8_0 embeddings, GQA 9/3, a 49152-row
    classifier; a prompt longer than one batch."""
    m = Machine("native")
    try:
        path = model_file("SmolLM2-135M-Instruct.Q4_1.gguf")
        model = Model(m, path, ctx=B + 20)
        assert_same(model, [prompt(model.vocab, B + 9, 11)], decode=3, path=path)
    finally:
        m.close()


def test_refusals(native0):
    model = Model(native0, model_file("stories260K.bin"), ctx=40)
    model.reset()
    clean = model.kv()
    assert model.batch_call([1, 2], 0, n=0) == 0
    assert model.u32("MODEL_ERROR") == C["MODEL_E_TOKEN"]
    assert model.batch_call([1, 2, 512, 3], 0) == 0               # vocab is 512
    assert model.u32("MODEL_ERROR") == C["MODEL_E_TOKEN"]
    assert model.batch_call([1, 2, -1, 3], 0) == 0
    assert model.u32("MODEL_ERROR") == C["MODEL_E_TOKEN"]
    assert model.batch_call(list(range(1, 11)), 31) == 0           # 31 + 10 > 40
    assert model.u32("MODEL_ERROR") == C["MODEL_E_POS"]
    assert model.batch_call([1], 0xFFFF_FFFF) == 0                 # no wrap-around
    assert model.u32("MODEL_ERROR") == C["MODEL_E_POS"]
    assert model.kv() == clean                                     # nothing was written
    assert model.batch_call(list(range(1, 11)), 30) != 0           # exactly to the end: fine
    assert model.u32("MODEL_ERROR") == C["MODEL_OK"]
    fresh = native0.mc.alloc(C["MODEL_SIZE"], align=8)               # no model at all
    assert native0.mc.call("model_forward_batch", fresh, model.toks, 1, 0) == 0
    assert struct.unpack("<I", native0.mc.read(fresh + C["MODEL_ERROR"], 4))[0] == C["MODEL_E_NOT_READY"]


def _worker_chunks(m: Machine) -> int:
    return struct.unpack("<Q", m.mc.read(m.mc.address("k_par_worker_chunks"), 8))[0]


@pytest.mark.parametrize("name,workers", [("stories260K.bin", 0), ("stories260K.bin", 3),
                                          ("quant/stories260K-Q4_0.gguf", 0),
                                          ("quant/stories260K-Q4_0.gguf", 3),
                                          ("quant/tiny256-Q4_K_M.gguf", 2)])
def test_unicorn(name, workers):
    """SSE2 bodies under guard pages; with emulated workers taking turns at the board (they
    must really take chunks of the batched products)."""
    m = Machine("unicorn", workers)
    model = Model(m, model_file(name), ctx=B + 8)
    assert_same(model, [prompt(model.vocab, 3, 1), prompt(model.vocab, B + 2, 2)], decode=2)
    model.reset()
    before = _worker_chunks(m)
    model.batch(prompt(model.vocab, 5, 3), 0)
    assert (_worker_chunks(m) > before) == (workers > 0)


# ----------------------------------------------------------------------------- k_par_matmat

MM = {}
for _line in (KERNELS / "kernels.inc").read_text().splitlines():
    if _line.startswith(".equ MATMAT_"):
        _k, _v = _line[5:].split(",", 1)
        MM[_k.strip()] = int(_v.split("#")[0].strip(), 0)

# A matmat body for the test (no type has one yet): the f32 matvec body once per input, by
# the contract peasm/ggml.py states, so that k_par_matmat's calls of a matmat body (the rows
# of each chunk, the strides, B) are checked by their results.
TEST_MATMAT = """
.section .text
.global test_matmat_f32
.extern matvec_sse2
test_matmat_f32:
    push rbx
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, 48
    mov rsi, rcx
    mov rdi, rdx
    mov r12, r8
    mov r13d, r9d
    mov r14d, dword ptr [rsp + 152]
1:
    mov rcx, rsi
    mov rdx, rdi
    mov r8, r12
    mov r9d, r13d
    mov eax, dword ptr [rsp + 144]
    mov qword ptr [rsp + 32], rax
    call matvec_sse2
    add rsi, qword ptr [rsp + 160]
    add r12, qword ptr [rsp + 168]
    dec r14d
    jnz 1b
    add rsp, 48
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret
"""


@lru_cache(maxsize=None)
def board_image():
    import tempfile
    src = Path(tempfile.mkdtemp(prefix="test_prefill_")) / "test_matmat.s"
    src.write_text(TEST_MATMAT, encoding="utf-8")
    sources = [Path(p) for p in load_manifest(KERNELS / "kernels.toml").sources] + [src]
    return link(sources, "k_par_matmat", include_dirs=[KERNELS])


@pytest.mark.parametrize("workers", [0, 3])
def test_unicorn_k_par_matmat(workers):
    """The job kind alone, f32 rows under guard pages: the matvec fallback over tiles (odd
    shapes, a weight of many tiles) and a matmat body, each split across 0 or 3 emulated
    workers, equal one matvec over all rows per input, bit for bit; outputs strided. Rows
    stored in groups of 8 (MATMAT_GROUP_ROWS 8, the R8 types) are cut at multiples of 8 only:
    the same results."""
    emu = Emu(board_image())
    assert emu.call("kernels_init", 1, 0) == 1
    for i in range(workers):
        emu.start_core(emu.address("k_par_worker"), i)
    emu.call("k_par_set_workers", workers)
    rng = np.random.default_rng(workers)
    for d, n, b in [(37, 13, 3), (130, 17, 5), (9, 1, 1), (1000, 64, 4), (5, 300, 2)]:
        W = rng.standard_normal((d, n)).astype(np.float32)
        xs = rng.standard_normal((b, n + 3)).astype(np.float32)      # inputs 4(n+3) bytes apart
        w = emu.alloc(W.nbytes, W.tobytes())
        x = emu.alloc(xs.nbytes, xs.tobytes())
        want = []
        for i in range(b):
            o = emu.alloc(4 * d)
            emu.call("matvec_sse2", o, w, x + i * 4 * (n + 3), n, d)
            want.append(emu.read(o, 4 * d))
        for body, group in ((0, 0), (emu.address("test_matmat_f32"), 0), (0, 8),
                            (emu.address("test_matmat_f32"), 8)):
            stride = 4 * d + 8
            out = emu.alloc(stride * b)
            blk = bytearray(MM["MATMAT_SIZE"])
            for k, v in (("OUT", out), ("W", w), ("XQ", x), ("OUT_STRIDE", stride),
                         ("XQ_STRIDE", 4 * (n + 3)), ("ROW_BYTES", 4 * n), ("BODY", body),
                         ("MATVEC", emu.address("matvec_sse2"))):
                struct.pack_into("<Q", blk, MM[f"MATMAT_{k}"], v)
            for k, v in (("N", n), ("D", d), ("B", b), ("GROUP_ROWS", group)):
                struct.pack_into("<I", blk, MM[f"MATMAT_{k}"], v)
            p = emu.alloc(len(blk), bytes(blk), align=8)
            emu.write(emu.address("par_job_chunk"), bytes(4))
            emu.call("k_par_matmat", p)
            if workers and group:                   # the chunk size a posted job was cut with
                chunk = struct.unpack("<I", emu.read(emu.address("par_job_chunk"), 4))[0]
                assert chunk % group == 0 and (chunk or d < 2 * group), (d, n, chunk)
            for i in range(b):
                assert emu.read(out + i * stride, 4 * d) == want[i], (d, n, b, i, body)
    if workers:
        assert struct.unpack("<Q", emu.read(emu.address("k_par_worker_chunks"), 8))[0] > 0


def write_qwen2_gguf(path: Path, type_name: str = "Q8_0", seed: int = 5) -> Path:
    """A small random qwen2 model (q/k/v biases, NeoX RoPE), written with gguf-py's writer:
    no qwen2 file is among the shared models, and these are the paths only qwen2 takes."""
    from gguf import GGUFWriter
    from tests.reference.gguf_random import _tensor
    from gguf import GGMLQuantizationType
    dim, hidden, layers, heads, kv_heads, vocab, ctx = 128, 320, 2, 4, 2, 300, 128
    rng = np.random.default_rng(seed)
    w = GGUFWriter(str(path), "qwen2")
    w.add_block_count(layers)
    w.add_embedding_length(dim)
    w.add_feed_forward_length(hidden)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_context_length(ctx)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(1000000.0)
    kv = kv_heads * (dim // heads)

    def add(name, t, rows, n):
        w.add_tensor(name, _tensor(rng, t, rows, n),
                     raw_dtype=None if t in ("F32", "F16") else GGMLQuantizationType[t])

    def vec(name, n, scale=0.5):
        w.add_tensor(name, (rng.standard_normal(n) * scale).astype(np.float32))

    add("token_embd.weight", type_name, vocab, dim)
    vec("output_norm.weight", dim)
    for l in range(layers):
        p = f"blk.{l}."
        vec(p + "attn_norm.weight", dim)
        vec(p + "ffn_norm.weight", dim)
        add(p + "attn_q.weight", type_name, dim, dim)
        add(p + "attn_k.weight", type_name, kv, dim)
        add(p + "attn_v.weight", type_name, kv, dim)
        vec(p + "attn_q.bias", dim)
        vec(p + "attn_k.bias", kv)
        vec(p + "attn_v.bias", kv)
        add(p + "attn_output.weight", type_name, dim, dim)
        add(p + "ffn_gate.weight", type_name, hidden, dim)
        add(p + "ffn_up.weight", type_name, hidden, dim)
        add(p + "ffn_down.weight", type_name, dim, hidden)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize("where", ["native", "unicorn"])
def test_qwen2_biases_and_neox(tmp_path, where):
    """qwen2: the biases (one vector added to every row) and NeoX RoPE, tied classifier."""
    path = write_qwen2_gguf(tmp_path / "qwen2.gguf")
    m = Machine(where)
    try:
        model = Model(m, path, ctx=B + 16)
        assert model.u32("MODEL_ARCH") == 1 and model.u32("MODEL_ROPE_STYLE") == 1   # qwen2, neox
        assert model.u64("MODEL_LAYERS")
        assert_same(model, [prompt(model.vocab, 5, 1), prompt(model.vocab, B + 1, 2)], decode=3)
    finally:
        m.close()


LONG_PROMPT = ("Once upon a time, there was a little girl named Lily. She loved to play outside "
               "in the park with her big red ball and her friend Tom.")


@pytest.mark.parametrize("cpu,cpus", [("native", 1), ("native", 2), ("unicorn", 3)])
def test_whole_program_long_prompt(chat_efi, tmp_path, cpu, cpus):
    """generate.s prefills a prompt of more than MODEL_BATCH tokens in one
    model_forward_batch call: the reply equals llama2.c's generation from the same prompt
    (the numpy reference), and the context counts the prompt and the reply."""
    from tests.app_helpers import console_render, generations, make_volume, run_chat
    from tests.reference import llama2 as ref
    model, tok = model_file("stories260K.bin"), model_file("tok512.bin")
    vol = make_volume(tmp_path / "vol", files={"stories260K.bin": model, "tok512.bin": tok},
                      cfg="temperature = 0\nmax_tokens = 24\n",
                      autorun=[LONG_PROMPT, "/ctx", "/shutdown"])
    r = run_chat(chat_efi, vol, cpu, cpus=cpus)
    assert r.status == 0, (r.reason, r.text[-800:])
    expected = ref.generate(ref.read_model(model), ref.read_tokenizer(tok, 512), LONG_PROMPT,
                            steps=160, temperature=0.0)
    n = expected.n_prompt
    assert n > B + 1, n
    want = expected.pieces[n - 1:n - 1 + 24]
    assert generations(r.text)[0] == console_render(want)
    used = [int(ln.split()[1]) for ln in r.text.splitlines() if ln.startswith("context: ")]
    assert used == [n + 24 - 1], (used, n)     # (the last token sampled is not fed yet)

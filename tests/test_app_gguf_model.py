"""GGUF models through the asm at the module level: the GGUF reader (gguf*.s), the binder
(model_gguf.s), the run state (model.s) and the forward pass (forward.s) with the real
kernels, against the numpy reference (tests/reference/gguf_forward.py, which reads the file
with gguf-py and models llama.cpp's quantized arithmetic).

Every model file of ../shared/models that the program runs: greedy tokens over 64 steps
equal the reference's, near-ties excepted (see greedy_against_reference; native: the host
CPU's AVX2 bodies; unicorn: the SSE2 bodies under guard pages, 12 steps), and SmolLM2
driven with fixed token ids. Refusals: a
tensor of a type the program cannot run, a missing tensor, a wrong shape and an unknown
architecture each give one line naming it.
"""
from __future__ import annotations

import struct
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from peasm import generated
from peasm.linker import link, load_manifest
from peasm.runners.emu import Emu
from tests.reference import gguf_forward as ref
from tests.support import REPO, model_file

APP = REPO / "app_asm"
KERNELS = REPO / "kernels_asm"
C = generated.constants()
for _line in (APP / "model.inc").read_text().splitlines():
    if _line.startswith(".equ MODEL_E_") or _line.startswith(".equ MODEL_F_"):
        _k, _v = _line[5:].split(",", 1)
        C[_k.strip()] = int(_v.split("#")[0].strip(), 0)
U32 = 0xFFFF_FFFF

SMALL = ["stories260K.gguf", "quant/stories260K-Q8_0.gguf", "quant/stories260K-Q4_0.gguf"] + [
    f"quant/tiny256-{t}.gguf" for t in ("f32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
                                       "Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K")]


@lru_cache(maxsize=None)
def image():
    sources = [APP / s for s in ("model.s", "model_state.s", "model_msg.s", "model_gguf.s", "model_gguf_keys.s",
                                  "model_gguf_msg.s", "forward.s", "model_repack.s", "gguf.s",
                                  "gguf_get.s", "gguf_msg.s")]
    sources += [Path(p) for p in load_manifest(KERNELS / "kernels.toml").sources]
    return link(sources, "model_forward", include_dirs=[KERNELS])


class GgufAsmModel:
    """A GGUF file loaded through the asm: open, config, bind, state; forward(token, pos).
    kv_type: the caches' element type, "f16" as the program's default for GGUF (session_mem.s's kv_type_apply).
    repack: model_repack(want 1) after the state is laid out, as the program's load does with
    `repack = on` (its default); `repacked` counts the weights it put into 8-row groups."""

    def __init__(self, machine, data: bytes, ctx: int = 96, kv_type: str = "f16", repack: bool = False):
        self.repacked = 0
        self.mc = machine
        self.file = machine.alloc(len(data), data, align=64)
        self.g = machine.alloc(C["GGUF_SIZE"], align=8)
        self.m = machine.alloc(C["MODEL_SIZE"], align=8)
        self.status = machine.call("gguf_open", self.g, self.file, len(data))
        if self.status:
            return
        self.status = machine.call("model_gguf_config", self.m, self.g)
        if self.status:
            return
        layers = machine.call("model_layers_bytes", self.m)
        self.status = machine.call("model_gguf_bind", self.m, self.g, machine.alloc(layers, align=8))
        if self.status:
            return
        ctx = min(ctx, self.u32("MODEL_SEQ_LEN"))
        machine.write(self.m + C["MODEL_KV_TYPE"], struct.pack("<I", C[f"GGML_TYPE_{kv_type.upper()}"]))
        need = machine.call("model_state_bytes", self.m, ctx)
        self.status = machine.call("model_init_state", self.m, machine.alloc(need, align=64), ctx, need)
        if not self.status and repack:
            self.repacked = machine.call("model_repack", self.m, 1)

    def u32(self, name: str) -> int:
        return struct.unpack("<I", self.mc.read(self.m + C[name], 4))[0]

    def logits(self, token: int, pos: int) -> np.ndarray:
        p = self.mc.call("model_forward", self.m, token, pos)
        assert p, self.message(self.u32("MODEL_ERROR"))
        return np.frombuffer(self.mc.read(p, 4 * self.u32("MODEL_VOCAB_SIZE")), "<f4").copy()

    def message(self, code: int) -> str:
        buf = self.mc.alloc(512, align=1)
        n = self.mc.call("model_format_error", self.m, code, buf, 512)
        return self.mc.read(buf, n).decode()


def machine(where: str):
    if where == "unicorn":
        emu = Emu(image())
        assert emu.call("kernels_init", 1, 0) == 1
        return emu
    from tests.model_support import NativeMachine
    nm = NativeMachine(image())
    nm.call("kernels_init", _host_bits(), 0)
    return nm


def _host_bits() -> int:
    from peasm.runners.native import host_cpu_bits
    return host_cpu_bits()


def _greedy_asm(am: GgufAsmModel, prompt: list[int], steps: int) -> list[int]:
    out, pos = [], 0
    for tok in prompt:
        logits = am.logits(tok, pos)
        pos += 1
    for _ in range(steps):
        tok = int(np.argmax(logits))
        out.append(tok)
        logits = am.logits(tok, pos)
        pos += 1
    return out


TIE = 2e-3      # a reference margin below this (relative to the largest logit) is a near-tie
SMOLLM2_TIE = 2e-2   # the same for SmolLM2's 30 layers


def greedy_against_reference(am: GgufAsmModel, tr: ref.GGUFTransformer, steps: int) -> list[int]:
    """Greedy decoding from BOS by the asm, the reference fed the same tokens. Each step the
    asm's token must be the reference's argmax, or a near-tie with it: quantizing the
    activations to Q8 is discontinuous, so an f32 rounding difference of 1e-7 can move one
    quant by one step and the logits by ~1e-3; where the reference's top two are closer than
    that, either may win. Returns the steps that were near-ties (the caller bounds them)."""
    tok, ties = 1, []
    for pos in range(steps):
        ours, theirs = am.logits(tok, pos), tr.forward(tok, pos)
        scale = float(np.abs(theirs).max())
        a, b = int(np.argmax(ours)), int(np.argmax(theirs))
        if a != b:
            gap = float(theirs[b] - theirs[a])
            assert gap <= TIE * scale, (pos, a, b, gap, scale)
            ties.append(pos)
        tok = a
    return ties


# unicorn runs the SSE2 bodies slowly: one file per kernel family, a few steps each
UNICORN = ["stories260K.gguf", "quant/stories260K-Q4_0.gguf", "quant/tiny256-BF16.gguf",
           "quant/tiny256-Q5_1.gguf", "quant/tiny256-Q4_K_M.gguf", "quant/tiny256-Q3_K_M.gguf"]


@pytest.mark.parametrize("where, name", [("native", n) for n in SMALL] + [("unicorn", n) for n in UNICORN])
def test_greedy_64_steps_equal_the_reference(name, where):
    path = model_file(name)
    am = GgufAsmModel(machine(where), path.read_bytes())
    assert am.status == 0, am.message(am.status)
    tr = ref.GGUFTransformer(ref.GGUFModel(path), ctx=96)
    ties = greedy_against_reference(am, tr, 64 if where == "native" else 6)
    assert len(ties) <= 2, ties


def test_first_logits_close_to_the_reference():
    path = model_file("quant/tiny256-Q4_1.gguf")
    am = GgufAsmModel(machine("native"), path.read_bytes())
    tr = ref.GGUFTransformer(ref.GGUFModel(path), ctx=96)
    for pos, tok in enumerate([1, 100, 200, 300]):
        ours, theirs = am.logits(tok, pos), tr.forward(tok, pos)
        assert np.allclose(ours, theirs, rtol=1e-3, atol=1e-3 * np.abs(theirs).max())


def test_smollm2_reply_to_a_question():
    """SmolLM2-135M-Instruct Q4_1 (Q8_0 embeddings, F32 norms), natively: the chatml prompt of
    a question (its default system message; ids by the independent `tokenizers` oracle, special
    tokens cut out first), then 4 greedy tokens equal the numpy reference's, near-ties
    excepted: the reference's sums are not the kernels' (its logits are within ~3% of the
    largest; the Q8 activations amplify an f32 rounding difference through 30 layers)."""
    from tests import vocab_support as vs
    path = model_file("SmolLM2-135M-Instruct.Q4_1.gguf")
    meta = vs.read_meta(str(path))
    tk = vs.oracle(meta)
    text = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
            "Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
            "<|im_start|>assistant\n")
    prompt = []
    for part in vs.partition(meta, text.encode(), True):
        prompt.extend([part] if isinstance(part, int) else vs.oracle_encode(tk, part))
    am = GgufAsmModel(machine("native"), path.read_bytes(), ctx=64)
    assert am.status == 0, am.message(am.status)
    assert (am.u32("MODEL_DIM"), am.u32("MODEL_N_LAYERS"), am.u32("MODEL_N_HEADS"),
            am.u32("MODEL_N_KV_HEADS"), am.u32("MODEL_VOCAB_SIZE")) == (576, 30, 9, 3, 49152)
    tr = ref.GGUFTransformer(ref.GGUFModel(path), ctx=64)
    for pos, tok in enumerate(prompt):
        ours, theirs = am.logits(tok, pos), tr.forward(tok, pos)
    for pos in range(len(prompt), len(prompt) + 4):   # 4 greedy tokens, both fed the asm's
        a, b = int(np.argmax(ours)), int(np.argmax(theirs))
        if a != b:      # a near-tie only: the answer's first token is one in llama.cpp itself
            gap = float(theirs[b] - theirs[a])         # (its top two: 24.74 and 24.65)
            assert gap <= SMOLLM2_TIE * float(np.abs(theirs).max()), (pos, a, b, gap)
        ours, theirs = am.logits(a, pos), tr.forward(a, pos)


def _rewrite(data: bytes, old: bytes, new: bytes) -> bytes:
    assert len(old) == len(new) and data.count(old) >= 1
    return data.replace(old, new, 1)


def test_refusals_name_what_is_wrong():
    data = model_file("quant/tiny256-Q8_0.gguf").read_bytes()
    mc = machine("unicorn")
    bad_arch = _rewrite(data, b"\x05\x00\x00\x00\x00\x00\x00\x00llama", b"\x05\x00\x00\x00\x00\x00\x00\x00gemma")
    am = GgufAsmModel(mc, bad_arch)
    assert am.status == C["MODEL_E_ARCH"]
    assert am.message(am.status) == "gguf: architecture 'gemma' is not supported (supported: llama qwen2)"
    missing = _rewrite(data, b"blk.1.ffn_up.weight", b"blk.1.ffn_XX.weight")
    am = GgufAsmModel(mc, missing)
    assert am.status == C["MODEL_E_TENSOR"]
    assert am.message(am.status) == "gguf: tensor 'blk.1.ffn_up.weight' is missing"

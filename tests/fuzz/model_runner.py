"""Fuzz kind `model`: llama2.c model files through app_asm/model.s + forward.s and the math
kernels under unicorn (what is called and what judges it: tests/fuzz/harness.py)."""
from __future__ import annotations

import struct
from functools import lru_cache
from pathlib import Path
from random import Random

from peasm.linker import link, load_manifest

from tests.fuzz.mutate import MAX_FILE, Case
from tests.fuzz.runner import APP, REPO, U32, Area, Outcome, Runner, line_problems
from tests.reference import modelfile as refmodel
from tests.support import inc_constants

KERNELS = REPO / "kernels_asm"


def _model_constants() -> dict[str, int]:
    from peasm import generated
    into = generated.constants()
    return inc_constants(APP / "model.inc", inc_constants(KERNELS / "kernels.inc", into))


MC = _model_constants()

MODEL_LIMITS = (MC["MODEL_MAX_DIM"], MC["MODEL_MAX_HIDDEN_DIM"], MC["MODEL_MAX_LAYERS"],
                MC["MODEL_MAX_HEADS"], MC["MODEL_MAX_HEADS"], MC["MODEL_MAX_VOCAB"],
                MC["MODEL_MAX_SEQ_LEN"])
FIELD_NAMES = ("dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len")


@lru_cache(maxsize=None)
def model_image():
    kernels = [KERNELS / s for s in load_manifest(KERNELS / "kernels.toml").sources] \
        if (KERNELS / "kernels.toml").is_file() else sorted(KERNELS.glob("*.s"))
    model = [APP / s for s in ("model.s", "model_state.s", "model_msg.s", "model_gguf_msg.s", "forward.s")]
    return link(model + [Path(k) for k in kernels], "model_forward")


def model_expectation(data: bytes) -> tuple[bool, set[int], str]:
    """(accepted?, the codes a refusal may give, why): model.inc's limits, then the
    reference reader with exact size (llama2.c ignores trailing bytes; this loader does not)."""
    E = MC
    if len(data) < refmodel.HEADER_SIZE:
        return False, {E["MODEL_E_SHORT"]}, "shorter than the header"
    ints = struct.unpack_from("<7i", data)
    bad = set()
    for i, v in enumerate(ints):
        a = -v if i == 5 and v < 0 else v
        if i == 5 and v == -2**31:                 # int32 abs() leaves it negative: either
            bad |= {E["MODEL_E_NONPOSITIVE"], E["MODEL_E_TOO_BIG"]}
        elif a <= 0:
            bad.add(E["MODEL_E_NONPOSITIVE"])
        elif a > MODEL_LIMITS[i]:
            bad.add(E["MODEL_E_TOO_BIG"])
    if bad:
        return False, bad, "a field out of range"
    cfg = refmodel.Config.from_header(ints)
    codes = set()
    if cfg.dim % cfg.n_heads:
        codes.add(E["MODEL_E_HEADS"])
    else:
        if cfg.head_size % 2:
            codes.add(E["MODEL_E_HEAD_SIZE"])
        if cfg.n_heads % cfg.n_kv_heads:
            codes.add(E["MODEL_E_KV_HEADS"])
    if cfg.n_heads % cfg.n_kv_heads:
        codes.add(E["MODEL_E_KV_HEADS"])
    try:
        refmodel.read_model(data, allow_trailing=False)
        ref_ok = True
    except refmodel.ModelFormatError as e:
        ref_ok, why = False, str(e)
    if ref_ok:
        assert not codes, f"the reference reads a header model.inc refuses ({codes})"
        return True, set(), "valid"
    if not codes:
        codes.add(E["MODEL_E_SIZE"])
    return False, codes, why


class ModelRunner(Runner):
    kind = "model"

    def __init__(self):
        super().__init__(model_image())
        path = self.emu.call("kernels_init", 1, 0)            # SSE2 feature bit: SSE2 bodies
        assert path == MC["K_PATH_SSE2"], path
        self.model = self.emu.alloc(MC["MODEL_SIZE"], align=8)
        self.file = Area(self.emu, MAX_FILE + 4096)
        self.msg = Area(self.emu, 4096)
        self.state = Area(self.emu, 4 << 20)
        self.layers = Area(self.emu, MC["LAYER_SIZE"] * MC["MODEL_MAX_LAYERS"])

    def u32(self, off: str) -> int:
        return struct.unpack("<I", self.emu.read(self.model + MC[off], 4))[0]

    def _run(self, case: Case, out: Outcome, rng: Random) -> None:
        E, emu, data = MC, self.emu, case.data
        fp = self.file.place(data)
        code = self.call("model_check_header", self.model, fp, len(data)) & U32
        stored = self.u32("MODEL_ERROR")
        if stored != code:
            out.problems.append(f"MODEL_ERROR is {stored}, the call returned {code}")
        if code >= E["MODEL_E_CTX"]:
            out.problems.append(f"model_check_header returned {code}, not a header code")
        # the messages: model_error_text, then model_format_error into 256 bytes and into
        # small buffers that end at a guard page (cut to fit, NUL-terminated)
        text = emu.read_cstr(self.call("model_error_text", code), 4096)
        out.problems += line_problems("model_error_text", text)
        line = b""
        for cap in (256, rng.choice((1, 2, 5, 17, 40)), 0):
            buf = self.msg.place(size=cap)
            n = self.call("model_format_error", self.model, code, buf, cap)
            if cap == 0:
                if n != 0:
                    out.problems.append(f"model_format_error wrote {n} bytes into capacity 0")
                continue
            raw = emu.read(buf, cap)
            if n >= cap or raw[n] != 0 or b"\0" in raw[:n]:
                out.problems.append(f"model_format_error(capacity {cap}) returned {n}: {raw!r}")
                continue
            if cap == 256:
                line = raw[:n]
                out.problems += line_problems("model_format_error", line)
            elif not line.startswith(raw[:n]):
                out.problems.append(f"cut message {raw[:n]!r} is not a prefix of {line!r}")
        out.message = line.decode("utf-8", "replace")
        accepted, codes, why = model_expectation(data)
        if code == 0:
            out.verdict = "accepted"
            if not accepted:
                out.problems.append(f"accepted, but the reference refuses it: {why}")
                return
            self._forward(out, rng)
            return
        out.verdict = f"refused: code {code}"
        if accepted:
            out.problems.append(f"refused with code {code}, but the reference reads the file")
        elif code not in codes:
            out.problems.append(f"refused with code {code}; the file breaks the rules of {sorted(codes)} ({why})")
        if code in (E["MODEL_E_NONPOSITIVE"], E["MODEL_E_TOO_BIG"]):
            i = self.u32("MODEL_ERR_FIELD")
            if i > 6:
                out.problems.append(f"MODEL_ERR_FIELD is {i}")
            else:
                v = struct.unpack_from("<i", data, 4 * i)[0]
                a = -v if i == 5 and v < 0 else v
                wrong = (a > 0) if code == E["MODEL_E_NONPOSITIVE"] else (0 < a <= MODEL_LIMITS[i])
                wrong = wrong and not (i == 5 and v == -2**31)
                if wrong:
                    out.problems.append(f"code {code} names field {FIELD_NAMES[i]} = {v}, which is fine")
                if FIELD_NAMES[i].encode() not in line or str(v).encode() not in line:
                    out.problems.append(f"message does not name {FIELD_NAMES[i]} = {v}")
        if code == E["MODEL_E_SIZE"] and str(len(data)).encode() not in line:
            out.problems.append(f"size message does not give the file size {len(data)}")

    def _forward(self, out: Outcome, rng: Random) -> None:
        E, emu = MC, self.emu
        fp = self.file.end - len(out.case.data)
        cfg = refmodel.read_header(out.case.data)
        layers = self.call("model_layers_bytes", self.model)
        if layers != MC["LAYER_SIZE"] * cfg.n_layers:
            out.problems.append(f"model_layers_bytes gave {layers}")
            return
        if self.call("model_bind_weights", self.model, fp, self.layers.place(size=layers)) != 0:
            out.problems.append("model_bind_weights refused a checked model")
            return
        if self.call("model_state_bytes", self.model, cfg.seq_len + 1) != 0 \
                or self.u32("MODEL_ERROR") != E["MODEL_E_CTX"]:
            out.problems.append("model_state_bytes accepted ctx_len = seq_len + 1")
        ctx = min(cfg.seq_len, rng.choice((1, 2, 3, 8)))
        need = self.call("model_state_bytes", self.model, ctx)
        if not 0 < need <= self.state.size:
            out.problems.append(f"model_state_bytes({ctx}) = {need}")
            return
        mem = self.state.place(size=need)
        if self.call("model_init_state", self.model, mem, ctx, need - 1) != E["MODEL_E_MEMORY"]:
            out.problems.append("model_init_state accepted one byte less than model_state_bytes")
        if self.call("model_init_state", self.model, mem, ctx, need) != 0:
            out.problems.append("model_init_state refused model_state_bytes bytes")
            return
        v = cfg.vocab_size
        steps = min(ctx, 3)
        for pos in range(steps):
            tok = rng.choice((0, 1, 2, v - 1, rng.randrange(v))) % v
            p = self.call("model_forward", self.model, tok, pos)
            if not (mem <= p and p + 4 * v <= mem + need):
                out.problems.append(f"model_forward({tok}, {pos}) gave logits at 0x{p:x}, "
                                    f"outside the run state")
                return
            emu.read(p, 4 * v)
        for tok, pos, want in ((v, 0, "MODEL_E_TOKEN"), (U32, 0, "MODEL_E_TOKEN"),
                               (0, ctx, "MODEL_E_POS"), (0, U32, "MODEL_E_POS")):
            if self.call("model_forward", self.model, tok, pos) != 0 or self.u32("MODEL_ERROR") != E[want]:
                out.problems.append(f"model_forward({tok}, {pos}) did not refuse with {want}")
        out.verdict = f"accepted, {steps} forward steps"

"""Run fuzz cases (tests/fuzz/mutate.py) through the app's asm modules under unicorn.

One runner per kind, each one `Emu` (peasm.runners.emu: guard pages, callee-saved registers
and stack alignment checked at every call and every global function entry) reused for every
case. Each buffer a case hands to the asm is placed with its END flush against a guard page
(areas allocated once, sized for the largest case), so reading or writing one byte past a
file, a workspace, a message buffer or the run state faults. Every call has an instruction
limit and a wall-clock timeout: a hang is reported like a fault.

* ModelRunner: app_asm/model.s + forward.s + the math kernels (kernels_asm, SSE2 bodies).
  model_check_header -> a code, model_error_text and model_format_error -> one non-empty
  line (also into small buffers that end at a guard page); accepted files go on through
  model_bind_weights, model_state_bytes, model_init_state and a few model_forward calls,
  plus the calls that must refuse (token = vocab_size, pos = ctx_len, ctx > seq_len).
  Judge: tests/reference's model reader (exact size) plus model.inc's limits: the asm
  accepts exactly the files the reference reads; a refusal's code names a rule the file
  really breaks.
* TokenizerRunner: app_asm/tokenizer.s. tok_load -> a code and tok_error_text; loaded
  vocabs go through tok_encode (also with a capacity one short) and tok_decode. Judges:
  tokenizer.inc's validation order restated here, tests/reference's reader (reads exactly
  the loaded files, once max_token_length is honoured) and its encode/decode (same ids,
  same bytes).
* CfgRunner: app_asm/settings.s + util.s + tests/fuzz/runtime_stubs.s, whose rt_print_*
  jump through .data slots to emulator traps that record the bytes (no console, no
  ConOut: config_parse's output exactly as it hands it over). The .data section is
  restored before each case, so a case does not depend on the ones run before it. Judge:
  every output line is `repl.cfg:N: ...(line ignored)`, and the set of reported lines and
  their kind (no '=', unknown key, bad value) is what settings.s's rules (restated in
  `expected_cfg_reports`) say; afterwards every setting is still in its range.

* GgufRunner: app_asm/gguf.s + gguf_get.s + gguf_msg.s (tests/gguf_support.py links them
  with the generated ggml type table). gguf_open -> a code; the judge is
  tests/reference/gguf_rules.py (gguf.s's rules restated): the same code, the same ERR_*
  details and exactly its message line, from gguf_format_error (also cut into small buffers
  at a guard page) and gguf_error_text. An accepted file is also read by gguf-py
  (`gguf.GGUFReader`), which must read it too (unless it holds a duplicate key or tensor
  name, or a name that is not UTF-8: gguf-py refuses those, this reader refuses them at
  lookup) and agree on every key's type and every tensor's type, dims and data offset;
  then lookups: every key (gguf_find_key, a getter of the wrong type), every tensor
  (gguf_tensor_at, gguf_find_tensor: DUP_TENSOR exactly for duplicated names), and
  gguf_check_types against the type table.

`run_case(case)` returns an Outcome; its `problems` list is empty when the case passes.
"""
from __future__ import annotations

import math
import re
import struct
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from random import Random

from peasm import chat_templates
from peasm.linker import link, load_manifest
from peasm.runners.emu import Emu, EmuFault

from tests.fuzz.mutate import MAX_FILE, Case
from tests.reference import modelfile as refmodel
from tests.reference import gguf_rules as refgguf
from tests.reference import tokenizer as reftok

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "app_asm"
KERNELS = REPO / "kernels_asm"
STUBS = Path(__file__).resolve().parent / "runtime_stubs.s"

#: per call: instructions, then wall-clock seconds (a loop that never ends hits one of them)
MAX_INSTRUCTIONS = 50_000_000
TIMEOUT_S = 30.0
U32 = 0xFFFF_FFFF


def _equs(path: Path, into: dict[str, int]) -> dict[str, int]:
    """The .equ constants of an .inc file (values may use earlier ones)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\s*\.equ\s+(\w+)\s*,\s*([^#]+)", line)
        if m:
            try:
                into[m.group(1)] = int(eval(m.group(2), {"__builtins__": {}}, dict(into)))
            except Exception:  # noqa: BLE001 - a constant we do not need
                pass
    return into


def _model_constants() -> dict[str, int]:
    from peasm import generated
    into = generated.constants()
    return _equs(APP / "model.inc", _equs(KERNELS / "kernels.inc", into))


MC = _model_constants()
TC = _equs(APP / "tokenizer.inc", {})
SC = _equs(APP / "settings.inc", {})

MODEL_LIMITS = (MC["MODEL_MAX_DIM"], MC["MODEL_MAX_HIDDEN_DIM"], MC["MODEL_MAX_LAYERS"],
                MC["MODEL_MAX_HEADS"], MC["MODEL_MAX_HEADS"], MC["MODEL_MAX_VOCAB"],
                MC["MODEL_MAX_SEQ_LEN"])
FIELD_NAMES = ("dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len")


@dataclass
class Outcome:
    case: Case
    verdict: str = ""                 # "accepted" / "refused: ..." / "N lines reported"
    message: str = ""                 # the asm's line(s)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def report(self) -> str:
        head = f"{self.case.id}: {'ok' if self.ok else 'FAIL'} ({self.verdict})"
        lines = [head, f"  case: {self.case.describe()}"]
        if self.message:
            msg = self.message if len(self.message) <= 3000 else self.message[:3000] + " ..."
            lines.append("  asm said: " + msg.replace("\n", "\n            "))
        lines += [f"  problem: {p}" for p in self.problems]
        return "\n".join(lines)


class Area:
    """A guard-paged region allocated once; data is placed at its end (flush against the
    upper guard page)."""

    def __init__(self, emu: Emu, size: int):
        self.emu, self.size = emu, size
        self.end = emu.alloc(size, align=1) + size

    def place(self, data: bytes = b"", size: int | None = None) -> int:
        size = len(data) if size is None else size
        assert len(data) <= size <= self.size, (len(data), size, self.size)
        address = self.end - size
        if data:
            self.emu.write(address, data)
        return address


def _line_problems(what: str, text: bytes) -> list[str]:
    """A message must be one non-empty line of valid UTF-8."""
    out = []
    if not text.strip():
        out.append(f"{what} is empty")
    if b"\n" in text or b"\r" in text:
        out.append(f"{what} has a line break: {text!r}")
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        out.append(f"{what} is not UTF-8: {text!r}")
    return out


class Runner:
    kind = ""

    def __init__(self, image):
        self.emu = Emu(image)

    def call(self, fn: str, *args: int) -> int:
        return self.emu.call(fn, *args, max_instructions=MAX_INSTRUCTIONS, timeout_s=TIMEOUT_S)

    def run_case(self, case: Case) -> Outcome:
        out = Outcome(case)
        t0 = time.perf_counter()
        try:
            self._run(case, out, Random(case.id + ":run"))
        except EmuFault as e:
            out.problems.append(f"EmuFault: {e}")
        except AssertionError as e:  # noqa: PERF203 - a judge's check, reported as a problem
            out.problems.append(f"check failed: {e}")
        except Exception:  # noqa: BLE001 - the harness itself broke: say so, with where
            import traceback
            out.problems.append("harness error: " + traceback.format_exc(limit=-3))
        out.seconds = time.perf_counter() - t0
        return out

    def _run(self, case: Case, out: Outcome, rng: Random) -> None:
        raise NotImplementedError


# ----------------------------------------------------------------------------- models

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
        out.problems += _line_problems("model_error_text", text)
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
                out.problems += _line_problems("model_format_error", line)
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


# ----------------------------------------------------------------------------- tokenizers

@lru_cache(maxsize=None)
def tokenizer_image():
    return link([APP / "tokenizer.s"], "tok_load")


def tokenizer_status(data: bytes, vocab: int) -> int:
    """tok_load's status by tokenizer.inc's validation order (the workspace being right)."""
    size, v = len(data), vocab & U32
    if not 1 <= v <= TC["TOK_MAX_VOCAB"]:
        return TC["TOK_E_VOCAB_SIZE"]
    if size > TC["TOK_MAX_FILE"]:
        return TC["TOK_E_FILE_SIZE"]
    if size < 4:
        return TC["TOK_E_HEADER"]
    (mtl,) = struct.unpack_from("<i", data)
    if not 1 <= mtl <= TC["TOK_MAX_TOKEN_LEN"]:
        return TC["TOK_E_MAX_LEN"]
    off = 4
    for _ in range(v):
        if size - off < 8:
            return TC["TOK_E_TRUNCATED"]
        (length,) = struct.unpack_from("<i", data, off + 4)
        off += 8
        if length < 0:
            return TC["TOK_E_NEGATIVE_LEN"]
        if length > mtl:
            return TC["TOK_E_LONG_PIECE"]
        if length > size - off:
            return TC["TOK_E_TRUNCATED"]
        off += length
    return TC["TOK_OK"]


FIXED_TEXTS = (b"Once upon a time", b"", b" ", b"the cat sat.", "héllo 你好 😀".encode(),
               b"\xff\xfe\x80abc\xc3", b"a\0b", b"<0x41>", b"\n\n  \t")


def encode_expectation(ref: reftok.Tokenizer, text: bytes, bos: bool, eos: bool):
    """The reference's ids, or the set of tok_encode error codes the text and vocab allow."""
    v = ref.vocab_size
    data = text.split(b"\0", 1)[0]
    errors = set()
    if (bos and v <= reftok.BOS) or (eos and v <= reftok.EOS):
        errors.add(TC["TOK_E_BAD_ID"])
    if data and ref.lookup(b" ") < 0:
        errors.add(TC["TOK_E_NO_SPACE"])
    for g in reftok.utf8_groups(data):
        if ref.lookup(g) < 0 and any(b + reftok.BYTE_OFFSET >= v for b in g):
            errors.add(TC["TOK_E_BAD_ID"])
    if errors:
        return errors
    return ref.encode(text, bos=bos, eos=eos)


class TokenizerRunner(Runner):
    kind = "tokenizer"

    def __init__(self):
        super().__init__(tokenizer_image())
        self.tok = self.emu.alloc(TC["TOK_SIZE"], align=8)
        self.file = Area(self.emu, MAX_FILE + 4096)
        ws_max = self.emu.call("tok_workspace_bytes", MAX_FILE + 4096, TC["TOK_MAX_VOCAB"])
        self.ws = Area(self.emu, ws_max)
        self.text = Area(self.emu, 4096)
        self.out = Area(self.emu, 4 * 4096)
        self.len_slot = Area(self.emu, 8).place(size=8)

    def _run(self, case: Case, out: Outcome, rng: Random) -> None:
        emu, data, vocab = self.emu, case.data, case.vocab_size & U32
        fp = self.file.place(data)
        need = self.call("tok_workspace_bytes", len(data), vocab)
        if need > self.ws.size:
            out.problems.append(f"tok_workspace_bytes({len(data)}, {vocab}) = {need}, more "
                                f"than for the largest file and vocab ({self.ws.size})")
            return
        ws = self.ws.place(size=max(need, 1))
        status = self.call("tok_load", self.tok, fp, len(data), vocab, ws, need) & U32
        text = emu.read_cstr(self.call("tok_error_text", status), 4096)
        out.message = text.decode("utf-8", "replace")
        out.problems += _line_problems("tok_error_text", text)
        want = tokenizer_status(data, vocab)
        if need == 0 and want in (TC["TOK_OK"],):
            out.problems.append("tok_workspace_bytes is 0 for a file that loads")
        if status != want:
            out.problems.append(f"tok_load gave {status}, tokenizer.inc's rules say {want}")
        # the reference reader: reads every file tok_load loads, and tok_load loads every
        # file it reads whose pieces fit max_token_length
        try:
            ref = reftok.read_tokenizer(data, vocab) if 1 <= vocab <= TC["TOK_MAX_VOCAB"] else None
        except reftok.TokenizerFormatError:
            ref = None
        if status == 0 and ref is None:
            out.problems.append("tok_load loaded a file the reference cannot read")
        mtl = struct.unpack_from("<i", data)[0] if len(data) >= 4 else 0   # as in the file
        if ref is not None and status != 0 and 1 <= mtl <= TC["TOK_MAX_TOKEN_LEN"] \
                and all(len(p) <= mtl for p in ref.pieces):
            out.problems.append(f"tok_load refused ({status}) a file the reference reads")
        if status != 0:
            out.verdict = f"refused: code {status}"
            if self.call("tok_encode", self.tok, self.text.place(b"a"), 1, 1,
                         self.out.place(size=16), 4) & U32 != (-TC["TOK_E_NOT_LOADED"]) & U32:
                out.problems.append("tok_encode accepted a tokenizer that did not load")
            return
        out.verdict = "loaded"
        if ref is not None:
            self._use(out, ref, rng)

    def _use(self, out: Outcome, ref: reftok.Tokenizer, rng: Random) -> None:
        emu = self.emu
        v = ref.vocab_size
        texts = list(FIXED_TEXTS[:4]) + [rng.choice(FIXED_TEXTS)]
        texts += [rng.randbytes(rng.randrange(1, 24)) for _ in range(2)]
        texts.append(b"".join(rng.choice(ref.pieces[:64] or [b"x"]) for _ in range(rng.randrange(1, 6))))
        for text in texts:
            bos, eos = rng.random() < 0.8, rng.random() < 0.2
            flags = (TC["TOK_ADD_BOS"] if bos else 0) | (TC["TOK_ADD_EOS"] if eos else 0)
            tp = self.text.place(text)
            cap = len(text) + 3
            op = self.out.place(size=4 * cap)
            n = struct.unpack("<i", struct.pack("<I", self.call("tok_encode", self.tok, tp, len(text),
                                                                flags, op, cap) & U32))[0]
            want = encode_expectation(ref, text, bos, eos)
            if n < 0:
                msg = emu.read_cstr(self.call("tok_error_text", n & U32), 4096)
                out.problems += _line_problems(f"tok_error_text({n})", msg)
                if not isinstance(want, set) or -n not in want:
                    out.problems.append(f"tok_encode({text!r}) = {n}, the reference gives {want}")
                continue
            ids = list(struct.unpack(f"<{n}i", emu.read(op, 4 * n)))
            if isinstance(want, set) or ids != want:
                out.problems.append(f"tok_encode({text!r}) = {ids}, the reference gives {want}")
                continue
            if n >= 1:        # one slot short: refused, nothing written past the capacity
                op = self.out.place(size=4 * (n - 1))
                r = self.call("tok_encode", self.tok, tp, len(text), flags, op, n - 1) & U32
                if r != (-TC["TOK_E_CAPACITY"]) & U32:
                    out.problems.append(f"tok_encode({text!r}) with capacity {n - 1} < {n} gave {r}")
        for _ in range(8):
            tok = rng.choice((rng.randrange(v), rng.randrange(v), 0, 1, 2, v - 1, v, U32))
            prev = rng.choice((reftok.BOS, 0, tok & 0xFFFF, rng.randrange(v)))
            emu.write(self.len_slot, b"\xAA" * 8)
            p = self.call("tok_decode", self.tok, prev, tok, self.len_slot)
            (n,) = struct.unpack("<Q", emu.read(self.len_slot, 8))
            if n > TC["TOK_MAX_TOKEN_LEN"]:
                out.problems.append(f"tok_decode({prev}, {tok}) length {n}")
                continue
            got = emu.read(p, n)
            want = ref.decode(prev, tok) if tok < v else b""
            if got != want:
                out.problems.append(f"tok_decode({prev}, {tok}) = {got!r}, the reference gives {want!r}")


# ----------------------------------------------------------------------------- repl.cfg

@lru_cache(maxsize=None)
def cfg_image():
    return link([APP / "settings.s", APP / "util.s", APP / "template.s",
                 REPO / "efi_stubs" / "format.s", STUBS], "config_parse", include_dirs=[APP])


_BOOL_WORDS = (b"0", b"1", b"off", b"on", b"false", b"true", b"no", b"yes")
_ENUMS = {"attn": (b"auto", b"sse2", b"avx2"), "kv_type": (b"auto", b"f16", b"f32"),
          "chat_format": tuple(t.name.encode() for t in chat_templates.TEMPLATES) + (b"auto",)}
_FLOAT_RE = re.compile(rb"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _trim(b: bytes) -> bytes:
    return b.strip(b" \t\r\n")


def _f32(x: float) -> float:
    try:
        return struct.unpack("<f", struct.pack("<f", x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def value_verdict(entry: dict, value: bytes) -> bool | None:
    """settings_set's verdict restated: True valid, False refused, None either (a float at a
    range boundary, with an extreme exponent or more digits than parse_float keeps)."""
    t = entry["type"]
    if t == SC["SET_T_STR"]:   # a file name: no control bytes (a NUL would cut it short)
        return 0 < len(value) <= SC["SET_STR_MAX"] - 1 and min(value) >= 0x20
    if t == SC["SET_T_TEXT"]:  # one line of text, may be empty
        return len(value) <= SC["SET_TEXT_MAX"] - 1 and (not value or min(value) >= 0x20)
    if t == SC["SET_T_BOOL"]:
        return value.lower() in _BOOL_WORDS
    if t == SC["SET_T_ENUM"]:
        return value.lower() in _ENUMS[entry["name"]]
    if t in (SC["SET_T_U32"], SC["SET_T_U64"]):
        if not re.fullmatch(rb"\+?\d+", value) or len(value.lstrip(b"+0")) > 20 \
                or int(value) >= 1 << 64:
            return False
        return t == SC["SET_T_U64"] or entry["min"] <= int(value) <= entry["max"]
    m = _FLOAT_RE.fullmatch(value)
    if not m:
        return False
    lo, hi = entry["min"], entry["max"]
    x = float(value)
    digits = len(re.sub(rb"^0+", b"", re.sub(rb"[^0-9]", b"", m.group(1))))
    exp = int(m.group(2)[1:]) if m.group(2) else 0
    if abs(exp) > 30 or digits > 17:
        return None
    x = _f32(x)
    if any(abs(x - b) <= 1e-6 * max(1.0, abs(b)) for b in (lo, hi)):
        return None
    return lo <= x <= hi


def expected_cfg_reports(text: bytes, table: dict[str, dict]) -> dict[int, tuple[str, bytes, bytes, bool]]:
    """{line number: (kind, key, value, sure)} for the lines config_parse must report."""
    out = {}
    if text.startswith(b"\xef\xbb\xbf"):    # text_skip_bom
        text = text[3:]
    lines = re.split(rb"\r\n|\n|\r", text)   # text_line: LF, CR LF or a lone CR end a line
    if lines and lines[-1] == b"":
        lines.pop()
    for n, line in enumerate(lines, 1):
        stmt = _trim(line.split(b"#", 1)[0])
        if not stmt:
            continue
        if b"=" not in stmt:
            out[n] = ("noeq", b"", b"", True)
            continue
        k, v = stmt.split(b"=", 1)
        key, value = _trim(k), _trim(v)
        entry = table.get(key.decode("latin-1"))
        if entry is None or not key:
            out[n] = ("unknown", key, b"", True)
            continue
        verdict = value_verdict(entry, value)
        if verdict is not True:
            out[n] = ("bad", key, value, verdict is False)
    return out


class CfgRunner(Runner):
    kind = "cfg"

    def __init__(self):
        image = cfg_image()
        super().__init__(image)
        self.printed = bytearray()
        emu = self.emu

        def cstr(e, a):
            self.printed += e.read_cstr(a(0), 1 << 16)

        def utf8(e, a):
            self.printed += e.read(a(0), a(1)) if a(1) else b""

        def u64(e, a):
            self.printed += str(a(0)).encode()

        for slot, fn in (("fuzz_print_cstr_slot", cstr), ("fuzz_print_utf8_slot", utf8),
                         ("fuzz_print_u64_slot", u64)):
            emu.write_u64(emu.address(slot), emu.trap(fn, slot))
        data = next(s for s in image.sections if s.name == ".data")
        self.data_at = emu.base + data.rva
        self.data_bytes = emu.read(self.data_at, data.vsize)
        self.text = Area(emu, MAX_FILE + 4096)
        self.table = self._table()
        self.has_write_cfg = any(s.name == "settings_write_cfg" and s.is_global for s in image.symbols)

    def _table(self) -> dict[str, dict]:
        emu, at, table = self.emu, self.emu.call("settings_first"), {}
        while True:
            name_p, ptr = struct.unpack("<QQ", emu.read(at, 16))
            if not name_p:
                return table
            typ, _src, mn, mx = struct.unpack("<IIII", emu.read(at + 16, 16))
            name = emu.read_cstr(name_p).decode()
            if typ == SC["SET_T_F32"]:
                mn, mx = (struct.unpack("<f", struct.pack("<I", x))[0] for x in (mn, mx))
            table[name] = {"name": name, "ptr": ptr, "type": typ, "min": mn, "max": mx}
            at += SC["SET_ENTRY"]

    def _run(self, case: Case, out: Outcome, rng: Random) -> None:
        emu = self.emu
        emu.write(self.data_at, self.data_bytes)             # every setting back to its default
        self.printed = bytearray()
        tp = self.text.place(case.data)
        self.call("config_parse", tp, len(case.data))
        printed = bytes(self.printed)
        out.message = printed.decode("utf-8", "replace").rstrip("\n")
        if printed and not printed.endswith(b"\n"):
            out.problems.append("the output does not end with a newline")
        got: dict[int, bytes] = {}
        for line in printed.split(b"\n")[:-1] if printed else []:
            m = re.match(rb"repl\.cfg:(\d+): (.*)\Z", line, re.S)
            if not m or not line.endswith(b"(line ignored)"):
                out.problems.append(f"malformed line {line[:200]!r}")
                continue
            n = int(m.group(1))
            if n in got or (got and n < max(got)):
                out.problems.append(f"line {n} reported out of order or twice")
            got[n] = m.group(2)
        want = expected_cfg_reports(case.data, self.table)
        out.verdict = f"{len(got)} lines reported"
        for n, (kind, key, value, sure) in want.items():
            body = got.get(n)
            if body is None:
                if sure:
                    out.problems.append(f"line {n} ({kind} {key[:60]!r} {value[:60]!r}) not reported")
                continue
            if kind == "noeq":
                ok = body == b"expected key=value (line ignored)"
            elif kind == "unknown":
                ok = body == b"unknown key '" + key + b"' (line ignored)"
            else:
                ok = body.startswith(b"bad value '" + value + b"' for " + key + b": expected ")
            if not ok:
                out.problems.append(f"line {n}: expected a {kind} report, got {body[:200]!r}")
        for n in got:
            if n not in want:
                out.problems.append(f"line {n} reported but valid: {got[n][:200]!r}")
        self._check_settings(out)
        if self.has_write_cfg:
            self._round_trip(out)

    def _values(self) -> dict[str, object]:
        emu, vals = self.emu, {}
        for name, e in self.table.items():
            t, p = e["type"], e["ptr"]
            if t == SC["SET_T_F32"]:
                vals[name] = struct.unpack("<f", emu.read(p, 4))[0]
            elif t == SC["SET_T_U64"]:
                vals[name] = emu.read_u64(p)
            elif t == SC["SET_T_STR"]:
                vals[name] = emu.read(p, SC["SET_STR_MAX"]).split(b"\0", 1)[0]
            elif t == SC["SET_T_TEXT"]:
                vals[name] = emu.read(p, SC["SET_TEXT_MAX"]).split(b"\0", 1)[0]
            else:
                vals[name] = struct.unpack("<I", emu.read(p, 4))[0]
        return vals

    def _round_trip(self, out: Outcome) -> None:
        """What /save_cfg writes (settings_write_cfg) reads back with no report and the
        same values (floats to the 3 decimals it prints)."""
        before = self._values()
        self.printed = bytearray()
        self.call("settings_write_cfg")
        written = bytes(self.printed)
        self.emu.write(self.data_at, self.data_bytes)
        self.printed = bytearray()
        self.call("config_parse", self.text.place(written), len(written))
        if self.printed:
            out.problems.append(f"the file settings_write_cfg writes is not read back cleanly: "
                                f"{bytes(self.printed)[:300]!r} (written: {written[:600]!r})")
        after = self._values()
        for name, v in before.items():
            w = after[name]
            same = abs(v - w) <= 0.0005 + 1e-6 * abs(v) if isinstance(v, float) else v == w
            if not same:
                out.problems.append(f"{name}: {v!r} written by settings_write_cfg, read back as {w!r}")

    def _check_settings(self, out: Outcome) -> None:
        emu = self.emu
        for name, e in self.table.items():
            t, p = e["type"], e["ptr"]
            if t == SC["SET_T_F32"]:
                x = struct.unpack("<f", emu.read(p, 4))[0]
                if not e["min"] <= x <= e["max"]:
                    out.problems.append(f"{name} = {x} after the parse")
            elif t in (SC["SET_T_U32"], SC["SET_T_BOOL"]):
                x = struct.unpack("<I", emu.read(p, 4))[0]
                if not e["min"] <= x <= e["max"]:
                    out.problems.append(f"{name} = {x} after the parse")
            elif t == SC["SET_T_ENUM"]:
                x = struct.unpack("<I", emu.read(p, 4))[0]
                if x >= len(_ENUMS[name]):
                    out.problems.append(f"{name} = {x} after the parse")
            elif t in (SC["SET_T_STR"], SC["SET_T_TEXT"]):
                size = SC["SET_STR_MAX"] if t == SC["SET_T_STR"] else SC["SET_TEXT_MAX"]
                if b"\0" not in emu.read(p, size):
                    out.problems.append(f"{name} is not NUL-terminated within its storage")


# ----------------------------------------------------------------------------- gguf

class GgufRunner(Runner):
    kind = "gguf"

    def __init__(self):
        from tests.gguf_support import AsmGguf, EmuMachine, gguf_image
        self.image = gguf_image()
        self.emu = Emu(self.image)
        machine = EmuMachine(self.emu)
        self.a = AsmGguf(machine, max_file=MAX_FILE + 4096,
                         call_kw={"max_instructions": MAX_INSTRUCTIONS, "timeout_s": TIMEOUT_S})

    def _run(self, case: Case, out: Outcome, rng: Random) -> None:
        R = refgguf
        a, data = self.a, case.data
        code = a.open(data)
        v = R.check(data)
        out.verdict = "accepted" if code == 0 else f"refused: {R.GGUF_ERRORS[code] if code < len(R.GGUF_ERRORS) else code}"
        if a.u32("ERROR") != code:
            out.problems.append(f"GGUF_ERROR is {a.u32('ERROR')}, the call returned {code}")
        text = a.error_text(code)
        out.problems += _line_problems("gguf_error_text", text)
        line = a.format_error(code, 1024)
        out.message = line.decode("utf-8", "replace")
        out.problems += _line_problems("gguf_format_error", line)
        for cap in (rng.choice((1, 2, 7, 30, 60)), 0):
            cut = a.format_error(code, cap)
            if not line.startswith(cut) or len(cut) != max(0, min(cap - 1, len(line))):
                out.problems.append(f"gguf_format_error(capacity {cap}) gave {cut!r}")
        for other in rng.sample(range(len(R.GGUF_ERRORS) + 1), 3):   # any code, whatever fields
            out.problems += _line_problems(f"gguf_format_error({other})", a.format_error(other, 512))
        if code != v.code:
            out.problems.append(f"gguf_open gave {code}, gguf_rules says {v.code} ({v.error})")
            return
        if code:
            want = R.message(v, len(data))
            if line.decode("utf-8", "replace") != want:
                out.problems.append(f"message {line!r}, gguf_rules says {want!r}")
            return
        self._accepted(out, v, rng)

    def _accepted(self, out: Outcome, v, rng: Random) -> None:
        import tempfile

        import gguf

        from peasm import ggml
        R = refgguf
        a, data = self.a, out.case.data
        for f, x in (("DATA_START", v.data_start), ("N_ELEMENTS", v.n_elements),
                     ("INFOS_START", v.infos_start), ("DATA_BYTES", v.data_bytes)):
            if a.u64(f) != x:
                out.problems.append(f"GGUF_{f} is {a.u64(f)}, gguf_rules says {x}")
        names = [k for k, _, _ in v.kvs]
        tnames = [t.name for t in v.tensors]
        py_may_refuse = len(set(names)) < len(names) or len(set(tnames)) < len(tnames)
        for n in names + tnames:
            try:
                n.decode("utf-8")
            except UnicodeDecodeError:
                py_may_refuse = True
        with tempfile.NamedTemporaryFile(suffix=".gguf") as tmp:
            tmp.write(data)
            tmp.flush()
            try:
                reader = gguf.GGUFReader(tmp.name)
            except Exception as e:  # noqa: BLE001 - gguf-py's verdict, judged below
                if not py_may_refuse:
                    out.problems.append(f"accepted, but gguf-py refuses it: {type(e).__name__}: {e}")
                reader = None
            if reader is not None:
                fields = [f for k, f in reader.fields.items() if not k.startswith("GGUF.")]
                got = [(f.name.encode(), int(f.types[0])) for f in fields]
                if got != [(k, t) for k, t, _ in v.kvs]:
                    out.problems.append(f"keys differ from gguf-py's: {got[:5]} ...")
                if a.u64("DATA_START") != reader.data_offset:
                    out.problems.append(f"data start {a.u64('DATA_START')}, gguf-py {reader.data_offset}")
                for i, rt in enumerate(reader.tensors):
                    code, t, name = a.tensor_at(i)
                    want = (0, rt.name.encode(), int(rt.tensor_type), [int(x) for x in rt.shape],
                            a.file + rt.data_offset, int(rt.n_bytes))
                    have = (code, name, t and t["TYPE"], t and list(t["NE"][:t["N_DIMS"]]),
                            t and t["DATA"], t and t["BYTES"])
                    if int(rt.tensor_type) == ggml.BY_NAME["Q8_1"].id:
                        want = want[:-1] + have[-1:]    # gguf-py sizes Q8_1 by its retired
                                                        # 40-byte block (ggml's is 36)
                    if have != want:
                        out.problems.append(f"tensor {i}: asm {have}, gguf-py {want}")
        E = {n: i for i, n in enumerate(R.GGUF_ERRORS)}
        for i, (key, t, at) in enumerate(v.kvs[:64]):
            ptr, err = a.find_key(key)
            dup = names.count(key) > 1
            if dup:
                if (ptr, err) != (0, E["DUP_KEY"]):
                    out.problems.append(f"key {key!r} appears twice, gguf_find_key gave {ptr:#x}/{err}")
            elif ptr != a.file + at:
                out.problems.append(f"gguf_find_key({key!r}) = {ptr:#x}, expected file+{at}")
            kind = "str" if t != R.TYPE["STRING"] else "u64"
            code, _ = a.get(kind, key)
            want = E["DUP_KEY"] if dup else E["KEY_TYPE"]
            if code != want:
                out.problems.append(f"gguf_get_{kind}({key!r}) of a type {t} key gave {code}, not {want}")
            msg = a.format_error(code)
            out.problems += _line_problems("getter message", msg)
        for i, t in enumerate(v.tensors[:64]):
            code, ten = a.find_tensor(t.name)
            want = E["DUP_TENSOR"] if tnames.count(t.name) > 1 else 0
            if code != want or (code == 0 and (ten["TYPE"], ten["BYTES"]) != (t.type, t.bytes)):
                out.problems.append(f"gguf_find_tensor({t.name!r}) gave {code} {ten}")
        bad = next((i for i, t in enumerate(v.tensors) if not ggml.runnable(ggml.BY_ID[t.type])), None)
        code = a.check_types()
        if code != (0 if bad is None else E["UNSUPPORTED"]) or (bad is not None and a.u64("ERR_INDEX") != bad):
            out.problems.append(f"gguf_check_types gave {code}, first unsupported tensor is {bad}")
        elif bad is not None:
            t = v.tensors[bad]
            if a.format_error(code).decode() != R.unsupported_message(bad, t.name, t.type):
                out.problems.append(f"gguf_check_types message {a.format_error(code)!r}")
        if a.tensor_at(len(v.tensors))[0] != E["INDEX"]:
            out.problems.append("gguf_tensor_at(count) did not refuse the index")


def _vocab_runner():
    from tests.fuzz.vocab import VocabRunner   # GGUF tokenizer metadata (its own module)
    return VocabRunner()


RUNNERS = {"model": ModelRunner, "tokenizer": TokenizerRunner, "cfg": CfgRunner, "gguf": GgufRunner,
           "vocab": _vocab_runner}

"""app_asm/template.s (chat templates) under unicorn, against jinja2 rendering each model's own
Jinja template (tests/reference/chat_templates.py cites where each text comes from).

Every buffer the asm gets ends flush against an unmapped guard page, and the output buffer is
exactly as long as the expected text, so one byte too far faults. For every format row: a
conversation with a system message, 2 user turns and 1 reply, and the same with no system
message (SmolLM2's template then inserts its default system message, which the asm reads out
of the template text), must render to the same text as jinja2; so must conversations whose
messages carry leading/trailing whitespace (the trimming formats) and random ones. Rendering
turn by turn (what the session prefills) must give the same text as the whole conversation.
Detection maps each template text (and older versions, and the GGUF files' own) to its row.
"""
from __future__ import annotations

import random
import struct
import tempfile
from functools import lru_cache
from pathlib import Path

import pytest

from peasm.chat_templates import (CHAT_CONV, CHAT_MSG, CHAT_TEMPLATE, CHAT_TURN, CONSTANTS, ROW,
                                  TEMPLATES)
from peasm.linker import link
from peasm.runners.emu import Emu
from tests.reference import chat_templates as ref
from tests.support import require

REPO = Path(__file__).resolve().parent.parent
TEMPLATE_S = REPO / "app_asm" / "template.s"
NONE = CONSTANTS["CHAT_NONE"]
E_SPACE = CONSTANTS["CHAT_E_SPACE"] & (2**64 - 1)
E_ROW = CONSTANTS["CHAT_E_ROW"] & (2**64 - 1)
SMOLLM_DEFAULT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
TURNS = ["Hello there", "Hi! How can I help you today?", "What is 2+2?"]
PADDED = ["  \tHello there \n", "\n Hi! How can I help you today?  ", " What is 2+2?\r\n"]


@lru_cache(maxsize=None)
def image():
    return link([TEMPLATE_S], "template_render")


def offsets(struct_):
    return struct_.layout()[0]


class Templates:
    """The asm routines, called under unicorn with guard-paged buffers."""

    def __init__(self):
        self.emu = Emu(image())

    def buf(self, data: bytes) -> int:
        return self.emu.alloc(max(len(data), 1), data if data else None, align=1)

    def text(self, s: str) -> tuple[int, int]:
        b = s.encode("utf-8")
        return self.buf(b), len(b)

    def _run(self, fn: str, arg: bytes, size: int) -> bytes | int:
        out = self.emu.alloc(max(size, 1), align=1)
        argp = self.emu.alloc(len(arg), arg, align=8)
        n = self.emu.call(fn, out, size, argp)
        if n >= 1 << 63:
            return n
        assert n <= size
        return self.emu.read(out, n)

    def render(self, row: int, system: str | None, turns: list[str], size: int) -> bytes | int:
        off = offsets(CHAT_MSG)
        msgs = bytearray(CHAT_MSG.layout()[1] * len(turns))
        for i, t in enumerate(turns):
            p, n = self.text(t)
            struct.pack_into("<QQ", msgs, i * 16 + off["TEXT"], p, n)
        msgs_p = self.buf(bytes(msgs))
        sp, sn = self.text(system) if system else (0, 0)
        o = offsets(CHAT_CONV)
        conv = bytearray(CHAT_CONV.layout()[1])
        struct.pack_into("<I", conv, o["ROW"], row)
        struct.pack_into("<I", conv, o["N_MESSAGES"], len(turns))
        struct.pack_into("<Q", conv, o["SYSTEM"], sp)
        struct.pack_into("<Q", conv, o["SYSTEM_LEN"], sn)
        struct.pack_into("<Q", conv, o["MESSAGES"], msgs_p)
        return self._run("template_render", bytes(conv), size)

    def render_turn(self, row: int, flags: int, system: str | None, text: str,
                    size: int = 4096) -> bytes | int:
        sp, sn = self.text(system) if system else (0, 0)
        tp, tn = self.text(text)
        o = offsets(CHAT_TURN)
        turn = bytearray(CHAT_TURN.layout()[1])
        struct.pack_into("<I", turn, o["ROW"], row)
        struct.pack_into("<I", turn, o["FLAGS"], flags)
        struct.pack_into("<Q", turn, o["SYSTEM"], sp)
        struct.pack_into("<Q", turn, o["SYSTEM_LEN"], sn)
        struct.pack_into("<Q", turn, o["TEXT"], tp)
        struct.pack_into("<Q", turn, o["TEXT_LEN"], tn)
        return self._run("template_render_turn", bytes(turn), size)

    def detect(self, text: str) -> int:
        p, n = self.text(text)
        return self.emu.call("template_detect", p, n) & 0xFFFF_FFFF

    def find(self, name: bytes) -> int:
        p = self.buf(name)
        return self.emu.call("template_find", p, len(name)) & 0xFFFF_FFFF

    def field(self, row: int, field: str) -> bytes:
        self.emu.call("template_text", row, offsets(CHAT_TEMPLATE)[field])
        p = self.emu.uc.reg_read(__import__("unicorn").x86_const.UC_X86_REG_RAX)
        n = self.emu.uc.reg_read(__import__("unicorn").x86_const.UC_X86_REG_RDX)
        return self.emu.read(p, n) if n else b""

    def default_system(self, row: int, template: str) -> str | None:
        p, n = self.text(template)
        ptr = self.emu.call("template_default_system", row, p, n)
        from unicorn.x86_const import UC_X86_REG_RDX
        length = self.emu.uc.reg_read(UC_X86_REG_RDX)
        if ptr == 0:
            assert length == 0
            return None
        assert p <= ptr and ptr + length <= p + n
        return self.emu.read(ptr, length).decode("utf-8")


@pytest.fixture(scope="module")
def t() -> Templates:
    return Templates()


def expected(name: str, system: str | None, turns: list[str]) -> bytes:
    text, bos, eos, fold = ref.JINJA[name]
    return ref.render(text, ref.conversation(system, turns, fold), bos, eos).encode("utf-8")


def system_for(t: Templates, name: str, system: str | None) -> str | None:
    """What the session passes: the user's system text, else the template's default one."""
    if system is not None:
        return system
    return t.default_system(ROW[name], ref.JINJA[name][0])


@pytest.mark.parametrize("name", list(ref.JINJA))
@pytest.mark.parametrize("system", ["You are a pirate. Answer in one line.", None])
def test_render_equals_jinja(t, name, system):
    want = expected(name, system, TURNS)
    got = t.render(ROW[name], system_for(t, name, system), TURNS, len(want))
    assert got == want
    # one byte less does not fit: refused, nothing written past the end (guard page)
    assert t.render(ROW[name], system_for(t, name, system), TURNS, len(want) - 1) == E_SPACE


@pytest.mark.parametrize("name", list(ref.JINJA))
def test_render_trims_as_the_template(t, name):
    for system in ("\n You are terse. \t", None):
        want = expected(name, system, PADDED)
        assert t.render(ROW[name], system_for(t, name, system), PADDED, len(want)) == want


@pytest.mark.parametrize("name", list(ref.JINJA))
def test_render_random_conversations(t, name):
    rng = random.Random(name)
    alphabet = "abc XYZ 019 .,!?'\"{}<>|[]/\\\t\n\r é中ü"
    for _ in range(12):
        n = rng.choice([1, 3, 5])
        turns = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24))) for _ in range(n)]
        system = rng.choice([None, "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30)))])
        if system is not None and not system.strip():
            system = "x" + system
        want = expected(name, system, turns)
        assert t.render(ROW[name], system_for(t, name, system), turns, len(want)) == want, turns


@pytest.mark.parametrize("name", list(ref.JINJA))
def test_turn_by_turn_equals_whole(t, name):
    """What the session prefills: the first turn, then the reply as the model left it, then
    each new turn closing the reply before it; together the whole conversation's text."""
    row, system = ROW[name], "Be brief."
    f_first, f_after = CONSTANTS["CHAT_TURN_F_FIRST"], CONSTANTS["CHAT_TURN_F_AFTER_REPLY"]
    first = t.render_turn(row, f_first, system, TURNS[0])
    reply = t.field(row, "ASSISTANT_PREFIX") + TURNS[1].encode()
    second = t.render_turn(row, f_after, None, TURNS[2])
    assert first + reply + second == expected(name, system, TURNS)
    assert first == expected(name, system, TURNS[:1])


def test_raw_and_you_ai_rows(t):
    assert t.render(ROW["raw"], None, ["Once upon a time"], 64) == b"Once upon a time"
    assert t.render(ROW["you_ai"], None, ["Hi", "Hello.\n", "Bye"], 64) == b"You: Hi\nAI:Hello.\nYou: Bye\nAI:"
    assert t.render_turn(ROW["you_ai"], CONSTANTS["CHAT_TURN_F_FIRST"], None, "Hi") == b"You: Hi\nAI:"


def test_bad_row_and_empty(t):
    assert t.render(len(TEMPLATES), None, TURNS, 4096) == E_ROW
    assert t.render_turn(0xFFFF_FFFF, 0, None, "x") == E_ROW
    assert t.render(ROW["chatml"], None, [], 16) == b""
    assert t.render_turn(ROW["chatml"], 0, None, "", 64) == b"<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n"


def test_detect_each_template(t):
    for name, (text, *_rest) in ref.JINJA.items():
        assert t.detect(text) == ROW[name], name
    for name, text in ref.DETECT_ONLY.items():
        assert t.detect(text) == ROW[name], name


def test_detect_gguf_templates(t):
    for path, name in ((ref.SMOLLM2, "chatml"), (ref.QWEN2_VOCAB, "chatml"), (ref.PHI3_VOCAB, "phi3")):
        require(path.exists(), str(path))
        text = ref.gguf_template(path)
        assert text is not None
        assert t.detect(text) == ROW[name], path.name
    assert ref.gguf_template(ref.SMOLLM2) == ref.SMOLLM2_TEXT


def test_detect_unknown(t):
    for text in ("", "hello", "{{ messages }}", "<|im_start", "[INS]", "<|user|> only"):
        assert t.detect(text) == NONE, text


def test_find_by_name(t):
    for i, tpl in enumerate(TEMPLATES):
        assert t.find(tpl.name.encode()) == i
    for bad in (b"", b"chat", b"chatmlx", b"ChatML", b"auto", b"llama"):
        assert t.find(bad) == NONE, bad


def test_fields_and_stops(t):
    for i, tpl in enumerate(TEMPLATES):
        for field in ("NAME", "STOP0", "STOP1", "GENERATION_PROMPT", "BOS"):
            assert t.field(i, field) == tpl.text(field).encode()
    assert t.field(ROW["chatml"], "STOP0") == b"<|im_end|>"
    assert t.field(ROW["llama3"], "STOP0") == b"<|eot_id|>"
    assert t.field(ROW["gemma"], "STOP0") == b"<end_of_turn>"
    assert t.field(ROW["phi3"], "STOP0") == b"<|end|>"
    assert t.field(ROW["mistral"], "STOP0") == b"</s>"
    assert t.field(len(TEMPLATES), "NAME") == b""


def test_default_system(t):
    assert t.default_system(ROW["chatml"], ref.SMOLLM2_TEXT) == SMOLLM_DEFAULT
    require(ref.QWEN2_VOCAB.exists(), str(ref.QWEN2_VOCAB))
    assert t.default_system(ROW["chatml"], ref.gguf_template(ref.QWEN2_VOCAB)) == \
        "You are a helpful assistant"
    for name, (text, *_rest) in ref.JINJA.items():
        if name != "chatml":
            assert t.default_system(ROW[name], text) is None, name
    assert t.default_system(ROW["chatml"], ref.DETECT_ONLY["chatml"]) is None
    assert t.default_system(ROW["chatml"], "") is None
    assert t.default_system(len(TEMPLATES), ref.SMOLLM2_TEXT) is None

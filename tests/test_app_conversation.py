"""Conversations through the chat program (natively): chat formats, system prompt, stop tokens,
/history, /clear, context shift, against a reference conversation built from independent
parts: jinja2 renders the format's own Jinja template (tests/reference/chat_templates.py),
the llama2.c reference tokenizer encodes it, the numpy reference model generates greedily.

The model is stories260K with its 512-token vocabulary (a llama2.c model: no special tokens,
so the template's control texts are tokenized as text; a vocabulary where one piece is
renamed "<|im_end|>" makes that id an end-of-turn token). Each user turn prefills only its
new tokens: its text is what the template adds after the conversation so far (closing the
reply before it); when it does not fit the context, the oldest turns are dropped and the
whole kept conversation is rendered and prefilled again.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.app_helpers import console_render, generations, make_volume, run_chat
from tests.reference import chat_templates as tpl
from tests.reference import llama2 as ref
from tests.support import model_file

CHATML = tpl.DETECT_ONLY["chatml"]          # plain chatml: no default system message


def render(system: str | None, msgs: list[str]) -> str:
    """jinja2: the conversation (user, reply, user, ...) with the generation prompt."""
    return tpl.render(CHATML, tpl.conversation(system, msgs, False), "<s>", "</s>")


class RefChat:
    """The conversation the program should hold, step by step (greedy)."""

    def __init__(self, model, tok, *, system=None, ctx=512, max_tokens=12, stops=()):
        self.tf = ref.Transformer(model)
        self.tok, self.system, self.ctx = tok, system, ctx
        self.max_tokens, self.stops = max_tokens, set(stops) | {1, 2}
        self.sampler = ref.Sampler(model.config.vocab_size, 0.0, 0.9, 1)
        self.msgs: list[str] = []
        self.pos, self.pending, self.logits, self.history = 0, None, None, []

    def _feed(self, ids):
        for t in ids:
            self.logits = self.tf.forward(t, self.pos)
            self.history.append(t)
            self.pos += 1

    def turn(self, user: str) -> dict:
        """-> n_prompt, pieces, shifted; None when the turn is refused."""
        if self.pos == 0 and self.pending is None:
            ids = self.tok.encode(render(self.system, self.msgs + [user]), bos=True)
        else:
            before = render(self.system, self.msgs[:-1]) + self.msgs[-1]
            whole = render(self.system, self.msgs + [user])
            assert whole.startswith(before)
            ids = ([self.pending] if self.pending is not None else []) + \
                self.tok.encode(whole[len(before):], bos=False)
        shifted = False
        if self.pos + len(ids) > self.ctx:
            if len(self.tok.encode(render(self.system, [user]), bos=True)) > self.ctx:
                return None
            shifted = True
            while True:
                self.msgs = self.msgs[2:]
                ids = self.tok.encode(render(self.system, self.msgs + [user]), bos=True)
                if len(ids) <= self.ctx:
                    break
            self.tf.reset()
            self.pos, self.pending, self.history = 0, None, []
        self.pending = None
        self._feed(ids)
        pieces, prev, n_gen, gen = [], ids[-1], 0, []
        while True:
            nxt = self.sampler.sample(self.logits, self.history)
            n_gen += 1
            gen.append(nxt)
            if nxt in self.stops:
                break
            pieces.append(self.tok.decode(prev, nxt))
            if n_gen >= self.max_tokens or self.pos >= self.ctx:
                self.pending = nxt
                break
            self._feed([nxt])
            prev = nxt
        self.msgs += [user, b"".join(pieces).decode("utf-8")]
        return {"n_prompt": len(ids), "pieces": pieces, "shifted": shifted, "n_gen": n_gen,
                "tokens": gen}


@pytest.fixture(scope="module")
def stories():
    model_path, tok_path = model_file("stories260K.bin"), model_file("tok512.bin")
    return model_path, tok_path, ref.read_model(model_path)


def chat_run(chat_efi, vol, files, cfg, lines):
    make_volume(vol, files=files, cfg=cfg, autorun=lines + ["/shutdown"])
    r = run_chat(chat_efi, vol, "native")
    assert r.status == 0 and r.reason == "powered off", (r.reason, r.text[-1500:])
    return r.text


def stats(text: str) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in
            re.findall(r"\[stats\] prompt_tokens=(\d+) gen_tokens=(\d+)", text)]


@pytest.mark.parametrize("system", [None, "You tell short stories."])
def test_chatml_turns_equal_reference(chat_efi, tmp_path, stories, system):
    model_path, tok_path, model = stories
    tok = ref.read_tokenizer(tok_path, 512)
    users = ["Once upon a time", "and then?", "Tell me more."]
    cfg = "temperature = 0\nmax_tokens = 12\nchat_format = chatml\n"
    if system:
        cfg += f"system_prompt = {system}\n"
    text = chat_run(chat_efi, tmp_path / "vol", {"m.bin": model_path, "tok512.bin": tok_path},
                    cfg, users)
    chat = RefChat(model, tok, system=system)
    want = [chat.turn(u) for u in users]
    assert generations(text) == [console_render(w["pieces"]) for w in want]
    # each turn prefills only its new tokens (the 2nd and 3rd: the pending token + the text
    # that closes the reply and opens the next turn)
    assert [p for p, _ in stats(text)] == [w["n_prompt"] for w in want]
    whole = len(tok.encode(render(system, chat.msgs[:3]), bos=True))   # a full re-prefill
    assert want[1]["n_prompt"] < whole - 12 and not any(w["shifted"] for w in want)


def test_end_of_turn_id_stops_and_is_not_printed(chat_efi, tmp_path, stories):
    """A vocabulary whose piece for a token the model generates is renamed "<|im_end|>": the
    chatml format stops there, by id, without printing it; the next turn closes the reply."""
    model_path, tok_path, model = stories
    tok = ref.read_tokenizer(tok_path, 512)
    first = RefChat(model, tok, max_tokens=12).turn("Once upon a time")
    prompt_ids = tok.encode(render(None, ["Once upon a time"]), bos=True)
    stop = next(t for t in first["tokens"][3:] if t not in prompt_ids and t > 258)
    pieces = list(tok.pieces)
    pieces[stop] = b"<|im_end|>"
    renamed = ref.Tokenizer(pieces, tok.scores, max_token_length=max(len(p) for p in pieces))
    vol = tmp_path / "vol"
    vol.mkdir()
    ref.write_tokenizer(renamed, vol / "tok512.bin")
    users = ["Once upon a time", "and then?"]
    text = chat_run(chat_efi, vol, {"m.bin": model_path},
                    "temperature = 0\nmax_tokens = 12\nchat_format = chatml\n", users + ["/history"])
    chat = RefChat(model, renamed, stops={stop})
    want = [chat.turn(u) for u in users]
    assert want[0]["n_gen"] < 12                     # the stop token ended it, not max_tokens
    assert generations(text) == [console_render(w["pieces"]) for w in want]
    assert [s for s in stats(text)] == [(w["n_prompt"], w["n_gen"]) for w in want]
    assert "<|im_end|>" not in "".join(generations(text))


def test_history_clear_and_system(chat_efi, tmp_path, stories):
    model_path, tok_path, _ = stories
    lines = ["/history", "hello", "/history", "/system Be kind.", "/system", "/history", "hi",
             "/clear", "/history", "/system -", "/system", "/system " + "x" * 600, "/system"]
    text = chat_run(chat_efi, tmp_path / "vol", {"m.bin": model_path, "tok512.bin": tok_path},
                    "temperature = 0\nmax_tokens = 6\nchat_format = chatml\n", lines)
    blocks = re.split(r"(?m)^> ", text)
    by_cmd = [(b.split("\n", 1)[0], b.split("\n", 1)[1] if "\n" in b else "") for b in blocks[1:]]
    out = [body for _, body in by_cmd]
    assert out[0] == "format: chatml\nsystem: (none)\n(no turns yet)\n"
    reply = out[1].split("\n[stats]")[0]
    assert out[2] == f"format: chatml\nsystem: (none)\nuser: hello\nassistant: {reply}\n"
    assert out[3] == "system prompt set; conversation cleared\n"
    assert out[4] == "system: Be kind.\n"
    assert out[5] == "format: chatml\nsystem: Be kind.\n(no turns yet)\n"
    assert out[8] == "format: chatml\nsystem: Be kind.\n(no turns yet)\n"   # /clear keeps it
    assert out[9] == "system prompt cleared; conversation cleared\n"
    assert out[10] == "system: (none)\n"
    assert out[11].count("\n") == 1 and out[11].startswith("bad value")
    assert out[12] == "system: (none)\n"


def test_context_shift_keeps_system_and_recent_turns(chat_efi, tmp_path, stories):
    model_path, tok_path, model = stories
    tok = ref.read_tokenizer(tok_path, 512)
    system = "Stories."
    users = [f"Turn {i}: go on." for i in range(10)]
    ctx = 200
    cfg = (f"temperature = 0\nmax_tokens = 10\nchat_format = chatml\nctx_len = {ctx}\n"
           f"system_prompt = {system}\n")
    long_line = "word " * 150
    text = chat_run(chat_efi, tmp_path / "vol", {"m.bin": model_path, "tok512.bin": tok_path},
                    cfg, users + ["/history", long_line, "/history", "/ctx"])
    chat = RefChat(model, tok, system=system, ctx=ctx, max_tokens=10)
    want = [chat.turn(u) for u in users]
    assert chat.turn(long_line) is None                   # can never fit: refused
    assert sum(w["shifted"] for w in want) >= 3
    notice = "[context full: the oldest turns were dropped; the system prompt is kept]\n"
    assert generations(text) == [(notice if w["shifted"] else "") + console_render(w["pieces"])
                                 for w in want]
    assert [p for p, _ in stats(text)] == [w["n_prompt"] for w in want]
    assert text.count(notice) == sum(w["shifted"] for w in want)
    assert "conversation was cleared" not in text
    hist = re.findall(r"(?ms)^> /history\n(.*?)(?=^> )", text)
    kept = chat.msgs
    lines = ["format: chatml", f"system: {system}"] + \
        [("user: " if i % 2 == 0 else "assistant: ") + m for i, m in enumerate(kept)]
    assert hist[0] == "\n".join(lines) + "\n"
    assert hist[1] == hist[0]                            # the refused turn changed nothing
    assert "prompt too long for the context" in text
    assert 0 < len(kept) < 2 * len(users)

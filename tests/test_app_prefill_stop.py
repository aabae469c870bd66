"""Esc and the time budget during a prompt's prefill, through the whole chat program (hosted).

generate.s feeds a prompt through app_asm/prefill.s, MODEL_BATCH tokens per
model_forward_batch call, and checks Esc and the budget between two batches. A stopped
prefill takes the turn back whole: the judge is a second session that never had the stopped
turn (the same lines before and after it, the same seed): what follows must be the same text,
the same /ctx and /history - the reply's tokens (sampled, temperature 1, so the random
sequence must be untouched too), the pending token of the reply before, the position and the
KV cache rows. After a context shift the stopped re-prefill has overwritten the old
conversation's first KV rows: the next turn feeds them again from the token list (and that
refeed can be stopped in its turn, keeping what it fed)."""
from __future__ import annotations

import re

import pytest

from peasm import generated
from tests.app_helpers import make_volume, run_chat
from tests.reference import llama2 as ref
from tests.support import model_file

B = generated.constants()["MODEL_BATCH"]
ESC = b"\x1b"
LONG = ("Once upon a time, there was a little girl named Lily. She loved to play outside "
        "in the park with her big red ball and her friend Tom.")
AS_BEFORE = "tokens fed; the conversation is as before it]"


# ----------------------------------------------------------------------------- model_forward_rows

@pytest.mark.parametrize("where,name", [("native", "stories260K.bin"),
                                        ("native", "quant/tiny256-Q4_0.gguf"),
                                        ("unicorn", "stories260K.bin")])
def test_rows_then_a_batch_equal_one_batch(where, name):
    """prefill.s feeds a prompt's batches but the last through model_forward_rows (no
    classifier): the KV cache and the last logits equal one model_forward_batch call's, bit
    for bit, and model_forward_rows leaves the logits buffer alone."""
    from tests.test_app_prefill import U32, Machine, Model, prompt
    m = Machine(where)
    try:
        model = Model(m, model_file(name), ctx=3 * B + 8)
        toks = prompt(model.vocab, 2 * B + 5, 4)
        model.reset()
        whole = model.batch(toks, 0)
        kv = model.kv()
        model.reset()
        logits = model.u64("MODEL_S_LOGITS")
        sentinel = bytes(range(256)) * (4 * model.vocab // 256 + 1)
        model.mc.write(logits, sentinel[:4 * model.vocab])
        for i in (0, B):
            part = toks[i:i + B]
            model.mc.write(model.toks, b"".join((t & U32).to_bytes(4, "little") for t in part))
            assert model.mc.call("model_forward_rows", model.m, model.toks, B, i) == logits
            assert model.mc.read(logits, 4 * model.vocab) == sentinel[:4 * model.vocab]
        assert model.batch(toks[2 * B:], 2 * B).tobytes() == whole.tobytes()
        assert model.kv() == kv
    finally:
        m.close()


# ----------------------------------------------------------------------------- the chat program


@pytest.fixture(scope="module")
def tok():
    return ref.read_tokenizer(model_file("tok512.bin"), 512)


def _vol(tmp_path, name, cfg, model=None, autorun=None):
    files = {"tok512.bin": model_file("tok512.bin"),
             "m.bin": model if model is not None else model_file("stories260K.bin")}
    return make_volume(tmp_path / name, files=files, cfg=cfg, autorun=autorun)


def _session(efi, vol, cpu, keys=b""):
    r = run_chat(efi, vol, cpu, input_bytes=keys)
    assert r.status == 0 and r.reason == "powered off", (r.reason, r.text[-1500:])
    return r.text


def _untimed(text: str) -> str:
    """The stats lines' rates left out (they are timings)."""
    return re.sub(r"prefill_tok_s=\S+ decode_tok_s=\S+", "", text)


def _from(text: str, line: str) -> str:
    """The transcript from the LAST echo of `line` on, untimed."""
    return _untimed(text[text.rindex(f"> {line}\n"):])


def _after(text: str, line: str) -> list[str]:
    """The lines printed after the (first) echo of `line` up to the next prompt, untimed."""
    return _untimed(text.split(f"> {line}\n", 1)[1].split("\n> ", 1)[0]).splitlines()


@pytest.mark.parametrize("cpu", ["native", "unicorn"])
def test_esc_during_the_prompt_takes_the_turn_back(chat_efi, tmp_path, tok, cpu):
    """The reply before is stopped by Esc after one token (so its token is pending and goes
    into the long prompt); Esc stops the long prompt after its first batch; the next turn,
    /ctx and /history are those of a session that never had the long prompt."""
    cfg = "temperature = 1.0\nseed = 7\nmax_tokens = 10\n"
    before = b"Hello there\r" + ESC
    after = b"and then\r/ctx\r/history\r/shutdown\r"
    a = _session(chat_efi, _vol(tmp_path, "a", cfg), cpu, before + LONG.encode() + b"\r" + ESC + after)
    b = _session(chat_efi, _vol(tmp_path, "b", cfg), cpu, before + after)
    n = 1 + len(tok.encode(LONG, bos=False))          # the pending token, then the text
    assert n > B
    stop = _after(a, LONG)
    assert stop[0] == f"[stopped during the prompt: {B} of {n} {AS_BEFORE}"
    assert stop[1].startswith(f"[stats] prompt_tokens={B} gen_tokens=0 ")
    assert _after(a, "Hello there") == _after(b, "Hello there")
    assert _from(a, "and then") == _from(b, "and then")
    assert "user: Hello there\n" in _from(a, "/history") and LONG not in _from(a, "/history")


def test_esc_during_a_shift_and_during_the_refeed(chat_efi, tmp_path):
    """A prompt that does not fit drops the oldest turns and feeds the kept ones again from
    position 0; Esc stops that after one batch: the dropped turns are back (/history), the
    position too. The next turn fits after the old conversation, whose KV rows past the
    first the re-prefill changed are fed again with it: Esc stops that refeed once (what it
    fed stays), then the turn goes through, and its reply equals the session's that never
    had the long prompt."""
    cfg = "temperature = 0\nmax_tokens = 8\nctx_len = 128\n"
    turns = [b"Lily had a big red ball.", b"Tom ran to the park.", b"The sun was hot.",
             b"A cat sat on the mat.", b"Birds sang in the tree."]
    before = b"".join(t + b"\r" + ESC for t in turns) + b"/ctx\r/history\r"
    long = (LONG + " " + LONG).encode()
    a = _session(chat_efi, _vol(tmp_path, "a", cfg), "native",
                 before + long + b"\r" + ESC + b"/ctx\r/history\rok\r" + ESC + b"ok\r/ctx\r/history\r/shutdown\r")
    b = _session(chat_efi, _vol(tmp_path, "b", cfg), "native", before + b"ok\r/ctx\r/history\r/shutdown\r")
    shifted = _after(a, long.decode())
    assert shifted[0] == "[context full: the oldest turns were dropped; the system prompt is kept]"
    m = re.fullmatch(rf"\[stopped during the prompt: {B} of (\d+) {re.escape(AS_BEFORE)}", shifted[1])
    assert m and int(m.group(1)) > B, shifted
    # the conversation is back as it was: position and messages
    ctx_a, ctx_b = re.findall(r"context: \d+ / 128", a), re.findall(r"context: \d+ / 128", b)
    assert ctx_a[0] == ctx_a[1] == ctx_b[0]
    hist_a = re.findall(r"(?ms)^> /history\n(.*?)(?=^> )", a)
    hist_b = re.findall(r"(?ms)^> /history\n(.*?)(?=^> )", b)
    assert hist_a[0] == hist_a[1] == hist_b[0] and "Lily had" in hist_a[1]
    # the first "ok": the refeed of the old conversation plus the turn, stopped after a batch
    m = re.fullmatch(rf"\[stopped during the prompt: {B} of (\d+) {re.escape(AS_BEFORE)}",
                     _after(a, "ok")[0])
    assert m, _after(a, "ok")
    whole = int(m.group(1))
    # the second: the rest of the refeed, and the turn
    fed_a = int(re.search(r"prompt_tokens=(\d+)", _from(a, "ok")).group(1))
    fed_b = int(re.search(r"prompt_tokens=(\d+)", _from(b, "ok")).group(1))
    assert fed_a == whole - B and fed_a > fed_b
    same = lambda t: re.sub(r"prompt_tokens=\d+ ", "", _from(t, "ok"))     # noqa: E731
    assert same(a) == same(b)


BIG = ref.Config(512, 1376, 4, 8, 8, 512, 512, True)   # a batch of 32 rows takes milliseconds


@pytest.mark.parametrize("cpu", ["native", "unicorn"])
def test_budget_stops_the_prompt_in_an_autorun(chat_efi, tmp_path, tok, cpu):
    """/budget 1 (ms) during a long prompt from autorun.txt: stopped after its first batch
    (natively a random model big enough that one batch outlasts the budget; stories260K
    under unicorn); the script goes on, and the next turn is the one a script without the
    long prompt gets."""
    model = None
    if cpu == "native":
        model = tmp_path / "big.bin"
        ref.write_random_model(model, BIG, seed=3, std=0.05)
    cfg = "temperature = 1.0\nseed = 11\nmax_tokens = 6\n"
    lines_b = ["Hello there", "/budget 1", "/budget 0", "and then", "/ctx", "/history", "/shutdown"]
    lines_a = lines_b[:2] + [LONG] + lines_b[2:]
    a = _session(chat_efi, _vol(tmp_path, "a", cfg, model, lines_a), cpu)
    b = _session(chat_efi, _vol(tmp_path, "b", cfg, model, lines_b), cpu)
    n = 1 + len(tok.encode(LONG, bos=False))          # the reply before ended at max_tokens
    assert _after(a, LONG)[0] == f"[time budget: 1 ms, during the prompt: {B} of {n} {AS_BEFORE}"
    assert _after(a, "Hello there") == _after(b, "Hello there")
    assert _from(a, "/budget 0") == _from(b, "/budget 0")


@pytest.mark.parametrize("cpu", ["native", "unicorn"])
def test_budget_stops_a_shift_whose_first_rows_stay(chat_efi, tmp_path, tok, cpu):
    """chatml with a system prompt longer than a batch: a prompt that does not fit drops the
    oldest turn and feeds the rest again from position 0, and the budget stops that after its
    first batch - whose rows are the system text's, the same as before - so the KV cache
    still holds the whole old conversation: the next turn feeds only its own tokens, and it,
    /ctx and /history are a session's that never had the stopped prompt."""
    model = None
    if cpu == "native":
        model = tmp_path / "big.bin"
        ref.write_random_model(model, BIG, seed=4, std=0.05)
    system = "You are a kind helper who tells short happy stories to little children."
    cfg = (f"temperature = 1.0\nseed = 5\nmax_tokens = 4\nchat_format = chatml\nctx_len = 256\n"
           f"system_prompt = {system}\n")
    long = LONG + " " + LONG
    lines_b = ["Hi.", "More.", "/budget 1", "/budget 0", "ok", "/ctx", "/history", "/shutdown"]
    lines_a = lines_b[:3] + [long] + lines_b[3:]
    a = _session(chat_efi, _vol(tmp_path, "a", cfg, model, lines_a), cpu)
    b = _session(chat_efi, _vol(tmp_path, "b", cfg, model, lines_b), cpu)
    stopped = _after(a, long)
    assert stopped[0] == "[context full: the oldest turns were dropped; the system prompt is kept]"
    assert re.fullmatch(rf"\[time budget: 1 ms, during the prompt: {B} of \d+ {re.escape(AS_BEFORE)}",
                        stopped[1]), stopped
    assert len(tok.encode(f"<|im_start|>system\n{system}", bos=True)) > B
    assert _from(a, "/budget 0") == _from(b, "/budget 0")
    assert "user: Hi.\n" in _from(a, "/history")

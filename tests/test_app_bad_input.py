"""Bad input never crashes the program: one clear line, then it goes on (and powers off in
autorun). Run under unicorn, where every buffer is guarded, so an out-of-bounds access or an
ABI breach fails the test instead of passing by luck."""
from __future__ import annotations

import pytest

from tests.app_helpers import make_volume, run_chat
from tests.reference import llama2 as ref

AFTER = ["hello", "/tokenize hi", "/shutdown"]


@pytest.fixture(scope="module")
def good_pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("good")
    model, tok = ref.write_test_pair(d, "tiny_gqa512", seed=3)
    return model.read_bytes(), tok.read_bytes()


def _run(chat_efi, vol):
    r = run_chat(chat_efi, vol, "unicorn", timeout_s=300)
    assert r.status == 0 and r.reason == "powered off", (r.reason, r.text[-1500:])
    assert "Traceback" not in r.text
    return r.text


@pytest.mark.parametrize("kind", ref.CORRUPTIONS)
def test_corrupt_model_is_refused_with_a_message(chat_efi, tmp_path, good_pair, kind):
    model, tok = good_pair
    bad = ref.corrupt_model_bytes(model, kind)
    vol = make_volume(tmp_path / "vol", files={"bad.bin": bad, "tokenizer.bin": tok},
                      cfg="model = bad.bin\n", autorun=AFTER)
    text = _run(chat_efi, vol)
    if kind == "trailing_bytes":
        assert "size mismatch" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("model bad.bin: "))
    assert len(line) > len("model bad.bin: ") + 10
    assert "trying the models found on the volume instead" in text
    assert "no model found" in text
    assert "no model loaded" in text          # the prompt "hello" gets a clear answer
    assert "no tokenizer loaded" in text
    assert "powering off" in text


@pytest.mark.parametrize("kind", ["empty", "short", "truncated_piece", "negative_length",
                                  "huge_length", "missing_entries"])
def test_corrupt_tokenizer_is_refused_with_a_message(chat_efi, tmp_path, good_pair, kind):
    model, tok = good_pair
    vol = make_volume(tmp_path / "vol", files={"model.bin": model,
                                               "tokenizer.bin": ref.corrupt_tokenizer_bytes(tok, kind)},
                      autorun=AFTER)
    text = _run(chat_efi, vol)
    line = next(ln for ln in text.splitlines() if ln.startswith("tokenizer tokenizer.bin: "))
    assert len(line) > len("tokenizer tokenizer.bin: ") + 10
    assert "no model loaded" in text


def test_absent_tokenizer(chat_efi, tmp_path, good_pair):
    model, _ = good_pair
    vol = make_volume(tmp_path / "vol", files={"model.bin": model}, autorun=AFTER)
    text = _run(chat_efi, vol)
    assert "no tokenizer found: put tokenizer.bin (or tok<vocab>.bin) beside the model" in text


def test_garbage_repl_cfg_lines_are_reported_and_skipped(chat_efi, tmp_path, good_pair):
    model, tok = good_pair
    cfg = ("temperature = 0\n"
           "this line has no equals sign\n"
           "colour = blue\n"
           "top_p = 7\n"
           "max_tokens = -3\n"
           "stats = maybe\n"
           "\x00\xff\xfe garbage = \x01\n"
           "seed = 99999999999999999999999\n"
           "attn = avx512\n"
           "max_tokens = 5   # a comment\n")
    vol = make_volume(tmp_path / "vol", files={"model.bin": model, "tokenizer.bin": tok},
                      cfg=cfg, autorun=["", "/cfg", "/shutdown"])
    text = _run(chat_efi, vol)
    assert "repl.cfg:2: expected key=value (line ignored)" in text
    assert "repl.cfg:3: unknown key 'colour' (line ignored)" in text
    assert "repl.cfg:4: bad value '7' for top_p: expected a number from 0.000 to 1.000 (line ignored)" in text
    assert "repl.cfg:5: bad value '-3' for max_tokens" in text
    assert "repl.cfg:6: bad value 'maybe' for stats: expected on or off" in text
    assert "repl.cfg:7: unknown key" in text
    assert "repl.cfg:8: bad value" in text
    assert "repl.cfg:9: bad value 'avx512' for attn: expected one of auto, sse2, avx2" in text
    assert "max_tokens = 5  (repl.cfg)" in text
    assert "temperature = 0.000  (repl.cfg)" in text
    assert "top_p = 0.900  (default)" in text
    assert "gen_tokens=5" in text                # the model loaded and generated after all that


def test_missing_configured_model_falls_back(chat_efi, tmp_path, good_pair):
    model, tok = good_pair
    vol = make_volume(tmp_path / "vol", files={"models/real.bin": model, "tokenizer.bin": tok},
                      cfg="model = nothere.bin\nmax_tokens = 3\n", autorun=["", "/shutdown"])
    text = _run(chat_efi, vol)
    assert "model nothere.bin: cannot open the file" in text
    assert "trying the models found on the volume instead" in text
    assert "loading models/real.bin" in text
    assert "gen_tokens=3" in text


def test_not_enough_memory_shrinks_the_context_or_refuses(chat_efi, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    # stories15M shape: 58 MiB of weights; its KV cache for 256 positions is 3.4 MiB, and the
    # program keeps 16 MiB in reserve: 64 MiB cannot hold it, 76 MiB can with a shorter context
    ref.write_test_pair(vol, "stories15M", seed=1, names=("big.bin", "tokenizer.bin"))
    make_volume(vol, autorun=["/ctx", "/shutdown"])
    from peasm.runners.hosted import run
    refused = run(chat_efi, vol, cpu="native", out=None, mem_mib=64)
    assert refused.status == 0
    assert "model big.bin: not enough memory: needs " in refused.text and " MiB free" in refused.text
    shrunk = run(chat_efi, vol, cpu="native", out=None, mem_mib=76)
    assert shrunk.status == 0
    line = next(ln for ln in shrunk.text.splitlines() if ln.startswith("context shrunk to "))
    ctx = int(line.split()[3])
    assert 32 <= ctx < 256 and line.endswith("tokens to fit in memory (the model allows 256)")
    assert f"context: 0 / {ctx} tokens used" in shrunk.text

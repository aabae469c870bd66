"""The chat program as users run it: BOOTX64.EFI against a boot volume, in both hosted runners.

Golden output from llama2.c for the real stories260K, greedy and sampled generations equal to
the Python reference (tests/reference), /tokenize equal to the reference encoder.
"""
from __future__ import annotations

import pytest

from tests.app_helpers import console_render, generations, make_volume, run_chat
from tests.reference import llama2 as ref
from tests.support import REFERENCE, model_file

CPUS = ["native", "unicorn"]


@pytest.fixture(scope="module")
def stories260k():
    return model_file("stories260K.bin"), model_file("tok512.bin")


@pytest.mark.parametrize("cpu", CPUS)
def test_golden_stories260k_greedy(chat_efi, tmp_path, stories260k, cpu):
    model, tok = stories260k
    vol = make_volume(tmp_path / "vol", files={"stories260K.bin": model, "tok512.bin": tok},
                      cfg="temperature = 0\nmax_tokens = 200\n", autorun=["", "/shutdown"])
    r = run_chat(chat_efi, vol, cpu)
    assert r.status == 0 and r.reason == "powered off", (r.reason, r.text[-1000:])
    golden = (REFERENCE / "stories260K_greedy.txt").read_text(encoding="utf-8")
    (text,) = generations(r.text)
    assert text.startswith(golden.rstrip("\n")), text[:300]
    assert "[stats] prompt_tokens=1 gen_tokens=200 prefill_tok_s=" in r.text


@pytest.mark.parametrize("cpu", CPUS)
def test_sampling_equals_llama2c_sampler(chat_efi, tmp_path, stories260k, cpu):
    model, tok = stories260k
    vol = make_volume(tmp_path / "vol", files={"stories260K.bin": model, "tok512.bin": tok},
                      cfg="temperature = 1.0\ntop_p = 0.9\nseed = 42\nmax_tokens = 150\n",
                      autorun=["", "/shutdown"])
    r = run_chat(chat_efi, vol, cpu)
    assert r.status == 0, r.reason
    m = ref.read_model(model)
    expected = ref.generate(m, ref.read_tokenizer(tok, m.config.vocab_size), "", steps=150,
                            temperature=1.0, topp=0.9, seed=42)
    (text,) = generations(r.text)
    assert text == console_render(expected.pieces)


@pytest.mark.parametrize("shape,cpu", [
    ("tiny_gqa", "native"), ("tiny_gqa", "unicorn"),
    ("stories15M", "native"), pytest.param("stories15M", "unicorn", marks=pytest.mark.slow),
])
def test_random_models_greedy_equal_reference(chat_efi, tmp_path, shape, cpu):
    """64 greedy steps of random-weight models of real shapes (stories15M; a GQA model with an
    unshared classifier and odd sizes) print what the numpy reference generates."""
    vol = tmp_path / "vol"
    vol.mkdir()
    tok_src = model_file("tokenizer.bin") if shape == "stories15M" else None
    model_path, tok_path = ref.write_test_pair(vol, shape, seed=7, tokenizer_src=tok_src)
    make_volume(vol, cfg=f"temperature = 0\nmax_tokens = 64\ntokenizer = {tok_path.name}\n",
                autorun=["", "/shutdown"])
    r = run_chat(chat_efi, vol, cpu)
    assert r.status == 0, (r.reason, r.text[-800:])
    m = ref.read_model(model_path)
    tok = ref.read_tokenizer(tok_path, m.config.vocab_size)
    expected = ref.generate(m, tok, "", steps=64, temperature=0.0)
    pieces = expected.pieces
    if 2 in expected.generated:   # our program also stops at EOS
        pieces = pieces[:expected.generated.index(2)]
    (text,) = generations(r.text)
    assert text == console_render(pieces)
    assert len(pieces) > 10     # the comparison is not vacuous


TEXTS = ["Once upon a time", "héllo wörld", "你好世界", "emoji 😀🚀 too", "a   b\t\tc",
         "  leading and trailing  ", "", "x", "The quick brown fox jumps over the lazy dog."]


def _tokenize_run(chat_efi, vol, texts):
    make_volume(vol, cfg="max_tokens = 1\n", autorun=[f"/tokenize {t}" for t in texts] + ["/shutdown"])
    r = run_chat(chat_efi, vol, "native")
    assert r.status == 0, r.reason
    lines = r.text.splitlines()
    # the echo of a non-BMP character is U+FFFD on a UCS-2 console: match the echoes by order
    out = [lines[i + 1] for i, ln in enumerate(lines) if ln.startswith("> /tokenize")]
    assert len(out) == len(texts)
    return out


def test_tokenize_matches_reference_tok512(chat_efi, tmp_path, stories260k):
    model, tok = stories260k
    vol = make_volume(tmp_path / "vol", files={"stories260K.bin": model, "tok512.bin": tok})
    got = _tokenize_run(chat_efi, vol, TEXTS)
    reference = ref.read_tokenizer(tok, 512)
    for text, line in zip(TEXTS, got):
        assert line == " ".join(map(str, reference.encode(text, bos=False))), text


def test_tokenize_matches_reference_32000(chat_efi, tmp_path):
    tok = model_file("tokenizer.bin")
    cfg = ref.Config(dim=16, hidden_dim=32, n_layers=1, n_heads=2, n_kv_heads=2, vocab_size=32000, seq_len=32)
    vol = tmp_path / "vol"
    vol.mkdir()
    ref.write_model(ref.random_model(cfg, seed=1), vol / "m32k.bin")
    (vol / "tokenizer.bin").write_bytes(tok.read_bytes())
    got = _tokenize_run(chat_efi, vol, TEXTS)
    reference = ref.read_tokenizer(tok, 32000)
    for text, line in zip(TEXTS, got):
        assert line == " ".join(map(str, reference.encode(text, bos=False))), text


def test_conversation_keeps_the_kv_cache_until_clear(chat_efi, tmp_path, stories260k):
    model, tok = stories260k
    vol = make_volume(tmp_path / "vol", files={"stories260K.bin": model, "tok512.bin": tok},
                      cfg="temperature = 0\nmax_tokens = 20\n",
                      autorun=["Once upon a time", "/ctx", "and then", "/ctx", "/clear", "/ctx", "/shutdown"])
    r = run_chat(chat_efi, vol, "native")
    assert r.status == 0
    used = [int(ln.split()[1]) for ln in r.text.splitlines() if ln.startswith("context: ")]
    assert used[0] > 0 and used[1] > used[0] and used[2] == 0
    # the first turn equals a fresh llama2.c generation from the same prompt
    m = ref.read_model(model)
    expected = ref.generate(m, ref.read_tokenizer(tok, 512), "Once upon a time", steps=5 + 20, temperature=0.0)
    n_prompt = expected.n_prompt
    assert generations(r.text)[0] == console_render(expected.pieces[n_prompt - 1:n_prompt - 1 + 20])

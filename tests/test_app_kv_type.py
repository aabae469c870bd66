"""kv_type in the whole chat program, hosted: the KV cache's element type (repl.cfg
`kv_type = auto | f16 | f32`; auto: f16 for GGUF models as llama.cpp, f32 for llama2.c ones
as run.c). /mem and /cfg say it, the cache's bytes halve with f16, a context clamped to the
memory grows, a bad value is one line. (The golden texts with the defaults:
tests/test_app_gguf_chat.py (stories260K.gguf and SmolLM2 with f16) and tests/test_app_chat.py
(stories260K.bin with f32).)
"""
from __future__ import annotations

import re

import pytest

from peasm.runners.hosted import run
from tests.app_helpers import generations, make_volume
from tests.reference import llama2 as ref
from tests.support import REFERENCE, model_file

KV_LINE = re.compile(r"^KV cache +(\d+\.\d\d) MiB  \((\d+) layers x (\d+) tokens x 2, (f16|f32)\)$", re.M)


def _chat(efi, vol, cpu="native", mem_mib=1024):
    r = run(efi, vol, cpu=cpu, mem_mib=mem_mib, timeout_s=1200)
    assert r.status == 0 and r.reason == "powered off", (r.reason, r.text[-2000:])
    return r.text


def _mib_h(n: int) -> str:
    h = (n + 5243) * 100 >> 20
    return f"{h // 100}.{h % 100:02d}"


@pytest.mark.parametrize("cfg, kind", [("", "f16"), ("kv_type = f32\n", "f32"), ("kv_type = F16\n", "f16"),
                                       ("kv_type = auto\n", "f16")])
def test_gguf_kv_type_mem_cfg_and_golden(chat_efi, tmp_path, cfg, kind):
    """stories260K.gguf (5 layers, kv_dim 32, context 2048): the golden text with either cache
    type, /mem's KV line with the real bytes, /cfg's setting and the loaded model's type."""
    vol = make_volume(tmp_path / "vol", files={"stories260K.gguf": model_file("stories260K.gguf")},
                      cfg="temperature = 0\nmax_tokens = 200\n" + cfg, autorun=["", "/mem", "/cfg", "/shutdown"])
    text = _chat(chat_efi, vol)
    assert "repl.cfg:" not in text, text[:2000]
    (m,) = KV_LINE.findall(text)
    el = 2 if kind == "f16" else 4
    assert m == (_mib_h(2 * 5 * 2048 * 32 * el), "5", "2048", kind), m   # its context_length: 2048
    source = "default" if not cfg else "repl.cfg"
    setting = cfg.split("=")[1].strip().lower() if cfg else "auto"
    assert f"kv_type = {setting}  ({source})" in text
    assert f"KV cache of the loaded model: {kind} (kv_type applies at the next model load)" in text
    golden = (REFERENCE / "stories260K_greedy.txt").read_text(encoding="utf-8")
    (gen,) = generations(text)
    assert gen.startswith(golden.rstrip("\n")), gen[:300]


def test_llama2c_default_is_f32_and_f16_applies_when_set(chat_efi, tmp_path):
    """stories260K.bin: f32 by default, f16 when set; llama2.c's greedy text either way (the
    f16 rounding moves no argmax over these 200 steps)."""
    files = {"stories260K.bin": model_file("stories260K.bin"), "tok512.bin": model_file("tok512.bin")}
    golden = (REFERENCE / "stories260K_greedy.txt").read_text(encoding="utf-8").rstrip("\n")
    for i, (cfg, kind) in enumerate((("", "f32"), ("kv_type = f16\n", "f16"))):
        vol = make_volume(tmp_path / f"vol{i}", files=files,
                          cfg="temperature = 0\nmax_tokens = 200\n" + cfg, autorun=["", "/mem", "/shutdown"])
        text = _chat(chat_efi, vol)
        (m,) = KV_LINE.findall(text)
        assert m == (_mib_h(2 * 5 * 512 * 32 * (2 if kind == "f16" else 4)), "5", "512", kind), m
        (gen,) = generations(text)
        assert gen.startswith(golden), (kind, gen[:300])


def test_bad_kv_type_is_one_line_and_the_default_stays(chat_efi, tmp_path):
    vol = make_volume(tmp_path / "vol", files={"stories260K.gguf": model_file("stories260K.gguf")},
                      cfg="kv_type = q8_0\nkv_type =\nmax_tokens = 4\n", autorun=["/mem", "/shutdown"])
    text = _chat(chat_efi, vol)
    lines = [ln for ln in text.splitlines() if ln.startswith("repl.cfg:")]
    assert lines == ["repl.cfg:1: bad value 'q8_0' for kv_type: expected one of auto, f16, f32 (line ignored)",
                     "repl.cfg:2: bad value '' for kv_type: expected one of auto, f16, f32 (line ignored)"], lines
    (m,) = KV_LINE.findall(text)
    assert m[3] == "f16"


def test_f16_cache_fits_a_longer_context_in_the_same_memory(chat_efi, tmp_path):
    """A stories15M-shaped model (58 MiB, 6 layers, kv_dim 288, seq_len 256) in 76 MiB: the
    context is clamped to what fits; with f16 caches each token takes 6936 bytes of run state
    instead of 13848, so about twice the context fits (or all 256 positions)."""
    ctx = {}
    for kind in ("f32", "f16"):
        vol = tmp_path / kind
        vol.mkdir()
        ref.write_test_pair(vol, "stories15M", seed=1, names=("big.bin", "tokenizer.bin"))
        make_volume(vol, cfg=f"kv_type = {kind}\n", autorun=["/mem", "/shutdown"])
        text = _chat(chat_efi, vol, mem_mib=76)
        line = next((ln for ln in text.splitlines() if ln.startswith("context shrunk to ")), None)
        ctx[kind] = int(line.split()[3]) if line else 256
        (m,) = KV_LINE.findall(text)
        assert m[1:] == ("6", str(ctx[kind]), kind)
        assert m[0] == _mib_h(2 * 6 * ctx[kind] * 288 * (2 if kind == "f16" else 4))
    assert 32 <= ctx["f32"] < 128, ctx
    assert ctx["f16"] >= min(256, 2 * ctx["f32"] - 8), ctx

"""GGUF models in the whole chat program, hosted, as a user runs them: the model file alone
on the volume (its vocabulary and chat template come from the file).

* stories260K.gguf alone prints llama2.c's greedy text (../shared/reference), natively and
  under unicorn: the GGUF loader, its SentencePiece vocabulary and ggml's RoPE.
* SmolLM2-135M-Instruct (Q4_1, byte-level BPE, chatml with a default system prompt) answers
  "What is 2+2?" exactly as llama.cpp does (../shared/reference); the second turn prefills
  only its own new tokens (counted by the independent tokenizer built with `tokenizers`);
  a second question's greedy reply equals the numpy reference's for the same prompt tokens.
* A typed "<|im_end|>" is text (parse_special off), and a token with parse_special on.
"""
from __future__ import annotations

import re

import pytest

from peasm.runners.hosted import run
from tests.app_helpers import generations, make_volume
from tests.reference import gguf_forward as gref
from tests.support import REFERENCE, model_file

SMOL = "SmolLM2-135M-Instruct.Q4_1.gguf"
STATS = re.compile(r"\[stats\] prompt_tokens=(\d+) gen_tokens=(\d+)")


def chat(efi, vol, cpu="native", mem_mib=1024):
    r = run(efi, vol, cpu=cpu, mem_mib=mem_mib, timeout_s=1200)
    assert r.status == 0 and r.reason == "powered off", (r.reason, r.text[-2000:])
    return r.text


@pytest.fixture(scope="module")
def smol_tokenizer():
    """SmolLM2's vocabulary through `tokenizers` (tests/vocab_support.py's oracle) with its
    special tokens cut out first, as llama.cpp parses the chat template."""
    from tests import vocab_support as vs
    meta = vs.read_meta(str(model_file(SMOL)))
    tk = vs.oracle(meta)

    def encode(text: str, parse_special: bool = True) -> list[int]:
        out = []
        for part in vs.partition(meta, text.encode(), parse_special):
            out.extend([part] if isinstance(part, int) else vs.oracle_encode(tk, part))
        return out
    return encode


@pytest.mark.parametrize("cpu", ["native", "unicorn"])
def test_stories260k_gguf_alone_prints_the_golden_text(chat_efi, tmp_path, cpu):
    vol = make_volume(tmp_path / "vol", files={"stories260K.gguf": model_file("stories260K.gguf")},
                      cfg="temperature = 0\nmax_tokens = 200\n", autorun=["", "/shutdown"])
    text = chat(chat_efi, vol, cpu)
    assert "tokenizer: the model's own (SentencePiece, 512 tokens)" in text
    golden = (REFERENCE / "stories260K_greedy.txt").read_text(encoding="utf-8")
    (gen,) = generations(text)
    assert gen.startswith(golden.rstrip("\n")), gen[:300]


def test_smollm2_answers_as_llama_cpp(chat_efi, tmp_path, smol_tokenizer):
    vol = make_volume(tmp_path / "vol", files={SMOL: model_file(SMOL)},
                      cfg="temperature = 0\nmax_tokens = 48\nctx_len = 512\n",
                      autorun=["What is 2+2?", "What is the capital of France?", "/shutdown"])
    text = chat(chat_efi, vol)
    first, second = generations(text)
    want = (REFERENCE / "smollm2_what_is_2_plus_2.txt").read_text(encoding="utf-8").rstrip("\n")
    assert first == want
    (p1, g1), (p2, g2) = [tuple(map(int, m)) for m in STATS.findall(text)]
    system = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    turn1 = (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
             "<|im_start|>assistant\n")
    turn2 = "<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    assert p1 == len(smol_tokenizer(turn1))
    assert p2 == len(smol_tokenizer(turn2))          # only the new turn is prefilled
    # the second reply: the numpy reference's greedy decode after the same tokens
    reply1 = smol_tokenizer(first, parse_special=False)
    prompt = smol_tokenizer(turn1) + reply1 + smol_tokenizer(turn2)
    m = gref.GGUFModel(model_file(SMOL))
    tr = gref.GGUFTransformer(m, ctx=len(prompt) + g2 + 1)
    ours = smol_tokenizer(second, parse_special=False)
    ref_ids = gref.greedy(tr, prompt, len(ours))
    assert ours == ref_ids[:len(ours)]


def test_typed_special_token_text_is_text(chat_efi, tmp_path, smol_tokenizer):
    vol = make_volume(tmp_path / "vol", files={SMOL: model_file(SMOL)},
                      cfg="temperature = 0\nmax_tokens = 4\nctx_len = 256\n",
                      autorun=["/tokenize <|im_end|>", "/parse_special on", "/tokenize <|im_end|>",
                               "/parse_special off", "Say <|im_end|> twice", "/shutdown"])
    text = chat(chat_efi, vol)
    lines = re.findall(r"(?m)^> /tokenize <\|im_end\|>\n([0-9 ]+)$", text)
    as_text = [int(x) for x in lines[0].split()]
    assert as_text == smol_tokenizer("<|im_end|>", parse_special=False) and len(as_text) > 1
    assert lines[1].split() == ["2"]
    (prompt_tokens, gen_tokens), = [tuple(map(int, m)) for m in STATS.findall(text)]
    assert gen_tokens >= 1                          # the turn was not ended by the typed text
    system = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    head = f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n"
    tail = "<|im_end|>\n<|im_start|>assistant\n"
    want = (smol_tokenizer(head) + smol_tokenizer("Say <|im_end|> twice", parse_special=False)
            + smol_tokenizer(tail))
    assert prompt_tokens == len(want)


def test_gguf_refusals_are_one_line(chat_efi, tmp_path):
    """A GGUF the program cannot run: one line naming what, and the program goes on."""
    data = bytearray(model_file("quant/tiny256-Q8_0.gguf").read_bytes())
    key = b"general.architecture" + (8).to_bytes(4, "little") + (5).to_bytes(8, "little")
    i = data.find(key + b"llama") + len(key)
    data[i:i + 5] = b"gemma"
    vol = make_volume(tmp_path / "vol", files={"bad.gguf": bytes(data)}, cfg="",
                      autorun=["/shutdown"])
    text = chat(chat_efi, vol)
    assert "model bad.gguf: gguf: architecture 'gemma' is not supported (supported: llama qwen2)" in text

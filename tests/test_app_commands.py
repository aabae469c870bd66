"""Every REPL command with good and bad arguments, the input rules, the model picker and
switching, the stop rules, and /save_cfg under a power cut - through the hosted runner."""
from __future__ import annotations

import numpy as np
import pytest

from peasm.runners.hosted import run
from tests.app_helpers import generations, make_volume, run_chat
from tests.reference import llama2 as ref


@pytest.fixture(scope="module")
def small_pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("pair")
    model, tok = ref.write_test_pair(d, "tiny_gqa512", seed=5)
    return model.read_bytes(), tok.read_bytes()


def _volume(tmp_path, pair, **kw):
    model, tok = pair
    files = {"model.bin": model, "tokenizer.bin": tok}
    files.update(kw.pop("files", {}))
    return make_volume(tmp_path / "vol", files=files, **kw)


def _answers(text: str) -> dict[str, list[str]]:
    """What the program printed after each echoed input line (until the next prompt)."""
    out: dict[str, list[str]] = {}
    current = None
    for line in _as_shown(text).splitlines():
        if line.startswith("> "):
            current = line[2:]
            out.setdefault(current, [])
        elif current is not None:
            out[current].append(line)
    return out


def _as_shown(text: str) -> str:
    """The text as a terminal shows it: a backspace moves back over the last character."""
    shown: list[str] = []
    for ch in text:
        if ch == "\b":
            if shown and shown[-1] != "\n":
                shown.pop()
        else:
            shown.append(ch)
    return "".join(shown)


# (typed line, lines expected among its answer)
GOOD_AND_BAD = [
    ("/help", ["  /tokenize TEXT         the token ids of TEXT (no BOS)"]),
    ("/help me", ["usage: /help"]),
    ("/temp", ["temperature = 1.000"]),
    ("/temp 0.25", ["temperature = 0.250"]),
    ("/temp -1", ["bad value: expected a number from 0.000 to 5.000 (usage: /temp [VALUE])"]),
    ("/temp abc", ["bad value: expected a number from 0.000 to 5.000 (usage: /temp [VALUE])"]),
    ("/top_p 0.95", ["top_p = 0.950"]),
    ("/top_p 2", ["bad value: expected a number from 0.000 to 1.000 (usage: /top_p [VALUE])"]),
    ("/top_k 40", ["top_k = 40"]),
    ("/top_k 4.5", ["bad value: expected a whole number from 0 to 1048576 (usage: /top_k [VALUE])"]),
    ("/min_p 0.05", ["min_p = 0.050"]),
    ("/min_p x", ["bad value: expected a number from 0.000 to 1.000 (usage: /min_p [VALUE])"]),
    ("/repeat 1.1", ["repeat_penalty = 1.100"]),
    ("/repeat 0", ["bad value: expected a number from 0.100 to 10.000 (usage: /repeat [VALUE])"]),
    ("/norepeat 3", ["no_repeat_ngram = 3"]),
    ("/norepeat 99", ["bad value: expected a whole number from 0 to 16 (usage: /norepeat [VALUE])"]),
    ("/max_tokens 7", ["max_tokens = 7"]),
    ("/max_tokens 0", ["bad value: expected a whole number from 1 to 1048576 (usage: /max_tokens [VALUE])"]),
    ("/seed 1234", ["seed = 1234"]),
    ("/seed -5", ["bad value: expected a whole number (0: from the clock) (usage: /seed [VALUE])"]),
    ("/stats off", ["stats = off"]),
    ("/stats perhaps", ["bad value: expected on or off (usage: /stats [VALUE])"]),
    ("/stop_you on", ["stop_you = on"]),
    ("/stop_nl yes", ["stop_nl = on"]),
    ("/stop_nl 2", ["bad value: expected on or off (usage: /stop_nl [VALUE])"]),
    ("/chat_format you_ai", ["chat_format = you_ai"]),
    ("/chat_format chatml", ["chat_format = chatml"]),
    ("/chat_format chatml2", ["bad value: expected one of raw, you_ai, chatml, llama2, llama3, "
                              "zephyr, phi3, gemma, mistral, auto (usage: /chat_format [VALUE])"]),
    ("/attn sse2", ["attn = sse2", "kernels: sse2"]),
    ("/attn avx512", ["bad value: expected one of auto, sse2, avx2 (usage: /attn [VALUE])"]),
    ("/threads 2", ["threads = 2", "threads: 1 of 1 cores (0 workers running, 0 chunks done by them)"]),
    ("/threads all", ["bad value: expected a whole number from 0 to 1024 (usage: /threads [VALUE])"]),
    ("/budget 5000", ["budget = 5000"]),
    ("/budget -3", ["bad value: expected a whole number from 0 to 3600000 (usage: /budget [MS])"]),
    ("/parse_special on", ["parse_special = on"]),
    ("/parse_special maybe", ["bad value: expected on or off (usage: /parse_special [VALUE])"]),
    ("/mem", ["KV cache   0.02 MiB  (3 layers x 64 tokens x 2, f32)"]),   # 2*3*64*16 f32: 24 KiB
    ("/mem x", ["usage: /mem"]),
    ("/ctx", ["context: 0 / 64 tokens used"]),
    ("/ctx now", ["usage: /ctx"]),
    ("/clear", ["conversation cleared"]),
    ("/clear all", ["usage: /clear"]),
    ("/system", ["system: (none)"]),
    ("/system Be brief.", ["system prompt set; conversation cleared"]),
    ("/history x", ["usage: /history"]),
    ("/cpu", ["kernels: sse2"]),
    ("/cpu x", ["usage: /cpu"]),
    ("/version", ["llm-uefi 0.1.0: GGUF and llama2.c models in x86-64 assembly, on UEFI (built by peasm)"]),
    ("/version 2", ["usage: /version"]),
    ("/cfg", ["temperature = 0.250  (command)", "top_p = 0.950  (command)", "model = model.bin  (found on the volume)",
              "kv_type = auto  (default)",
              "KV cache of the loaded model: f32 (kv_type applies at the next model load)"]),
    ("/cfg x", ["usage: /cfg"]),
    ("/model", ["model: model.bin (dim 48, hidden 100, layers 3, heads 6/2, vocab 512 (own classifier), seq_len 64, context 64, 0.11M params)"]),
    ("/model missing.bin", ["model missing.bin: cannot open the file (EFI status 14)", "keeping the current model"]),
    ("/models", ["  1. model.bin  {mib} MiB, dim 48, hidden 100, layers 3, heads 6/2, vocab 512 (own classifier), seq_len 64"]),
    ("/models all", ["usage: /models"]),
    ("/model_info model.bin", ["model.bin: {mib} MiB, dim 48, hidden 100, layers 3, heads 6/2, vocab 512 (own classifier), seq_len 64"]),
    ("/model_info", ["usage: /model_info FILE"]),
    ("/model_info tokenizer.bin", ["model tokenizer.bin: model header: hidden_dim is 0, must be > 0"]),
    ("/log 2", []),
    ("/log many", ["usage: /log [N]"]),
    ("/save_log 1", ["saved llm_log.txt"]),
    ("/save_log x", ["usage: /save_log [N]"]),
    ("/save_dump", ["saved llm_dump.txt"]),
    ("/save_dump now", ["usage: /save_dump"]),
    ("/tokenize", [""]),
    ("/detokenize", ["usage: /detokenize ID... (decimal token ids)"]),
    ("/detokenize 12 x", ["usage: /detokenize ID... (decimal token ids)"]),
    ("/detokenize 4294967296", ["usage: /detokenize ID... (decimal token ids)"]),
    ("/nonsense", ["unknown command '/nonsense' (type /help for the list)"]),
    ("/", ["unknown command '/' (type /help for the list)"]),
    ("/save_cfg", ["saved repl.cfg"]),
    ("/save_cfg x", ["usage: /save_cfg"]),
    ("/reset", ["settings reset to the defaults; conversation cleared"]),
    ("/reset x", ["usage: /reset"]),
    ("/shutdown now", ["usage: /shutdown"]),
]


def test_detokenize(chat_efi, tmp_path, small_pair):
    """/detokenize prints the pieces of the ids as generation would (each after the one
    before it): /tokenize's ids come back as the text with its dummy-prefix space."""
    vol = _volume(tmp_path, small_pair)
    tok = ref.read_tokenizer(vol / "tokenizer.bin", 512)
    ids = tok.encode("Hello world, 12", bos=False)
    vol = _volume(tmp_path, small_pair, autorun=["/detokenize " + " ".join(map(str, ids)),
                                                 "/detokenize 600", "/shutdown"])
    r = run_chat(chat_efi, vol, "native")
    answers = _answers(r.text)
    want = tok.decode_ids(ids, prev=-1).decode()
    assert answers["/detokenize " + " ".join(map(str, ids))] == [want]
    assert answers["/detokenize 600"] == [""]                  # past the vocab: nothing


def test_every_command_with_good_and_bad_arguments(chat_efi, tmp_path, small_pair):
    vol = _volume(tmp_path, small_pair, autorun=[line for line, _ in GOOD_AND_BAD] + ["/shutdown"])
    r = run_chat(chat_efi, vol, "unicorn")
    assert r.status == 0 and r.reason == "powered off", (r.reason, r.text[-2000:])
    answers = _answers(r.text)
    hundredths = (len(small_pair[0]) + 5243) * 100 >> 20      # MiB with two decimals, rounded
    mib = f"{hundredths // 100}.{hundredths % 100:02d}"
    for line, expected in GOOD_AND_BAD:
        got = answers[line]
        for want in expected:
            assert want.format(mib=mib) in got, (line, want, got)
        if expected and expected[0].startswith(("bad value", "usage:", "unknown command")):
            assert len(got) == 1, (line, got)        # bad input: one line, nothing else
    # every command in /help is exercised above
    helped = [ln.split()[0][1:] for ln in answers["/help"] if ln.startswith("  /")]
    exercised = {line.split()[0][1:] for line, _ in GOOD_AND_BAD}
    assert set(helped) - {"shutdown"} <= exercised, set(helped) - exercised
    # settings changed by commands are what /save_cfg wrote; /reset came after it
    cfg = (vol / "repl.cfg").read_text()
    assert "temperature = 0.250\n" in cfg and "chat_format = chatml\n" in cfg and "seed = 1234\n" in cfg
    assert "system_prompt = Be brief.\n" in cfg
    assert "temperature = 1.000  (default)" not in answers["/cfg"]
    dump = (vol / "llm_dump.txt").read_text()
    for section in ("# settings", "# model", "# memory", "free: ", "# log", "boot: llm-uefi", "cpu: sse2"):
        assert section in dump
    assert (vol / "llm_log.txt").read_text().splitlines() == [answers["/log 2"][-1]]   # the newest event


def test_saved_cfg_loads_back(chat_efi, tmp_path, small_pair):
    vol = _volume(tmp_path, small_pair, autorun=["/temp 0.5", "/top_k 7", "/save_cfg", "/shutdown"])
    assert run_chat(chat_efi, vol).status == 0
    (vol / "autorun.txt").write_text("/cfg\n/shutdown\n")
    text = run_chat(chat_efi, vol).text
    assert "temperature = 0.500  (repl.cfg)" in text and "top_k = 7  (repl.cfg)" in text
    assert "repl.cfg:" not in text   # no bad lines in what /save_cfg wrote


def test_torn_save_cfg_always_leaves_a_config_that_loads(chat_efi, tmp_path, small_pair):
    """Cut the power before each change /save_cfg makes to the volume in turn: every time,
    the next boot reads a complete config, the old one or the new one."""
    old = "temperature = 0.9\nmax_tokens = 3\n"
    cut = 1
    while True:
        vol = _volume(tmp_path / f"cut{cut}", small_pair, cfg=old,
                      autorun=["/temp 0.3", "/save_cfg", "/shutdown"])
        first = run(chat_efi, vol, cpu="native", out=None, power_cut_after=cut)
        (vol / "autorun.txt").write_text("/cfg\n/shutdown\n")
        second = run(chat_efi, vol, cpu="native", out=None)
        assert second.status == 0
        assert "repl.cfg:" not in second.text, second.text
        temps = [ln for ln in second.text.splitlines() if ln.startswith("temperature = ")]
        assert temps in (["temperature = 0.900  (repl.cfg)"], ["temperature = 0.300  (repl.cfg)"]), \
            (cut, first.reason, temps)
        if not first.reason.startswith("power cut"):
            assert "saved repl.cfg" in first.text
            break
        cut += 1
    assert cut > 4    # the sequence had several steps to cut between


def test_model_picker_switch_and_corrupt_info(chat_efi, tmp_path, small_pair):
    model, tok = small_pair
    other = ref.model_bytes(ref.random_model("tiny_gqa512", seed=9))
    vol = _volume(tmp_path, small_pair, files={"models/other.bin": other, "broken.bin": model[:-4]})
    keys = b"7\r0\r2\r/model\r/model model.bin\r/model_info broken.bin\r/shutdown\r"
    r = run_chat(chat_efi, vol, "native", input_bytes=keys)
    assert r.status == 0, r.reason
    lines = r.text.splitlines()
    assert "models found:" in lines and "  1. model.bin" in lines and "  2. models/other.bin" in lines
    assert lines.count("type a number from 1 to 2") == 2               # 7 and 0 refused
    assert "loading models/other.bin" in lines
    answers = _answers(r.text)
    assert answers["/model"][0].startswith("model: models/other.bin (dim 48")
    assert "loading model.bin" in answers["/model model.bin"]
    assert answers["/model_info broken.bin"] == [
        f"model broken.bin: model file size mismatch: header implies {len(model)} bytes, file has {len(model) - 4}"]


def test_line_editing_recall_and_multi_line_prompts(chat_efi, tmp_path, small_pair):
    keys = (b"/tokenize Hellp\x7fo\r"           # backspace (DEL)
            b"/tokenize ab\x08\x08xy\r"          # backspace (BS) twice
            b"\x1b[A\x1b[A\r"                    # up twice: the first line again
            b"/max_tokens 4\r"
            b"Once upon\\\r"                     # continues...
            b"a time\r"                          # ...and this line ends the prompt
            b"first\\\r"
            b";;\r"                              # ;; submits what was gathered
            b"/shutdown\r")
    vol = _volume(tmp_path, small_pair, cfg="temperature = 0\n")
    r = run_chat(chat_efi, vol, "native", input_bytes=keys)
    assert r.status == 0
    tok = ref.read_tokenizer(vol / "tokenizer.bin", 512)
    ids = lambda t: " ".join(map(str, tok.encode(t, bos=False)))  # noqa: E731
    answers = _answers(r.text)
    assert answers["/tokenize Hello"] == [ids("Hello")] * 2          # typed, then recalled
    assert answers["/tokenize xy"] == [ids("xy")]
    assert _as_shown(r.text).count("> /tokenize Hello\n") == 2         # recalled and run again
    assert "... a time" in r.text                                      # the continuation prompt
    stats = [ln for ln in r.text.splitlines() if ln.startswith("[stats]")]
    assert len(stats) == 2
    n_multi = len(tok.encode("Once upon\na time", bos=True))
    assert stats[0].startswith(f"[stats] prompt_tokens={n_multi} gen_tokens=4 ")
    # the second prompt also feeds back the last token of the first turn (shown, not yet seen)
    assert stats[1].startswith(f"[stats] prompt_tokens={1 + len(tok.encode('first' + chr(10), bos=False))} ")


def _chain_model(successor: dict[int, int], vocab: int = 300) -> bytes:
    """A model that deterministically follows `successor` (greedy): one-hot embeddings, all
    layer weights zero (the residual stream stays the embedding), and a classifier whose row
    succ(t) picks out token t. Unlisted tokens go to EOS."""
    cfg = ref.Config(dim=vocab, hidden_dim=8, n_layers=1, n_heads=6, n_kv_heads=6, vocab_size=vocab,
                     seq_len=64, shared_classifier=False)
    m = ref.random_model(cfg, seed=0)
    for name in ("wq", "wk", "wv", "wo", "w1", "w2", "w3"):
        getattr(m, name)[...] = 0
    for name in ("rms_att", "rms_ffn", "rms_final"):
        getattr(m, name)[...] = 1
    m.token_embedding[...] = np.eye(vocab, dtype=np.float32)
    wcls = np.zeros((vocab, vocab), dtype=np.float32)
    for t in range(vocab):
        wcls[successor.get(t, 2), t] = 1.0
    m.wcls = wcls
    return ref.model_bytes(m)


SEGMENTS = [b"Hi", b" there", b"\n", b"You", b":", b" more", b"\n", b"\n", b"next"]


def _segment_pair() -> tuple[bytes, object]:
    """A chain model and a tokenizer whose ids 260.. are SEGMENTS (each its own id, even when
    the text repeats): greedy generation from BOS prints SEGMENTS in order, then EOS."""
    tok = ref.make_tokenizer(300)
    pieces = list(tok.pieces)
    for i, seg in enumerate(SEGMENTS):
        pieces[260 + i] = seg
    tok = ref.Tokenizer(pieces, list(tok.scores), tok.max_token_length)
    ids = [1] + [260 + i for i in range(len(SEGMENTS))]
    chain = {a: b for a, b in zip(ids, ids[1:])}
    chain[ids[-1]] = 2
    return _chain_model(chain), tok


@pytest.mark.parametrize("cfg,expected", [
    ("stop_you = on\nchat_format = you_ai\n", "Hi there\nYou:"),      # stops as the user's turn starts
    ("stop_you = on\nchat_format = raw\n", None),                     # stop_you is for you_ai only
    ("stop_nl = on\nstop_you = off\n", "Hi there\nYou: more\n\n"),    # a blank line
    ("stop_you = off\nmax_tokens = 5\n", "Hi there\nYou:"),           # five tokens
])
def test_stop_rules_on_decoded_text(chat_efi, tmp_path, cfg, expected):
    model, tok = _segment_pair()
    vol = make_volume(tmp_path / "vol", files={"chain.bin": model}, cfg="temperature = 0\n" + cfg,
                      autorun=["", "/shutdown"])
    ref.write_tokenizer(tok, vol / "tokenizer.bin")
    r = run_chat(chat_efi, vol, "native")
    assert r.status == 0, r.reason
    (gen,) = generations(r.text)
    assert gen == (expected if expected is not None else b"".join(SEGMENTS).decode())


def test_esc_stops_a_generation_and_typeahead_is_kept(chat_efi, tmp_path, small_pair):
    vol = _volume(tmp_path, small_pair, cfg="temperature = 0\nmax_tokens = 50\n")
    # Esc arrives while the first prompt generates; the line typed around it still counts
    keys = b"Once upon a time\r/tokenize hi\r\x1b/ctx\r/shutdown\r"
    r = run_chat(chat_efi, vol, "native", input_bytes=keys)
    assert r.status == 0, r.reason
    n = len(ref.read_tokenizer(vol / "tokenizer.bin", 512).encode("Once upon a time", bos=True))
    assert f" [stopped]\n[stats] prompt_tokens={n} gen_tokens=1 " in r.text
    answers = _answers(r.text)
    assert "/tokenize hi" in answers and answers["/tokenize hi"][0].split()
    assert answers["/ctx"] == [f"context: {n} / 64 tokens used"]   # the shown token is pending

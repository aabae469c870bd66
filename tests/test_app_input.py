"""Input the program must take as a person gives it (issue 13): keys as a serial terminal or a
local keyboard deliver them, text files with a BOM and any line ends, unattended boots, limits
said on one line, clear messages - through the hosted runner (native; unicorn where the ABI
and guard pages matter), each case of the issue and each kind beyond it."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from peasm.runners.firmware import Keyboard
from peasm.runners.hosted import run
from peasm.uefi import CONSTANTS as S
from tests.app_helpers import make_volume
from tests.reference import llama2 as ref
from tests.support import model_file

BOM = b"\xef\xbb\xbf"


@pytest.fixture(scope="module")
def real_pair():
    return model_file("stories260K.bin").read_bytes(), model_file("tok512.bin").read_bytes()


@pytest.fixture(scope="module")
def tok512():
    return ref.read_tokenizer(model_file("tok512.bin"), 512)


def _vol(tmp_path: Path, pair, *, cfg: bytes | None = None, autorun: bytes | None = None,
         files: dict | None = None, name: str = "vol") -> Path:
    model, tok = pair
    vol = make_volume(tmp_path / name, files={"stories260K.bin": model, "tok512.bin": tok, **(files or {})})
    if cfg is not None:
        (vol / "repl.cfg").write_bytes(cfg)
    if autorun is not None:
        (vol / "autorun.txt").write_bytes(autorun)
    return vol


def _run(efi, vol, keys: bytes = b"", *, cpu="unicorn", keyboard="serial", mem_mib=1024):
    res = run(efi, vol, cpu=cpu, input_bytes=keys, out=None, timeout_s=600, keyboard=keyboard,
              mem_mib=mem_mib)
    assert res.reason in ("powered off", "input ended"), (res.reason, res.text[-2000:])
    return res.text


def _answer(text: str, line: str) -> list[str]:
    """The lines printed after the echoed input `line`, up to the next prompt."""
    out = text.split(f"> {line}\n", 1)[1]
    return out.split("\n> ", 1)[0].splitlines()


# ------------------------------------------------------------------ the hosted keyboard itself

def test_serial_keyboard_delivers_each_byte_as_a_key():
    kb = Keyboard(b"a\r\n\xc3\xa9\x7f\x08\x1b[A\x1b", mode="serial")
    keys = []
    while (k := kb.poll()) is not None:
        keys.append(k)
    assert keys == [(0, 0x61), (0, 0x0D), (0, 0x0A), (0, 0xC3), (0, 0xA9), (S["SCAN_DELETE"], 0),
                    (0, 0x08), (S["SCAN_UP"], 0), (S["SCAN_ESC"], 0)]


def test_local_keyboard_delivers_characters_and_one_enter():
    kb = Keyboard("a\r\né\n🦙\r\x7f".encode(), mode="local")
    keys = []
    while (k := kb.poll()) is not None:
        keys.append(k)
    assert keys == [(0, 0x61), (0, 0x0D), (0, 0xE9), (0, 0x0D), (0, 0xD83E), (0, 0xDD99), (0, 0x0D),
                    (0, 0x08)]


def test_unknown_keyboard_is_one_clear_error(chat_efi, tmp_path):
    from peasm.errors import PeasmError
    with pytest.raises(PeasmError, match="keyboard 'qwerty'"):
        run(chat_efi, tmp_path, keyboard="qwerty")


# ------------------------------------------------------------------ case 1: Enter as CR+LF

@pytest.mark.parametrize("cpu,keyboard", [("native", "serial"), ("native", "local"), ("unicorn", "serial")])
def test_cr_lf_cr_and_lf_are_each_one_enter(chat_efi, tmp_path, real_pair, cpu, keyboard):
    """Case 1: "/ctx" + CR LF runs /ctx once; the LF does not start a story. A lone CR and a
    lone LF are Enter too."""
    vol = _vol(tmp_path, real_pair)
    text = _run(chat_efi, vol, b"/ctx\r\n/ctx\n/ctx\r/shutdown\r\n", cpu=cpu, keyboard=keyboard)
    assert text.count("context: 0 / 512 tokens used\n") == 3, text
    assert "[stats]" not in text and "\n> \n" not in text
    assert text.endswith("> /shutdown\npowering off\n")


def test_crlf_answers_the_picker_once(chat_efi, tmp_path, real_pair):
    """The picker reads a line like any other: "2\\r\\n" is one answer, and the LF is not an
    empty prompt afterwards."""
    vol = _vol(tmp_path, real_pair, files={"zeta.bin": real_pair[0]})
    text = _run(chat_efi, vol, b"2\r\n/ctx\r\n/shutdown\r\n")
    assert "choose a model [1-2]: 2\nloading zeta.bin\n" in text
    assert "type a number" not in text and "[stats]" not in text


# ------------------------------------------------------------------ case 4: non-ASCII typed

WORDS = ["héllo", "日本", "🦙 llama", "naïve café"]


@pytest.mark.parametrize("cpu,keyboard", [("native", "serial"), ("native", "local"), ("unicorn", "serial"),
                                          ("unicorn", "local")])
def test_non_ascii_typed_is_the_text_typed(chat_efi, tmp_path, real_pair, tok512, cpu, keyboard):
    """Case 4: UTF-8 bytes arriving one key each (serial) and UTF-16 surrogate pairs (a local
    keyboard's characters outside the BMP) are decoded to the characters typed."""
    vol = _vol(tmp_path, real_pair)
    keys = "".join(f"/tokenize {w}\r\n" for w in WORDS) + "/shutdown\r\n"
    text = _run(chat_efi, vol, keys.encode(), cpu=cpu, keyboard=keyboard)
    for word in WORDS:
        ids = " ".join(map(str, tok512.encode(word, bos=False)))
        shown = f"/tokenize {word}".replace("🦙", "\ufffd")   # UCS-2 consoles cannot show it
        assert _answer(text, shown) == [ids]


def test_bytes_that_are_not_utf8_stay_the_characters_that_came(chat_efi, tmp_path, real_pair, tok512):
    """A lead byte followed by a non-continuation, a stray continuation byte, an overlong form
    and a lone Latin-1 character at the end of a line: each is the Latin-1 character it
    arrived as (U+0080..U+00FF), nothing is lost."""
    vol = _vol(tmp_path, real_pair)
    cases = [(b"\xc3(", "\u00c3("), (b"a\xa9b", "a\u00a9b"), (b"\xc0\xaf", "\u00c0\u00af"),
             (b"caf\xe9", "caf\u00e9"), (b"\xf0\x9f\xa6", "\u00f0\u009f\u00a6")]
    keys = b"".join(b"/tokenize " + raw + b"\r" for raw, _ in cases) + b"/shutdown\r"
    text = _run(chat_efi, vol, keys)
    answers = [ln for ln in text.splitlines()[1:] if re.fullmatch(r"[\d ]+", ln)]
    assert answers == [" ".join(map(str, tok512.encode(want, bos=False))) for _, want in cases]


# ------------------------------------------------------------------ case 2 + kind: text files

CFG_FORMS = {
    "bom_crlf": BOM + b"temperature=0.5\r\nmax_tokens=7\r\n",
    "bom_lf_no_final_newline": BOM + b"temperature=0.5\nmax_tokens=7",
    "cr_only": b"temperature=0.5\rmax_tokens=7\r",
    "mixed": b"# notes\r\ntemperature=0.5\rmax_tokens=7\n",
    "bom_only_line": BOM + b"temperature = 0.5  # a comment\r\n\r\nmax_tokens = 7",
}


@pytest.mark.parametrize("cpu,form", [("unicorn", f) for f in sorted(CFG_FORMS)] + [("native", "bom_crlf")])
def test_repl_cfg_takes_a_bom_and_any_line_ends(chat_efi, tmp_path, real_pair, cpu, form):
    """Case 2: Notepad's BOM does not become part of the first key; LF, CR LF and CR all end
    lines, a missing final newline loses nothing."""
    vol = _vol(tmp_path, real_pair, cfg=CFG_FORMS[form])
    text = _run(chat_efi, vol, b"/cfg\n/shutdown\n", cpu=cpu)
    assert "repl.cfg:" not in text, text          # no line was refused
    cfg = _answer(text, "/cfg")
    assert "temperature = 0.500  (repl.cfg)" in cfg
    assert "max_tokens = 7  (repl.cfg)" in cfg


def test_a_bad_first_line_after_a_bom_is_named_without_the_bom(chat_efi, tmp_path, real_pair):
    vol = _vol(tmp_path, real_pair, cfg=BOM + b"colour=blue\r\ntemperature=0.5\r\n")
    text = _run(chat_efi, vol, b"/shutdown\n")
    assert "repl.cfg:1: unknown key 'colour' (line ignored)\n" in text


@pytest.mark.parametrize("form", [BOM + b"/ctx\r\n/version\r\n/shutdown", b"/ctx\r/version\r/shutdown\r",
                                  b"/ctx\n/version\r\n/shutdown\n"])
def test_autorun_takes_a_bom_and_any_line_ends(chat_efi, tmp_path, real_pair, form):
    vol = _vol(tmp_path, real_pair, autorun=form)
    text = _run(chat_efi, vol)
    assert "> /ctx\ncontext: 0 / 512 tokens used\n> /version\nllm-uefi" in text
    assert text.endswith("> /shutdown\npowering off\n")
    assert "unknown command" not in text


def test_an_autorun_line_over_the_limit_is_cut_and_said(chat_efi, tmp_path, real_pair):
    long = b"/tokenize " + b"a" * 5000
    vol = _vol(tmp_path, real_pair, autorun=long + b"\n/shutdown\n")
    text = _run(chat_efi, vol)
    assert "autorun.txt:1: line longer than 4096 bytes: cut there\n" in text


# ------------------------------------------------------------------ case 3: unattended picker

def _two_models(tmp_path, real_pair, **kw):
    model, tok = real_pair
    # created zeta first: a FAT directory (and the hosted firmware) lists creation order
    return _vol(tmp_path, real_pair, files={"zeta.bin": model, "models/alpha.bin": model, "Beta.bin": model},
                **kw)


def test_autorun_never_waits_at_the_picker(chat_efi, tmp_path, real_pair):
    """Case 3: several models, no model=, autorun ending in /shutdown: the boot runs through
    with nobody at the keyboard (no keys given: a wait would end the run as 'input ended')."""
    vol = _two_models(tmp_path, real_pair, autorun=b"/ctx\n/shutdown\n")
    res = run(chat_efi, vol, cpu="unicorn", out=None, timeout_s=600)
    assert res.reason == "powered off", res.text[-1500:]
    assert "choose a model" not in res.text
    assert "autorun runs unattended: trying the models in order" in res.text
    assert "  1. Beta.bin\n  2. stories260K.bin\n  3. zeta.bin\n  4. models/alpha.bin\n" in res.text
    assert "model: Beta.bin (" in res.text


def test_unattended_picker_goes_on_past_a_model_that_does_not_load(chat_efi, tmp_path, real_pair):
    """The first model needs more memory than there is: the next one is tried."""
    model, tok = real_pair
    big = ref.Config(dim=256, hidden_dim=512, n_layers=8, n_heads=8, n_kv_heads=8, vocab_size=512,
                     seq_len=64, shared_classifier=True)
    vol = make_volume(tmp_path / "vol", files={"tok512.bin": tok})
    ref.write_random_model(vol / "a_big.bin", big, seed=1)
    (vol / "b_small.bin").write_bytes(model)
    (vol / "autorun.txt").write_bytes(b"/shutdown\n")
    res = run(chat_efi, vol, cpu="unicorn", out=None, timeout_s=600, mem_mib=24)
    assert res.reason == "powered off", res.text[-1500:]
    assert "model a_big.bin: not enough memory" in res.text
    assert "model: b_small.bin (" in res.text


def test_picker_numbers_models_in_name_order_whatever_the_directory_order(chat_efi, tmp_path, real_pair):
    vol = _two_models(tmp_path, real_pair)
    text = _run(chat_efi, vol, b"3\r/cfg\r/shutdown\r")
    assert "  1. Beta.bin\n  2. stories260K.bin\n  3. zeta.bin\n  4. models/alpha.bin\n" in text
    assert "loading zeta.bin\n" in text
    assert "model = zeta.bin  (found on the volume)" in _answer(text, "/cfg")   # case 7 too


def test_picker_says_what_it_takes(chat_efi, tmp_path, real_pair):
    vol = _two_models(tmp_path, real_pair)
    text = _run(chat_efi, vol, b"9\r\nx\r\n1\r\n/shutdown\r\n")
    assert text.count("type a number from 1 to 4\n") == 2
    assert "model: Beta.bin (" in text


def test_too_many_models_are_said(chat_efi, tmp_path, real_pair):
    model, _ = real_pair
    files = {f"m{i:02}.bin": model for i in range(18)}
    vol = _vol(tmp_path, real_pair, files=files, autorun=b"/models\n/shutdown\n")
    text = _run(chat_efi, vol)
    assert "more than 16 model files: only the first 16 are listed\n" in text


def test_model_names_the_program_cannot_keep_are_said(chat_efi, tmp_path, real_pair):
    model, _ = real_pair
    vol = _vol(tmp_path, real_pair, files={"modèle.bin": model, "x" * 140 + ".bin": model,
                                           "notes-é.txt": b"not a model"}, autorun=b"/models\n/shutdown\n")
    text = _run(chat_efi, vol)
    assert "2 .bin/.gguf file(s) skipped: a name must be ASCII and under 128 bytes with its folder\n" in text


# ------------------------------------------------------------------ case 5: a prompt that can never fit

@pytest.fixture(scope="module")
def ctx32_pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("ctx32")
    cfg = ref.Config(dim=48, hidden_dim=100, n_layers=3, n_heads=6, n_kv_heads=2, vocab_size=512,
                     seq_len=32, shared_classifier=True)
    ref.write_random_model(d / "small.bin", cfg, seed=3)
    return (d / "small.bin").read_bytes(), model_file("tok512.bin").read_bytes()


def test_a_prompt_that_can_never_fit_keeps_the_conversation(chat_efi, tmp_path, ctx32_pair, tok512):
    """Case 5: seq_len 32, a few tokens used, a 40-token line: refused with its size, and the
    conversation is still there (/ctx unchanged). A line that fits once older turns go still
    runs."""
    vol = make_volume(tmp_path / "vol", files={"small.bin": ctx32_pair[0], "tok512.bin": ctx32_pair[1]},
                      cfg="max_tokens=3\ntemperature=0\n")
    long = " ".join(["once upon a time there was"] * 8)
    n_long = len(tok512.encode(long, bos=True))
    assert n_long > 32
    words = "the cat sat on a mat and the dog sat on a log and the bird sat in a tree".split()
    medium = next(" ".join(words[:k]) for k in range(1, len(words) + 1)
                  if len(tok512.encode(" ".join(words[:k]), bos=True)) >= 28)
    assert len(tok512.encode(medium, bos=True)) <= 32
    text = _run(chat_efi, vol, f"Once\n/ctx\n{long}\n/ctx\n{medium}\n/ctx\n/shutdown\n".encode())
    before = _answer(text, "/ctx")[0]
    used = int(re.match(r"context: (\d+) / 32 tokens used", before).group(1))
    assert used > 0
    assert _answer(text, long) == [f"prompt too long for the context: {n_long} tokens, the context holds 32 "
                                   "(nothing was cleared)"]
    ctx_lines = re.findall(r"context: \d+ / 32 tokens used", text)
    assert ctx_lines[1] == ctx_lines[0]                      # nothing was lost
    after = "\n".join(_answer(text, medium))       # fits once older turns go: it runs
    assert "[stats] " in after and "too long" not in after, after


# ------------------------------------------------------------------ case 6: a configured tokenizer that fails

def test_a_bad_configured_tokenizer_falls_back_to_the_one_found_by_name(chat_efi, tmp_path, real_pair):
    vol = _vol(tmp_path, real_pair, cfg=b"tokenizer=bad.bin\ntemperature=0\nmax_tokens=5\n",
               files={"bad.bin": b"\x00\x10\x00\x00"})
    text = _run(chat_efi, vol, b"Once\n/shutdown\n")
    lines = text.splitlines()
    bad = next(ln for ln in lines if ln.startswith("tokenizer bad.bin: "))
    assert "max_token_length" in bad or "short" in bad, bad
    assert "trying the tokenizer found by name instead (tok<vocab>.bin, tokenizer.bin)" in lines
    assert "tokenizer: tok512.bin" in lines
    assert text.count("loading stories260K.bin") == 1           # not loaded a second time
    assert "[stats] prompt_tokens=2 gen_tokens=5 " in text        # and it works
    assert "no model loaded" not in text


def test_a_missing_configured_tokenizer_is_named_and_falls_back(chat_efi, tmp_path, real_pair):
    vol = _vol(tmp_path, real_pair, cfg=b"tokenizer=missing.bin\n")
    text = _run(chat_efi, vol, b"/shutdown\n")
    assert "tokenizer missing.bin: cannot open the file" in text
    assert "tokenizer: tok512.bin\n" in text


def test_a_configured_model_whose_tokenizer_fails_is_not_loaded_twice(chat_efi, tmp_path, real_pair):
    model, _ = real_pair
    vol = make_volume(tmp_path / "vol", files={"m.bin": model, "bad.bin": b"\x00\x10"},
                      cfg="model=m.bin\ntokenizer=bad.bin\n")
    text = _run(chat_efi, vol, b"/shutdown\n")
    assert text.count("loading m.bin") == 1, text
    assert "no tokenizer found" in text


# ------------------------------------------------------------------ case 7: /cfg says what is loaded

def test_cfg_shows_the_model_discovery_loaded_and_save_cfg_leaves_it_out(chat_efi, tmp_path, real_pair):
    model, _ = real_pair
    vol = _vol(tmp_path, real_pair)
    text = _run(chat_efi, vol, b"/cfg\n/save_cfg\n/model stories260K.bin\n/cfg\n/shutdown\n")
    first, second = [a for a in text.split("> /cfg\n")[1:]]
    assert "model = stories260K.bin  (found on the volume)" in first
    assert "model = stories260K.bin  (command)" in second
    assert "model" not in (vol / "repl.cfg").read_text().split("\n", 1)[1].replace("max_tokens", "")


# ------------------------------------------------------------------ kind: every key used or said

def test_keys_that_do_nothing_are_said_and_the_line_shown_again(chat_efi, tmp_path, real_pair, tok512):
    vol = _vol(tmp_path, real_pair)
    text = _run(chat_efi, vol, b"/tokenize \x1b[Cab\x01\tc\x1b[H\r/shutdown\r")
    assert ("\n[Right (cursor keys do not move in the line): not used here; keys: Enter, Backspace, "
            "Up/Down (recall), Esc (clear the line)]\n> /tokenize ") in text
    assert "\n[control character 1: not used here;" in text
    assert "\n[Tab: not used here;" in text
    assert "\n[Home: not used here;" in text
    ids = " ".join(map(str, tok512.encode("abc", bos=False)))
    assert f"> /tokenize abc\n{ids}\n" in text


def test_esc_and_ctrl_u_clear_the_line(chat_efi, tmp_path, real_pair):
    vol = _vol(tmp_path, real_pair)
    text = _run(chat_efi, vol, b"/tokenize junk\x1b/ctx\r/tok\x15/version\r/shutdown\r")
    assert "context: 0 / 512 tokens used" in text and "llm-uefi 0.1.0: GGUF and llama2.c" in text
    assert "unknown command" not in text


# ------------------------------------------------------------------ kind: limits said on one line

def test_a_full_line_is_said_once(chat_efi, tmp_path, real_pair):
    vol = _vol(tmp_path, real_pair)
    text = _run(chat_efi, vol, b"/tokenize " + b"a" * 5000 + b"\r/shutdown\r")
    assert text.count("[line full: 4096 bytes at most; what follows is not added]") == 1


def test_a_full_multiline_prompt_is_said(chat_efi, tmp_path, real_pair):
    vol = _vol(tmp_path, real_pair)
    part = b"a" * 4000 + b"\\\r"
    text = _run(chat_efi, vol, part * 5 + b";;\r/shutdown\r")
    assert text.count("[prompt full: 16384 bytes at most; the rest was not added]") == 1
    assert "prompt too long for the context" in text


def test_keys_typed_beyond_the_typeahead_are_counted(chat_efi, tmp_path, real_pair):
    vol = _vol(tmp_path, real_pair, cfg=b"temperature=0\nmax_tokens=20\n")
    rest = b"x" * 5000 + b"\r/shutdown\r"
    text = _run(chat_efi, vol, b"Once\r" + rest)
    assert f"[{len(rest) - 4096} keys typed during the generation were not kept: 4096 at most are]" in text


def test_a_file_name_over_the_limit_is_refused(chat_efi, tmp_path, real_pair):
    vol = _vol(tmp_path, real_pair)
    name = "m" * 130 + ".bin"
    text = _run(chat_efi, vol, f"/model {name}\n/model_info {name}\n/shutdown\n".encode())
    assert text.count("file name too long (134 bytes): 127 bytes at most") == 2


# ------------------------------------------------------------------ /budget

def test_budget_stops_a_generation_with_one_line(chat_efi, tmp_path, real_pair):
    vol = _vol(tmp_path, real_pair, cfg=b"temperature=0\n")
    text = _run(chat_efi, vol, b"/budget\n/budget 1\n\n/budget abc\n/budget 0\n/cfg\n/shutdown\n")
    assert _answer(text, "/budget") == ["budget = 0"]
    assert _answer(text, "/budget 1") == ["budget = 1"]
    gen = _answer(text, "")
    assert gen[-2].endswith(" [time budget: 1 ms]"), gen
    n = int(re.search(r"gen_tokens=(\d+)", gen[-1]).group(1))
    assert n < 256
    assert _answer(text, "/budget abc") == ["bad value: expected a whole number from 0 to 3600000 "
                                            "(usage: /budget [MS])"]
    assert "budget = 0  (command)" in _answer(text, "/cfg")


def test_budget_from_repl_cfg(chat_efi, tmp_path, real_pair):
    vol = _vol(tmp_path, real_pair, cfg=b"budget=250\nbudget=-1\n")
    text = _run(chat_efi, vol, b"/cfg\n/shutdown\n")
    assert "repl.cfg:2: bad value '-1' for budget: expected a whole number from 0 to 3600000 (line ignored)" in text
    assert "budget = 250  (repl.cfg)" in _answer(text, "/cfg")


def test_a_log_entry_cut_to_fit_says_so(chat_efi, tmp_path, real_pair):
    model, tok = real_pair
    name = "m" * 101 + "é" * 5 + ".bin"      # "model loaded: " + 115 bytes: the cut falls inside an é
    vol = make_volume(tmp_path / "vol", files={name: model, "tok512.bin": tok}, cfg=f"model={name}\n")
    text = _run(chat_efi, vol, b"/log 3\n/shutdown\n")
    entry = next(ln for ln in _answer(text, "/log 3") if "model loaded: " in ln)
    assert entry.endswith("m...") and "\ufffd" not in entry
    assert len(entry.split("] ", 1)[1].encode()) <= 119

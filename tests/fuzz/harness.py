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
* TokenizerRunner: app_asm/tokenizer.s, tok_index.s, tok_encode.s. tok_load -> a code and
  tok_error_text; loaded vocabs go through tok_encode (also with a capacity one short) and
  tok_decode. Judges: tokenizer.inc's validation order restated there, tests/reference's reader (reads exactly
  the loaded files, once max_token_length is honoured) and its encode/decode (same ids,
  same bytes).
* CfgRunner: app_asm/settings.s + settings_print.s + util.s + tests/fuzz/runtime_stubs.s, whose rt_print_*
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
This module is the index: RUNNERS by kind. The runners live in model_runner.py,
tokenizer_runner.py, cfg_runner.py, gguf_runner.py and vocab.py (kind `vocab`, its own
doc), on the common part in runner.py (Outcome, Area, Runner).
"""
from __future__ import annotations

from tests.fuzz.cfg_runner import CfgRunner
from tests.fuzz.gguf_runner import GgufRunner
from tests.fuzz.model_runner import ModelRunner, model_expectation
from tests.fuzz.runner import MAX_INSTRUCTIONS, TIMEOUT_S, Outcome, Runner
from tests.fuzz.tokenizer_runner import TokenizerRunner
from tests.reference import gguf_rules as refgguf

__all__ = ["RUNNERS", "MAX_INSTRUCTIONS", "TIMEOUT_S", "Outcome", "Runner", "model_expectation", "refgguf"]


def _vocab_runner():
    from tests.fuzz.vocab import VocabRunner   # GGUF tokenizer metadata (its own module)
    return VocabRunner()


RUNNERS = {"model": ModelRunner, "tokenizer": TokenizerRunner, "cfg": CfgRunner, "gguf": GgufRunner,
           "vocab": _vocab_runner}

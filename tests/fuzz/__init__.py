"""Fuzzing the chat program's file readers: mutated model files, tokenizers and repl.cfg.

mutate.py makes the cases (each named kind:seed:index, replayable exactly), harness.py runs
them through the asm modules under unicorn, tests/test_fuzz.py is the CI run and
scripts/fuzz.py the command line (more cases, replay one, dump its input).
"""

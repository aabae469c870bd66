"""Fuzz cases that fail because of a known bug in the asm, with what is wrong.

tests/test_fuzz.py skips these ids in its batches and runs each as its own xfail test, so CI
stays green while the owners fix the code; when a fix lands the xfail turns into an XPASS
(reported, not failed): remove the entry then. Keys are replay ids (`kind:seed:index`, see
`python scripts/fuzz.py --replay ID`).
"""
KNOWN_FAILURES: dict[str, str] = {
}

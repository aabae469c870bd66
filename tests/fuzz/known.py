"""Fuzz cases that fail because of a known bug in the asm, with what is wrong.

tests/test_fuzz.py skips these ids in its batches and runs each as its own xfail test, so CI
stays green while the owners fix the code; when a fix lands the xfail turns into an XPASS
(reported, not failed): remove the entry then. Keys are replay ids (`kind:seed:index`, see
`python scripts/fuzz.py --replay ID`).
"""
KNOWN_FAILURES: dict[str, str] = {
    "cfg:20261124:371": (
        "settings.s: a file-name value with a NUL inside is accepted and silently cut at the "
        "NUL ('tokenizer = tok512.bin \\0...' stores 'tok512.bin ' with its trailing space), so "
        "settings_write_cfg (/save_cfg) writes a line that reads back as a different name"),
}

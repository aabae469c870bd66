"""repl.cfg's ctx_len and kv_type as imagetool reads them for `boot --mem auto`
(imagetool.replcfg), by the program's rules (app_asm/settings.s config_parse): comments, a
BOM, any line end, trimmed keys and values, exact keys, enum values in any case, a bad value
ignored so the last good line wins. (The program's own handling of the same lines:
tests/test_app_kv_type.py, tests/test_app_commands.py.)"""
from __future__ import annotations

import pytest

from imagetool.image import Image, Item, build_image
from imagetool.replcfg import ReplCfg, parse_cfg, read_cfg
from tests.test_imagetool_support import fake_efi


@pytest.mark.parametrize("text, want", [
    (b"", ReplCfg(None, "auto")),
    (b"temperature = 0\nctx_len = 512\nkv_type = f16\n", ReplCfg(512, "f16")),
    (b"\xef\xbb\xbfkv_type=F32\r\nctx_len=+64\r", ReplCfg(64, "f32")),          # BOM, CR LF, lone CR
    (b"ctx_len = 256 # short\n\tkv_type\t=\tAuto  \n", ReplCfg(256, "auto")),    # comment, tabs
    (b"# kv_type = f32\nctx_len = 0\n", ReplCfg(None, "auto")),                  # 0: the model's own
    (b"kv_type = f16\nkv_type = q8_0\nkv_type =\n", ReplCfg(None, "f16")),       # bad values ignored
    (b"ctx_len = 128\nctx_len = 1048577\nctx_len = -5\nctx_len = 1e3\n", ReplCfg(128, "auto")),
    (b"ctx_len = 1048576\nkv_type = f16\nkv_type = f32\n", ReplCfg(1048576, "f32")),  # the last good wins
    (b"KV_TYPE = f16\nctx_len 512\n kv_type = f16 f32\n", ReplCfg(None, "auto")),  # keys are exact
    (b"repack = off\nctx_len = 64\nrepack = maybe\n", ReplCfg(64, "auto")),        # no memory change
])
def test_parse_cfg_follows_the_program(text, want):
    assert parse_cfg(text) == want


def test_read_cfg_from_an_image(tmp_path):
    efi = Item("/EFI/BOOT/BOOTX64.EFI", src=fake_efi(tmp_path / "B.EFI"))
    build_image(tmp_path / "a.img", [efi, Item("/repl.cfg", data=b"kv_type = f32\nctx_len = 300\n")])
    build_image(tmp_path / "b.img", [efi])
    with Image(tmp_path / "a.img") as img:
        assert read_cfg(img.volume) == ReplCfg(300, "f32")
    with Image(tmp_path / "b.img") as img:
        assert read_cfg(img.volume) == ReplCfg()

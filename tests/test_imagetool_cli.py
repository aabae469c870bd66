"""The CLI: --help everywhere; every bad input gives one clear line on stderr and a non-zero exit."""
from __future__ import annotations

from pathlib import Path

import pytest

from imagetool.cli import run
from imagetool.image import Item, build_image
from tests.test_imagetool_support import fake_efi, imagetool

COMMANDS = ["build", "ls", "cat", "add", "rm", "verify", "write", "boot"]


@pytest.mark.parametrize("cmd", [[]] + [[c] for c in COMMANDS])
def test_help_everywhere(cmd, capsys):
    assert run([*cmd, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: imagetool")
    if not cmd:
        for c in COMMANDS:
            assert c in out


def test_console_script_and_module_agree():
    r = imagetool("--help")
    assert r.returncode == 0 and b"Usage: imagetool" in r.stdout


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    efi = fake_efi(d / "BOOTX64.EFI")
    img = d / "ok.img"
    build_image(img, [Item("/EFI/BOOT/BOOTX64.EFI", src=efi), Item("/dir/f.txt", data=b"f")], size_mib=6)
    notpe = d / "notpe.bin"
    notpe.write_bytes(b"ELF....")
    text = d / "text.txt"
    text.write_text("hello, this is not a disk image\n" * 40)
    return {"d": d, "efi": efi, "img": img, "notpe": notpe, "text": text}


def _cases(e):
    d, efi, img = str(e["d"]), str(e["efi"]), str(e["img"])
    out = str(e["d"] / "out.img")
    return [
        # (argv, words expected in the message)
        (["build", "--efi", efi], "Missing option"),
        (["build", "-o", out], "--efi"),
        (["build", "-o", out, "--efi", d + "/nope.efi"], "no such file"),
        (["build", "-o", out, "--efi", d], "is a directory"),
        (["build", "-o", out, "--efi", str(e["notpe"])], "not an EFI application"),
        (["build", "-o", out, "--efi", efi, "--size", "lots"], "not a size"),
        (["build", "-o", out, "--efi", efi, "--size", "0"], "positive"),
        (["build", "-o", out, "--efi", efi, "--size", "3"], "too small"),
        (["build", "-o", out, "--efi", efi, "--label", "A" * 12], "longer than 11"),
        (["build", "-o", out, "--efi", efi, "--label", "BAD*LABEL"], "not allowed"),
        (["build", "-o", out, "--efi", efi, "--disk-guid", "xyz"], "not a GUID"),
        (["build", "-o", out, "--efi", efi, "--partition-guid", "1234"], "not a GUID"),
        (["build", "-o", d + "/no/such/dir/x.img", "--efi", efi], "cannot create"),
        (["build", "-o", d, "--efi", efi], "directory"),
        (["build", "-o", out, "--efi", efi, "--add", d + "/missing"], "no such file"),
        (["build", "-o", out, "--efi", efi, "--add", f"{efi}=EFI/BOOT/BOOTX64.EFI"], "same place"),
        (["build", "-o", out, "--efi", efi, "--add", f"{efi}=bad:name.efi"], "not allowed"),
        (["build", "-o", out, "--efi", efi, "--model", d], "is a directory"),
        (["build", "-o", out, "--efi", efi, "--bogus"], "No such option"),
        (["ls"], "Missing argument"),
        (["ls", d + "/nope.img"], "no such image"),
        (["ls", d], "is a directory"),
        (["ls", str(e["text"])], "no GPT"),
        (["ls", img, "/nope"], "no such file"),
        (["ls", img, "/dir/f.txt/x"], "not a directory"),
        (["cat", img], "Missing argument"),
        (["cat", img, "/dir"], "is a directory"),
        (["cat", img, "/"], "is a directory"),
        (["cat", img, "/nope.txt"], "no such file"),
        (["add", img, d + "/nope"], "no such file"),
        (["add", img, efi, "/a|b"], "not allowed"),
        (["add", img, efi, "/dir/f.txt"], "already exists"),
        (["add", img, efi, "/dir/f.txt/sub"], "not a directory"),
        (["rm", img, "/"], "root"),
        (["rm", img, "/nope"], "no such file"),
        (["rm", img, "/dir"], "not empty"),
        (["verify", d + "/nope.img"], "no such image"),
        (["verify", str(e["text"])], "no GPT"),
        (["write", img, d + "/nope"], "no such device"),
        (["write", img, str(e["text"]), "--yes"], "not a block device"),
        (["write", img, "/dev/null", "--yes"], "not a block device"),
        (["write", d + "/nope.img", "/dev/null"], "no such image"),
        (["boot", d + "/nope.img"], "no such image"),
        (["boot", img, "--smp", "0"], "--smp"),
        (["boot", img, "--mem", "8"], "--mem"),
        (["boot", img, "--timeout", "-1"], "timeout"),
        (["boot", img, "--smp", "two"], "--smp must be a number of CPUs or auto"),
        (["boot", img, "--mem", "lots"], "not a size in MiB"),
        (["boot", img, "--accel", "hvf"], "'hvf' is not one of 'auto', 'kvm', 'tcg'"),
        (["nosuchcommand"], "No such command"),
    ]


def test_bad_inputs_one_line_in_process(env, capsysbinary):
    for argv, words in _cases(env):
        status = run(argv)
        cap = capsysbinary.readouterr()
        err = cap.err.decode()
        assert status not in (0, 70), (argv, status, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1, (argv, err)
        assert words.lower() in lines[0].lower(), (argv, err)
        assert lines[0].startswith("imagetool"), (argv, err)
    # nothing above changed the image
    assert run(["verify", str(env["img"])]) == 0


@pytest.mark.parametrize("idx", [0, 2, 4, 7, 21, 25, 29, 38, 43])
def test_bad_inputs_one_line_real_process(env, idx):
    argv, words = _cases(env)[idx]
    r = imagetool(*argv)
    err = r.stderr.decode()
    assert r.returncode != 0 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and words.lower() in err.lower(), err


def test_add_replaces_nothing_on_error_and_output_files_appear_only_when_complete(env, tmp_path):
    out = tmp_path / "never.img"
    assert run(["build", "-o", str(out), "--efi", str(env["efi"]), "--size", "3"]) != 0
    assert not out.exists() and not list(tmp_path.iterdir())
    # an existing output survives a failed build untouched
    out.write_bytes(b"previous")
    assert run(["build", "-o", str(out), "--efi", str(env["efi"]), "--size", "3"]) != 0
    assert out.read_bytes() == b"previous"


def test_spec_parsing_handles_equals_in_file_names(tmp_path, capsys):
    odd = tmp_path / "a=b.bin"
    odd.write_bytes(b"odd")
    efi = fake_efi(tmp_path / "e.efi")
    img = tmp_path / "o.img"
    assert run(["build", "-q", "-o", str(img), "--efi", str(efi), "--add", str(odd),
                "--add", f"{odd}=x/y=z.bin"]) == 0
    capsys.readouterr()
    assert run(["cat", str(img), "/a=b.bin"]) == 0
    assert run(["cat", str(img), "/x/y=z.bin"]) == 0
    assert capsys.readouterr().out == "oddodd"


def test_verify_reports_ok(env, capsys):
    assert run(["verify", str(env["img"])]) == 0
    out = capsys.readouterr().out
    assert "ok (gpt, FAT16" in out


def test_paths_are_rejected_cleanly(tmp_path):
    # a path with a comma cannot be passed to QEMU's -drive syntax
    img = tmp_path / "a,b.img"
    img.write_bytes(b"")
    r = imagetool("boot", img)
    assert r.returncode != 0 and b"," in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_cat_to_closed_pipe(env):
    import subprocess
    import sys
    p = subprocess.Popen([sys.executable, "-m", "imagetool", "cat", str(env["img"]), "/EFI/BOOT/BOOTX64.EFI"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).parent.parent)
    p.stdout.close()
    _, err = p.communicate(timeout=30)
    assert b"Traceback" not in err


def test_write_refuses_partitions_of_real_devices_without_touching_them(env):
    # whatever block devices this machine has, a partition is always refused before any write
    import glob
    parts = [p for p in glob.glob("/dev/[sv]d[a-z][0-9]") + glob.glob("/dev/nvme*n*p*")]
    if not parts:
        pytest.skip("no partitions on this machine")
    r = imagetool("write", env["img"], parts[0], "--yes")
    assert r.returncode != 0 and b"partition" in r.stderr

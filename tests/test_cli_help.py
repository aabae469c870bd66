"""The command-line help a person starting out reads: every command's one-line summary whole
(click cuts a docstring's first sentence at about 45 characters and ends it in "..."), and
choices listed where an option takes one of a few values."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from imagetool.cli import cli as imagetool_cli
from peasm.backends import names as backend_names
from peasm.cli import main as peasm_main


def _summaries(group, args=()) -> list[str]:
    out = CliRunner().invoke(group, [*args, "--help"], terminal_width=80).output
    lines = out.split("Commands:\n", 1)[1].splitlines()
    return [ln for ln in lines if ln.startswith("  ")]


@pytest.mark.parametrize("group,args", [(peasm_main, ()), (peasm_main, ("bench",)), (imagetool_cli, ())])
def test_command_summaries_are_whole(group, args):
    rows = _summaries(group, args)
    assert rows
    for row in rows:
        name, summary = row.split(None, 1)
        assert not summary.endswith("..."), row
        assert summary.endswith("."), row


@pytest.mark.parametrize("command", ["link", "asm"])
def test_backend_option_lists_its_choices(command):
    out = CliRunner().invoke(peasm_main, [command, "--help"], terminal_width=100).output
    assert f"[{'|'.join(backend_names())}]" in out
    bad = CliRunner().invoke(peasm_main, [command, "x.s", "-o", "y", "--backend", "nasm"])
    assert bad.exit_code == 2 and "nasm" in bad.output and "keystone" in bad.output


def test_run_lists_its_keyboards():
    out = CliRunner().invoke(peasm_main, ["run", "--help"], terminal_width=100).output
    assert "[serial|local]" in out

"""A run builds only its own command's parser: the same parser as in the whole one, and
what the other commands need is not imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

from imgpull.cli.completion import subcommands_of
from imgpull.cli.parser import COMMANDS, build_parser


@pytest.mark.parametrize("command", COMMANDS)
def test_a_one_command_parser_is_that_command_of_the_whole_one(command: str) -> None:
    alone = subcommands_of(build_parser(command)).choices
    whole = subcommands_of(build_parser()).choices
    assert list(alone) == [command]
    assert alone[command].format_help() == whole[command].format_help()


def test_a_pull_loads_neither_the_demo_nor_completion() -> None:
    check = (
        "import sys\n"
        "from imgpull.cli.main import main\n"
        "try:\n"
        "    main(['pull', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith(('imgpull.demo', "
        "'imgpull.cli.completion'))), file=sys.stderr)\n"
    )
    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert run.stderr.strip().splitlines()[-1] == "[]"

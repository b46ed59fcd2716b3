"""``imgpull completion SHELL``: each script loads in its shell and completes what the
parser offers (bash and fish are driven for real; zsh is checked and loaded both ways it
is installed; PowerShell, which Debian does not ship, is parsed with tree-sitter's grammar).
"""

from __future__ import annotations

import argparse
import io
import shlex
import subprocess
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from imgpull.cli.completion import (
    COMMON_PLATFORMS,
    SHELLS,
    add_completion,
    cmd_completion,
    completion_script,
    describe,
    subcommands_of,
)
from imgpull.cli.parser import build_parser
from imgpull.errors import UsageError


@pytest.fixture
def parser() -> argparse.ArgumentParser:
    """The real parser, with the completion command (until build_parser adds it itself)."""
    built = build_parser()
    commands = subcommands_of(built)
    if "completion" not in commands.choices:
        add_completion(commands)
    return built


def _pull_formats() -> list[str]:
    """``--format``'s choices, as the parser has them: what completion must offer."""
    pull = subcommands_of(build_parser()).choices["pull"]
    return [str(c) for a in pull._actions if a.dest == "format" for c in a.choices or ()]


FORMATS = _pull_formats()
assert FORMATS, "pull has a --format with choices"


@pytest.fixture
def script(parser: argparse.ArgumentParser, tmp_path: Path) -> Callable[[str], Path]:
    def write(shell: str) -> Path:
        path = tmp_path / f"imgpull.{shell}"
        path.write_text(completion_script(shell, parser))
        return path

    return write


def test_the_parser_is_described_with_static_choices(parser: argparse.ArgumentParser) -> None:
    top, commands = describe(parser)
    assert {"--help", "--version"} <= {flag for option in top for flag in option.flags}
    by_name = {command.name: command for command in commands}
    assert {"pull", "push", "copy", "images", "rewrite", "cache", "completion"} <= set(by_name)
    pull = {flag: option for option in by_name["pull"].options for flag in option.flags}
    assert pull["--format"].values == tuple(FORMATS)
    assert pull["--platform"].values == COMMON_PLATFORMS
    assert pull["-o"].paths and pull["-o"].takes_value
    assert not pull["--no-cache"].takes_value
    assert pull["--mirror"].repeatable
    assert by_name["cache"].arguments == ("show", "verify", "prune", "forget")
    assert by_name["completion"].arguments == SHELLS
    assert by_name["push"].paths and not by_name["pull"].paths


def test_completion_command_parses_and_prints(parser: argparse.ArgumentParser) -> None:
    args = parser.parse_args(["completion", "fish"])
    assert args.run is cmd_completion
    out = io.StringIO()
    with redirect_stdout(out):
        assert args.run(args, io.StringIO()) == 0
    assert out.getvalue() == completion_script("fish", build_parser())
    with pytest.raises(UsageError):
        parser.parse_args(["completion", "tcsh"])


def _bash_complete(script: Path, line: str) -> list[str]:
    """What _imgpull offers for ``line`` (completing its last word; '' after a space)."""
    words = shlex.split(line) + ([""] if line.endswith(" ") else [])
    program = (
        f"source {shlex.quote(str(script))}\n"
        f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_imgpull\n"
        'for word in "${COMPREPLY[@]}"; do printf "%s\\n" "$word"; done\n'
    )
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True)
    assert done.stderr == ""
    return done.stdout.splitlines()


def test_bash_completes_commands_options_and_values(
    script: Callable[[str], Path], tmp_path: Path
) -> None:
    bash = script("bash")
    assert _bash_complete(bash, "imgpull pu") == ["pull", "push"]
    assert _bash_complete(bash, "imgpull pull --fo") == ["--format"]
    assert _bash_complete(bash, "imgpull pull --format ") == list(FORMATS)
    assert _bash_complete(bash, "imgpull pull --platform linux/arm") == [
        "linux/arm64",
        "linux/arm/v7",
        "linux/arm/v6",
    ]
    assert {"pull", "completion", "--help"} <= set(_bash_complete(bash, "imgpull "))
    assert _bash_complete(bash, "imgpull cache ") == ["show", "verify", "prune", "forget"]
    assert _bash_complete(bash, "imgpull completion ") == list(SHELLS)
    (tmp_path / "bundle.tar").write_bytes(b"")
    assert _bash_complete(bash, f"imgpull push {tmp_path}/bun") == [f"{tmp_path}/bundle.tar"]
    assert _bash_complete(bash, f"imgpull pull -o {tmp_path}/bun") == [f"{tmp_path}/bundle.tar"]
    assert _bash_complete(bash, "imgpull pull --jobs ") == []


def test_bash_completes_the_value_after_an_equals_sign(script: Callable[[str], Path]) -> None:
    bash = script("bash")
    # bash splits "--format=d" into "--format", "=", "d" (COMP_WORDBREAKS).
    assert _bash_complete(bash, "imgpull pull --format = d") == ["docker"]
    assert _bash_complete(bash, "imgpull pull --format =") == ["=docker", "=oci"]


def test_zsh_script_is_valid_and_registers_both_ways(
    script: Callable[[str], Path], tmp_path: Path
) -> None:
    zsh = script("zsh")
    subprocess.run(["zsh", "-n", str(zsh)], check=True)
    functions = tmp_path / "functions"
    functions.mkdir()
    installed = functions / "_imgpull"  # in $fpath, as the script's first lines say
    installed.write_text(zsh.read_text())
    compinit = "autoload -Uz compinit && compinit -u -D"
    for program in (
        f"fpath=({functions} $fpath); {compinit}",  # #compdef is read from $fpath
        f"{compinit}; source {installed}",  # or sourced: it calls compdef
    ):
        done = subprocess.run(
            ["zsh", "-f", "-c", f"{program}; print -r -- $_comps[imgpull]"],
            capture_output=True,
            text=True,
        )
        assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "_imgpull", "")


def _fish_complete(script: Path, line: str) -> list[str]:
    program = f"source {shlex.quote(str(script))}; complete -C {shlex.quote(line)}"
    done = subprocess.run(["fish", "-c", program], capture_output=True, text=True, check=True)
    assert done.stderr == ""
    return [entry.split("\t")[0] for entry in done.stdout.splitlines()]


def test_fish_script_is_valid_and_completes(script: Callable[[str], Path]) -> None:
    fish = script("fish")
    subprocess.run(["fish", "--no-execute", str(fish)], check=True)
    assert _fish_complete(fish, "imgpull pu") == ["pull", "push"]
    assert _fish_complete(fish, "imgpull pull --fo") == ["--format"]
    assert _fish_complete(fish, "imgpull pull --format ") == sorted(FORMATS)
    assert _fish_complete(fish, "imgpull completion ") == sorted(SHELLS)


def test_powershell_script_parses(
    script: Callable[[str], Path], parser: argparse.ArgumentParser
) -> None:
    # tree-sitter and tree-sitter-powershell are dev dependencies (PowerShell itself is not
    # in Debian): a missing one fails here, as any missing tool does.
    from tree_sitter import Language, Node, Parser
    from tree_sitter_powershell import language

    source = script("powershell").read_bytes()
    tree = Parser(Language(language())).parse(source)

    def broken(node: Node) -> list[str]:
        here = [(node.text or b"").decode()[:80]] if node.type == "ERROR" or node.is_missing else []
        return here + [text for child in node.children for text in broken(child)]

    assert broken(tree.root_node) == []
    assert Parser(Language(language())).parse(source[:-40]).root_node.has_error  # it can fail
    text = source.decode()
    assert text.count("Register-ArgumentCompleter -Native -CommandName imgpull") == 1
    for command in describe(parser)[1]:
        assert f"        '{command.name}' = @{{" in text

"""``imgpull completion bash|zsh|fish|powershell``: a completion script made from the parser.

The scripts are static: commands, their options, static choices (``--format``, ``cache
show|prune``), common ``--platform`` values and file names where a value is a path, so a
Tab costs no Python start. They are written here from argparse's own description of the
parser rather than with shtab (bash, zsh and tcsh only) or argcomplete (which runs imgpull
on every Tab): one walk over the parser feeds all four shells, and nothing is added to
imgpull's dependencies. argparse does not publish that description, so this reads its
``_actions`` like shtab does.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from imgpull.cli.parser import build_parser

Commands = Any  # argparse's _SubParsersAction, which it does not export

SHELLS = ("bash", "zsh", "fish", "powershell")
PROG = "imgpull"
#: Suggested for --platform (any os/arch[/variant] is accepted).
COMMON_PLATFORMS = (
    "linux/amd64",
    "linux/arm64",
    "linux/arm/v7",
    "linux/arm/v6",
    "linux/386",
    "linux/ppc64le",
    "linux/s390x",
    "linux/riscv64",
)
_PATH_METAVARS = {"FILE", "DIR", "LISTFILE", "PATH", "ARCHIVE"}

INSTALL = {
    "bash": "echo 'source <(imgpull completion bash)' >> ~/.bashrc",
    "zsh": 'imgpull completion zsh > "${fpath[1]}/_imgpull"  (or source it after compinit)',
    "fish": "imgpull completion fish > ~/.config/fish/completions/imgpull.fish",
    "powershell": "imgpull completion powershell | Out-String | Invoke-Expression  (in $PROFILE)",
}


# -- what the parser offers ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Option:
    flags: tuple[str, ...]  # "-o", "--output"
    help: str
    takes_value: bool
    values: tuple[str, ...]  # choices or suggestions for the value
    paths: bool  # the value is a file or directory
    repeatable: bool


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    help: str
    options: tuple[Option, ...]
    arguments: tuple[str, ...]  # static choices of the positional arguments
    paths: bool  # positional arguments are files or directories


def _short_help(text: str | None) -> str:
    """The first clause of a help text, on one line, without argparse's % escapes."""
    if not text or text == argparse.SUPPRESS:
        return ""
    text = " ".join(text.replace("%%", "%").split())
    text = re.split(r"[.;] ", text, maxsplit=1)[0]
    return text if len(text) <= 80 else text[:77].rsplit(" ", 1)[0] + "..."


def _is_path(action: argparse.Action) -> bool:
    return action.type is Path or action.metavar in _PATH_METAVARS


def _option(action: argparse.Action) -> Option:
    values = tuple(str(c) for c in action.choices or ())
    if not values and action.dest == "platform":
        values = COMMON_PLATFORMS
    return Option(
        flags=tuple(action.option_strings),
        help=_short_help(action.help),
        takes_value=action.nargs != 0,
        values=values,
        paths=_is_path(action),
        repeatable=isinstance(action, argparse._AppendAction),
    )


def _options(parser: argparse.ArgumentParser) -> tuple[Option, ...]:
    return tuple(
        _option(a) for a in parser._actions if a.option_strings and a.help != argparse.SUPPRESS
    )


def subcommands_of(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[Any]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise ValueError(f"{parser.prog} has no subcommands")


def _command(name: str, helps: dict[str, str], parser: argparse.ArgumentParser) -> Command:
    positionals = [a for a in parser._actions if not a.option_strings]
    return Command(
        name=name,
        help=helps.get(name, ""),
        options=_options(parser),
        arguments=tuple(str(c) for a in positionals for c in a.choices or ()),
        paths=any(_is_path(a) for a in positionals),
    )


def describe(parser: argparse.ArgumentParser) -> tuple[tuple[Option, ...], tuple[Command, ...]]:
    """The top-level options and every command of ``parser``."""
    subcommands = subcommands_of(parser)
    helps = {a.dest: _short_help(a.help) for a in subcommands._choices_actions}
    commands = tuple(_command(n, helps, p) for n, p in subcommands.choices.items())
    return _options(parser), commands


# -- bash ---------------------------------------------------------------------------------


def _words(items: Iterable[str]) -> str:
    return " ".join(items)


def _bash_command(command: Command) -> list[str]:
    lines = [f"        {command.name})", '            case "$prev" in']
    for option in (o for o in command.options if o.takes_value):
        if option.values:
            action = f'_imgpull_reply -W "{_words(option.values)}"'
        else:
            action = "_imgpull_reply -f" if option.paths else "COMPREPLY=()"
        lines.append(f"                {'|'.join(option.flags)}) {action}; return ;;")
    flags = _words(f for o in command.options for f in o.flags)
    lines += [
        "            esac",
        f'            if [[ $cur == -* ]]; then _imgpull_reply -W "{flags}"; return; fi',
    ]
    if command.arguments:
        lines.append(f'            _imgpull_reply -W "{_words(command.arguments)}"')
    elif command.paths:
        lines.append("            _imgpull_reply -f")
    return [*lines, "            ;;"]


def bash_script(top: tuple[Option, ...], commands: tuple[Command, ...]) -> str:
    first = _words([*(c.name for c in commands), *(f for o in top for f in o.flags)])
    body = [line for command in commands for line in _bash_command(command)]
    return "\n".join(
        [
            f"# bash completion for {PROG}; generated by `{PROG} completion bash`",
            f"# {INSTALL['bash']}",
            "_imgpull_reply() {",
            "    if [[ $1 == -f ]]; then compopt -o filenames 2>/dev/null; fi",
            '    mapfile -t COMPREPLY < <(compgen "$@" -- "$cur")',
            '    if [[ -n $prefix ]]; then COMPREPLY=("${COMPREPLY[@]/#/$prefix}"); fi',
            "}",
            "_imgpull() {",
            "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}",
            '    local prefix=""  # --format=<Tab>: bash splits the word at "="',
            '    if [[ $cur == = ]]; then prefix="="; cur=""',
            "    elif [[ $prev == = ]]; then prev=${COMP_WORDS[COMP_CWORD-2]}; fi",
            '    local command="" i',
            "    for ((i = 1; i < COMP_CWORD; i++)); do",
            "        case ${COMP_WORDS[i]} in -*|=) ;; *) command=${COMP_WORDS[i]}; break ;; esac",
            "    done",
            '    case "$command" in',
            f'        "") _imgpull_reply -W "{first}" ;;',
            *body,
            "    esac",
            "}",
            f"complete -F _imgpull {PROG}",
            "",
        ]
    )


# -- zsh ----------------------------------------------------------------------------------


def _zsh_quote(text: str) -> str:
    return text.replace("'", "'\\''")


def _zsh_describe(text: str) -> str:
    return _zsh_quote(re.sub(r"([\[\]\\])", r"\\\1", text))


def _zsh_option(option: Option) -> str:
    value = ""
    if option.takes_value:
        choices = f"({_words(option.values)})" if option.values else " "
        value = f":value:{'_files' if option.paths else choices}"
    described = f"[{_zsh_describe(option.help)}]{value}'"
    if len(option.flags) == 1:
        return f"'{'*' if option.repeatable else ''}{option.flags[0]}{described}"
    spec = "*" if option.repeatable else f"({' '.join(option.flags)})"
    return f"'{spec}'{{{','.join(option.flags)}}}'{described}"


def _zsh_command(command: Command) -> list[str]:
    specs = [_zsh_option(o) for o in command.options]
    if command.arguments:
        specs.append(f"'*:argument:({_words(command.arguments)})'")
    elif command.paths:
        specs.append("'*:file:_files'")
    joined = " \\\n                ".join(specs)
    return [f"            {command.name}) _arguments \\\n                {joined} && ret=0 ;;"]


def zsh_script(top: tuple[Option, ...], commands: tuple[Command, ...]) -> str:
    names = [f"        '{c.name}:{_zsh_describe(c.help)}'" for c in commands]
    body = [line for command in commands for line in _zsh_command(command)]
    top_specs = " \\\n        ".join(_zsh_option(o) for o in top)
    return "\n".join(
        [
            f"#compdef {PROG}",
            f"# zsh completion for {PROG}; generated by `{PROG} completion zsh`",
            f"# {INSTALL['zsh']}",
            "_imgpull() {",
            "    local curcontext=$curcontext state line ret=1",
            "    local -a commands",
            "    commands=(",
            *names,
            "    )",
            f"    _arguments -C \\\n        {top_specs} \\",
            "        '1: :->command' '*:: :->argument' && ret=0",
            "    case $state in",
            "        command) _describe -t commands 'imgpull command' commands && ret=0 ;;",
            "        argument)",
            "            case $line[1] in",
            *body,
            "            esac ;;",
            "    esac",
            "    return ret",
            "}",
            "# Autoloaded from $fpath the file is the function's body; sourced, it registers.",
            'if [ "$funcstack[1]" = "_imgpull" ]; then _imgpull "$@"',
            "else compdef _imgpull imgpull; fi",
            "",
        ]
    )


# -- fish ---------------------------------------------------------------------------------


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_option(condition: str, option: Option) -> str:
    parts = [f"complete -c {PROG} -n {_fish_quote(condition)}"]
    for flag in option.flags:
        parts.append(f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}")
    if option.takes_value:
        parts.append("-r -F" if option.paths else "-x")
        if option.values:
            parts.append(f"-a {_fish_quote(_words(option.values))}")
    return " ".join([*parts, f"-d {_fish_quote(option.help)}"])


def fish_script(top: tuple[Option, ...], commands: tuple[Command, ...]) -> str:
    lines = [
        f"# fish completion for {PROG}; generated by `{PROG} completion fish`",
        f"# {INSTALL['fish']}",
        f"complete -c {PROG} -f",
        *(_fish_option("__fish_use_subcommand", o) for o in top),
    ]
    for command in commands:
        name = _fish_quote(command.name)
        lines.append(
            f"complete -c {PROG} -n __fish_use_subcommand -a {name} -d {_fish_quote(command.help)}"
        )
        seen = f"__fish_seen_subcommand_from {command.name}"
        lines += [_fish_option(seen, o) for o in command.options]
        if command.arguments:
            arguments = _fish_quote(_words(command.arguments))
            lines.append(f"complete -c {PROG} -n {_fish_quote(seen)} -a {arguments}")
        elif command.paths:
            lines.append(f"complete -c {PROG} -n {_fish_quote(seen)} -F")
    return "\n".join([*lines, ""])


# -- PowerShell ---------------------------------------------------------------------------


def _ps_quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ps_list(items: Iterable[str]) -> str:
    return "@(" + ", ".join(_ps_quote(i) for i in items) + ")"


def _ps_table(pairs: Iterable[tuple[str, str]]) -> str:
    """A hash literal; its keys are case-insensitive, and a duplicate is an error, so a
    flag that differs from another only in case (-p, -P) keeps the first."""
    table: dict[str, str] = {}
    for key, value in pairs:
        table.setdefault(key.casefold(), f"{_ps_quote(key)} = {value}")
    return "@{ " + "; ".join(table.values()) + " }"


def _ps_command(command: Command) -> list[str]:
    options = command.options
    helps = _ps_table((f, _ps_quote(o.help)) for o in options for f in o.flags)
    values = _ps_table((f, _ps_list(o.values)) for o in options if o.values for f in o.flags)
    return [
        f"        {_ps_quote(command.name)} = @{{",
        f"            Help = {_ps_quote(command.help)}",
        f"            Options = {helps}",
        f"            Values = {values}",
        f"            Arguments = {_ps_list(command.arguments)}",
        "        }",
    ]


_PS_LOGIC = """\
    $done = @($commandAst.CommandElements | Select-Object -Skip 1 |
        Where-Object { $_.Extent.EndOffset -lt $cursorPosition } | ForEach-Object { "$_" })
    $command = $done | Where-Object { -not $_.StartsWith('-') } | Select-Object -First 1
    $previous = if ($done.Count -gt 0) { $done[-1] } else { '' }
    if (-not $command) {
        $candidates = @($commands.Keys | ForEach-Object { ,@($_, $commands[$_].Help) })
        $candidates += @($top.Keys | ForEach-Object { ,@($_, $top[$_]) })
    } else {
        $spec = $commands[$command]
        if (-not $spec) { return }
        if ($spec.Values.ContainsKey($previous)) {
            $candidates = @($spec.Values[$previous] | ForEach-Object { ,@($_, $_) })
        } elseif ($wordToComplete.StartsWith('-')) {
            $candidates = @($spec.Options.Keys | ForEach-Object { ,@($_, $spec.Options[$_]) })
        } else {
            $candidates = @($spec.Arguments | ForEach-Object { ,@($_, $_) })
        }
    }
    # No candidates: PowerShell falls back to file names, right for paths.
    $candidates | Where-Object { $_[0] -like "$wordToComplete*" } | Sort-Object { $_[0] } |
        ForEach-Object {
            $tip = if ($_[1]) { $_[1] } else { $_[0] }
            $kind = if ($_[0].StartsWith('-')) { 'ParameterName' } else { 'ParameterValue' }
            [System.Management.Automation.CompletionResult]::new($_[0], $_[0], $kind, $tip)
        }
"""


def powershell_script(top: tuple[Option, ...], commands: tuple[Command, ...]) -> str:
    top_helps = _ps_table((f, _ps_quote(o.help)) for o in top for f in o.flags)
    return "\n".join(
        [
            f"# PowerShell completion for {PROG}; generated by `{PROG} completion powershell`",
            f"# {INSTALL['powershell']}",
            f"Register-ArgumentCompleter -Native -CommandName {PROG} -ScriptBlock {{",
            "    param($wordToComplete, $commandAst, $cursorPosition)",
            f"    $top = {top_helps}",
            "    $commands = @{",
            *(line for command in commands for line in _ps_command(command)),
            "    }",
            _PS_LOGIC + "}",
            "",
        ]
    )


# -- the command --------------------------------------------------------------------------

_RENDER: dict[str, Callable[[tuple[Option, ...], tuple[Command, ...]], str]] = {
    "bash": bash_script,
    "zsh": zsh_script,
    "fish": fish_script,
    "powershell": powershell_script,
}


def completion_script(shell: str, parser: argparse.ArgumentParser) -> str:
    """The completion script of ``parser`` for ``shell`` (one of :data:`SHELLS`)."""
    top, commands = describe(parser)
    return _RENDER[shell](top, commands)


def add_completion(commands: Commands) -> None:
    parser = commands.add_parser(
        "completion",
        help="print a shell completion script",
        description="Print a completion script for imgpull's commands and options. "
        + "; ".join(f"{shell}: {how}" for shell, how in INSTALL.items())
        + ".",
    )
    parser.add_argument("shell", choices=SHELLS, metavar="SHELL", help="|".join(SHELLS))
    parser.set_defaults(run=cmd_completion)


def cmd_completion(args: argparse.Namespace, stdin: TextIO) -> int:
    sys.stdout.write(completion_script(args.shell, build_parser()))
    return 0

"""The `globe` command lines in README.md and docs/*.md stay true: every line of a ```bash block
that starts with `globe` names commands and options that exist (parsed by the CLI itself, without
running), and the cheap ones (dry runs, `globe config show`, pipeline compile, check-manifests) run
as written from the repository (compile's --out redirected to a scratch file),
succeeding, or failing where the doc shows the `error:` line that follows.
Synopsis notation is read as such: `[--opt X]` is optional, `-> ...` is the doc's note of the
result, and a line with `...` or `<placeholder>` is a template, not a command."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer.main

from globe.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_OPERATORS = ("|", "||", "&&", ";", ">", ">>", "2>&1", "&")


def documented_commands() -> list[tuple[str, list[str]]]:
    found = []
    for doc in DOCS:
        language, pending = None, ""
        lines = doc.read_text(encoding="utf-8").splitlines()
        for number, raw in enumerate(lines, 1):
            if raw.lstrip().startswith("```"):
                language = None if language is not None else (raw.strip()[3:] or "text")
                continue
            if language not in ("bash", "sh", "console"):
                continue
            line = (pending + " " + raw.strip()).strip()
            pending = ""
            if line.endswith("\\"):
                pending = line[:-1]
                continue
            line = line.removeprefix("$ ")
            if not line.startswith("globe ") or "..." in line or "…" in line or re.search(r"<[a-z-]+>", line):
                continue
            line = re.sub(r"\s->.*$", "", line)  # the doc's note of what comes back
            line = re.sub(r"\[[^\]]*\]", "", line)  # optional parts of a synopsis
            words = shlex.split(line, comments=True)
            for op in SHELL_OPERATORS:
                if op in words:
                    words = words[: words.index(op)]
            fails = number < len(lines) and lines[number].startswith("error:")  # a documented refusal
            found.append((f"{doc.name}:{number}" + (" (fails)" if fails else ""), words[1:]))
    return found


COMMANDS = documented_commands()


def _command(args: list[str]):
    cmd, path = typer.main.get_command(app), ["globe"]
    while hasattr(cmd, "commands") and args and args[0] in cmd.commands:
        path.append(args[0])
        cmd, args = cmd.commands[args[0]], args[1:]
    assert not hasattr(cmd, "commands"), f"`{' '.join(path)}` has no subcommand {args[:1]}"
    return cmd, path, args


def test_the_docs_document_commands():
    assert len(COMMANDS) > 50


@pytest.mark.parametrize(("where", "args"), COMMANDS, ids=[where for where, _ in COMMANDS])
def test_a_documented_command_parses(where, args):
    cmd, path, rest = _command(list(args))
    cmd.make_context(" ".join(path), list(rest))  # click raises on an unknown option, a missing one or a bad value


CHEAP = [(where, args) for where, args in COMMANDS
         if "--dry-run" in args or args[:2] in (["config", "show"], ["pipeline", "compile"], ["pipeline", "check-manifests"])]


@pytest.mark.parametrize(("where", "args"), CHEAP, ids=[where for where, _ in CHEAP])
def test_a_cheap_documented_command_runs_as_written(where, args, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    monkeypatch.chdir(ROOT)
    args = list(args)
    if "--out" in args:  # written where the test says, not over the checked-in pipeline or into /tmp
        args[args.index("--out") + 1] = str(tmp_path / "out.yaml")
    if "--crds" in args and not (ROOT / args[args.index("--crds") + 1]).is_dir():
        pytest.skip(f"{args[args.index('--crds') + 1]}: no CRDs here")
    result = CliRunner().invoke(app, list(args))
    expected = 2 if where.endswith("(fails)") else 0  # as documented: the next line shows its error
    assert result.exit_code == expected, f"{where}: globe {' '.join(args)}\n{result.output[-2000:]}"

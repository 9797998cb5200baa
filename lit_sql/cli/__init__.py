"""Command-line entry points. Each command is a plain function whose signature is its flags; the thin scripts
(`generate/base.py`, `scripts/download.py`, ...) and the `lit-sql` console command both call them."""

from __future__ import annotations

import ast
import re
import sys
from typing import Any, Callable

from lit_sql.errors import LitSQLError


def run_cli(fn: Callable[..., Any], args: list[str] | None = None) -> Any:
    """Parse flags for `fn` with jsonargparse and run it; user errors, a flag's value that does not parse among
    them, end with one line, not a traceback or a page of usage."""
    from jsonargparse import CLI, ArgumentError

    args = _bare_bool_flags(fn, sys.argv[1:] if args is None else list(args))
    try:
        return CLI(fn, args=args, as_positional=False, exit_on_error=False)
    except (LitSQLError, ArgumentError) as e:
        message = str(e) if isinstance(e, LitSQLError) else _flag_error(str(e))
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None


_TYPE_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "text", "Path": "a path",
               "list": "a list, e.g. [a, b]"}


def _flag_error(message: str) -> str:
    """jsonargparse's explanation of a rejected flag in one line: the flag, the value given and what it may be.
    Its own runs over many lines (every type a Union allows, the value's type); text it words otherwise (an
    unknown flag) keeps its first line."""
    first, *rest = message.strip().splitlines() or [""]
    key = re.fullmatch(r'Parser key "([^"]+)":\s*(.*)', first.strip())
    if key is None:
        return first
    if key.group(2):  # said on the one line, e.g. 'Parser key "config": File does not exist: ...'
        return f"--{key.group(1)}: {key.group(2)}"
    details = "\n".join(rest)
    given = re.search(r"(?:Given|Got) value: (.*)", details)
    value = repr(given.group(1).strip()) if given else "the value given"
    # What it may be: the types each "Expected a ..." line names (None, which a flag's default allows, left out).
    choices = [c for literal in re.findall(r"Expected a typing\.Literal\[(.*?)\]", details)
               for c in _literal_values(literal)]
    if choices:
        return f"--{key.group(1)}: {value} is not one of {', '.join(map(str, dict.fromkeys(choices)))}"
    types = [_TYPE_NAMES.get(t, t) for t in re.findall(r"Expected a <class '(?:[\w.]+\.)?(\w+)'>", details)
             if t != "NoneType"]
    if types:
        return f"--{key.group(1)}: {value} is not {' or '.join(dict.fromkeys(types))}"
    return f"--{key.group(1)}: " + next((line.strip() for line in rest if line.strip()), "not accepted")


def _literal_values(text: str) -> list:
    """The values of a `Literal[...]` as jsonargparse writes it ("'csv', 'tensorboard'"); the text itself if they
    are not plain literals."""
    try:
        return list(ast.literal_eval(f"[{text}]"))
    except (ValueError, SyntaxError):
        return [text]


def _bare_bool_flags(fn: Callable[..., Any], args: list[str]) -> list[str]:
    """Let `--quick` mean `--quick=true` for boolean flags, as users expect from other tools."""
    import inspect

    bools = {f"--{name}" for name, p in inspect.signature(fn).parameters.items() if p.annotation in (bool, "bool")}
    out = []
    for i, arg in enumerate(args):
        follows = args[i + 1] if i + 1 < len(args) else None
        bare = arg in bools and (follows is None or follows.startswith("--") or follows.lower() not in ("true", "false"))
        out.append(f"{arg}=true" if bare else arg)
    return out


def _commands() -> dict[str, Callable[..., Any]]:
    from lit_sql.app import serve as app
    from lit_sql.cli.checkpoints import convert, download
    from lit_sql.cli.demo import demo
    from lit_sql.cli.evaluate import sql
    from lit_sql.cli.export import export, merge_lora
    from lit_sql.cli.finetune import setup as finetune
    from lit_sql.cli.finetune import setup_full as finetune_full
    from lit_sql.cli.generate import base, lora
    from lit_sql.retrieval import build_index

    return {"demo": demo, "download": download, "convert": convert, "prepare": _prepare(), "finetune": finetune,
            "finetune-full": finetune_full, "generate": base, "generate-lora": lora, "eval": sql, "merge": merge_lora,
            "export": export, "build-index": build_index, "app": app}


def _prepare():
    from lit_sql.data.prepare import prepare

    return prepare


def main() -> None:
    """`lit-sql <command> [--flags]`."""
    commands = _commands()
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(f"usage: lit-sql {{{','.join(commands)}}} [--help]", file=sys.stderr)
        raise SystemExit(2)
    run_cli(commands[sys.argv[1]], sys.argv[2:])

"""Printing for the CLI: aligned tables for people, JSON (lines) for scripts."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import click

from agentmem.model.records import Action, IMAction

ACTION_COLUMNS = ("tier", "action_id", "step_number", "action_type", "action_target_id",
                  "reward", "position")


def action_row(a: Action | IMAction) -> dict[str, Any]:
    """An action as a flat JSON-ready dict, with the tier it came from."""
    row: dict[str, Any] = {"tier": "im" if isinstance(a, IMAction) else "stm"}
    row.update(a.model_dump(mode="json"))
    return row


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return "(" + ", ".join(_cell(v) for v in value) + ")"
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Print ``rows`` as an aligned table of ``columns``."""
    if not rows:
        click.echo("(none)")
        return
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    click.echo("  ".join("-" * w for w in widths))
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def json_lines(rows: Iterable[dict[str, Any]]) -> None:
    for r in rows:
        click.echo(json.dumps(r, ensure_ascii=False))


def json_object(obj: dict[str, Any]) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2))


def actions(found: Sequence[Action | IMAction], as_json: bool) -> None:
    rows = [action_row(a) for a in found]
    if as_json:
        json_lines(rows)
    else:
        table(rows, ACTION_COLUMNS)


def pairs(title: str, values: dict[str, Any]) -> None:
    """A small two-column listing under a title."""
    click.secho(title, bold=True)
    width = max((len(k) for k in values), default=0)
    for k, v in values.items():
        click.echo(f"  {k.ljust(width)}  {_cell(v)}")


class _Quiet:
    """A progress bar that shows nothing (standard error is not a terminal)."""

    def update(self, n: int) -> None:
        pass


@contextlib.contextmanager
def progress(length: int | None, label: str) -> Iterator[Any]:
    """A progress bar on standard error when it is a terminal; otherwise nothing
    (scripts and logs get no bar characters). ``update(n)`` advances it."""
    if not sys.stderr.isatty():
        yield _Quiet()
        return
    bar: Any = click.progressbar(length=length, label=label, file=sys.stderr)
    with bar:
        yield bar


def truncated(shown: int, total: int | None, what: str, how: str, *, err: bool = False
              ) -> None:
    """Say that a listing shows ``shown`` of ``total`` (``None``: unknown, more may
    exist) ``what``, and ``how`` to see more (on standard error under JSON lines, which
    must stay JSON)."""
    of = f"the first {shown}" if total is None else f"{shown} of {total}"
    click.echo(f"(truncated: {of} {what} shown; {how})", err=err)


@contextlib.contextmanager
def phased_progress() -> Iterator[Callable[[str, int, int], None]]:
    """A ``progress(step, done, total)`` callback that shows one bar per step on a
    terminal's standard error (a new step finishes the bar of the previous one);
    nothing otherwise."""
    if not sys.stderr.isatty():
        yield lambda step, done, total: None
        return
    current: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        def update(step: str, done: int, total: int) -> None:
            if current.get("step") != step:
                if "bar" in current:
                    current["bar"].render_finish()
                bar: Any = click.progressbar(length=max(total, 1), label=step, file=sys.stderr)
                current.update(step=step, bar=stack.enter_context(bar), done=0)
            done = min(done, max(total, 1))
            current["bar"].update(done - current["done"])
            current["done"] = done

        yield update

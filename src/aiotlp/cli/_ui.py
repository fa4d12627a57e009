"""Terminal output for the ``aiotlp`` command: rich when it is installed (``aiotlp[cli]``), plain text otherwise.

Every command talks to a :class:`UI` and never to rich directly, so each one works without the extra and its
plain output stays stable for scripts and tests (``--plain`` forces it). Data that comes from the network
(span names, log bodies) is always printed as text, never parsed as rich markup.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["UI", "Node", "Progress", "error", "make_ui", "severity_style"]


@dataclass
class Node:
    """One line of a tree (a span, a configuration section) and the lines under it."""

    label: str
    detail: str = ""
    style: str = ""
    children: list[Node] = field(default_factory=list)


class Progress(Protocol):
    def update(self, completed: int, status: str = "") -> None: ...


def severity_style(severity_number: int) -> str:
    """A rich style for an OTLP severity number (1-4 trace ... 21-24 fatal)."""
    if severity_number >= 21:
        return "bold white on red"
    if severity_number >= 17:
        return "bold red"
    if severity_number >= 13:
        return "yellow"
    if severity_number >= 9:
        return "green"
    if severity_number >= 5:
        return "blue"
    return "dim"


class UI(Protocol):
    """What commands print: lines, trees, tables, progress; errors go to stderr."""

    def line(self, text: str, style: str = "") -> None: ...

    def tree(self, root: Node) -> None: ...

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None: ...

    def log(self, prefix: str, severity: str, severity_number: int, text: str) -> None: ...

    def progress(self, description: str, total: int) -> Any: ...


# -- plain


class _PlainProgress:
    """Prints a line at each quarter of the way, so logs and pipes see the run advance without a terminal."""

    def __init__(self, description: str, total: int) -> None:
        self._description = description
        self._total = max(total, 1)
        self._next_mark = 1

    def update(self, completed: int, status: str = "") -> None:
        while self._next_mark <= 4 and completed * 4 >= self._next_mark * self._total:
            suffix = f"  {status}" if status else ""
            print(f"  {self._description} {completed}/{self._total}{suffix}", flush=True)
            self._next_mark += 1


class PlainUI:
    def line(self, text: str, style: str = "") -> None:
        print(text, flush=True)

    def tree(self, root: Node) -> None:
        print(_join(root.label, root.detail), flush=True)

        def walk(node: Node, indent: str) -> None:
            for index, child in enumerate(node.children):
                last = index == len(node.children) - 1
                print(f"{indent}{'└─' if last else '├─'} {_join(child.label, child.detail)}", flush=True)
                walk(child, indent + ("   " if last else "│  "))

        walk(root, "")

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        widths = [len(c) for c in columns]
        for row in rows:
            widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=False)]
        if title:
            print(title, flush=True)
        for cells in (columns, *rows):
            text = "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=False))
            print("  " + text.rstrip(), flush=True)

    def log(self, prefix: str, severity: str, severity_number: int, text: str) -> None:
        print(f"{prefix} {severity:<5} {text}", flush=True)

    @contextmanager
    def progress(self, description: str, total: int) -> Iterator[_PlainProgress]:
        yield _PlainProgress(description, total)


def _join(label: str, detail: str) -> str:
    return f"{label}  {detail}" if detail else label


# -- rich


class _RichProgress:
    def __init__(self, progress: Any, task: Any) -> None:
        self._progress = progress
        self._task = task

    def update(self, completed: int, status: str = "") -> None:
        self._progress.update(self._task, completed=completed, status=status)


class RichUI:
    def __init__(self) -> None:
        from rich.console import Console

        console = Console(highlight=False)
        if not console.is_terminal and console.width < 120:
            console = Console(highlight=False, width=120)  # a pipe or a log file: no need to wrap at 80
        self._console = console

    def _text(self, text: str, style: str = "") -> Any:
        from rich.text import Text

        return Text(text, style=style)

    def line(self, text: str, style: str = "") -> None:
        self._console.print(self._text(text, style), soft_wrap=True)

    def _label(self, node: Node) -> Any:
        from rich.text import Text

        label = Text(node.label, style=node.style)
        if node.detail:
            label.append("  " + node.detail, style="dim cyan")
        return label

    def tree(self, root: Node) -> None:
        from rich.tree import Tree

        def build(node: Node, into: Any) -> None:
            for child in node.children:
                build(child, into.add(self._label(child)))

        tree = Tree(self._label(root), guide_style="dim")
        build(root, tree)
        self._console.print(tree)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        from rich.table import Table

        table = Table(title=title or None, title_justify="left", show_edge=False, pad_edge=False)
        for index, column in enumerate(columns):
            table.add_column(column, justify="left" if index == 0 else "right" if _numeric(rows, index) else "left")
        for row in rows:
            table.add_row(*(self._text(cell) for cell in row))
        self._console.print(table)

    def log(self, prefix: str, severity: str, severity_number: int, text: str) -> None:
        from rich.text import Text

        line = Text(prefix + " ", style="dim")
        line.append(f"{severity:<5}", style=severity_style(severity_number))
        line.append(" " + text)
        self._console.print(line, soft_wrap=True)

    @contextmanager
    def progress(self, description: str, total: int) -> Iterator[_RichProgress]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=self._console,
        )
        with progress:
            yield _RichProgress(progress, progress.add_task(description, total=total, status=""))


def _numeric(rows: Sequence[Sequence[str]], index: int) -> bool:
    cells = [row[index] for row in rows if index < len(row) and row[index]]
    return bool(cells) and all(c.replace(",", "").replace(".", "", 1).lstrip("-").isdigit() for c in cells)


def make_ui(plain: bool = False) -> UI:
    """Rich when installed and not ``plain``; plain text otherwise."""
    if not plain:
        try:
            import rich  # noqa: F401
        except ImportError:
            pass
        else:
            return RichUI()
    return PlainUI()


def error(text: str) -> None:
    """One line on stderr, the command's only output for a failure."""
    print(f"aiotlp: error: {text}", file=sys.stderr, flush=True)

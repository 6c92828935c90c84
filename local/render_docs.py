#!/usr/bin/env python3
"""Copy the measured figures of README.md and docs/*.md from the committed results files they come from.

Usage:
    python local/render_docs.py           # rewrite every marked block and figure in place
    python local/render_docs.py --check   # exit 1, naming file:line, where a doc differs from its results file

A results file (``results/*.md``, ``bench/RESULTS.md``, ``bench/RESULTS-gpu.md``) names, above its first
table, the command that wrote it (in backquotes) and ``commit <hash>``. Two markers take figures from it:

    <!-- figures: results/real_it_GUARD.md#1 rows="WER (%), test","WER (%), en" -->
    ...                                   (the table and a one-line caption naming the command and commit)
    <!-- /figures -->

copies the file's first markdown table (``#N``: the N-th, counting every table in the file), keeping only
the rows that contain one of the ``rows=`` strings (cells joined by `` | ``), in that order (all rows without
``rows=``); and

    <!-- fig: bench/RESULTS.md "training whisper-base" 4 -->7.46x<!-- /fig -->

copies one cell into prose: the one row that contains the quoted string (`` ... `` in it stands for anything),
in any table or in table ``#N``; column 4 counting from 1 (or the one whose header contains a quoted string);
bold marks dropped. Markers inside fenced code blocks are examples and left alone.
Paths are relative to the recipe's root. Each doc is rewritten through a temporary file and ``os.replace``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

RECIPE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(RECIPE_DIR))  # run from a checkout without install

from egrecho_inner.utils import atomic_path  # noqa: E402

BLOCK = re.compile(r"(?P<open><!-- figures: (?P<spec>.+?) -->)(?P<body>.*?)(?P<close><!-- /figures -->)", re.S)
FIG = re.compile(r'(?P<open><!-- fig: (?P<path>[^\s#]+)(?:#(?P<table>\d+))? "(?P<row>[^"]+)" '
                 r'(?P<col>\d+|"[^"]+") -->)(?P<value>.*?)(?P<close><!-- /fig -->)')
COMMIT = re.compile(r"\bcommit ([0-9a-f]{7,40}(?:\+dirty)?)\b")
COMMAND = re.compile(r"`([^`]+)`")
ALIGN = re.compile(r"^\|(\s*:?-+:?\s*\|)+\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


class FigureError(ValueError):
    """A marker that can't be rendered: no such file, table, row or column, or a header without its source."""


@dataclass
class Table:
    lines: list[str]  # header, alignment row, then the rows, as written in the results file

    def cells(self, line: str) -> list[str]:
        return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]

    def rows_matching(self, needle: str) -> list[str]:
        """The rows whose cells, stripped and joined by `` | ``, contain ``needle``; `` ... `` in it stands for
        anything (``"1 worker ... same stored features"``), so that no figure need be part of a row's name."""
        pattern = re.compile(".*".join(re.escape(part) for part in needle.split(" ... ")))
        return [line for line in self.lines[2:] if pattern.search(" | ".join(self.cells(line)))]


@dataclass
class Source:
    path: str
    command: str
    commit: str
    tables: list[Table]


def parse_tables(text: str) -> list[Table]:
    """Every markdown table of ``text`` outside code blocks: a header line, an alignment line, the rows."""
    tables, current, fenced = [], [], False
    for line in [*text.splitlines(), ""]:
        if FENCE.match(line):
            fenced = not fenced
        if not fenced and line.lstrip().startswith("|"):
            current.append(line.strip())
            continue
        if len(current) >= 2 and ALIGN.match(current[1]):
            tables.append(Table(current))
        current = []
    return tables


def load_source(path: str, root: Path) -> Source:
    """A results file with the command and commit named above its first table."""
    file = root / path
    if not file.is_file():
        raise FigureError(f"no results file {path}")
    text = file.read_text(encoding="utf-8")
    header = text.split("\n|", 1)[0]
    command, commit = COMMAND.search(header), COMMIT.search(header)
    if not command or not commit:
        raise FigureError(f"{path} does not name its command (in backquotes) and `commit <hash>` above its first table")
    return Source(path, command.group(1), commit.group(1), parse_tables(text))


def pick_table(source: Source, number: int) -> Table:
    if not 1 <= number <= len(source.tables):
        raise FigureError(f"{source.path} has {len(source.tables)} tables, not a #{number}")
    return source.tables[number - 1]


def parse_spec(spec: str) -> tuple[str, int, Optional[list[str]]]:
    """``path#N [rows=...]`` -> (path, N, row strings or None)."""
    match = re.fullmatch(r"(?P<path>[^\s#]+)(?:#(?P<n>\d+))?(?:\s+rows=(?P<rows>.+))?", spec.strip())
    if not match:
        raise FigureError(f"cannot read the marker '{spec}': write PATH#N [rows=\"a\",\"b\"]")
    rows = match["rows"]
    needles = None if rows is None else re.findall(r'"([^"]+)"', rows) if '"' in rows else rows.split(",")
    return match["path"], int(match["n"] or 1), needles


def render_block(spec: str, doc: Path, root: Path) -> str:
    """The body of a figures block: the selected table, then its caption."""
    path, number, needles = parse_spec(spec)
    source = load_source(path, root)
    table = pick_table(source, number)
    rows = table.lines[2:]
    if needles is not None:
        rows = []
        for needle in needles:
            found = table.rows_matching(needle)
            if not found:
                raise FigureError(f"no row of {path}#{number} contains '{needle}'")
            rows += [row for row in found if row not in rows]
    link = os.path.relpath(root / path, doc.resolve().parent).replace(os.sep, "/")
    caption = f"From [{path}]({link}) (`{source.command}`, commit {source.commit})."
    tidy = ["| " + " | ".join(table.cells(line)) + " |" for line in [*table.lines[:2], *rows]]  # padding dropped
    return "\n" + "\n".join(tidy) + "\n\n" + caption + "\n"


def render_fig(match: re.Match, root: Path) -> str:
    """The value of an inline figure: one cell, bold marks dropped."""
    source = load_source(match["path"], root)
    tables = [pick_table(source, int(match["table"]))] if match["table"] else source.tables
    found = [(table, row) for table in tables for row in table.rows_matching(match["row"])]
    if len(found) != 1:
        raise FigureError(f"{len(found)} rows of {match['path']} contain '{match['row']}', not one")
    table, row = found[0]
    header, cells = table.cells(table.lines[0]), table.cells(row)
    col = match["col"]
    if col.startswith('"'):
        named = [i for i, name in enumerate(header) if col.strip('"') in name]
        index = named[0] if len(named) == 1 else -1
    else:
        index = int(col) - 1
    if not 0 <= index < len(cells):
        raise FigureError(f"no column {col} in {match['path']}'s table with '{match['row']}'")
    return cells[index].replace("**", "")


def code_spans(text: str) -> list[tuple[int, int]]:
    """Where the fenced code blocks of ``text`` are (a marker shown in one is an example, not a marker)."""
    spans, start, offset = [], None, 0
    for line in text.splitlines(keepends=True):
        if FENCE.match(line):
            spans, start = (spans + [(start, offset + len(line))], None) if start is not None else (spans, offset)
        offset += len(line)
    return spans + ([(start, offset)] if start is not None else [])


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


@dataclass
class Note:
    line: int
    message: str
    stale: bool  # True: the doc differs from its results file; False: the marker can't be rendered


def render_text(text: str, doc: Path, root: Path) -> tuple[str, list[Note]]:
    """``text`` with every marker rendered, and a note for each marker that changed or failed."""
    notes: list[Note] = []

    def replace(m: re.Match, part: str, render: Callable[[], str]) -> str:
        try:
            new = render()
        except FigureError as err:
            notes.append(Note(line_of(text, m.start()), str(err), stale=False))
            return m.group(0)
        if new != m[part]:
            source = m["open"].split()[2].split("#")[0]
            notes.append(Note(line_of(text, m.start()), f"differs from {source}: run python local/render_docs.py",
                              stale=True))
        return m["open"] + new + m["close"]

    code = code_spans(text)
    outside = lambda m, spans: not any(a <= m.start() < b for a, b in spans)  # noqa: E731
    edits = [(m, replace(m, "body", lambda m=m: render_block(m["spec"], doc, root)))
             for m in BLOCK.finditer(text) if outside(m, code)]
    code += [m.span() for m, _ in edits]  # a block's body is rendered whole
    edits += [(m, replace(m, "value", lambda m=m: render_fig(m, root))) for m in FIG.finditer(text) if outside(m, code)]
    out, pos = [], 0
    for m, new in sorted(edits, key=lambda edit: edit[0].start()):
        out += [text[pos:m.start()], new]
        pos = m.end()
    return "".join(out) + text[pos:], sorted(notes, key=lambda n: n.line)


def default_docs(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("docs", nargs="*", type=Path, help="markdown files (default: README.md and docs/*.md)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 where a doc is stale")
    parser.add_argument("--root", type=Path, default=RECIPE_DIR, help="where the results paths start")
    args = parser.parse_args(argv)
    failed = False
    for doc in args.docs or default_docs(args.root):
        text = doc.read_text(encoding="utf-8")
        new, notes = render_text(text, doc, args.root)
        for note in notes:
            if args.check or not note.stale:  # rendering mends the stale ones
                print(f"{doc}:{note.line}: {note.message}", file=sys.stderr)
        failed |= any(args.check or not note.stale for note in notes)
        if not args.check and new != text:
            with atomic_path(doc) as tmp:  # a temporary file beside it, then os.replace
                tmp.write_text(new, encoding="utf-8")
                tmp.chmod(doc.stat().st_mode & 0o777)
            print(f"rendered {doc}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

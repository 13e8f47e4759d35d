"""Helpers for studies: run directory naming, tidy CSV tables and the markdown made
from them (a report's tables are rendered from the data files written beside it)."""

from __future__ import annotations

import argparse
import datetime
import io
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gdlab._checks import InputError
from gdlab.core import store


def study_dir(name: str, out: str | os.PathLike | None, overwrite: bool = False) -> Path:
    """The study's run directory: `out`, or runs/NAME-<UTC timestamp>; refuses to clobber."""
    if out is None:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{name}-{stamp}"
    path = Path(out)
    if (path / "report.md").exists() and not overwrite:
        raise InputError(f"output directory {str(path)!r} already holds a study report; "
                         "choose a new directory")
    store.check_writable(path, overwrite)
    path.mkdir(parents=True, exist_ok=True)
    return path


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_csv(path: Path, table) -> Path:
    """Write `table` (a pandas DataFrame, or a list of dicts with the same keys) as CSV,
    atomically; returns the path."""
    import pandas as pd
    frame = table if isinstance(table, pd.DataFrame) else pd.DataFrame(list(table))
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    write_text(path, buf.getvalue())
    return path


def frame_table(frame, formats: Mapping[str, str | Callable[[Any], str]] | None = None,
                headers: Mapping[str, str] | None = None) -> str:
    """A markdown table of a DataFrame's rows: `formats` maps a column to a format spec
    ("{:.3g}") or a function; `headers` renames columns for the reader. NaN shows "-"."""
    formats, headers = formats or {}, headers or {}

    def cell(col: str, value: Any) -> str:
        if value is None or (isinstance(value, float) and value != value):
            return "-"
        fmt = formats.get(col)
        if fmt is None:
            return str(value)
        return fmt(value) if callable(fmt) else fmt.format(value)

    rows = [[cell(c, v) for c, v in zip(frame.columns, r, strict=True)]
            for r in frame.itertuples(index=False)]
    return markdown_table([headers.get(c, c) for c in frame.columns], rows)


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically."""
    store.atomic_write(path, lambda f: f.write(text.encode()))


def study_main(name: str, doc: str, get_config, run, argv: list[str] | None = None) -> None:
    """The command line every study shares: `python experiments/NAME.py [--smoke] [--out DIR]`."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny version, runs in seconds")
    parser.add_argument("--out", help=f"run directory (default runs/{name}-<timestamp>)")
    args = parser.parse_args(argv)
    run(get_config(smoke=args.smoke), out=args.out)

"""The example notebooks (jupytext percent scripts under examples/) run, cell by cell, in
their smoke mode, and each reads as a notebook with markdown and code cells."""

from pathlib import Path

import jupytext
import pytest

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("[0-9]*.py"))


def test_there_are_examples():
    assert [p.name[:2] for p in EXAMPLES] == ["01", "02", "03"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_notebook_runs_in_smoke_mode(path, monkeypatch, tmp_path):
    monkeypatch.setenv("GDLAB_EXAMPLES_SMOKE", "1")
    monkeypatch.chdir(tmp_path)
    notebook = jupytext.read(path)
    kinds = {c.cell_type for c in notebook.cells}
    assert kinds == {"markdown", "code"}, kinds
    namespace = {"__name__": "__main__"}
    for i, cell in enumerate(c for c in notebook.cells if c.cell_type == "code"):
        exec(compile(cell.source, f"{path.name} cell {i}", "exec"), namespace)

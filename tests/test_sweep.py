"""gdlab.sweep: a grid x seeds in one compiled call, each lane what train gives alone."""

import dataclasses
import warnings

import numpy as np
import pytest
from helpers import assert_trees_equal

import gdlab
from gdlab import problems

CFG = gdlab.TrainConfig(optimizer="momentum", learning_rate=0.05, steps=30, batch_size=8,
                        eval_every=10)


@pytest.fixture(scope="module")
def problem():
    return problems.teacher_student(d_in=2, hidden=4, n=64)


@pytest.fixture(scope="module")
def swept(problem):
    return gdlab.sweep(problem, CFG, seeds=3, learning_rate=[0.02, 0.05, 0.1],
                       momentum=[0.0, 0.9], seed_block=1, progress=False)


def test_grid_is_the_product_last_name_fastest(swept):
    assert swept.names == ("learning_rate", "momentum")
    assert [tuple(p.values()) for p in swept.grid] == [
        (0.02, 0.0), (0.02, 0.9), (0.05, 0.0), (0.05, 0.9), (0.1, 0.0), (0.1, 0.9)]
    assert all(r.num_seeds == 3 and r.seed_ids.tolist() == [0, 1, 2] for r in swept.runs)


@pytest.mark.parametrize("g", [0, 3, 5])
def test_each_lane_is_what_train_gives_alone(problem, swept, g):
    point = swept.grid[g]
    alone = gdlab.train(problem, dataclasses.replace(CFG, **point), seeds=3, seed_block=1,
                        progress=False)
    assert_trees_equal(swept.runs[g].params, alone.params)
    np.testing.assert_array_equal(swept.runs[g].loss_history, alone.loss_history)
    assert swept.runs[g].manifest["config"]["learning_rate"] == point["learning_rate"]


def test_a_new_rate_reuses_the_compiled_program(problem):
    config = dataclasses.replace(CFG, steps=20)
    first = gdlab.train(problem, config, seeds=4, progress=False)
    again = gdlab.train(problem, dataclasses.replace(config, learning_rate=0.01,
                                                     momentum=0.5), seeds=4, progress=False)
    assert again.timings["cache_hit"] and again.timings["compile_seconds"] == 0.0
    assert not np.array_equal(first.final_loss, again.final_loss)


def test_best_picks_the_lowest_loss_and_warns_at_the_grid_edge(swept):
    scores = swept.scores("train/loss")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        best = swept.best("train/loss")
    assert best == swept.grid[int(np.nanargmin(scores))]
    edge = [w for w in caught if "beyond" in str(w.message)]
    assert bool(edge) == (best["learning_rate"] in (0.02, 0.1))
    assert all(w.filename == __file__ for w in edge)  # points at the caller's line
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        swept.best_index("train/loss")
    assert all(w.filename == __file__ for w in caught if "beyond" in str(w.message))


def test_table_is_numeric(swept):
    header, rows = swept.table()
    assert header[:2] == ["learning_rate", "momentum"] and len(rows) == 6
    assert all(isinstance(c, float | int) for row in rows for c in row)


@pytest.mark.parametrize("kwargs, match", [
    (dict(), "give at least one of learning_rate"),
    (dict(learning_rate=[]), "learning_rate is empty"),
    (dict(learning_rate=[0.1, -1.0]), "learning_rate must be a finite number > 0, got -1.0"),
    (dict(momentum=[1.5]), r"momentum must be a finite number in \[0, 1\), got 1.5"),
    (dict(weight_decay=[0.1]), "weight_decay is not a swept hyperparameter of optimizer "
                               "'momentum'; valid: learning_rate, momentum"),
    (dict(learning_rate=[0.1, 0.1]), "repeated values"),
    (dict(learning_rate=[0.1], bogus=1), "unknown sweep options"),
])
def test_bad_grids_are_rejected_before_compiling(problem, kwargs, match, monkeypatch):
    from gdlab.core import engine
    monkeypatch.setattr(engine, "compile_engine", lambda *a, **k: pytest.fail("compiled"))
    with pytest.raises(gdlab.InputError, match=match):
        gdlab.sweep(problem, CFG, seeds=2, **kwargs)

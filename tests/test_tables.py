"""Results as data: DataFrames of seeds, minima and sweep points hold the arrays' values."""

import dataclasses

import numpy as np
import pytest

import gdlab
from gdlab import problems

CFG = gdlab.TrainConfig(learning_rate=1e-2, steps=300, eval_every=100)


@pytest.fixture(scope="module")
def himmelblau_runs():
    problem = problems.himmelblau()
    return problem, gdlab.train(problem, CFG, seeds=32, progress=False)


def test_runs_frame_has_one_row_per_seed_with_the_arrays_values(himmelblau_runs):
    _, runs = himmelblau_runs
    frame = runs.to_dataframe()
    assert len(frame) == runs.num_seeds
    np.testing.assert_array_equal(frame["seed_id"], runs.seed_ids)
    np.testing.assert_array_equal(frame["final_loss"], runs.final_loss)
    np.testing.assert_array_equal(frame["final/train/loss"], runs.final("train/loss"))
    np.testing.assert_array_equal(frame["best_loss"], runs.loss_history.min(axis=1))


def test_runs_frame_takes_the_atlas_labels(himmelblau_runs):
    problem, runs = himmelblau_runs
    atlas = gdlab.find_minima(problem, runs)
    frame = runs.to_dataframe(atlas)
    np.testing.assert_array_equal(frame["minimum"], atlas.labels)
    assert set(frame["status"]) <= {"minimum", "saddle", "not_converged", "diverged"}
    minima = atlas.to_dataframe()
    assert len(minima) == atlas.num_minima == 4
    assert minima["count"].sum() == (atlas.labels >= 0).sum()
    assert (minima["fraction_lo"] <= minima["fraction"]).all()
    assert (minima["fraction"] <= minima["fraction_hi"]).all()
    other = gdlab.train(problem, CFG, seeds=8, progress=False)
    with pytest.raises(gdlab.InputError, match="the atlas has 32 seeds, these runs 8"):
        other.to_dataframe(atlas)


def test_sweep_frame_has_one_row_per_point_and_seed():
    problem = problems.himmelblau()
    sw = gdlab.sweep(problem, dataclasses.replace(CFG, steps=50), seeds=3,
                     learning_rate=[1e-3, 1e-2], progress=False)
    frame = sw.to_dataframe()
    assert len(frame) == 6 and sorted(set(frame["learning_rate"])) == [1e-3, 1e-2]
    for g, point in enumerate(sw.grid):
        rows = frame[frame["learning_rate"] == point["learning_rate"]]
        np.testing.assert_array_equal(rows["final_loss"], sw.runs[g].final_loss)

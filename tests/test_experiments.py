"""Every study's smoke mode runs end to end and writes its report (half of the studies
here, half in test_experiments_more.py; the `smoke_runs` fixture is in conftest.py)."""

import pytest
from helpers import SMOKE_FIRST_FILE, assert_smoke_report

from gdlab.cli import available_studies


def test_every_study_has_a_smoke_test():
    """The studies' smoke runs are split over two files (so two workers share them);
    none is left out."""
    from test_experiments_more import SECOND_FILE
    assert sorted(SMOKE_FIRST_FILE + SECOND_FILE) == sorted(available_studies())


@pytest.mark.parametrize("name", SMOKE_FIRST_FILE)
def test_smoke_mode_writes_report(name, smoke_runs):
    assert_smoke_report(smoke_runs(name)[1])


def test_convexity_smoke_convex_controls_reach_their_minimum(smoke_runs):
    import gdlab
    module, out = smoke_runs("convexity")
    runs = gdlab.load_runs(out / "least_squares")
    assert runs.final_loss.max() - runs.final_loss.min() < 1e-4
    with pytest.raises(ValueError, match="already holds a study report"):
        module.run(module.get_config(smoke=True), out=out)


def test_convexity_report_table_is_rendered_from_its_csv(smoke_runs):
    import pandas as pd
    _, out = smoke_runs("convexity")
    summary = pd.read_csv(out / "summary.csv")
    report = (out / "report.md").read_text()
    for row in summary.itertuples():
        assert f"| {row.problem} | {row.surface} | {row.seeds} | {row.minima} |" in report
    seeds = pd.read_csv(out / "himmelblau" / "seeds.csv")
    minima = pd.read_csv(out / "himmelblau" / "minima.csv")
    assert len(seeds) == summary.set_index("problem").loc["himmelblau", "seeds"]
    assert len(minima) == summary.set_index("problem").loc["himmelblau", "minima"]
    assert (seeds.groupby("minimum").size().drop(-1, errors="ignore").values
            == minima["count"].values).all()

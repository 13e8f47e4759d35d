"""Every study's smoke mode runs end to end and writes its report."""

import pytest

from gdlab.cli import available_studies, load_study

EXPERIMENTS = available_studies()


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """Each study's smoke run, done once per test session."""
    cache = {}

    def get(name):
        if name not in cache:
            module = load_study(name)
            out = tmp_path_factory.mktemp(name) / "run"
            cache[name] = (module, module.run(module.get_config(smoke=True), out=out))
        return cache[name]
    return get


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_smoke_mode_writes_report(name, smoke_runs):
    _, out = smoke_runs(name)
    report = (out / "report.md").read_text()
    assert report.startswith("# ") and "(smoke)" in report
    assert list(out.glob("*.png"))
    assert list(out.glob("**/*.csv")), "every study writes its tables as CSV"


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

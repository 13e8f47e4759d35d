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


def test_convexity_smoke_convex_controls_reach_their_minimum(smoke_runs):
    import gdlab
    module, out = smoke_runs("convexity")
    for name in ("least_squares", "quadratic"):
        runs = gdlab.load_runs(out / name)
        assert runs.final_loss.max() - runs.final_loss.min() < 1e-4
    with pytest.raises(ValueError, match="already holds a study report"):
        module.run(module.get_config(smoke=True), out=out)

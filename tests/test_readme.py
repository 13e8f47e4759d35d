"""The README's "Your own model" examples run as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _section_code(title: str) -> list[str]:
    text = README.read_text()
    section = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_your_own_model_examples_run(capsys):
    blocks = _section_code("Your own model")
    assert blocks, "the README lost its 'Your own model' examples"
    namespace: dict = {}
    for code in blocks:
        exec(compile(code, str(README), "exec"), namespace)
    accuracy = float(capsys.readouterr().out.strip().splitlines()[-1])
    assert accuracy > 0.9
    for name in ("p", "p_linen", "p_eqx", "p_jax"):
        assert namespace[name].num_params() > 0

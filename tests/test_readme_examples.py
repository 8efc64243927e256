"""The README's Python examples run as printed (with smaller budgets where training would take minutes), so that an
API change cannot leave the README showing calls that no longer work."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _example(first_line: str) -> str:
    """The README's ```python block whose first code line starts with ``first_line`` (dedented)."""
    blocks = re.findall(r"^( *)```python\n(.*?)^\1```", README.read_text(), flags=re.S | re.M)
    found = [re.sub(rf"(?m)^{indent}", "", body) for indent, body in blocks if body.lstrip().startswith(first_line)]
    assert len(found) == 1, f"README.md has {len(found)} python examples starting {first_line!r}"
    return found[0]


def _shrunk(code: str, budgets: dict[str, str]) -> str:
    """``code`` with each budget text replaced by a smaller one; each must be in the example as printed."""
    for printed, small in budgets.items():
        assert printed in code, f"the README example no longer says {printed!r}; update this test"
        code = code.replace(printed, small)
    return code


def _run(code: str, path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.chdir(path)
    scope: dict = {}
    exec(compile(code, str(README), "exec"), scope)   # noqa: S102 (our own README)
    return scope


def test_the_environment_example(tmp_path, monkeypatch, capsys):
    scope = _run(_example("import gymnasium as gym"), tmp_path, monkeypatch)
    assert scope["test_task"] in scope["env"].unwrapped.family.test
    assert scope["info"]["task"] == scope["test_task"]
    assert len(capsys.readouterr().out.split()) == 3


def test_the_trace_replay_example(tmp_path, monkeypatch):
    (tmp_path / "my_trace.csv").write_text("minute,requests\n" + "".join(f"{m},{60 * (m % 5 + 1)}\n"
                                                                         for m in range(30)))
    code = _example("from flash_envs.sim.workloads import TraceWorkload")
    import numpy as np

    scope = _run(code, tmp_path, monkeypatch)
    assert scope["info"]["task"].workload == scope["workload"]   # the env replays it
    curve = scope["workload"].realise(np.random.default_rng(0), 600.0)
    assert curve.rates.mean() == pytest.approx(40.0, rel=0.2)


def test_the_few_shot_prediction_example(tmp_path, monkeypatch, capsys):
    code = _shrunk(_example("from flash_envs.data.config_measurements import simulated_measurements"), {
        "simulated_measurements(200)": "simulated_measurements(20)",
        "k=2)": "k=2, cfg=TrainConfig(steps=20), progress=False)",
    })
    scope = _run("from flash_rl.fewshot.train_config import TrainConfig\n" + code, tmp_path, monkeypatch)
    assert capsys.readouterr().out.strip() in scope["predictor"].configs
    assert len(scope["runtime_s"]) == len(scope["predictor"].configs) == len(scope["cost_usd"])
    assert (tmp_path / "predictor.pt").is_file()


@pytest.mark.slow
def test_the_flash_api_example(tmp_path, monkeypatch):
    code = _shrunk(_example("from flash_envs.tasks import AutoscalingTaskFamily"), {
        "n_envs=8": "n_envs=2",
        "total_timesteps=300_000": "total_timesteps=240",
        "episodes=30": "episodes=1",
    })
    scope = _run(code, tmp_path, monkeypatch)
    assert scope["flash"].model.num_timesteps == 240   # the configs' PPO settings: SB3's defaults collect 2048 x 2
    assert [episodes for episodes, _ in scope["curve"]] == [0, 1]
    saved = {p.name for p in (tmp_path / "runs" / "my-flash").iterdir()}
    assert saved == {"agent.zip", "flash.json", "trained_on.json"}

"""The env-side ``flash`` commands run and print what they promise."""

from __future__ import annotations

import json

import pytest

from flash_rl.cli import main


def test_bench_json(capsys):
    assert main(["bench", "--scale", "0.01", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["env_id"] for r in rows][:2] == ["CartPole-v1", "flash/Autoscaling-v0"]
    assert rows[0]["ratio_to_cartpole"] == 1.0 and all(r["steps_per_s"] > 0 for r in rows)


def test_demo_json(capsys):
    assert main(["demo", "--episodes", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["random"]["mean_reward"] < summary["threshold 30/80%"]["mean_reward"]


def test_unknown_command_fails_clearly(capsys):
    with pytest.raises(SystemExit):
        main(["frobnicate"])
    assert "frobnicate" in capsys.readouterr().err

"""The env-side ``flash`` commands run and print what they promise."""

from __future__ import annotations

import json

import pytest

from flash_rl.cli import main


def test_bench_json(capsys, tmp_path):
    assert main(["bench", "--scale", "0.01", "--json", "--out", str(tmp_path / "bench.json")]) == 0
    printed = capsys.readouterr().out
    assert json.loads((tmp_path / "bench.json").read_text()) == json.loads(printed)   # --out gets what is printed
    rows = json.loads(printed)["rows"]
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


@pytest.mark.parametrize("argv, header, message", [
    (["config-eval", "--train"], "a,b\n1,2\n", "missing column(s) ['provider'"),
    (["config-eval", "--dataset", "chunkfunc", "--train"], "platform\n", "missing column(s)"),
    (["power-fit", "--spec"], "server_id,cores\n", ":1: missing column(s) ['watts_idle'"),
])
def test_a_data_file_off_its_schema_is_a_one_line_error(tmp_path, capsys, argv, header, message):
    bad = tmp_path / "bad.csv"
    bad.write_text(header)
    assert main([*argv, str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"flash: error: {bad}") and message in err and "Traceback" not in err


def test_a_missing_data_file_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    assert main(["config-eval", "--train", str(tmp_path / "absent.csv")]) == 2
    assert capsys.readouterr().err == f"flash: error: {tmp_path / 'absent.csv'}: no such file\n"
    assert main(["config-eval", "--train", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"flash: error: {tmp_path}: a directory, not a CSV file\n"
    monkeypatch.setenv("FLASH_DATA_DIR", str(tmp_path))
    assert main(["config-eval", "--dataset", "ibm"]) == 2
    assert "set FLASH_DATA_DIR" in capsys.readouterr().err


def test_power_fit_reads_the_shared_curves_by_default(shared_data, capsys):
    assert main(["power-fit", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["spec_csv"] == str(shared_data / "specpower_ssj2008" / "specpower_curves.csv")
    assert report["servers_fitted"] == 400


@pytest.mark.parametrize("argv, message", [
    (["demo", "--episodes", "0"], "argument --episodes: must be an integer >= 1, got '0'"),
    (["demo", "--seed", "-1"], "argument --seed: must be an integer >= 0, got '-1'"),
    (["task-diversity", "--episodes", "two"], "argument --episodes: must be an integer >= 1, got 'two'"),
    (["power-governors", "--n-servers", "0"], "argument --n-servers: must be an integer >= 1"),
    (["bench", "--scale", "0"], "argument --scale: must be a number > 0, got '0'"),
    (["bench", "--scale", "inf"], "argument --scale: must be a number > 0, got 'inf'"),
    (["bench", "--memory-steps", "5"], "--memory-steps 5: memory is sampled 10 times, so give 0 or at least 10"),
    (["validate-fidelity", "--horizon", "30"], "argument --horizon: must be a number >= 60, got '30'"),
    (["evaluate", "--model", "m", "--episodes", "0"], "argument --episodes: must be an integer >= 1"),
    (["adapt", "--model", "m", "--episodes", "-2"], "argument --episodes: must be an integer >= 1"),
    (["reproduce", "--seeds", "0"], "argument --seeds: must be an integer >= 1"),
])
def test_a_bad_count_is_a_usage_error_before_any_work(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith(f"usage: flash {argv[0]}")
    assert f"flash {argv[0]}: error: {message}" in err

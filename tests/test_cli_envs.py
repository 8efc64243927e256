"""The env-side ``flash`` commands run and print what they promise."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flash_envs.bench import CASES, memory_run
from flash_envs.sim.validation import _relative_error, compare
from flash_rl.cli import main


def test_bench_markdown_names_the_command_that_wrote_it(capsys, tmp_path):
    """Every report said "Regenerate: `flash bench --memory-steps 1000000 --out results/bench.md`", whatever ran."""
    out = tmp_path / "my bench.md"
    assert main(["bench", "--scale", "0.01", "--out", str(out)]) == 0
    assert capsys.readouterr().out.endswith(f"\nRegenerate: `flash bench --scale 0.01 --out '{out}'`\n")
    assert main(["bench", "--scale", "0.01"]) == 0
    assert capsys.readouterr().out.endswith("\nRegenerate: `flash bench --scale 0.01`\n")


def test_the_regenerate_line_names_the_options_given():
    """validate-fidelity and task-diversity always said they were made by their default command with --out results/."""
    from argparse import Namespace

    from flash_envs.baselines import diversity
    from flash_envs.cli_args import command_of
    from flash_envs.sim import validation

    args = Namespace(horizon=60.0, seed=0, seeds=1, no_progress=True, json=False, out=Path("my report.md"))
    assert (command_of("validate-fidelity", args, validation.add_arguments, leave_out=("no_progress",))
            == "flash validate-fidelity --horizon 60 --seeds 1 --out 'my report.md'")
    assert (command_of("task-diversity", Namespace(episodes=1, seed=7, out=None), diversity.add_arguments)
            == "flash task-diversity --seed 7")


def test_bench_json(capsys, tmp_path):
    assert main(["bench", "--scale", "0.01", "--json", "--out", str(tmp_path / "bench.json")]) == 0
    printed = capsys.readouterr().out
    assert (tmp_path / "bench.json").read_text() == printed and printed.endswith("}\n")   # --out: what is printed
    rows = json.loads(printed)["rows"]
    assert [r["env_id"] for r in rows] == [env_id for _, env_id, _, _ in CASES]
    assert [r["steps"] for r in rows] == [max(10, int(steps * 0.01)) for *_, steps in CASES]   # --scale 0.01
    cartpole = rows[0]
    assert cartpole["env_id"] == "CartPole-v1"
    for r in rows:   # the derived columns follow from each row's own steps and seconds, the ratio from CartPole's row
        assert r["seconds"] > 0
        assert r["steps_per_s"] == pytest.approx(r["steps"] / r["seconds"])
        assert r["us_per_step"] == pytest.approx(1e6 * r["seconds"] / r["steps"])
        # documented as per-step time / CartPole-v1's in the same run, i.e. how many times slower than CartPole
        assert r["ratio_to_cartpole"] == pytest.approx(r["us_per_step"] / cartpole["us_per_step"])
        assert r["ratio_to_cartpole"] == pytest.approx(cartpole["steps_per_s"] / r["steps_per_s"])


def test_demo_json(capsys):
    assert main(["demo", "--episodes", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["random"]["mean_reward"] < summary["threshold 30/80%"]["mean_reward"]


def test_demo_table_counts_its_episodes_in_words(capsys):
    assert main(["demo", "--episodes", "1"]) == 0
    assert capsys.readouterr().out.startswith("flash/Autoscaling-v0, 8 test tasks x 1 episode, fast fidelity\n")


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
    monkeypatch.delenv("FLASH_DATA_DIR")   # the relative default: the error says where it looked from
    monkeypatch.chdir(tmp_path)
    assert main(["config-eval", "--dataset", "ibm"]) == 2
    assert f"(from {tmp_path}: {tmp_path / '..' / 'shared' / 'data'}" in capsys.readouterr().err


def test_power_fit_reads_the_shared_curves_by_default(shared_data, capsys):
    assert main(["power-fit", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["spec_csv"] == str(shared_data / "specpower_ssj2008" / "specpower_curves.csv")
    assert report["servers_fitted"] == 400


@pytest.mark.parametrize("as_json", [False, True])
def test_power_fit_writes_what_it_prints_to_out(tmp_path, capsys, as_json):
    """power-fit had no --out: its committed reports were made by redirecting stdout."""
    spec = tmp_path / "one.csv"
    spec.write_text("server_id,cores,watts_idle," + ",".join(f"watts_{p}0pct" for p in range(1, 10))
                    + ",watts_100pct\n7,8," + ",".join(str(60 + 20 * i) for i in range(11)) + "\n")
    out = tmp_path / "fit" / ("fit.json" if as_json else "fit.md")
    assert main(["power-fit", "--spec", str(spec), "--out", str(out)] + ["--json"] * as_json) == 0
    printed = capsys.readouterr().out
    assert out.read_text() == printed
    assert (json.loads(printed)["servers_fitted"] == 1) if as_json else printed.startswith("# Power-curve fit")


@pytest.mark.parametrize("argv, message", [
    (["demo", "--episodes", "0"], "argument --episodes: must be an integer >= 1, got '0'"),
    (["demo", "--seed", "-1"], "argument --seed: must be an integer >= 0 and <= 4294967295, got '-1'"),
    (["adapt", "--model", "m", "--seed", "4294967296"],   # numpy's seeding, in SB3, failed with a traceback
     "argument --seed: must be an integer >= 0 and <= 4294967295, got '4294967296'"),
    (["task-diversity", "--episodes", "two"], "argument --episodes: must be an integer >= 1, got 'two'"),
    (["power-governors", "--n-servers", "0"], "argument --n-servers: must be an integer >= 1"),
    (["power-governors", "--n-servers", "99999999999999"],   # a MemoryError traceback
     "argument --n-servers: must be an integer >= 1 and <= 1000, got '99999999999999'"),
    (["task-diversity", "--seed", "4294967295", "--episodes", "2"],   # the env took 2**32 silently
     "--seed 4294967295 --episodes 2: the last episode's seed, 4294967296, is above 4294967295"),
    (["bench", "--scale", "0"], "argument --scale: must be a number > 0 and <= 1000, got '0'"),
    (["bench", "--scale", "inf"], "argument --scale: must be a number > 0 and <= 1000, got 'inf'"),
    (["bench", "--scale", "1e306"], "argument --scale: must be a number > 0 and <= 1000, got '1e306'"),   # overflowed
    (["bench", "--scale", "1001"], "argument --scale: must be a number > 0 and <= 1000, got '1001'"),
    (["bench", "--memory-steps", "5"], "--memory-steps 5: memory is sampled 10 times, so give 0 or at least 10"),
    (["validate-fidelity", "--horizon", "30"], "argument --horizon: must be a number >= 60, got '30'"),
    (["validate-fidelity", "--horizon", "90"], "--horizon 90: the scenarios run in 60 s intervals, so give a multiple"),
    (["validate-fidelity", "--horizon", "6e9"], "--horizon 6e+09 makes an episode of 6e+09 s"),
    (["validate-fidelity", "--horizon", "120.0000000001"], "--horizon 120.0000000001: the scenarios run in 60 s"),
    (["validate-fidelity", "--seeds", "0"], "argument --seeds: must be an integer >= 1, got '0'"),
    (["validate-fidelity", "--seed", "4294967295", "--seeds", "2"], "--seed 4294967295 --seeds 2: the last seed, "
                                                                     "4294967296, is above 4294967295"),
    (["demo", "--seed", "4294967295", "--episodes", "2"], "--seed 4294967295 --episodes 2: the last episode's seed, "
                                                          "4294967296, is above 4294967295"),
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


def test_fidelity_error_against_a_zero_is_not_hidden():
    assert _relative_error(1.1, 1.0) == pytest.approx(0.1)
    assert _relative_error(0.0, 0.0) == 0.0
    assert _relative_error(0.5, 0.0) == float("inf")   # it read 0 %: a perfect match


def test_a_memory_run_takes_every_step_asked_for():
    trace = memory_run("flash/Autoscaling-v0", 25)
    assert [step for step, _ in trace] == [2, 5, 7, 10, 12, 15, 17, 20, 22, 25]   # not 10 x 2 = 20
    assert all(rss > 0 for _, rss in trace)


def test_the_fidelity_horizon_is_whole_intervals():
    with pytest.raises(ValueError, match="must be a multiple of 60 s, got 90"):
        compare(horizon_s=90)


def test_the_fidelity_report_gives_each_seeds_error_and_their_spread():
    """One seed's error mixes model error with sampling noise: the report runs each seed and shows the range."""
    from flash_envs.sim.validation import SCENARIOS, markdown, report, run_scenario

    full = report(horizon_s=60, seeds=[3, 4])
    rows = full["scenarios"]
    assert [row["scenario"] for row in rows] == [s.name for s in SCENARIOS] and rows[0]["seeds"] == [3, 4]
    first = run_scenario(SCENARIOS[0], "fast", 60, 4), run_scenario(SCENARIOS[0], "request", 60, 4)
    assert rows[0]["fast"]["p95_ms"][1] == first[0]["p95_ms"] and rows[0]["request"]["p95_ms"][1] == first[1]["p95_ms"]
    errors = rows[0]["relative_error"]["p95_ms"]
    assert errors[1] == _relative_error(first[0]["p95_ms"], first[1]["p95_ms"])
    text = markdown(full, 60, "flash validate-fidelity --horizon 60")
    assert "same seed, seeds 3..4." in text and text.endswith("Regenerate: `flash validate-fidelity --horizon 60`\n")
    cell = (f"{np.mean(rows[0]['request']['p95_ms']):.3g} ({np.mean(errors):+.1%} [{min(errors):+.1%}, "
            f"{max(errors):+.1%}])")
    assert f"| {SCENARIOS[0].name} | " in text and cell in text.splitlines()[6]
    single = markdown(report(horizon_s=60, seeds=[3]), 60, "flash validate-fidelity")
    assert "same seed, seed 3. " in single and "[" not in single.splitlines()[6]
    assert "over seeds" not in single   # the high-load caption said "mean over seeds [lowest, highest]" for one seed


def test_the_fidelity_report_holds_the_high_load_and_percentile_sections(capsys):
    """The JSON has the scenarios, the high-load queues against Erlang C and the fixed sample's percentiles; the
    Markdown has a table for each and ends with the command that regenerates it."""
    assert main(["validate-fidelity", "--horizon", "60", "--seeds", "1", "--no-progress", "--json"]) == 0
    full = json.loads(capsys.readouterr().out)
    assert list(full) == ["scenarios", "high_load", "percentile_sample"]
    assert [row["scenario"] for row in full["high_load"]] == ["M/M/1, rho 0.9", "M/M/10, rho 0.95"]
    assert [(run["fidelity"], run["substep_s"]) for run in full["high_load"][0]["runs"]] == [
        ("request", 5.0), ("fast", 5.0), ("fast", 1.0)]
    assert full["high_load"][0]["erlang_c_ms"] == pytest.approx(1000)
    assert sorted(full["percentile_sample"][0]) == ["load", "p95", "p99"]
    assert "ready_replicas" in full["scenarios"][0]["request"]
    assert main(["validate-fidelity", "--horizon", "60", "--seeds", "1", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "| queue | Erlang C | per-request | fast, 5 s sub-step | fast, 1 s sub-step |" in text
    assert "| M/M/1, rho 0.9 | 1000 | " in text and "| 0.9 | 2996 | 3242 (+8.2%) | 4605 | 3967 (-13.9%) |" in text
    assert text.rstrip().splitlines()[-1] == "Regenerate: `flash validate-fidelity --horizon 60 --seeds 1`"


def test_json_reports_are_strict_json():
    """A NaN CI or an infinite relative error (validate-fidelity, where the per-request value is 0) was written as
    NaN / Infinity, which strict JSON parsers refuse; they are null."""
    from flash_envs.cli_args import json_text

    text = json_text({"error": [float("inf"), -float("inf"), 0.5], "ci": (float("nan"), 1.0), "n": 3}, indent=2)
    assert json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON")) == {
        "error": [None, None, 0.5], "ci": [None, 1.0], "n": 3}


def test_the_fidelity_reports_worst_error_is_the_largest_in_absolute_value():
    """"Worst absolute relative error on any seed" takes the error of largest magnitude, an underestimate included:
    with errors -30 % and +10 % on two seeds every metric's worst is 30.0 %, not +10 %."""
    from flash_envs.sim.validation import METRICS, markdown

    row = {"scenario": "s", "seeds": [0, 1], "request": {m: [1.0, 1.0] for m in METRICS},
           "relative_error": {m: [-0.3, 0.1] for m in METRICS}}
    exact_p = {"exact_ms": 1.0, "model_ms": 1.0, "relative_error": 0.0}
    full = {"scenarios": [row], "high_load": [], "percentile_sample": [{"load": 0.5, "p95": exact_p, "p99": exact_p}]}
    text = markdown(full, 60, "flash validate-fidelity")
    assert ("Worst absolute relative error on any seed: " + ", ".join(f"{m} 30.0%" for m in METRICS) + ".") in text

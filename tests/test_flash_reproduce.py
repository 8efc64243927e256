"""``flash reproduce`` end to end at toy size: every method, a replayed test trace, the outputs, resume."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flash_envs.data import DataFormatError
from flash_rl.cases import CONFIG_DIR
from flash_rl.cli import main
from flash_rl.commands import reproduce as command
from flash_rl.config import ConfigError, load_config, save_config
from flash_rl.flash import Flash
from flash_rl.pipeline import reproduce
from flash_rl.report import REPORT_FILES, render

TINY = ["env.kwargs={episode_steps: 8}", "flash.timesteps=160", "transfer.timesteps=160", "flash.n_envs=2",
        "transfer.n_envs=2", "flash.context_len=6", "flash.embedding_dim=4", "flash.encoder_hidden=8",
        "flash.net_arch=[16]", "transfer.net_arch=[16]",
        "flash.agent_kwargs={n_steps: 16, batch_size: 32, n_epochs: 1}",
        "transfer.agent_kwargs={n_steps: 16, batch_size: 32, n_epochs: 1}",
        "flash.adapt_kwargs={n_steps: 8, batch_size: 8, n_epochs: 1}",
        "transfer.adapt_kwargs={n_steps: 8, batch_size: 8, n_epochs: 1}",
        "maml.iterations=2", "maml.meta_batch=2", "maml.outer_episodes=1", "maml.hidden=[8]",
        "adaptation.budget=2", "adaptation.seeds=2", "adaptation.max_test_tasks=1",
        "references.expert_timesteps=64", "references.random_episodes=1", "probe.samples_per_task=1",
        "run.progress_bar=false", "run.checkpoint_interval=64"]


def model_files_written(run_dir: Path) -> dict[str, int]:
    """When each trained model of a reproduction run was last written (ns)."""
    models = run_dir / "models"
    paths = [models / "flash" / "final" / "agent.zip", models / "transfer" / "final" / "agent.zip",
             models / "maml" / "ckpt" / "maml.pt"]
    return {str(path): path.stat().st_mtime_ns for path in paths}


def check_summary_against_the_run(cfg, summary, out, run):
    """Recompute episodes-to-adapt from the curves (run/curves.jsonl, full precision) and the references
    (references.csv), and the summary's per-method numbers from episodes_to_adapt.csv."""
    a = cfg.adaptation
    with open(out / "references.csv", newline="") as f:
        refs = {(r["task"], int(r["eval_seed"])): (float(r["random"]), float(r["expert"])) for r in csv.DictReader(f)}
    with open(out / "curves.csv", newline="") as f:
        written = {(r["method"], r["task"], int(r["seed"]), int(r["episodes"])): (float(r["return"]),
                                                                                  float(r["normalised_return"]))
                   for r in csv.DictReader(f)}
    with open(out / "episodes_to_adapt.csv", newline="") as f:
        rows = {(r["method"], r["task"], int(r["seed"])): r for r in csv.DictReader(f)}
    records = [json.loads(line) for line in (run / "curves.jsonl").read_text().splitlines()]
    assert len(records) == len(rows) == 5 * 2 * 2 and len(written) == len(rows) * (a.budget + 1)
    for rec in records:
        random, expert = refs[(rec["task"], rec["eval_seed"])]   # 4 decimals in the CSV, hence abs=1e-3 below
        row = rows[(rec["method"], rec["task"], rec["seed"])]
        assert [e for e, _ in rec["curve"]] == list(range(a.budget + 1))   # before, and after every episode
        for e, value in rec["curve"]:
            assert written[(rec["method"], rec["task"], rec["seed"], e)] == pytest.approx(
                (value, (value - random) / (expert - random)), abs=1e-3)
        threshold = float(row["threshold"])
        assert threshold == pytest.approx(random + a.threshold * (expert - random), abs=1e-3)
        reached = [e for e, value in rec["curve"] if value >= threshold]
        assert int(row["episodes"]) == (reached[0] + 1 if reached else a.budget + 1)
        assert row["censored"] == str(not reached)
    for m, s in summary["methods"].items():
        mine = [r for r in rows.values() if r["method"] == m]
        x = np.array([float(r["episodes"]) for r in mine])
        assert s["runs"] == len(x) == 2 * 2 and s["censored"] == sum(r["censored"] == "True" for r in mine)
        assert s["median"] == np.median(x) and s["mean"] == pytest.approx(x.mean())
        assert x.min() <= s["median_ci"][0] <= s["median_ci"][1] <= x.max()   # resamples of these runs
    flash = np.mean([float(r["episodes"]) for r in rows.values() if r["method"] == "flash"])
    for m in set(summary["methods"]) - {"flash"}:
        other = np.mean([float(r["episodes"]) for r in rows.values() if r["method"] == m])
        assert summary["speedup"][f"{m}/flash"]["ratio_of_means"] == pytest.approx(other / flash)


def test_reproduce_tiny(tmp_path):
    trace = tmp_path / "trace.csv"
    rng = np.random.default_rng(0)
    trace.write_text("timestamp,requests\n" + "".join(f"{60 * i},{int(rng.integers(50, 150))}\n" for i in range(60)))
    cfg = load_config(CONFIG_DIR / "autoscaling.yaml",
                      TINY + [f"references.cache={tmp_path / 'refs.json'}", f"tasks.test_traces=['{trace}']"])
    out, run = tmp_path / "out", tmp_path / "run"
    summary = reproduce(cfg, out, run, command="test")
    methods = set(summary["methods"])
    assert methods == {"flash", "transfer", "scratch", "maml", "flash_zero_embedding"}
    assert summary["n_test_tasks"] == 1 + 1  # one generated test task (max_test_tasks) + the trace at its rate
    check_summary_against_the_run(cfg, summary, out, run)
    assert "transfer/flash" in summary["speedup"] and summary["probe"]["samples"]["test"] == 8
    assert set(summary["phase_seconds"]) >= {"references", "meta-train flash", "adapt", "probe"}
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES)   # what reproduce checks before any work
    for name in REPORT_FILES:
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "summary.json").read_text())["methods"]["flash"]["runs"] == 4
    assert (run / "tb").is_dir() and len(json.loads(Path(cfg.references.cache).read_text())) == 2 * 2
    # --render redraws the plots from the folder's files alone and leaves the numbers as they are
    written = {n: (out / n).read_bytes() for n in ("summary.json", "results.md", "curves.csv")}
    for png in ("adaptation_curves.png", "episodes_to_adapt.png"):
        (out / png).unlink()
    trace.rename(tmp_path / "moved.csv")   # it needed the trace at its path, though it reads only the folder's files
    assert main(["reproduce", "--render", str(out)]) == 0
    (tmp_path / "moved.csv").rename(trace)
    assert (out / "adaptation_curves.png").stat().st_size > 0 and (out / "episodes_to_adapt.png").stat().st_size > 0
    assert {n: (out / n).read_bytes() for n in written} == written
    sensitivity = json.loads(written["summary.json"])["threshold_sensitivity"]
    assert set(sensitivity) == {"0.9", "0.95", "0.98"}
    assert all(len(e["speedup_transfer_vs_flash"]["ci_tasks"]) == 2 for e in sensitivity.values())
    tampered = json.loads(written["summary.json"])   # render recomputes the sensitivity and checks it against these
    tampered["threshold_sensitivity"]["0.95"]["methods"]["flash"]["mean"] += 1.0
    (out / "summary.json").write_text(json.dumps(tampered))
    with pytest.raises(ValueError, match="0.95 threshold's episodes-to-adapt from curves.csv differ"):
        render(out)
    tampered = json.loads(written["summary.json"])   # and the sustained success (it was recomputed unchecked)
    tampered["sustained"]["methods"]["transfer"]["censored"] += 1
    (out / "summary.json").write_text(json.dumps(tampered))
    with pytest.raises(ValueError, match=r"the sustained success's \(at the 0.9 threshold\) episodes-to-adapt from "
                                         r"curves.csv differ from summary.json's"):
        render(out)
    del tampered["sustained"]   # a summary written before the section: it is computed, in its place
    (out / "summary.json").write_text(json.dumps(tampered))
    render(out)
    assert (out / "summary.json").read_bytes() == written["summary.json"]
    (out / "summary.json").write_bytes(written["summary.json"])
    rows = (out / "episodes_to_adapt.csv").read_text()   # the speedup's input, which was taken as it was
    header, first, *rest = rows.splitlines(keepends=True)
    fields = first.split(",")
    fields[3:5] = ["1", "False"] if fields[3:5] != ["1", "False"] else ["2", "False"]
    (out / "episodes_to_adapt.csv").write_text(header + ",".join(fields) + "".join(rest))
    row_run = rf"\('{fields[0]}', '{fields[1]}', {fields[2]}\)"
    with pytest.raises(DataFormatError, match=r"episodes_to_adapt.csv: the episodes-to-adapt of 1 run\(s\) differ "
                                              rf"from what their curves in curves.csv give at the 0.9 threshold, e.g. "
                                              rf"{row_run}: {fields[3]} \(reached\)"):
        render(out)
    (out / "episodes_to_adapt.csv").write_text(rows)
    assert main(["reproduce", "--render", str(tmp_path)]) == 2  # not a reproduction folder: a one-line error
    # resume: every model and curve is reused
    lines = (run / "curves.jsonl").read_text().splitlines()
    damaged = ['{"method": "flash"}', "[1, 2]"]   # not records: those lines are ignored, as a line cut short is
    for line, curve in ((lines[-1], lambda c: []), (lines[-2], lambda c: c[1:]), (lines[-2], lambda c: c[:1] * len(c)),
                        (lines[-1], lambda c: [[e, None] for e, _ in c])):   # records of runs lost, curves damaged
        rec = json.loads(line)
        damaged.append(json.dumps({**rec, "curve": curve(rec["curve"])}))
    (run / "curves.jsonl").write_bytes("\n".join(lines[:-3] + damaged).encode() + b"\n\xff\xfe{\x00}\n"
                                       + lines[-3][:10].encode())   # bytes not UTF-8, and a run cut short
    saved = model_files_written(run)
    again = reproduce(cfg, out, run, resume=True, command="test")
    assert again["methods"]["flash"]["runs"] == 4
    assert again["methods"] == summary["methods"]   # the runs redone, not taken from the damaged records
    assert model_files_written(run) == saved   # loaded, not trained and saved again
    assert again.get("resumed") is True and "resumed" not in summary   # its times are the last session's only
    assert "The run was resumed (`--resume`): these are the times of the session" in (out / "results.md").read_text()
    text = (run / "curves.jsonl").read_bytes().decode(errors="replace")
    kept = [json.loads(line) for line in text.splitlines() if line.startswith('{"method')
            and line.endswith("}") and "curve" in line]
    assert len({(r["method"], r["task"], r["seed"]) for r in kept}) == 5 * 4   # the redone run has a line of its own
    # a trace edited in place: the runs on it are done again, as its references are (their cache keys on content)
    trace.write_text("timestamp,requests\n" + "".join(f"{60 * i},{100 + 40 * (i % 2)}\n" for i in range(60)))
    before = len(text.splitlines())
    reproduce(cfg, out, run, resume=True, command="test")
    text = (run / "curves.jsonl").read_bytes().decode(errors="replace")
    redone = [json.loads(line) for line in text.splitlines()[before:]]
    assert len(redone) == 5 * 1 * 2 and all(r["task"].startswith("trace:trace:") for r in redone)
    # resuming under other settings would mix the old models and curves into the new results: refused
    other = load_config(CONFIG_DIR / "autoscaling.yaml", TINY + [f"references.cache={tmp_path / 'refs.json'}",
                        f"tasks.test_traces=['{trace}']", "adaptation.budget=3", "run.progress_bar=true"])
    with pytest.raises(ConfigError, match=r"adaptation.budget: 2 then, 3 now\)"):
        reproduce(other, out, run, resume=True, command="test")


def test_reproduce_in_worker_processes_gives_the_same_results(tmp_path):
    """With jobs=2 the models train side by side and the adaptation runs are shared out between two worker
    processes, which load the saved models: every number comes out as in one process."""
    results = {}
    for jobs in (1, 2):
        cfg = load_config(CONFIG_DIR / "autoscaling.yaml",
                          TINY + [f"references.cache={tmp_path / f'refs{jobs}.json'}", "adaptation.seeds=3"])
        summary = reproduce(cfg, tmp_path / f"out{jobs}", tmp_path / f"run{jobs}", command="test", jobs=jobs)
        assert set(summary["phase_seconds"]) >= {"meta-train flash", "pretrain transfer", "meta-train maml", "adapt"}
        assert summary["jobs"] == jobs
        assert ("worker processes" in (tmp_path / f"out{jobs}" / "results.md").read_text()) == (jobs > 1)
        results[jobs] = {n: (tmp_path / f"out{jobs}" / n).read_bytes()
                         for n in ("curves.csv", "episodes_to_adapt.csv", "references.csv")}
    assert results[2] == results[1]
    assert len(results[1]["curves.csv"].splitlines()) > 1 + 5 * 3   # every method, seed and evaluation
    # a resumed parallel run loads the finished models and curves instead of redoing them
    lines = (tmp_path / "run2" / "curves.jsonl").read_text().splitlines()
    (tmp_path / "run2" / "curves.jsonl").write_text("\n".join(lines[:-2]) + "\n")   # two runs lost
    saved = model_files_written(tmp_path / "run2")
    reproduce(cfg, tmp_path / "out2", tmp_path / "run2", resume=True, command="test", jobs=2)
    assert (tmp_path / "out2" / "curves.csv").read_bytes() == results[1]["curves.csv"]
    assert len((tmp_path / "run2" / "curves.jsonl").read_text().splitlines()) == len(lines)
    assert model_files_written(tmp_path / "run2") == saved   # loaded, not trained and saved again


def test_a_reproduction_killed_in_meta_training_and_resumed_gives_the_results_of_an_unbroken_one(tmp_path,
                                                                                                 monkeypatch):
    """Meta-training resumes step for step (flash_rl.flash.Flash.checkpoint), and finished runs are kept, so a
    reproduction stopped after FLASH's first checkpoint and resumed writes the very CSVs of one never stopped."""
    cfg = load_config(CONFIG_DIR / "autoscaling.yaml", TINY + [f"references.cache={tmp_path / 'refs.json'}"])
    reproduce(cfg, tmp_path / "whole", tmp_path / "run_whole", command="test", jobs=1)
    checkpoint = Flash.checkpoint

    def killed_after_the_first(self, directory, total_timesteps=None):
        checkpoint(self, directory, total_timesteps)
        if type(self) is Flash and self.agent.num_timesteps < total_timesteps:
            raise KeyboardInterrupt   # Ctrl-C, with a checkpoint part of the way through FLASH's meta-training

    monkeypatch.setattr(Flash, "checkpoint", killed_after_the_first)
    with pytest.raises(KeyboardInterrupt):
        reproduce(cfg, tmp_path / "out", tmp_path / "run", command="test", jobs=1)
    monkeypatch.undo()
    state = json.loads((tmp_path / "run" / "models" / "flash" / "ckpt" / "state.json").read_text())
    assert 0 < state["num_timesteps"] < 160 and "episodes" in state
    reproduce(cfg, tmp_path / "out", tmp_path / "run", resume=True, command="test", jobs=1)
    for name in ("curves.csv", "episodes_to_adapt.csv", "references.csv"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name


def test_work_in_workers_starts_as_soon_as_its_model_is_saved(tmp_path, monkeypatch):
    """With jobs=2 the references and the adaptation runs waited for every meta-training, so one core idled while
    FLASH's, the longest, finished. Here FLASH's meta-training waits until a transfer run has adapted: the run
    completes only if that run did not wait for FLASH. (Threads stand in for the worker processes, so that the test can
    hold FLASH back; the work done is the real one.)"""
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from contextlib import contextmanager

    from flash_rl import pipeline

    transfer_adapted = threading.Event()
    train, adapt = pipeline._train_in_worker, pipeline._adapt_in_worker

    def flash_waits(name, *args):
        if name == "flash" and not transfer_adapted.wait(60):
            raise AssertionError("no transfer run adapted while FLASH had not meta-trained")
        return train(name, *args)

    def adapt_and_tell(method, *args):
        result = adapt(method, *args)
        if method == "transfer":
            transfer_adapted.set()
        return result

    @contextmanager
    def threads(jobs, initializer=None, initargs=()):
        with ThreadPoolExecutor(jobs) as pool:
            yield pool

    monkeypatch.setattr(pipeline, "worker_pool", threads)
    monkeypatch.setattr(pipeline, "_train_in_worker", flash_waits)
    monkeypatch.setattr(pipeline, "_adapt_in_worker", adapt_and_tell)
    monkeypatch.setattr(pipeline, "_WORKER_MODELS", {})
    cfg = load_config(CONFIG_DIR / "autoscaling.yaml", TINY + [f"references.cache={tmp_path / 'refs.json'}",
                                                               "adaptation.methods=[flash,transfer]"])
    summary = reproduce(cfg, tmp_path / "out", tmp_path / "run", command="test", jobs=2)
    assert transfer_adapted.is_set() and list(summary["methods"]) == ["flash", "transfer"]
    assert list(summary["phase_seconds"]) == ["meta-train flash", "pretrain transfer", "references", "adapt", "probe"]


def test_render_refuses_the_options_of_a_run(tmp_path, capsys):
    """--render with --out (or --quick, --set, ...) exited 0, wrote nothing to --out and rewrote DIR's plots."""
    assert main(["reproduce", "--render", str(tmp_path), "--quick", "--set", "adaptation.seeds=3", "--out",
                 str(tmp_path / "elsewhere"), "--jobs", "7"]) == 2
    assert capsys.readouterr().err == (f"flash: error: --render redraws the files in {tmp_path} and runs nothing; drop "
                                       f"--quick, --set, --out, --jobs\n")


def test_render_refuses_jobs_given_with_its_default_value(tmp_path, capsys):
    """--jobs defaulted to the usable CPUs, and --render only saw options that differed from their defaults, so
    ``--render DIR --jobs N`` with N the default went through."""
    from flash_envs.cli_args import default_jobs

    assert main(["reproduce", "--render", str(tmp_path), "--jobs", str(default_jobs())]) == 2
    assert capsys.readouterr().err.endswith("runs nothing; drop --jobs\n")


def test_a_run_that_fails_leaves_the_results_folder_alone(tmp_path, monkeypatch):
    """The results folder (by default the committed results/<case>) gets config.yaml with the results, not before."""
    def killed(*args, **kwargs):
        raise RuntimeError("killed during meta-training")

    monkeypatch.setattr("flash_rl.pipeline.train_model", killed)
    cfg = load_config(CONFIG_DIR / "autoscaling.yaml", TINY + [f"references.cache={tmp_path / 'refs.json'}"])
    with pytest.raises(RuntimeError, match="killed"):
        reproduce(cfg, tmp_path / "out", tmp_path / "run", command="test")
    assert not (tmp_path / "out").exists()
    assert (tmp_path / "run" / "config.yaml").exists()   # what --resume checks against


def test_a_new_run_leaves_nothing_of_the_old_one_for_resume(tmp_path, monkeypatch):
    """A run started anew in an earlier run's folder (here under another seed) deletes that run's models and curves
    before it writes its config.yaml: killed during meta-training, its --resume trains its own model instead of
    loading the old one, and adapts anew."""
    def settings(seed: int) -> list[str]:
        return TINY + [f"references.cache={tmp_path / 'refs.json'}", "adaptation.methods=[transfer]",
                       "references.expert_timesteps=0", "adaptation.seeds=1", f"run.seed={seed}"]

    out, run = tmp_path / "out", tmp_path / "run"
    reproduce(load_config(CONFIG_DIR / "autoscaling.yaml", settings(0)), out, run, command="test")
    assert (run / "models" / "transfer" / "DONE").exists() and (run / "curves.jsonl").exists()
    report = (out / "results.md").read_text()   # without FLASH, neither the title nor a speedup column names it
    assert report.startswith("# Adaptation on held-out tasks: autoscaling\n") and "transfer / FLASH" not in report

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    new = load_config(CONFIG_DIR / "autoscaling.yaml", settings(1))
    monkeypatch.setattr("flash_rl.pipeline.train_model", killed)
    with pytest.raises(KeyboardInterrupt):
        reproduce(new, out, run, command="test")
    monkeypatch.undo()
    assert not [path for path in (run / "models").rglob("*") if path.is_file()] and not (run / "curves.jsonl").exists()
    assert load_config(run / "config.yaml").run.seed == 1
    reproduce(new, out, run, resume=True, command="test")
    assert Flash.load(run / "models" / "transfer" / "final").seed == 1


@pytest.mark.parametrize("made", [False, True])
def test_reproduce_resume_needs_a_run_to_continue(tmp_path, capsys, made):
    """As ``meta-train --resume`` does, ``reproduce --resume`` refuses a run directory that holds no run (a typo, or
    an empty folder) instead of silently starting a new run there."""
    run = tmp_path / "run"
    if made:
        run.mkdir()
    assert main(["reproduce", "--resume", "--run-dir", str(run), "--out", str(tmp_path / "out"),
                 "--set", *TINY, f"references.cache={tmp_path / 'refs.json'}"]) == 2
    assert f"flash: error: --resume: {run} holds no run to continue (no config.yaml)" in capsys.readouterr().err
    assert sorted(tmp_path.rglob("*")) == ([run] if made else [])   # nothing written


@pytest.mark.parametrize("cache", ["{", "[]", '{"some/key/10000": {"task": "t0"}}'])
def test_reproduce_refuses_a_damaged_reference_cache_before_any_work(tmp_path, capsys, cache):
    """The cache is read after the meta-training and then rewritten: a file that is not one that flash wrote (a
    damaged one, or another file that references.cache names by mistake) is refused first, and left as it is."""
    refs, run = tmp_path / "refs.json", tmp_path / "run"
    refs.write_text(cache)
    assert main(["reproduce", "--run-dir", str(run), "--out", str(tmp_path / "out"), "--set", *TINY,
                 f"references.cache={refs}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"flash: error: references.cache {refs} is not a reference cache that flash wrote (")
    assert err.count("\n") == 1 and refs.read_text() == cache and not run.exists()


def _refused_before_training(tmp_path, capsys, traces: list) -> str:
    """The error of a quick reproduce with ``--test-trace`` ``traces``, which must end with status 2 before it makes
    its run folder."""
    parser = __import__("argparse").ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(["--quick", "--test-trace", *map(str, traces), "--out", str(tmp_path / "o"),
                              "--run-dir", str(tmp_path / "r"), "--set", *TINY])
    assert command.run(args) == 2
    assert not (tmp_path / "r").exists()
    return capsys.readouterr().err


def test_reproduce_rejects_a_bad_trace_before_training(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("time,requests\n0,5\n")
    err = _refused_before_training(tmp_path, capsys, [bad])
    assert "missing column(s) ['timestamp']" in err and "--set tasks.trace_time_column=minute" in err   # its key


def test_two_traces_of_one_file_name_are_refused_before_training(tmp_path, capsys):
    """Trace tasks are named after the file name alone: a/day.csv and b/day.csv gave the same task names, so one's
    results overwrote the other's and the other's were counted twice."""
    traces = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        traces.append(tmp_path / folder / "day.csv")
        traces[-1].write_text("timestamp,requests\n" + "".join(f"{60 * i},{100 + i}\n" for i in range(30)))
    err = _refused_before_training(tmp_path, capsys, traces)
    assert "held-out tasks share the name(s) ['trace:day:" in err and "different file names" in err


def test_a_trace_with_gaps_is_refused_until_the_config_says_what_they_are(tmp_path, capsys):
    from flash_rl.cases import get_case
    from flash_rl.pipeline import test_tasks

    gappy = tmp_path / "gappy.csv"                          # minute 10 has no row
    gappy.write_text("timestamp,requests\n" + "".join(f"{60 * i},{100 + i}\n" for i in range(30) if i != 10))
    err = _refused_before_training(tmp_path, capsys, [gappy])
    assert "1 bin(s) of 60 s have no row" in err and "--set tasks.trace_gaps=zero" in err
    for gaps, bins in (("zero", 30), ("join", 29)):
        cfg = load_config(CONFIG_DIR / "autoscaling.yaml", TINY + [f"tasks.test_traces=['{gappy}']",
                                                                         f"tasks.trace_gaps={gaps}"])
        case = get_case("autoscaling")
        replayed = [t for t in test_tasks(cfg, case, case.build_family(cfg)) if t.name.startswith("trace:")]
        assert len(replayed) == 1 and {t.workload.gaps for t in replayed} == {gaps}   # max_test_tasks=1
        rates = replayed[0].workload.load().rates
        assert len(rates) == bins and (rates == 0).sum() == (gaps == "zero")


def test_a_trace_is_replayed_at_the_test_tasks_rate_over_an_episode(tmp_path):
    """It was the test task's mean rate over an hour, whatever the episode: up to 2x the load the agent met on the
    task (power's 300 s episodes of a step workload)."""
    from flash_rl.cases import episode_seconds, get_case
    from flash_rl.pipeline import test_tasks

    trace = tmp_path / "day.csv"
    trace.write_text("timestamp,requests\n" + "".join(f"{60 * i},{100 + i}\n" for i in range(30)))
    for case_name, config in (("autoscaling", "autoscaling.yaml"), ("power", "power.yaml")):
        cfg = load_config(CONFIG_DIR / config, [f"tasks.test_traces=['{trace}']"])
        case = get_case(case_name)
        family = case.build_family(cfg)
        seconds = episode_seconds(cfg)
        assert seconds == {"autoscaling": 1800.0, "power": 300.0}[case_name]
        replayed = [t for t in test_tasks(cfg, case, family) if t.name.startswith("trace:")]
        for task, test_task in zip(replayed, family.test, strict=True):
            curve = test_task.workload.realise(np.random.default_rng(0), seconds)
            assert task.workload.mean_rate == float(f"{curve.mean_rate(0.0, seconds):.6g}")


def test_a_quick_run_replays_traces_with_its_own_test_tasks_only(tmp_path):
    """Trace tasks were made from every test task of the family: a quick run (4 test tasks) with one trace adapted to
    12 tasks, among them trace versions of the 4 test tasks it leaves out."""
    from flash_rl.cases import get_case
    from flash_rl.pipeline import test_tasks

    trace = tmp_path / "day.csv"
    trace.write_text("timestamp,requests\n" + "".join(f"{60 * i},{100 + i}\n" for i in range(30)))
    case = get_case("autoscaling")
    cfg = load_config(case.config_path(True), [f"tasks.test_traces=['{trace}']"])
    kept = case.build_family(cfg).test[:cfg.adaptation.max_test_tasks]
    assert len(kept) == 4 and [t.name for t in test_tasks(cfg, case, case.build_family(cfg))] == [
        *(t.name for t in kept), *(f"trace:day:{t.name}" for t in kept)]


def test_a_trace_counted_in_minutes_is_read_in_minutes(tmp_path):
    from flash_rl.cases import get_case
    from flash_rl.pipeline import test_tasks

    trace = tmp_path / "minutes.csv"
    trace.write_text("minute,requests\n" + "".join(f"{i},{60 * (100 + i)}\n" for i in range(30)))
    cfg = load_config(CONFIG_DIR / "autoscaling.yaml", TINY + [
        f"tasks.test_traces=['{trace}']", "tasks.trace_time_column=minute", "tasks.trace_time_unit_s=60"])
    case = get_case("autoscaling")
    replayed = [t for t in test_tasks(cfg, case, case.build_family(cfg)) if t.name.startswith("trace:")]
    loaded = replayed[0].workload.load()
    assert loaded.bin_s == 60.0 and loaded.duration_s == 1800.0
    assert np.allclose(loaded.rates, 100 + np.arange(30))   # requests per second


def test_reproduce_power_case_tiny(tmp_path):
    """The power case end to end at toy size: held-out tasks on unseen server types, governors as references."""
    tiny = [o for o in TINY if not o.startswith("env.kwargs")] + ["env.kwargs={episode_s: 40.0}"]
    cfg = load_config(CONFIG_DIR / "power.yaml", tiny + [f"references.cache={tmp_path / 'refs.json'}"])
    summary = reproduce(cfg, tmp_path / "out", tmp_path / "run", command="test")
    assert summary["n_test_tasks"] == 1 and summary["methods"]["flash"]["runs"] == 2
    results = (tmp_path / "out" / "results.md").read_text()
    assert "ondemand (heuristic)" in results and "performance (heuristic)" in results
    assert "frequency sensitivity" in results  # a hidden parameter in the probe
    # another meta-training seed trains other experts: the reference cache must not hand it this seed's
    cached = len(json.loads((tmp_path / "refs.json").read_text()))
    reseeded = load_config(CONFIG_DIR / "power.yaml", tiny + [f"references.cache={tmp_path / 'refs.json'}",
                                                                   "run.seed=1"])
    reproduce(reseeded, tmp_path / "out1", tmp_path / "run1", command="test")
    assert len(json.loads((tmp_path / "refs.json").read_text())) == 2 * cached


def test_power_case_tests_on_unseen_server_types():
    from flash_rl.cases import get_case

    cfg = load_config(CONFIG_DIR / "power.yaml")
    family = get_case("power").build_family(cfg)
    assert not {t.server.name for t in family.train} & {t.server.name for t in family.test}


def test_resume_under_other_settings_is_refused_before_any_work(tmp_path, capsys):
    for command_name, run_dir in (("meta-train", tmp_path / "m"), ("reproduce", tmp_path / "r")):
        save_config(load_config(CONFIG_DIR / "autoscaling.yaml"), run_dir / "config.yaml")
        assert main([command_name, "--run-dir", str(run_dir), "--resume", "--set", "flash.context_len=8"]) == 2
        err = capsys.readouterr().err
        assert "flash: error: --resume: " in err and "flash.context_len: 32 then, 8 now" in err
        assert sorted(p.name for p in run_dir.iterdir()) == ["config.yaml"]   # nothing written


def test_the_reference_cache_key_names_the_case_and_its_policies():
    """A case whose heuristics change must not be scored against references cached under the old ones."""
    from dataclasses import replace

    from flash_envs.baselines.autoscalers import HPA
    from flash_rl.cases import get_case
    from flash_rl.pipeline import reference_settings

    cfg = load_config(CONFIG_DIR / "autoscaling.yaml", TINY + ["references.expert_timesteps=0"])
    case = get_case("autoscaling")
    settings = reference_settings(cfg, case, None)
    assert settings["case"] == "autoscaling" and {"HPA", "threshold", "static"} <= set(settings["policies"])
    fewer = replace(case, heuristics=lambda env: {"HPA": HPA(env)})
    assert reference_settings(cfg, fewer, None) != settings
    assert reference_settings(cfg, replace(case, name="mine"), None)["case"] == "mine"


def test_two_runs_sharing_a_reference_cache_keep_each_others_entries(tmp_path):
    """Each cache read the file once and rewrote it from memory: the last writer's entries were all that was left."""
    from flash_rl.adaptation import ReferenceCache, References
    from flash_rl.cases import get_case

    tasks = get_case("autoscaling").build_family(load_config(CONFIG_DIR / "autoscaling.yaml", TINY)).test
    first, second = (ReferenceCache(tmp_path / "refs.json", {"run.seed": seed}) for seed in (0, 1))
    first.put(tasks[0], References(tasks[0].name, 10000, 0.0, 1.0, "heuristic HPA", {}))
    second.put(tasks[1], References(tasks[1].name, 10000, 0.0, 2.0, "heuristic HPA", {}))
    again = [ReferenceCache(tmp_path / "refs.json", {"run.seed": seed}) for seed in (0, 1)]
    assert again[0].get(tasks[0], 10000).expert == 1.0 and again[1].get(tasks[1], 10000).expert == 2.0


def test_render_starts_without_torch(tmp_path):
    """Redrawing a results folder needs neither torch nor SB3 (about 2 s to import): the saved config's agents are
    not re-checked against SB3, the rest of it is."""
    shutil.copytree(Path(__file__).parents[1] / "results" / "autoscaling" / "quick", tmp_path / "quick")
    code = ("import sys\nfrom flash_rl.cli import main\nassert main(['reproduce', '--render', sys.argv[1]]) == 0\n"
            "print(sorted(m for m in ('torch', 'stable_baselines3') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "quick")], capture_output=True, text=True,
                         check=True).stdout
    assert out.splitlines()[-1] == "[]"
    config = tmp_path / "quick" / "config.yaml"
    config.write_text(re.sub(r"\bbudget: \d+", "budget: 0", config.read_text()))
    with pytest.raises(ConfigError, match="adaptation.budget must be >= 1"):
        render(tmp_path / "quick")


def test_a_config_read_without_its_agents_checked_skips_only_them():
    bad_algo = ["flash.algo=NOPE"]
    with pytest.raises(ConfigError, match="flash.algo"):
        load_config(CONFIG_DIR / "autoscaling.yaml", bad_algo)
    assert load_config(CONFIG_DIR / "autoscaling.yaml", bad_algo, runnable=False).flash.algo == "NOPE"
    with pytest.raises(ConfigError, match="tasks.trace_gaps"):
        load_config(CONFIG_DIR / "autoscaling.yaml", ["tasks.trace_gaps=nope"], runnable=False)


class _RecordingAgent:
    """Records each adapt call's task, budget and settings; ``fresh`` gives a new one that says its seed."""

    def __init__(self, name: str, calls: list) -> None:
        self.name, self.calls = name, calls

    def adapt(self, task, budget, **kwargs):
        self.calls.append((self.name, task, budget, kwargs))
        return []

    def fresh(self, seed):
        return _RecordingAgent(f"{self.name} fresh {seed}", self.calls)


@pytest.mark.parametrize("seed", [0, 3])
def test_every_method_adapts_with_the_same_budget_seed_and_evaluation_episodes(seed):
    """Each method gets the config's budget, evaluation interval, adaptation seed and evaluation seeds (a method
    whose evaluation episodes did not move with the adaptation seed passed the pipeline's tests)."""
    from flash_rl.config import METHOD_MODEL
    from flash_rl.pipeline import adapt_once

    cfg = load_config(CONFIG_DIR / "autoscaling.yaml")
    a = cfg.adaptation
    calls: list = []
    models = {name: _RecordingAgent(name, calls) for name in set(METHOD_MODEL.values())}
    for method in METHOD_MODEL:
        adapt_once(models, method, "task", seed, cfg)
    protocol = {"eval_every": a.eval_every, "eval_seed": a.eval_seed + seed, "seed": seed}
    assert calls == [("flash", "task", a.budget, protocol),
                     ("flash", "task", a.budget, {**protocol, "zero_embedding": True}),
                     ("transfer", "task", a.budget, protocol),
                     (f"transfer fresh {1000 + seed}", "task", a.budget, protocol),
                     ("maml", "task", a.budget, protocol)]


def test_each_policy_of_the_expert_sweeps_has_the_settings_its_name_gives():
    """The tuned-heuristic sweeps: every autoscaling entry is the HPA or static policy its name describes (target,
    CPU and memory limits, replicas), and the power sweep holds every governor at its defaults plus ondemand at each
    up_threshold it names."""
    import gymnasium as gym

    from flash_envs.baselines.autoscalers import HPA, StaticPolicy
    from flash_envs.baselines.governors import GOVERNORS, Ondemand
    from flash_rl.cases import get_case

    env = gym.make("flash/Autoscaling-v0", episode_steps=8)
    sweep = get_case("autoscaling").expert_sweep(env)
    for name, policy in sweep.items():
        if match := re.fullmatch(r"HPA ([\d.]+) @ (\d+) m", name):
            assert isinstance(policy, HPA) and policy.target == float(match[1])
            assert policy.limit_targets == (int(match[2]), 2048), name
        else:
            match = re.fullmatch(r"static (\d+) x (\d+) m x (\d+) MiB", name)
            assert match and isinstance(policy, StaticPolicy) and policy.replicas == int(match[1]), name
            assert policy.limit_targets == (int(match[2]), int(match[3])), name
    assert {p.limit_targets[1] for p in sweep.values() if isinstance(p, StaticPolicy)} == {1024, 2048}
    power = get_case("power").expert_sweep(gym.make("flash/PowerManagement-v0"))
    assert set(GOVERNORS) < set(power)
    assert all(type(power[name]) is governor for name, governor in GOVERNORS.items())
    for name, policy in power.items():
        if name not in GOVERNORS:
            threshold = float(re.fullmatch(r"ondemand up_threshold ([\d.]+)", name)[1])
            assert isinstance(policy, Ondemand) and policy.up_threshold == threshold


def test_the_power_probe_features_are_those_at_the_fastest_p_state():
    """The probe's "load at f_max" and "log SLO / service time" take the app's service time at the server's fastest
    P-state (the most millicores): load = mean rate x that service time / cores."""
    import math

    from flash_rl.cases import get_case
    from flash_envs.power_tasks import PowerTaskFamily

    task = PowerTaskFamily.generate(n_train=2, n_test=1, seed=0).train[0]
    server, app = task.server, task.app
    fastest = max(server.millicores(level) for level in range(server.n_levels))
    assert fastest > min(server.millicores(level) for level in range(server.n_levels))
    rate = task.workload.realise(np.random.default_rng(0), 3600.0).mean_rate(0.0, 3600.0)
    features = get_case("power").task_features(task)
    assert features["load at f_max"] == pytest.approx(rate * app.mean_service_s(fastest) / server.cores)
    assert features["log SLO / service time"] == pytest.approx(
        math.log(app.slo_ms / (1000 * app.mean_service_s(fastest))))


def test_effective_env_kwargs_take_the_registrations_over_the_defaults_and_the_given_over_both():
    """effective_env_kwargs: the constructor's defaults, overridden by the registration's kwargs, overridden by the
    kwargs given."""
    import gymnasium as gym

    from flash_rl.cases import effective_env_kwargs

    env_id = "flash/EffectiveKwargsProbe-v0"
    gym.register(env_id, entry_point=gym.spec("flash/Autoscaling-v0").entry_point,
                 kwargs={"episode_steps": 30, "control_interval_s": 20.0})
    try:
        assert effective_env_kwargs(env_id, {})["episode_steps"] == 30
        given = effective_env_kwargs(env_id, {"episode_steps": 10})
        assert given["episode_steps"] == 10 and given["control_interval_s"] == 20.0
    finally:
        del gym.registry[env_id]

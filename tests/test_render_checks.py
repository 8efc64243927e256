"""``flash reproduce --render``: a folder whose files disagree, or whose summary.json is not one, is a one-line error
naming the file; tables of one run, or without a speedup to show, are written without NaN or empty sections."""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path
from typing import Callable, Sequence

import pytest

from flash_rl.adaptation import References
from flash_rl.cases import CONFIG_DIR
from flash_rl.cli import main
from flash_rl.config import load_config, save_config
from flash_rl.report import render, write_report

QUICK_RESULTS = Path(__file__).parents[1] / "results" / "autoscaling" / "quick"


def _edit(path: Path, edit) -> None:
    path.write_text(edit(path.read_text()))


def _drop_lines(path: Path, drop) -> None:
    _edit(path, lambda text: "".join(line for line in text.splitlines(keepends=True) if not drop(line)))


def _edit_summary(folder: Path, edit) -> None:
    summary = json.loads((folder / "summary.json").read_text())
    edit(summary)
    (folder / "summary.json").write_text(json.dumps(summary))


@pytest.mark.parametrize("damage, message", [
    (lambda d: _drop_lines(d / "episodes_to_adapt.csv", lambda line: line.startswith("transfer,")),
     "episodes_to_adapt.csv: no row for the run(s) (method, task, seed) [('transfer', 'task-24', 0), "
     "('transfer', 'task-24', 1), ('transfer', 'task-25', 0)] ..., which summary.json lists"),
    (lambda d: _drop_lines(d / "curves.csv", lambda line: line.startswith("flash,task-24,0,10000,3,")),
     "curves.csv: the curve of the run (method, task, seed) ('flash', 'task-24', 0) lacks the evaluation(s) after "
     "[3] fine-tuning episode(s) (config.yaml: budget 15, eval_every 1)"),
    (lambda d: _drop_lines(d / "curves.csv", lambda line: line.startswith("maml,task-25,1,")),
     "curves.csv: no curve for the run(s) (method, task, seed) [('maml', 'task-25', 1)], which summary.json lists"),
    (lambda d: _edit(d / "episodes_to_adapt.csv", lambda text: text + text.splitlines()[1].replace("flash", "mine")),
     "episodes_to_adapt.csv: rows for run(s) (method, task, seed) [('mine', 'task-24', 0)] that summary.json does "
     "not list"),
    (lambda d: _edit(d / "episodes_to_adapt.csv", lambda text: text + text.splitlines()[1]),
     "episodes_to_adapt.csv: more than one row for the run(s) (method, task, seed) [('flash', 'task-24', 0)]"),
    (lambda d: _edit_summary(d, lambda s: s.update(seeds=3)),
     "episodes_to_adapt.csv: no row for the run(s) (method, task, seed) [('flash', 'task-24', 2)"),
    (lambda d: _edit(d / "episodes_to_adapt.csv", lambda text: re.sub(r"(?m)^((?:[^,\n]*,){4})[^,\n]*,", r"\1", text)),
     "episodes_to_adapt.csv:1: missing column(s) ['censored']"),   # (a KeyError traceback once rows were checked)
    (lambda d: _edit_summary(d, lambda s: s["methods"].pop("maml")),
     "episodes_to_adapt.csv: rows for run(s) (method, task, seed) [('maml', 'task-24', 0)"),
    (lambda d: _edit_summary(d, lambda s: s.update(n_test_tasks=5)),
     "curves.csv and {d}/episodes_to_adapt.csv hold 4 held-out task(s) between them, where {d}/summary.json says "
     "n_test_tasks 5"),
])
def test_render_refuses_files_that_disagree_with_each_other(tmp_path, capsys, damage, message):
    """Every run summary.json counts (methods x tasks x seeds) must have its row in episodes_to_adapt.csv and its
    whole curve in curves.csv: a missing one used to drop its speedup row from results.md in silence, or fail in
    numpy without naming the file."""
    folder = tmp_path / "quick"
    shutil.copytree(QUICK_RESULTS, folder)
    damage(folder)
    written = {name: (folder / name).read_bytes() for name in ("results.md", "summary.json")}
    assert main(["reproduce", "--render", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{folder}/{message.format(d=folder)}" in err
    assert {name: (folder / name).read_bytes() for name in written} == written     # nothing rewritten


@pytest.mark.parametrize("content, problem", [
    ("{}", "it lacks methods, references, n_test_tasks, seeds, phase_seconds, total_seconds, command, machine"),
    ("[1, 2]", "it lacks methods, references"),
    ("null", "it lacks methods, references"),
    (lambda s: s.pop("methods"), "it lacks methods;"),
    (lambda s: s.update(methods=[]), "methods must map each method to its statistics"),
    (lambda s: s["methods"].update(flash=1), "methods.flash lacks label, runs, censored"),
    (lambda s: s["references"].pop("heuristics"), "references lacks heuristics"),
    (lambda s: s.update(seeds="2"), "seeds must be a whole number, got '2'"),
    (lambda s: s.update(threshold_sensitivity=[]), "threshold_sensitivity must map each threshold"),
])
def test_render_refuses_a_summary_that_reproduce_did_not_write(tmp_path, capsys, content, problem):
    folder = tmp_path / "quick"
    shutil.copytree(QUICK_RESULTS, folder)
    if callable(content):
        _edit_summary(folder, content)
    else:
        (folder / "summary.json").write_text(content)
    assert main(["reproduce", "--render", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{folder}/summary.json: {problem}" in err and "not a summary.json that flash reproduce wrote" in err


def _write_task_t(out: Path, seeds: int, curve: Callable[[str, int, int, int], float], methods: Sequence[str],
                  probe: dict | None = None) -> None:
    """A reproduction folder of one held-out task, ``t`` (random 0, expert 10: threshold 9), x ``seeds`` seeds of
    ``methods``: method ``m``'s run of seed ``s`` returns ``curve(m, s, e, budget)`` after ``e`` fine-tuning episodes
    of the quick config's ``budget`` (``probe`` as the linear probe's results)."""
    cfg = load_config(CONFIG_DIR / "autoscaling_quick.yaml", [f"adaptation.seeds={seeds}"], runnable=False)
    refs = {("t", 10000): References("t", 10000, 0.0, 10.0, "heuristic HPA", {"HPA": 10.0})}
    budget = cfg.adaptation.budget
    records = [{"method": m, "task": "t", "seed": s, "eval_seed": 10000,
                "curve": [(e, curve(m, s, e, budget)) for e in range(budget + 1)]}
               for m in methods for s in range(seeds)]
    out.mkdir()
    write_report(out, cfg, records, refs, probe, {"adapt": 1.0}, quick=True, command="test", total_seconds=1.0)
    save_config(cfg, out / "config.yaml")


def _write_one_run(out: Path, methods: list[str], probe: dict | None = None) -> str:
    """A reproduction folder of one held-out task x one seed of ``methods`` (toy curves, and ``probe`` as the linear
    probe's results); returns its results.md."""
    _write_task_t(out, 1, lambda m, s, e, budget: min(10.0, 2.0 * (e + methods.index(m))), methods, probe)
    return (out / "results.md").read_text()


def test_one_run_shows_no_ci_and_a_lone_method_no_speedup_section(tmp_path):
    """One run gives nothing to resample: its CIs print as [no CI] (as config-eval's do), not [nan, nan]; without
    FLASH and another method there is no speedup, and no empty Speedup table."""
    table = _write_one_run(tmp_path / "pair", ["flash", "transfer"])
    assert "nan" not in table.lower()
    assert "| FLASH | 6.0 [no CI] | 6.0 [no CI] | 0/1 |" in table
    assert "| transfer learning vs FLASH | 0.83 [no CI] | [no CI] | 0.83 |" in table
    assert "| 90% | 6.0 (0) | 5.0 (0) | 0.83 [no CI] | [no CI] |" in table
    lone = _write_one_run(tmp_path / "lone", ["flash"])
    assert "## Speedup" not in lone and "vs FLASH" not in lone and "## Threshold sensitivity" in lone
    for folder, text in ((tmp_path / "pair", table), (tmp_path / "lone", lone)):   # render writes the same
        summary = (folder / "summary.json").read_bytes()
        json.loads(summary, parse_constant=lambda name: pytest.fail(f"{name} in summary.json: not strict JSON"))
        render(folder)
        assert (folder / "results.md").read_text() == text and (folder / "summary.json").read_bytes() == summary


def test_sustained_success_is_reported_and_rendered_where_a_run_puts_it(tmp_path):
    """A run that reaches the threshold once and falls back counts, in this check, from when it stays."""
    _write_one_run(tmp_path / "run", ["flash", "transfer"])
    folder = tmp_path / "run"
    summary = json.loads((folder / "summary.json").read_text())
    keys = list(summary)
    assert keys[keys.index("threshold_sensitivity") + 1] == "sustained"
    assert "## Sustained success" in (folder / "results.md").read_text()
    del summary["sustained"]   # a summary written before it: render adds it, in its place
    (folder / "summary.json").write_text(json.dumps(summary))
    render(folder)
    again = json.loads((folder / "summary.json").read_text())
    assert list(again) == keys and again["sustained"]["methods"] == {"flash": {"mean": 6.0, "censored": 0},
                                                                     "transfer": {"mean": 5.0, "censored": 0}}


def test_runs_whose_return_never_changes_are_counted_and_rendered_where_a_run_puts_them(tmp_path):
    """A run whose every evaluation returns its zero-shot return (to curves.csv's 4 decimals) counts as unchanged."""
    cfg = load_config(CONFIG_DIR / "autoscaling_quick.yaml", ["adaptation.seeds=1"], runnable=False)
    budget = cfg.adaptation.budget
    refs = {("t", 10000): References("t", 10000, -9.0, -1.0, "heuristic HPA", {"HPA": -1.0})}
    flat = [(e, -5.0 + 1e-6 * (e % 2)) for e in range(budget + 1)]          # moves below curves.csv's 4 decimals
    rising = [(e, -5.0 + 0.01 * e) for e in range(budget + 1)]
    records = [{"method": m, "task": "t", "seed": 0, "eval_seed": 10000, "curve": curve}
               for m, curve in (("flash", flat), ("transfer", rising))]
    folder = tmp_path
    write_report(folder, cfg, records, refs, None, {"adapt": 1.0}, quick=True, command="test", total_seconds=1.0)
    save_config(cfg, folder / "config.yaml")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["unchanged_returns"] == {"flash": {"unchanged": 1, "runs": 1},
                                            "transfer": {"unchanged": 0, "runs": 1}}
    keys = list(summary)
    assert keys[keys.index("sustained") + 1] == "unchanged_returns"
    text = (folder / "results.md").read_text()
    assert "## Runs whose return never changes" in text
    assert "| FLASH | 1/1 |" in text and "| transfer learning | 0/1 |" in text
    del summary["unchanged_returns"]   # a summary written before it: render adds it, in its place
    (folder / "summary.json").write_text(json.dumps(summary))
    render(folder)
    again = json.loads((folder / "summary.json").read_text())
    assert list(again) == keys and (folder / "results.md").read_text() == text

def test_a_task_whose_expert_ties_random_still_gets_its_report(tmp_path):
    """Its normalised returns are NaN (compute_references warns of it); the curve plot bootstrapped them and, once the
    CIs refused values that are not finite, crashed after all the training."""
    cfg = load_config(CONFIG_DIR / "autoscaling_quick.yaml", ["adaptation.seeds=2"], runnable=False)
    refs = {("tie", 10000): References("tie", 10000, -5.0, -5.0, "heuristic HPA", {"HPA": -5.0}),
            ("t", 10000): References("t", 10000, -9.0, -1.0, "heuristic HPA", {"HPA": -1.0})}
    records = [{"method": m, "task": task, "seed": seed, "eval_seed": 10000,
                "curve": [(e, -5.0 + e) for e in range(cfg.adaptation.budget + 1)]}
               for m in ("flash", "transfer") for task in ("tie", "t") for seed in (0, 1)]
    write_report(tmp_path, cfg, records, refs, None, {"adapt": 1.0}, quick=True, command="test", total_seconds=1.0)
    assert (tmp_path / "adaptation_curves.png").is_file() and (tmp_path / "results.md").is_file()


def test_the_plots_of_a_lone_method_are_laid_out_without_a_warning(tmp_path):
    """One method's x axis used to span only its points' jitter, leaving the "censored" label (at x = -0.4) far off
    the figure: matplotlib warned "Tight layout not applied"."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _write_one_run(tmp_path / "lone", ["flash"])
        render(tmp_path / "lone")


def test_a_probe_over_one_test_task_renders(tmp_path):
    """One test task leaves the probe's test R^2 undefined: NaN, written to summary.json as null, which --render read
    back as None and could not format (a TypeError traceback)."""
    probe = {"r2_test": {"log SLO": float("nan")}, "r2_train": {"log SLO": 0.5}, "mean_r2_test": float("nan"),
             "mean_r2_train": 0.5, "samples": {"train": 4, "test": 1}}
    table = _write_one_run(tmp_path / "one", ["flash", "transfer"], probe)
    assert "mean R^2 test nan (train 0.50)" in table and "| log SLO | nan | 0.50 |" in table
    summary = (tmp_path / "one" / "summary.json").read_bytes()
    assert b'"mean_r2_test": null' in summary
    render(tmp_path / "one")
    assert (tmp_path / "one" / "results.md").read_text() == table
    assert (tmp_path / "one" / "summary.json").read_bytes() == summary


def _write_steps(out: Path, runs: dict[str, list[tuple[int | None, float]]]) -> dict:
    """A reproduction folder of one held-out task (random 0, expert 10: threshold 9) x ``len(runs[m])`` seeds: each
    run ``(k, final)`` of method ``m`` returns 0 until ``k`` fine-tuning episodes (never: None), then 10, and
    ``final`` at its last evaluation (the budget's). Returns summary.json."""
    def curve(m: str, s: int, e: int, budget: int) -> float:
        k, final = runs[m][s]
        return final if e == budget else 10.0 if k is not None and e >= k else 0.0

    _write_task_t(out, len(next(iter(runs.values()))), curve, list(runs))
    return json.loads((out / "summary.json").read_text())


def test_the_summary_gives_each_methods_mean_episodes_its_returns_and_the_ratio_of_medians(tmp_path):
    """Skewed runs, where mean and median differ: a method's ``mean`` is the mean of its runs' episodes-to-adapt, its
    zero-shot and final returns the means of its curves' first and last evaluations, and the speedup's ratio of
    medians is the other method's median episodes-to-adapt over FLASH's (in summary.json and results.md, and again
    after --render)."""
    folder = tmp_path / "run"
    summary = _write_steps(folder, {"flash": [(0, 12.0), (1, 11.0), (14, 13.0)],       # episodes 1, 2, 15
                                    "transfer": [(2, 10.0), (3, 10.0), (13, 10.0)]})   # episodes 3, 4, 14
    flash, transfer = summary["methods"]["flash"], summary["methods"]["transfer"]
    assert flash["mean"] == pytest.approx(18 / 3) and transfer["mean"] == pytest.approx(21 / 3)   # medians 2 and 4
    assert flash["final_return"] == pytest.approx(12.0) and flash["final_normalised"] == pytest.approx(1.2)
    # zero-shot: only the run adapted at 0 episodes returns 10 before fine-tuning (the next evaluation has two)
    assert flash["zero_shot_return"] == pytest.approx(10 / 3) and flash["zero_shot_normalised"] == pytest.approx(1 / 3)
    assert transfer["final_return"] == pytest.approx(10.0)
    speedup = summary["speedup"]["transfer/flash"]
    assert speedup["ratio_of_medians"] == pytest.approx(4 / 2) and speedup["ratio_of_means"] == pytest.approx(21 / 18)
    text = (folder / "results.md").read_text()
    assert "12.00 (1.20) |" in text and re.search(r"\| transfer learning vs FLASH \| 1\.17 .*\| 2\.00 \|", text)
    render(folder)
    assert json.loads((folder / "summary.json").read_text())["speedup"] == summary["speedup"]
    assert (folder / "results.md").read_text() == text


def test_a_run_that_first_reaches_the_threshold_at_the_last_evaluation_is_not_counted_as_censored(tmp_path):
    """It counts budget + 1 episodes, as a censored run does, but only runs that never reach the threshold within
    the budget are the summary's censored ones."""
    summary = _write_steps(tmp_path / "run", {"flash": [(0, 10.0), (15, 10.0), (None, 0.0)]})   # budget 15
    assert summary["methods"]["flash"]["censored"] == 1 and summary["methods"]["flash"]["runs"] == 3
    assert summary["methods"]["flash"]["mean"] == pytest.approx((1 + 16 + 16) / 3)
    assert "| 1/3 |" in (tmp_path / "run" / "results.md").read_text()

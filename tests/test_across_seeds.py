"""``flash compare-seeds``: speedups of reproductions that differ only in their meta-training seed, per seed and pooled
with a CI over seeds and tasks; folders that are not one config's seeds are refused."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pytest
from scipy import stats

from flash_rl.across_seeds import _verdict, check_comparable, compare
from flash_rl.adaptation import References
from flash_rl.cases import CONFIG_DIR
from flash_rl.cli import main
from flash_rl.config import load_config, save_config
from flash_rl.report import read_reproduction, write_report
from flash_rl.stats import clustered_ratio_of_means_ci, crossed_ratio_of_means_ci, geometric_mean_ci

RESULTS = Path(__file__).parents[1] / "results"
TASKS = ("a", "b", "c")


def _write_curves(out: Path, seed: int, curve: Callable[[str, int, int, int], float], methods: Sequence[str],
                  overrides: tuple[str, ...] = ()) -> Path:
    """A reproduction folder of meta-training seed ``seed``: 3 tasks x 2 seeds (random 0, expert 10: threshold 9)
    of ``methods``, where method ``m``'s run of task ``i`` and seed ``s`` returns ``curve(m, i, s, e)`` after ``e``
    fine-tuning episodes."""
    cfg = load_config(CONFIG_DIR / "autoscaling_quick.yaml", ["adaptation.seeds=2", f"run.seed={seed}", *overrides],
                      runnable=False)
    refs = {(t, 10000 + s): References(t, 10000 + s, 0.0, 10.0, "heuristic HPA", {"HPA": 10.0})
            for t in TASKS for s in range(2)}
    records = [{"method": m, "task": t, "seed": s, "eval_seed": 10000 + s,
                "curve": [(e, curve(m, i, s, e)) for e in range(cfg.adaptation.budget + 1)]}
               for m in methods for i, t in enumerate(TASKS) for s in range(2)]
    out.mkdir(parents=True)
    write_report(out, cfg, records, refs, None, {"adapt": 1.0}, quick=True, command="test", total_seconds=1.0)
    save_config(cfg, out / "config.yaml")
    return out


def _write_seed(out: Path, seed: int, flash_slope: float, overrides: tuple[str, ...] = (),
                methods: tuple[str, ...] = ("flash", "transfer")) -> Path:
    """A reproduction folder of meta-training seed ``seed``: 3 tasks x 2 seeds; transfer learning's return (and any
    other method's) climbs 1 per episode, FLASH's ``flash_slope`` (threshold 9 of 10: the faster climber adapts in
    fewer episodes)."""
    def curve(m: str, i: int, s: int, e: int) -> float:
        return min(10.0, (flash_slope if m == "flash" else 1.0) * (e + 1 + i + s))

    return _write_curves(out, seed, curve, methods, overrides)


def _usage_error(argv: list[str]) -> int:
    """The exit status of a ``flash`` command that ends in argparse's usage error."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    return stop.value.code


def test_the_crossed_bootstrap_covers_the_spread_between_seeds_that_resampling_tasks_alone_misses():
    """Two seeds whose ratios are 2x and 0.5x on every task: the pooled ratio's CI over tasks alone is a point (every
    task pools to the same ratio), while the crossed one, resampling seeds too, spans both."""
    seeds = [s for s in ("s0", "s1") for _ in range(8)]
    tasks = [f"t{t}" for _ in range(2) for t in range(8)]
    flash = np.tile(np.arange(1.0, 9.0), 2) * np.repeat([1.0, 4.0], 8)
    other = flash * np.repeat([2.0, 0.5], 8)
    point, low, high = crossed_ratio_of_means_ci(other, flash, seeds, tasks)
    assert point == pytest.approx(other.sum() / flash.sum())
    assert low < 0.6 and high > 1.9
    _, task_low, task_high = clustered_ratio_of_means_ci(other, flash, tasks)
    assert task_low == pytest.approx(task_high)


def test_the_crossed_bootstraps_interval_is_the_central_95_percent_of_its_resampled_ratios():
    """With 2 seeds x 2 tasks a resample draws one seed twice and one task twice with probability 1/4 x 1/4 = 6.25%,
    more than each 2.5% tail, so the 95% interval runs exactly from the lowest cell's ratio to the highest. With 8 of
    each such a draw has probability 8^-14, so both ends lie strictly inside the cells' range."""
    point, low, high = crossed_ratio_of_means_ci([1.0, 2.0, 2.0, 4.0], [1.0] * 4, ["s0", "s0", "s1", "s1"],
                                                 ["t0", "t1", "t0", "t1"])
    assert (point, low, high) == (2.25, 1.0, 4.0)
    seeds, tasks = np.repeat(np.arange(8), 8).astype(str), np.tile(np.arange(8), 8).astype(str)
    other = 1.0 + seeds.astype(float) + tasks.astype(float)   # cell ratios from 1 to 15
    point, low, high = crossed_ratio_of_means_ci(other, np.ones(64), seeds, tasks)
    assert 1.0 < low < point < high < 15.0


def test_the_crossed_bootstrap_refuses_factors_that_are_not_crossed_and_has_no_ci_for_one_level():
    with pytest.raises(ValueError, match=r"must be crossed, but \(s1, t0\) has no pair"):
        crossed_ratio_of_means_ci([1, 2, 3], [1, 1, 1], ["s0", "s0", "s1"], ["t0", "t1", "t1"])
    point, low, high = crossed_ratio_of_means_ci([2, 4], [1, 1], ["s0", "s0"], ["t0", "t1"])
    assert point == 3.0 and math.isnan(low) and math.isnan(high)
    with pytest.raises(ValueError, match="equal shapes"):
        crossed_ratio_of_means_ci([1, 2], [1, 1], ["s0"], ["t0", "t1"])


def test_per_seed_ratios_are_each_reproductions_own_and_the_pooled_one_is_the_ratio_of_all_runs(tmp_path):
    folders = [_write_seed(tmp_path / f"s{seed}", seed, slope) for seed, slope in ((0, 2.0), (1, 0.5), (2, 1.0))]
    result = compare({f: read_reproduction(f) for f in folders})
    transfer = result["metrics"]["first_passage"]["transfer"]
    for row, folder in zip(transfer["seeds"], folders):
        own = json.loads((folder / "summary.json").read_text())["speedup"]["transfer/flash"]
        assert row["ratio_of_means"] == pytest.approx(own["ratio_of_means"])
        assert row["ci"] == pytest.approx(own["ci"]) and row["ci_tasks"] == pytest.approx(own["ci_tasks"])
    assert [r["seed"] for r in transfer["seeds"]] == [0, 1, 2]
    assert transfer["seeds"][0]["ratio_of_means"] > 1 > transfer["seeds"][1]["ratio_of_means"]
    pooled = transfer["pooled"]
    assert pooled["ratio_of_means"] == pytest.approx(pooled["mean"] / pooled["flash_mean"])
    means = [(r["mean"], r["flash_mean"]) for r in transfer["seeds"]]   # equal runs per seed: the mean of means
    assert pooled["mean"] == pytest.approx(np.mean([m for m, _ in means]))
    assert pooled["runs"] == 18 and pooled["censored"] == sum(r["censored"] for r in transfer["seeds"])
    for low, high in (pooled["ci_seeds_and_tasks"], pooled["ci_seeds_t"]):
        assert low < 1 < high   # one seed faster, one slower: no clear difference across seeds
    ratios = [r["ratio_of_means"] for r in transfer["seeds"]]
    assert pooled["geometric_mean_of_seeds"] == pytest.approx(np.exp(np.mean(np.log(ratios))))


def test_compare_seeds_writes_its_report_table_plot_and_json(tmp_path, capsys):
    folders = [str(_write_seed(tmp_path / f"s{seed}", seed, 2.0)) for seed in (3, 1)]
    out = tmp_path / "out"
    assert main(["compare-seeds", *folders, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (out / "across_seeds.md").read_text() == printed
    assert printed.endswith(f"\nRegenerate: `flash compare-seeds {' '.join(folders)} --out {out}`\n")
    # transfer learning reaches 9 after 9 - task - seed episodes (mean 7.5), FLASH after 5 - task - seed (3.5)
    assert "| transfer learning | seed 1 | 7.5 (0) | 3.5 (0) | 2.14x |" in printed
    assert "| transfer learning | 7.5 (0/12) | 3.5 (0/12) | 2.14x [" in printed
    assert "## Sustained success" in printed and "nan" not in printed.lower()
    assert (out / "across_seeds.png").stat().st_size > 0
    saved = json.loads((out / "across_seeds.json").read_text())
    assert list(saved["folders"].values()) == [1, 3]   # seed order
    assert main(["compare-seeds", *folders, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == saved


@pytest.mark.parametrize("second, message", [
    ((0, (), ("flash", "transfer")),
     "both have run.seed 0: the same meta-training twice is not two pieces of evidence"),
    ((1, ("adaptation.threshold=0.8",), ("flash", "transfer")),
     "differ in more than the meta-training seed (adaptation.threshold: 0.9 vs 0.8)"),
    ((1, (), ("flash",)), "ran ['flash', 'transfer'] and {other} ['flash']: compare-seeds compares the same methods"),
    ((1, (), ("flash", "maml")), "ran ['flash', 'transfer'] and {other} ['flash', 'maml']"),
])
def test_folders_that_are_not_one_configs_seeds_are_refused_in_either_order(tmp_path, capsys, second, message):
    """Methods that differ were a KeyError traceback when the second folder lacked one the first had."""
    first = _write_seed(tmp_path / "first", 0, 2.0)
    seed, overrides, methods = second
    other = _write_seed(tmp_path / "other", seed, 2.0, overrides, methods)
    for order in ([first, other], [other, first]):
        assert _usage_error(["compare-seeds", *map(str, order)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 2 and "Traceback" not in err   # the usage line and the error
        if order[0] == first:
            assert message.format(other=other) in err


def test_one_folder_or_one_given_twice_is_a_usage_error(tmp_path, capsys, monkeypatch):
    folder = _write_seed(tmp_path / "s0", 0, 2.0)
    assert _usage_error(["compare-seeds", str(folder)]) == 2
    assert "give at least two reproduction folders" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    assert _usage_error(["compare-seeds", str(folder), "s0/"]) == 2   # one folder, spelled two ways
    assert "a folder is given twice" in capsys.readouterr().err


def _damage_curve(folder: Path, old: str, new: str, last: bool = False) -> None:
    """Replace ``old`` by ``new`` in the first (or ``last``) line of transfer learning's curve on task b, seed 1."""
    lines = (folder / "curves.csv").read_text().splitlines(keepends=True)
    at = [i for i, line in enumerate(lines) if line.startswith("transfer,b,1,10001,")][-1 if last else 0]
    lines[at] = lines[at].replace(old, new, 1)
    (folder / "curves.csv").write_text("".join(lines))


@pytest.mark.parametrize("damage, problem", [
    (lambda d: shutil.rmtree(d), "is not a finished reproduction"),
    (lambda d: (d / "summary.json").write_text("{"), "Expecting property name"),
    (lambda d: (d / "config.yaml").write_text("case: autoscaling\nadaptation: {budget: -3}"), "budget"),
    # found by an audit: an empty config.yaml was read as the default (autoscaling) config; a damaged field was not
    # traced to its file and line; a return of nan was read and counted as not reached
    (lambda d: (d / "config.yaml").write_text(""),
     "config.yaml is not the config a reproduction saves: it has no case"),
    (lambda d: _damage_curve(d, ",10001,", ",x,"), "curves.csv, line "),
    (lambda d: _damage_curve(d, ",10.0000,", ",nan,", last=True), "return 'nan' is not a finite number"),
    (lambda d: _damage_curve(d, ",10.0000,", ",0.0000,", last=True),   # first passage as before, never sustained
     "the sustained success's (at the 0.9 threshold) episodes-to-adapt from curves.csv differ from summary.json's"),
])
def test_a_damaged_folder_is_one_line_naming_it(tmp_path, capsys, damage, problem):
    """A damaged file was a traceback; returns that no longer give the saved sustained success (a curve that falls
    back at its last evaluation) were compared all the same."""
    good, folder = _write_seed(tmp_path / "s0", 0, 2.0), _write_seed(tmp_path / "s1", 1, 2.0)
    damage(folder)
    assert main(["compare-seeds", str(good), str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"flash: error: {folder}: cannot compare: ") and problem in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_the_geometric_mean_of_seeds_has_a_t_interval_as_wide_as_their_spread():
    point, low, high = geometric_mean_ci([0.5, 2.0])
    assert point == pytest.approx(1.0)
    assert low == pytest.approx(np.exp(-12.706 * np.log(2) * np.sqrt(2) / np.sqrt(2)), rel=1e-3)   # t(0.975, 1)
    assert high == pytest.approx(1 / low)
    assert geometric_mean_ci([3.0, 3.0]) == pytest.approx((3.0, 3.0, 3.0))
    with pytest.raises(ValueError, match="must be positive"):
        geometric_mean_ci([1.0, 0.0])


def test_the_committed_autoscaling_seeds_compare_to_their_own_results():
    """The per-seed rows of the committed meta-training seeds are the speedups each results.md reports."""
    folders = [RESULTS / "autoscaling", *sorted((RESULTS / "autoscaling").glob("meta_seed_*"))]
    result = compare({f: read_reproduction(f) for f in folders})
    for row in result["metrics"]["first_passage"]["transfer"]["seeds"]:
        folder = folders[0] if row["seed"] == 0 else RESULTS / "autoscaling" / f"meta_seed_{row['seed']}"
        own = json.loads((folder / "summary.json").read_text())
        assert row["ratio_of_means"] == pytest.approx(own["speedup"]["transfer/flash"]["ratio_of_means"])
        sustained = result["metrics"]["sustained"]["transfer"]["seeds"][folders.index(folder)]
        assert sustained["ratio_of_means"] == pytest.approx(own["sustained"]["speedup_transfer_vs_flash"]
                                                            ["ratio_of_means"])


def _write_seed_of_steps(out: Path, seed: int, episodes: dict[str, list[int | None]]) -> Path:
    """A reproduction folder of meta-training seed ``seed``: 3 tasks x 2 seeds, whose runs of method ``m`` (in the
    order a0, a1, b0, b1, c0, c1) reach the threshold (9 of 10) at ``episodes[m]`` episodes-to-adapt and stay there
    (None: never, censored at 16)."""
    def curve(m: str, i: int, s: int, e: int) -> float:
        n = episodes[m][2 * i + s]
        return 10.0 if n is not None and e + 1 >= n else 0.0

    return _write_curves(out, seed, curve, list(episodes))


def _mostly_censored_flash(tmp_path: Path) -> list[str]:
    """Two seeds: on seed 0 FLASH adapts in 1 episode but for one censored run (mean 3.5, median 1), transfer
    learning in 4; on seed 1 FLASH never adapts (all 6 censored), transfer learning in 2. 7 of FLASH's 12 runs are
    censored, none of transfer learning's."""
    return [str(_write_seed_of_steps(tmp_path / "s0", 0, {"flash": [1, 1, 1, 1, 1, None], "transfer": [4] * 6})),
            str(_write_seed_of_steps(tmp_path / "s1", 1, {"flash": [None] * 6, "transfer": [2] * 6}))]


def test_each_seeds_row_gives_its_own_methods_mean_and_censored_runs(tmp_path, capsys):
    """A seed's row gives the method's mean episodes-to-adapt and censored runs, and FLASH's mean (not median) and
    censored runs, each method its own."""
    folders = _mostly_censored_flash(tmp_path)
    result = compare({Path(f): read_reproduction(Path(f)) for f in folders})
    rows = result["metrics"]["first_passage"]["transfer"]["seeds"]
    assert [(r["mean"], r["censored"], r["flash_mean"], r["flash_censored"]) for r in rows] == [
        (4.0, 0, pytest.approx((5 + 16) / 6), 1), (2.0, 0, 16.0, 6)]
    assert main(["compare-seeds", *folders]) == 0
    printed = capsys.readouterr().out
    assert "| transfer learning | seed 0 | 4.0 (0) | 3.5 (1) | 1.14x |" in printed
    assert "| transfer learning | seed 1 | 2.0 (0) | 16.0 (6) |" in printed


def test_the_reading_warns_where_most_of_flashs_runs_are_censored(tmp_path, capsys):
    """More than half of FLASH's runs censored (7 of 12): the reading across seeds says its ratio is mostly the
    budget's; transfer learning, with none censored, is not named."""
    assert main(["compare-seeds", *_mostly_censored_flash(tmp_path)]) == 0
    printed = capsys.readouterr().out
    note = "(most of FLASH's runs censored: the ratio is mostly the budget's)"
    assert printed.count(note) == 2 and "most of its" not in printed   # one per metric


def _faster_on_both_seeds(tmp_path: Path) -> list[Path]:
    """Two seeds on which every run of FLASH adapts faster than transfer learning's (in 5 - task - seed and
    6 - task - seed episodes against 9 - task - seed)."""
    return [_write_seed(tmp_path / f"s{seed}", seed, slope) for seed, slope in ((0, 2.0), (1, 1.5))]


def test_the_reading_across_seeds_says_faster_only_when_both_cis_clear_1(tmp_path, capsys):
    """Every run of FLASH is faster, so every resample of the crossed bootstrap is above 1, but two seeds' ratios
    (15/7 and 5/3) give a t interval over seeds that spans 1: no clear difference, not FLASH faster."""
    folders = _faster_on_both_seeds(tmp_path)
    assert main(["compare-seeds", *map(str, folders), "--json"]) == 0
    pooled = json.loads(capsys.readouterr().out)["metrics"]["first_passage"]["transfer"]["pooled"]
    logs = np.log([15 / 7, 5 / 3])
    low = np.exp(logs.mean() - stats.t.ppf(0.975, 1) * logs.std(ddof=1) / np.sqrt(2))   # a t interval, 1 df
    assert pooled["ci_seeds_t"][0] == pytest.approx(low, rel=1e-3)
    assert pooled["ci_seeds_and_tasks"][0] > 1 > pooled["ci_seeds_t"][0]
    assert main(["compare-seeds", *map(str, folders)]) == 0
    across = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| transfer learning | 7.5")]
    assert len(across) == 2 and all(line.endswith("| no clear difference |") for line in across)


@pytest.mark.parametrize("methods", [("flash",), ("transfer", "scratch")])
def test_seeds_that_ran_no_flash_or_nothing_beside_it_are_refused(tmp_path, capsys, methods):
    folders = [str(_write_seed(tmp_path / f"s{seed}", seed, 2.0, methods=methods)) for seed in (0, 1)]
    assert _usage_error(["compare-seeds", *folders]) == 2
    assert "compares FLASH with the other methods, so it needs flash and at least one more" in capsys.readouterr().err


def test_seeds_that_held_out_other_tasks_are_refused_wherever_the_odd_one_is(tmp_path):
    """The same config can hold out other tasks (e.g. a family file edited between the runs): a third folder whose
    task c is another one is refused though the second matches the first."""
    runs = {f: read_reproduction(f) for f in (_write_seed(tmp_path / f"s{seed}", seed, 2.0) for seed in (0, 1, 2))}
    odd = list(runs)[2]
    runs[odd] = replace(runs[odd], rows=[{**r, "task": "d" if r["task"] == "c" else r["task"]}
                                         for r in runs[odd].rows])
    with pytest.raises(ValueError, match=r"hold out different tasks \(\['a', 'b', 'c'\] vs \['a', 'b', 'd'\]\)"):
        check_comparable(runs)


@pytest.mark.parametrize("cis, reading", [
    ([(1.1, 2.0), (1.05, 1.5)], "FLASH faster"), ([(0.5, 0.9), (0.6, 0.95)], "FLASH slower"),
    ([(0.5, 0.9), (0.8, 1.2)], "no clear difference"), ([(1.1, 2.0), (0.9, 1.5)], "no clear difference"),
    ([(math.nan, math.nan), (1.1, 2.0)], "no CI"), ([(0.5, 0.9), (math.nan, math.nan)], "no CI"),
    ([(1.0, 1.5)], "no clear difference"), ([(0.5, 1.0)], "no clear difference"),   # an end at 1 is not clear of it
    ([(1.004, 1.5)], "no clear difference"), ([(0.5, 0.996)], "no clear difference"),   # nor one shown as 1.00
])
def test_the_reading_needs_every_ci_on_one_side_of_1_and_has_none_where_a_ci_is_missing(cis, reading):
    """As the tables show the CIs: to two decimals."""
    assert _verdict(*cis) == reading

"""Episodes-to-adapt on synthetic curves (censoring included), references, and the bootstrap statistics."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from flash_rl.adaptation import References, episodes_to_adapt, episodes_to_sustained_adaptation, evaluation_points
from flash_rl.stats import bootstrap_ci, clustered_ratio_of_means_ci, iqm, mean, median, ratio_ci


def test_episodes_to_adapt_counts_the_evaluation_episode():
    curve = [(0, 1.0), (1, 2.0), (2, 5.0), (3, 9.0), (4, 9.5)]
    assert episodes_to_adapt(curve, 9.0, budget=4) == (4, False)   # reached after 3 fine-tuning episodes
    assert episodes_to_adapt(curve, 0.5, budget=4) == (1, False)   # zero-shot
    assert episodes_to_adapt(curve, 4.0, budget=4) == (3, False)


def test_censoring_at_the_budget():
    curve = [(e, float(e)) for e in range(11)]
    assert episodes_to_adapt(curve, 100.0, budget=10) == (11, True)
    # a success after the budget does not count
    assert episodes_to_adapt(curve + [(11, 200.0)], 100.0, budget=10) == (11, True)
    # evaluation every k episodes: the first evaluation at or above the threshold
    sparse = [(0, 0.0), (5, 3.0), (10, 8.0)]
    assert episodes_to_adapt(sparse, 2.0, budget=10) == (6, False)
    with pytest.raises(ValueError):
        episodes_to_adapt(curve, 1.0, budget=0)


def test_threshold_from_references():
    ref = References("t", 0, random=10.0, expert=30.0, expert_source="x")
    assert ref.threshold(0.9) == pytest.approx(28.0)
    assert ref.threshold(1.0) == pytest.approx(30.0)


def test_bootstrap_statistics():
    x = np.array([1, 1, 2, 2, 3, 3, 4, 30, 31, 31], dtype=float)
    assert iqm(x) == pytest.approx(np.mean(np.sort(x)[2:8]))
    point, lo, hi = bootstrap_ci(x, median)
    assert point == 3 and lo <= point <= hi
    assert bootstrap_ci(np.full(6, 31.0), iqm) == (31.0, 31.0, 31.0)   # all censored: a degenerate CI, no crash
    point, lo, hi = bootstrap_ci([7.0], mean)                             # one run: nothing to resample, no CI
    assert point == 7.0 and np.isnan(lo) and np.isnan(hi)
    assert np.isnan(ratio_ci([2.0], [1.0], mean)[1])
    assert np.isnan(clustered_ratio_of_means_ci([1, 2], [2, 2], ["x", "x"])[2])   # one task: no CI over tasks
    r, lo, hi = ratio_ci(np.full(10, 20.0) + np.arange(10), np.full(10, 2.0) + np.arange(10) % 2, mean)
    assert r == pytest.approx(24.5 / 2.5) and lo <= r <= hi and lo > 1
    with pytest.raises(ValueError):
        ratio_ci(np.ones(3), np.ones(4))


@pytest.mark.parametrize("seed", range(3))
def test_bootstrap_cis_are_95_percent_intervals(seed):
    """On 400 normal values a 95% interval is about the normal one, +-1.96 standard errors (for the ratio of means,
    by the delta method): a 50% level, or an interval collapsed onto the point, is far off."""
    rng = np.random.default_rng(seed)
    a, b, n = rng.normal(20.0, 4.0, 400), rng.normal(10.0, 1.0, 400), 400
    point, lo, hi = bootstrap_ci(a, mean)
    assert lo < point < hi and (hi - lo) / 2 == pytest.approx(1.96 * a.std(ddof=1) / np.sqrt(n), rel=0.1)
    r, lo, hi = ratio_ci(a, b, mean)
    ma, mb = a.mean(), b.mean()
    variance = a.var(ddof=1) / mb**2 + ma**2 * b.var(ddof=1) / mb**4 - 2 * ma * np.cov(a, b)[0, 1] / mb**3
    se = np.sqrt(variance / n)
    assert lo < r < hi and (hi - lo) / 2 == pytest.approx(1.96 * se, rel=0.15)


def test_clustered_ratio_ci_resamples_tasks_not_seeds():
    rng = np.random.default_rng(0)
    per_task = rng.integers(1, 31, size=(8, 2)).astype(float)        # 8 tasks: (transfer, FLASH) episodes
    one_seed = clustered_ratio_of_means_ci(per_task[:, 0], per_task[:, 1], [f"t{i}" for i in range(8)])
    assert one_seed[0] == pytest.approx(per_task[:, 0].mean() / per_task[:, 1].mean())
    # five seeds that only repeat each task's result add no evidence about new tasks: the task CI stays put,
    # while the CI over runs narrows as if there were 40 independent tasks
    five = np.repeat(per_task, 5, axis=0)
    tasks = np.repeat([f"t{i}" for i in range(8)], 5)
    assert clustered_ratio_of_means_ci(five[:, 0], five[:, 1], tasks) == pytest.approx(one_seed)
    runs = ratio_ci(five[:, 0], five[:, 1], mean)
    assert runs[2] - runs[1] < 0.8 * (one_seed[2] - one_seed[1])
    # unequal numbers of runs per task: still the ratio of the means over runs
    assert clustered_ratio_of_means_ci([4, 2, 6], [1, 1, 2], ["a", "a", "b"])[0] == pytest.approx(12 / 4)
    with pytest.raises(ValueError, match="clusters"):
        clustered_ratio_of_means_ci([1, 2], [1, 2], ["a"])


def test_sustained_adaptation_counts_from_when_the_threshold_holds():
    chance = [(0, 1.0), (1, 9.5), (2, 5.0), (3, 9.0), (4, 9.2)]   # reached after 1 episode, held from 3
    assert episodes_to_adapt(chance, 9.0, budget=4) == (2, False)
    assert episodes_to_sustained_adaptation(chance, 9.0, budget=4) == (4, False)
    assert episodes_to_sustained_adaptation(chance, 0.5, budget=4) == (1, False)   # zero-shot and held
    falls = [(0, 9.5), (1, 9.6), (2, 3.0)]                                         # falls back at the end
    assert episodes_to_sustained_adaptation(falls, 9.0, budget=2) == (3, True)
    assert episodes_to_sustained_adaptation(falls + [(3, 1.0)], 9.0, budget=1) == (1, False)   # past the budget
    with pytest.raises(ValueError, match="budget must be a whole number >= 1, got 0"):
        episodes_to_sustained_adaptation(falls, 9.0, budget=0)


@pytest.mark.parametrize("metric", [episodes_to_adapt, episodes_to_sustained_adaptation])
def test_a_fractional_budget_or_a_threshold_that_is_not_finite_is_refused(metric):
    """A budget of 2.5 counted a censored run as 3.5 episodes; a NaN threshold censored every run, silently."""
    never = [(0, 1.0), (1, 2.0), (2, 3.0)]
    assert metric(never, 9.0, budget=2.0) == (3, True)
    with pytest.raises(ValueError, match=r"^budget must be a whole number >= 1, got 2.5$"):
        metric(never, 9.0, budget=2.5)
    for threshold, error in ((np.nan, ValueError), (np.inf, ValueError), ("9", TypeError), (None, TypeError)):
        with pytest.raises(error, match=r"^threshold must be a finite number, got "):
            metric(never, threshold, budget=2)


def test_a_trace_file_edited_in_place_gets_a_new_reference_key(tmp_path):
    """Cached references are keyed by task content: a trace CSV rewritten at the same path must not reuse them."""
    from flash_envs.sim.service import AppProfile
    from flash_envs.sim.workloads import TraceWorkload
    from flash_envs.tasks import AutoscalingTask
    from flash_rl.adaptation import task_key

    trace = tmp_path / "trace.csv"
    trace.write_text("timestamp,requests\n0,10\n60,20\n")
    task = AutoscalingTask(AppProfile(), TraceWorkload(path=str(trace)), name="t")
    before = task_key(task)
    assert task_key(task) == before
    trace.write_text("timestamp,requests\n0,10\n60,90\n")
    assert task_key(task) != before


def test_a_curve_is_evaluated_before_any_fine_tuning_every_eval_every_episodes_and_at_the_end():
    assert evaluation_points(7, 3) == [0, 3, 6, 7]
    assert evaluation_points(6, 3) == [0, 3, 6]
    assert evaluation_points(0, 1) == [0]
    with pytest.raises(ValueError, match="eval_every >= 1"):
        evaluation_points(5, 0)


def test_an_expert_no_better_than_random_is_warned_of(tmp_path):
    """A threshold at or below the random return would count every method as adapted at once: say so."""
    from flash_envs.tasks import AutoscalingTaskFamily, default_family
    from flash_rl.adaptation import ReferenceCache, compute_references

    tasks = default_family(AutoscalingTaskFamily).test[:2]
    expert = {(tasks[0].name, 0): 5.0, (tasks[0].name, 1): 12.0, (tasks[1].name, 0): 11.0, (tasks[1].name, 1): 10.0}

    def references_of(task, seeds):
        return [References(task.name, s, 10.0, expert[(task.name, s)], "heuristic HPA") for s in seeds]

    not_above = r"2 \(task, evaluation seed\) pair\(s\) whose expert return is not above"
    with pytest.warns(UserWarning, match=not_above) as w:
        compute_references(tasks, [0, 1], ReferenceCache(tmp_path / "refs.json", {}), references_of)
    assert f"('{tasks[0].name}', 0)" in str(w[0].message) and f"('{tasks[1].name}', 1)" in str(w[0].message)
    expert.update({(tasks[0].name, 0): 10.5, (tasks[1].name, 1): 30.0})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compute_references(tasks, [0, 1], ReferenceCache(tmp_path / "other.json", {}), references_of)


def test_references_of_tasks_that_share_a_name_are_refused(tmp_path):
    """They are keyed by name: the second task's references replaced the first's, and its threshold judged both."""
    import dataclasses

    from flash_envs.tasks import AutoscalingTaskFamily, default_family
    from flash_rl.adaptation import ReferenceCache, compute_references

    first, second = default_family(AutoscalingTaskFamily).test[:2]
    computed = []

    def references_of(task, seeds):
        computed.append(task)
        return [References(task.name, s, 0.0, 10.0, "heuristic HPA") for s in seeds]

    with pytest.raises(ValueError, match=rf"tasks share the name\(s\) \['{first.name}'\]; give each task its own "
                                         r"name"):
        compute_references([first, dataclasses.replace(second, name=first.name)], [0],
                           ReferenceCache(tmp_path / "refs.json", {}), references_of)
    assert computed == []
    assert len(compute_references([first, second], [0], ReferenceCache(tmp_path / "refs.json", {}),
                                  references_of)) == 2


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_bootstrap_cis_refuse_values_that_are_not_finite(bad):
    """scipy gives an all-NaN or a meaningless interval ((inf, 1.5, inf)) for them, with at most a warning."""
    with pytest.raises(ValueError, match="bootstrap_ci: 1 of 4 values are not finite"):
        bootstrap_ci([1.0, 2.0, bad, 4.0], mean)
    with pytest.raises(ValueError, match="ratio_ci denominator: 1 of 3 values are not finite"):
        ratio_ci([1.0, 2.0, 3.0], [1.0, bad, 3.0])
    with pytest.raises(ValueError, match="clustered_ratio_of_means_ci numerator"):
        clustered_ratio_of_means_ci([bad, 2.0], [1.0, 1.0], ["a", "b"])

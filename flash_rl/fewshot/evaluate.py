"""Held-out evaluation of the few-shot predictors: MAPE, choice regret, seeds, bootstrap CIs and a Table-2 layout.

Protocol (the same for every method)
------------------------------------
* Applications are held out whole: a *split* is (training apps, test apps) with no app in both.
* For each seed and K, the learned models are trained on the training apps with the same :class:`TrainConfig`
  (with ``val_fraction > 0``, a random share of the training apps is held back instead, for early stopping); then
  every test app gets ``draws`` random shot subsets (shared by all methods) and each method predicts every
  configuration of the app that was not a shot. The draws depend on the seed and the app's name alone
  (:func:`shot_rng`), so an app is scored on the same shots whatever the training apps, the fold layout or the
  training, and its K = 1 shots are the first of its K = 2 shots, those the first of its K = 5 shots.
* **Cost** of a configuration: where the data has a price list (``ConfigMeasurements.pricing``: IBM, AWS Lambda,
  the simulated functions), every method's estimate is that price list applied to its predicted runtime, which is
  how the data's own costs were computed (and how Sizeless prices its runtime predictions); elsewhere (chunk-func
  on GCP, or ``flash config-eval --cost predicted``) it is the method's own cost prediction.
* **MAPE** (%): mean of ``|predicted - measured| / measured`` over the unmeasured configurations, for runtime and cost.
* **Regret** (%): for deadlines of 1.25, 1.5 and 2 times the app's fastest runtime, a method picks the configuration it
  believes cheapest among those meeting the deadline (measured values for the shots, predictions elsewhere; the
  fastest one if none seems to meet it). Regret is ``true cost / cost of the true best - 1``; a pick that misses the
  deadline in truth counts as 100 %.
* **Deadline misses** (%): the share of those picks that miss their deadline in truth. Regret alone cannot tell a
  method that misses deadlines from one that overspends (an on-time pick costing over twice the best scores more than
  a miss), so the two are reported side by side.
* **Overspend** (%), derived from those two: regret less the 100 % charged per miss, i.e. the mean over picks of
  ``true cost / cost of the true best - 1`` with a missed pick counting 0. So regret = misses + overspend, and regret
  with a miss charged ``P`` % instead is ``overspend + P / 100 x misses``: the three columns let a reader weigh a
  miss as they see fit.
* Per app, values are averaged over draws, deadlines and seeds; the table gives the mean over test apps and a 95 %
  percentile-bootstrap CI over apps (``scipy.stats.bootstrap``), the apps being the unit that must generalise. Where
  apps are held out in groups (a function with all its inputs), the CI resamples the groups whole: the apps of one
  group share their training set and much of their behaviour, so they are not independent evidence.
"""

from __future__ import annotations

import math
import multiprocessing
import textwrap
import zlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import numpy as np
import torch

from flash_envs.data.config_measurements import ConfigMeasurements
from flash_envs.markdown import fmt_ci, md_table
from flash_rl.fewshot.episodes import EpisodeSampler, Episodes
from flash_rl.fewshot.matrix_completion import matrix_completion_predictor
from flash_rl.fewshot.models import INPUTS, TrainConfig, fine_tune_predict, nearest_config_predict, train_model
from flash_rl.progress import tqdm_bar
from flash_rl.stats import bootstrap_ci, clustered_ratio_of_means_ci

METHODS = ("FLASH", "FLASH + fine-tuning", "base learner", "fine-tuned (transfer)", "matrix completion",
           "nearest config", "K-shot MLP (reference)")
#: What :func:`score` measures per draw (and ``summary.json`` stores per app).
METRICS = ("runtime MAPE (%)", "cost MAPE (%)", "regret (%)", "deadline misses (%)")
#: Derived per app from regret and misses (see the module docstring); summarised and tabled after :data:`METRICS`.
OVERSPEND = "overspend (%)"
DEADLINE_FACTORS = (1.25, 1.5, 2.0)
MISSED_DEADLINE_REGRET = 100.0


@dataclass(frozen=True)
class Split:
    """Training and held-out test applications (possibly from different files of one schema); no app in both."""

    name: str
    train: ConfigMeasurements
    test: ConfigMeasurements

    def __post_init__(self) -> None:
        shared = sorted(set(self.train.apps) & set(self.test.apps))
        if shared:
            raise ValueError(f"{len(shared)} app(s) both in training and held out: {shared[:5]}"
                             f"{' ...' if len(shared) > 5 else ''}; held-out apps must never be trained on")


def n_validation_apps(n_train: int, val_fraction: float) -> int:
    """How many of ``n_train`` training apps early stopping keeps aside: ``val_fraction`` of them, at least 2, and
    never so many that fewer than 2 are left to fit on."""
    if val_fraction == 0:
        return 0
    n_val = max(2, round(val_fraction * n_train))
    if n_train - n_val < 2:
        raise ValueError(f"validation fraction {val_fraction} of {n_train} training apps keeps {n_val} for validation "
                         f"and leaves {n_train - n_val} to train on; at least 2 of each are needed")
    return n_val


def app_folds(data: ConfigMeasurements, n_folds: int, seed: int = 0) -> list[Split]:
    """Leave-workloads-out cross-validation: apps shuffled with ``seed`` and dealt into ``n_folds`` test groups."""
    if not 2 <= n_folds <= len(data.apps):
        raise ValueError(f"n_folds must lie in [2, {len(data.apps)}] for {len(data.apps)} apps, got {n_folds}")
    order = np.random.default_rng(seed).permutation(len(data.apps))
    folds = np.array_split(order, n_folds)
    return [Split(f"fold {i + 1}/{n_folds}", data.select_apps([data.apps[j] for j in order if j not in set(f)]),
                  data.select_apps([data.apps[j] for j in f])) for i, f in enumerate(folds)]


def group_folds(data: ConfigMeasurements, group_of: Callable[[str], str]) -> list[Split]:
    """Leave-one-group-out: one split per group of apps (e.g. a function run with several inputs), held out whole."""
    groups = sorted({group_of(a) for a in data.apps})
    if len(groups) < 2:
        raise ValueError(f"group-wise folds need >= 2 groups, got {groups}")
    return [Split(f"held-out {g}", data.select_apps([a for a in data.apps if group_of(a) != g]),
                  data.select_apps([a for a in data.apps if group_of(a) == g])) for g in groups]


def pick_config(est_rt: np.ndarray, est_cost: np.ndarray, deadline: float) -> int:
    """The configuration estimated cheapest among those estimated to meet ``deadline`` (the fastest if none is)."""
    feasible = est_rt <= deadline
    return int(np.argmin(np.where(feasible, est_cost, np.inf)) if feasible.any() else np.argmin(est_rt))


def choice_quality(est_rt: np.ndarray, est_cost: np.ndarray, rt: np.ndarray,
                    cost: np.ndarray) -> tuple[float, float]:
    """Mean regret (%) and share of deadline misses (%) over the deadlines, choosing by the estimates (rows:
    configurations)."""
    regrets, misses = [], []
    for factor in DEADLINE_FACTORS:
        deadline = factor * rt.min()
        pick = pick_config(est_rt, est_cost, deadline)
        best = np.min(cost[rt <= deadline])
        missed = rt[pick] > deadline
        regrets.append(MISSED_DEADLINE_REGRET if missed else 100.0 * (cost[pick] / best - 1.0))
        misses.append(100.0 * missed)
    return float(np.mean(regrets)), float(np.mean(misses))


def score(pred_log: np.ndarray, shots: np.ndarray, targets: np.ndarray, data: ConfigMeasurements,
          app: int) -> np.ndarray:
    """Per draw, the :data:`METRICS` (``[runtime MAPE, cost MAPE, regret, deadline misses]``) of predictions
    ``pred_log`` (draws, T, 2) at ``targets``; with ``data.pricing``, the cost is priced from the predicted runtime."""
    truth = np.stack([data.runtime_s[app, targets], data.cost_usd[app, targets]], axis=-1)   # (T, 2)
    out = []
    for d in range(pred_log.shape[0]):
        unmeasured = ~np.isin(targets, shots[d])
        est = np.exp(pred_log[d])
        if data.pricing is not None:
            est[:, 1] = data.pricing.cost(targets, est[:, 0])
        est = np.where(unmeasured[:, None], est, truth)   # shots keep their measured values
        ape = 100.0 * np.abs(est[unmeasured] - truth[unmeasured]) / truth[unmeasured]
        out.append([*ape.mean(axis=0), *choice_quality(est[:, 0], est[:, 1], truth[:, 0], truth[:, 1])])
    return np.asarray(out)


def shot_rng(seed: int, app: str) -> np.random.Generator:
    """The generator of held-out app ``app``'s shot draws under ``seed``: a function of the two alone."""
    return np.random.default_rng([seed, zlib.crc32(app.encode())])


def evaluate_split(split: Split, k: int, seed: int, cfg: TrainConfig, draws: int,
                   progress: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """Per method, per test app (by name): the mean of :func:`score`'s metrics over ``draws`` draws."""
    rng = np.random.default_rng(seed)
    fit, validation = split.train, None
    if cfg.val_fraction > 0:
        apps = list(rng.permutation(split.train.apps))
        n_val = n_validation_apps(len(apps), cfg.val_fraction)
        fit = split.train.select_apps(apps[n_val:])
        validation = EpisodeSampler(split.train.select_apps(apps[:n_val]), k).sample(256, cfg.n_targets, rng)
    train = EpisodeSampler(fit, k)
    models = {inputs: train_model(train, inputs, cfg, rng, progress, validation) for inputs in INPUTS}
    predictors: dict[str, Callable[[Episodes], torch.Tensor]] = {
        "FLASH": models["flash"].predict,
        "FLASH + fine-tuning": lambda ep: fine_tune_predict(models["flash"], ep, cfg),
        "base learner": models["base"].predict,
        "fine-tuned (transfer)": lambda ep: fine_tune_predict(models["base"], ep, cfg),
        "matrix completion": matrix_completion_predictor(fit, split.test),
        "nearest config": nearest_config_predict,
        "K-shot MLP (reference)": models["k-shot"].predict,
    }
    test = EpisodeSampler(split.test, k)
    results: dict[str, dict[str, np.ndarray]] = {m: {} for m in METHODS}
    for app in test.apps:
        ep, shots, targets = test.evaluation(app, draws, shot_rng(seed, split.test.apps[app]))
        for method, predict in predictors.items():
            pred = predict(ep).detach().numpy()
            results[method][split.test.apps[app]] = score(pred, shots, targets, split.test, app).mean(axis=0)
    return results


def _single_threaded_evaluate_split(split: Split, k: int, seed: int, cfg: TrainConfig,
                                    draws: int) -> dict[str, dict[str, np.ndarray]]:
    """:func:`evaluate_split` with one torch thread, as ``flash config-eval`` runs it (a worker process's job)."""
    torch.set_num_threads(1)
    return evaluate_split(split, k, seed, cfg, draws)


def run(splits: list[Split], shots: tuple[int, ...], seeds: tuple[int, ...], cfg: TrainConfig, draws: int,
        progress: bool = True, jobs: int = 1) -> dict[int, dict[str, dict[str, np.ndarray]]]:
    """Per K, per method, per held-out app: the :data:`METRICS` averaged over seeds and draws.

    Every (K, seed, split) is an independent evaluation seeded by its seed alone; with ``jobs > 1`` they run in that
    many worker processes (one torch thread each) and are combined in the same order as a serial run, so the result
    does not depend on ``jobs``.
    """
    runs = [(k, seed, s) for k in shots for seed in seeds for s in splits]
    bar = tqdm_bar(len(runs), "config-eval runs", progress)
    if jobs > 1:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_single_threaded_evaluate_split, split, k, seed, cfg, draws)
                       for k, seed, split in runs]
            for _ in as_completed(futures):
                bar.update()
            results = [f.result() for f in futures]
    else:
        results = []
        for k, seed, split in runs:
            results.append(evaluate_split(split, k, seed, cfg, draws))
            bar.update()
    bar.close()
    per_run: dict[int, dict[str, dict[str, list[np.ndarray]]]] = {k: {m: {} for m in METHODS} for k in shots}
    for (k, _, _), result in zip(runs, results):
        for method, apps in result.items():
            for app, values in apps.items():
                per_run[k][method].setdefault(app, []).append(values)
    return {k: {m: {a: np.mean(v, axis=0) for a, v in apps.items()} for m, apps in methods.items()}
            for k, methods in per_run.items()}


def _mean_ci(v: np.ndarray, seed: int, groups: list[str] | None = None) -> dict[str, float]:
    """Mean of ``v`` with a 95 % percentile-bootstrap CI (``low``, ``high``) and ``n``. With ``groups`` (one label
    per value), the bootstrap resamples whole groups, e.g. the apps of one function held out together; the CI is NaN
    with fewer than 2 units to resample (:mod:`flash_rl.stats`)."""
    if groups is None:
        _, low, high = bootstrap_ci(v, np.mean, seed=seed)
    else:
        _, low, high = clustered_ratio_of_means_ci(v, np.ones_like(v), groups, seed=seed)
    return {"mean": float(v.mean()), "low": low, "high": high, "n": len(v)}


def metric_columns(values: np.ndarray) -> dict[str, np.ndarray]:
    """Per metric, its column of ``values`` (rows: apps; columns: the :data:`METRICS` scored), then
    :data:`OVERSPEND` where deadline misses were scored (reports written before them have three columns)."""
    columns = dict(zip(METRICS, values.T))
    if "deadline misses (%)" in columns:
        columns[OVERSPEND] = columns["regret (%)"] - columns["deadline misses (%)"] * (MISSED_DEADLINE_REGRET / 100)
    return columns


def summarise(per_app: dict[int, dict[str, dict[str, np.ndarray]]], seed: int = 0,
              groups: dict[str, str] | None = None) -> dict[int, dict[str, dict[str, dict[str, float]]]]:
    """Per K, method and metric: mean over held-out apps with a 95 % bootstrap CI (``low``, ``high``) and ``n``; the
    CI resamples apps, or with ``groups`` (app -> group held out together) whole groups."""
    out: dict[int, dict[str, dict[str, dict[str, float]]]] = {}
    for k, methods in per_app.items():
        out[k] = {}
        for method, apps in methods.items():
            values = np.stack(list(apps.values()))   # (apps, metrics)
            labels = [groups[a] for a in apps] if groups else None
            out[k][method] = {metric: _mean_ci(column, seed, labels)
                              for metric, column in metric_columns(values).items()}
    return out


def paired_differences(per_app: dict[int, dict[str, dict[str, np.ndarray]]], reference: str = "FLASH",
                       seed: int = 0, groups: dict[str, str] | None = None
                       ) -> dict[int, dict[str, dict[str, dict[str, float]]]]:
    """Per K, other method and metric: mean over held-out apps of ``reference - method`` with a 95 % bootstrap CI
    (over apps, or with ``groups`` over whole groups, as in :func:`summarise`).

    The difference is paired per app (both methods saw the same shot draws), so it is far tighter than comparing the
    two methods' CIs; a CI entirely below 0 means ``reference`` is better.
    """
    out: dict[int, dict[str, dict[str, dict[str, float]]]] = {}
    for k, methods in per_app.items():
        apps = sorted(methods[reference])
        ref = np.stack([methods[reference][a] for a in apps])
        labels = [groups[a] for a in apps] if groups else None
        out[k] = {}
        for method in (m for m in METHODS if m != reference):
            diff = ref - np.stack([methods[method][a] for a in apps])
            out[k][method] = {metric: _mean_ci(column, seed, labels)
                              for metric, column in metric_columns(diff).items()}
    return out


def _metrics_in(summary: dict[int, dict[str, dict[str, dict[str, float]]]]) -> list[str]:
    """The :data:`METRICS` and :data:`OVERSPEND` that ``summary`` has (reports written before deadline misses were
    scored lack both)."""
    return [metric for metric in (*METRICS, OVERSPEND) if metric in next(iter(summary.values()))[METHODS[0]]]


#: What a cell shows in place of a CI that is NaN (a single held-out application or group: nothing to resample).
NO_CI = "no CI"


def _cell(s: dict[str, float]) -> str:
    return f"{s['mean']:.1f} [{NO_CI}]" if math.isnan(s["low"]) else fmt_ci(s["mean"], (s["low"], s["high"]))


def _no_ci_note(summary: dict[int, dict[str, dict[str, dict[str, float]]]], metrics: list[str]) -> str:
    """A sentence for the table's notes naming the K whose CIs are NaN, and why; empty if none is."""
    ks = [k for k in sorted(summary) if any(math.isnan(summary[k][m][metric]["low"]) for m in METHODS
                                            for metric in metrics)]
    if not ks:
        return ""
    return (f" At K={', '.join(map(str, ks))}, a single held-out application (or group of them) is scored, which "
            f"gives no confidence interval (nothing to resample), so those cells show [{NO_CI}].")


#: With this many resampled units or fewer, all on one side still leaves a two-sided sign test above p = 0.05.
MAX_UNITS_WITHOUT_SIGNIFICANCE = 5


def markdown_table(summary: dict[int, dict[str, dict[str, dict[str, float]]]], title: str,
                   differences: dict[str, dict[int, dict[str, dict[str, dict[str, float]]]]] | None = None,
                   ci_unit: str = "", n_units: int = 0) -> str:
    """A table in the layout of FLASH's Table 2 (one row per method, one column per metric x K), and below it, per
    reference method in ``differences``, the paired differences reference - method (:func:`paired_differences`).
    ``ci_unit`` names what the CIs resample when it is not the held-out applications (e.g. "the 3 held-out
    functions"), and ``n_units`` how many there are: with 5 or fewer (where even a sign test with every unit on one
    side stays above p = 0.05), the notes say that a CI clear of 0 shows their agreement, not significance.

    Bold marks the lowest mean *as printed* (one decimal), so methods that print the same lowest value are all bold.
    """
    ks, metrics = sorted(summary), _metrics_in(summary)
    columns = [f"{metric} K={k}" for metric in metrics for k in ks]
    ci = f"95% bootstrap CI resampling {ci_unit} whole" if ci_unit else "95% bootstrap CI"
    lines = [f"### {title}", "", f"Mean over held-out applications [{ci}]; lower is better."
             + (" Overspend = regret - deadline misses: what the picks cost over the best, a missed pick counting 0 "
                "(a miss counts 100 % in regret)." if OVERSPEND in metrics else "")
             + _no_ci_note(summary, metrics), ""]
    shown = {(m, metric, k): round(summary[k][m][metric]["mean"], 1) for m in METHODS for metric in metrics for k in ks}
    best = {(metric, k): min(shown[(m, metric, k)] for m in METHODS) for metric in metrics for k in ks}
    lines += md_table(("method", *columns), [
        (method, *(f"**{_cell(summary[k][method][metric])}**" if shown[(method, metric, k)] == best[(metric, k)]
                   else _cell(summary[k][method][metric]) for metric in metrics for k in ks))
        for method in METHODS])
    for reference, diffs in (differences or {}).items():
        verdict = (f"a CI below 0 means that {ci_unit} all agreed, which so few cannot make significant"
                   if ci_unit and n_units <= MAX_UNITS_WITHOUT_SIGNIFICANCE else "a CI below 0: significantly so")
        note = (f"{reference} minus each method, paired per held-out application [{ci}]; negative: "
                f"{reference} is better, {verdict}.")
        rows = [(method, *(_cell(diffs[k][method][metric]) for metric in metrics for k in ks))
                for method in diffs[ks[0]]]
        lines += ["", note, "", *md_table((f"{reference} -", *columns), rows)]
    return "\n".join(lines) + "\n"


def plot_summary(summary: dict[int, dict[str, dict[str, dict[str, float]]]], title: str, path: str) -> None:
    """One panel per metric: mean over held-out apps vs K per method, with the 95 % CI as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogFormatter

    ks, metrics = sorted(summary), _metrics_in(summary)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.8))
    for ax, metric in zip(axes, metrics):
        for i, method in enumerate(METHODS):
            s = [summary[k][method][metric] for k in ks]
            mean = np.array([x["mean"] for x in s])
            err = np.array([[x["mean"] - x["low"] for x in s], [x["high"] - x["mean"] for x in s]])
            offset = 0.06 * (i - (len(METHODS) - 1) / 2)
            ax.errorbar(np.array(ks) + offset, mean, yerr=err, marker="o", capsize=3, label=method)
        ax.set(xlabel="shots K", ylabel=metric, xticks=ks)
        if all(summary[k][m][metric]["low"] > 0 for k in ks for m in METHODS):   # a log axis cannot show a 0
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(LogFormatter())  # plain numbers (40, not 4 x 10^1), minor ticks labelled too
            ax.yaxis.set_minor_formatter(LogFormatter(minor_thresholds=(2, 0.5)))
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=len(METHODS), fontsize=8, frameon=False)
    fig.suptitle(textwrap.fill(title, 120))
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)

"""Held-out evaluation of the few-shot predictors: the protocol, MAPE and choice regret per app over seeds and draws
(summaries, CIs and the Table-2 layout: :mod:`flash_rl.fewshot.report`).

Protocol (the same for every method)
------------------------------------
* Applications are held out whole: a *split* is (training apps, test apps) with no app in both.
* For each seed and K, the learned models are trained on the training apps with the same :class:`TrainConfig`
  (with ``val_fraction > 0``, a random share of the training apps is held back instead, for early stopping:
  :func:`~flash_rl.fewshot.models.early_stopping_split`); then
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

import warnings
import zlib
from collections.abc import Callable
from concurrent.futures import as_completed

import numpy as np
import torch

from flash_envs.data.config_measurements import ConfigMeasurements
from flash_envs.fields import check_seed, check_whole
from flash_rl.fewshot.episodes import EpisodeSampler, Episodes
from flash_rl.fewshot.matrix_completion import matrix_completion_predictor
from flash_rl.fewshot.models import (INPUTS, early_stopping_split, fine_tune_predict, nearest_config_predict,
                                     train_model)
from flash_rl.fewshot.report import METHODS, MISSED_DEADLINE_REGRET
from flash_rl.fewshot.splits import Split
from flash_rl.fewshot.train_config import TrainConfig
from flash_envs.progress import tqdm_bar
from flash_rl.torch_threads import use_one_torch_thread
from flash_rl.workers import worker_pool

DEADLINE_FACTORS = (1.25, 1.5, 2.0)
#: What scores one method's predictions of one held-out app, per draw: :func:`score`'s signature and output shape
#: (draws, values). :func:`score` gives the reported metrics; :mod:`flash_rl.fewshot.diagnose` other measures.
Scorer = Callable[[np.ndarray, np.ndarray, np.ndarray, ConfigMeasurements, int], np.ndarray]


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
    """Per draw, the :data:`~flash_rl.fewshot.report.METRICS` (``[runtime MAPE, cost MAPE, regret, deadline
    misses]``) of predictions ``pred_log`` (draws, T, 2) at ``targets``; with ``data.pricing``, the cost is priced from
    the predicted runtime."""
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


def mean_over_runs(values: np.ndarray | list[np.ndarray], nan_aware: bool = False) -> np.ndarray:
    """Mean over the first axis (draws, or seeds); with ``nan_aware``, of the values that are not NaN (NaN where all
    are), for measures that some draws leave undefined (:mod:`flash_rl.fewshot.diagnose`). The scored metrics are
    always defined, and averaged with ``nan_aware=False``."""
    if not nan_aware:
        return np.mean(values, axis=0)
    with warnings.catch_warnings():   # "Mean of empty slice" where every value is NaN: NaN is the answer
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=0)


def shot_rng(seed: int, app: str) -> np.random.Generator:
    """The generator of held-out app ``app``'s shot draws under ``seed``: a function of the two alone."""
    return np.random.default_rng([seed, zlib.crc32(app.encode())])


def evaluate_split(split: Split, k: int, seed: int, cfg: TrainConfig, draws: int, progress: bool = False,
                   scorer: Scorer = score, nan_aware: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """Per method, per test app (by name): the mean of ``scorer``'s values (:func:`score`'s metrics by default) over
    ``draws`` draws (with ``nan_aware``, over the draws that give a value: :func:`mean_over_runs`). A held-out side
    with no app of K + 1 measured configurations, or a bad ``draws``, is refused before any training."""
    draws = check_whole("draws", draws, 1)
    test = EpisodeSampler(split.test, k)
    rng = np.random.default_rng(seed)
    fit, validation = early_stopping_split(split.train, k, cfg, rng)
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
    results: dict[str, dict[str, np.ndarray]] = {m: {} for m in METHODS}
    for app in test.apps:
        ep, shots, targets = test.evaluation(app, draws, shot_rng(seed, split.test.apps[app]))
        for method, predict in predictors.items():
            pred = predict(ep).detach().numpy()
            values = scorer(pred, shots, targets, split.test, app)
            results[method][split.test.apps[app]] = mean_over_runs(values, nan_aware)
    return results


def _scorable(split: Split, k: int) -> bool:
    """Whether some held-out app of ``split`` has the ``k + 1`` measured configurations an episode needs (a split
    without one gives nothing to score at ``k``, so :func:`run` does not train for it)."""
    return bool((split.test.measured.sum(axis=1) >= k + 1).any())


def _single_threaded_evaluate_split(split: Split, k: int, seed: int, cfg: TrainConfig, draws: int,
                                    scorer: Scorer, nan_aware: bool) -> dict[str, dict[str, np.ndarray]]:
    """:func:`evaluate_split` with one torch thread, as ``flash config-eval`` runs it (a worker process's job)."""
    use_one_torch_thread()
    return evaluate_split(split, k, seed, cfg, draws, scorer=scorer, nan_aware=nan_aware)


def run(splits: list[Split], shots: tuple[int, ...], seeds: tuple[int, ...], cfg: TrainConfig, draws: int,
        progress: bool = True, jobs: int = 1, scorer: Scorer = score,
        nan_aware: bool = False) -> dict[int, dict[str, dict[str, np.ndarray]]]:
    """Per K, per method, per held-out app: ``scorer``'s values (by default the
    :data:`~flash_rl.fewshot.report.METRICS`) averaged over seeds and draws (with ``nan_aware``, over those that give
    a value, for the diagnostics only: :func:`mean_over_runs`).

    Every (K, seed, split) is an independent evaluation seeded by its seed alone; with ``jobs > 1`` they run in that
    many worker processes (one torch thread each) and are combined in the same order as a serial run, so the result
    does not depend on ``jobs``. A split none of whose held-out apps has ``K + 1`` measured configurations is skipped
    at that K (nothing to score, so nothing is trained); a K that no split can score is refused, before any training.
    """
    draws, jobs = check_whole("draws", draws, 1), check_whole("jobs", jobs, 1)
    shots = tuple(check_whole("shots", k, 1) for k in shots)   # (a bool, or 2.5, failed deep in training or
    seeds = tuple(check_seed("seeds", seed) for seed in seeds)   # gave a result keyed by True)
    for name, values in (("shots", shots), ("seeds", seeds)):
        if len(set(values)) < len(values):
            raise ValueError(f"{name} {values} name one value twice: each is evaluated once")
    if not shots or not seeds or not splits:
        raise ValueError(f"nothing to evaluate: {len(splits)} split(s), shots {tuple(shots)}, seeds {tuple(seeds)}")
    for k in shots:
        if not any(_scorable(s, k) for s in splits):
            raise ValueError(f"K = {k}: no held-out app of the {len(splits)} split(s) has the {k + 1} measured "
                             f"configurations that {k} shots and one target need")
    runs = [(k, seed, s) for k in shots for seed in seeds for s in splits if _scorable(s, k)]
    jobs = min(jobs, len(runs))
    with tqdm_bar(len(runs), "config-eval runs", progress) as bar:   # closed before Ctrl-C's message too
        if jobs > 1:
            with worker_pool(jobs) as pool:   # Ctrl-C stops every worker at once
                futures = [pool.submit(_single_threaded_evaluate_split, split, k, seed, cfg, draws, scorer, nan_aware)
                           for k, seed, split in runs]
                for _ in as_completed(futures):
                    bar.update()
                results = [f.result() for f in futures]
        else:
            results = []
            for k, seed, split in runs:
                results.append(evaluate_split(split, k, seed, cfg, draws, scorer=scorer, nan_aware=nan_aware))
                bar.update()
    per_run: dict[int, dict[str, dict[str, list[np.ndarray]]]] = {k: {m: {} for m in METHODS} for k in shots}
    for (k, _, _), result in zip(runs, results):
        for method, apps in result.items():
            for app, values in apps.items():
                per_run[k][method].setdefault(app, []).append(values)
    return {k: {m: {a: mean_over_runs(v, nan_aware) for a, v in apps.items()} for m, apps in methods.items()}
            for k, methods in per_run.items()}

"""Why the few-shot methods choose as they do: diagnostics of their predictions on held-out applications.

``flash config-eval --diagnose`` trains and predicts exactly as the reported evaluation does (same models, seeds and
shot draws: :func:`flash_rl.fewshot.evaluate.run` with :func:`choice_diagnostics` as the scorer) and measures, per
draw, over the configurations of the app that were not shots:

======================  ============================================================================================
measure                 meaning
======================  ============================================================================================
error spread            standard deviation over the configurations of the log runtime error (log predicted - log
                        measured): how unevenly a method errs within one app (0.1 is about +-10 %)
bias                    mean log runtime error (> 0: the method believes the app slower than it is)
runtime slope           least-squares slope of the log predicted on the log measured runtimes (1: the same scale;
                        < 1: predictions pulled towards the app's typical runtime, so that its fast configurations
                        look slower than they are and its slow ones faster); undefined with fewer than 2 distinct
                        measured runtimes
bias near the deadlines the bias over the configurations at most twice as slow as the app's fastest (those that can
                        meet the loosest deadline, 2x; > 0: believed slower than they are, a safe error there);
                        undefined where every such configuration was a shot
runtime rank rho        Spearman correlation of predicted and measured runtimes (1: the same order; 0 for a
                        prediction that is constant, which orders nothing); undefined with fewer than 2 distinct
                        measured runtimes, which have no order to match
cost rank rho           the same for the estimated and the measured costs
error at the pick       log(measured / estimated runtime) of the configuration picked for each deadline, as in the
                        regret (> 0: the pick is slower than the method believed, so it risks missing the deadline)
======================  ============================================================================================

Per app the values are averaged over draws, deadlines and seeds; the tables give the mean over held-out apps with a
95 % bootstrap CI and FLASH minus each method paired per app, as the reported tables do. An undefined value (NaN) is
left out: a measure is averaged over the draws (and seeds) that define it, and an app that has none is left out of
that measure's mean and CI (its ``n`` in ``diagnosis.json`` counts the apps that have one); a cell that no app has a
value for reads "n/a".
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from flash_envs.data.config_measurements import ConfigMeasurements
from flash_envs.markdown import md_table
from flash_rl.fewshot.evaluate import DEADLINE_FACTORS, pick_config
from flash_rl.fewshot.report import METHODS, ci_cell, paired_differences, summarise

DIAGNOSTICS = ("error spread", "bias", "runtime slope", "bias near the deadlines", "runtime rank rho",
               "cost rank rho", "error at the pick")


def _rank_correlation(predicted: np.ndarray, measured: np.ndarray) -> float:
    """Spearman's rho; NaN (undefined) with fewer than 2 distinct measured values, which have no order to match; 0
    for a constant prediction of 2 or more (it orders nothing; scipy would give NaN)."""
    if np.ptp(measured) == 0:
        return np.nan
    if np.ptp(predicted) == 0:
        return 0.0
    return float(spearmanr(predicted, measured).statistic)


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of ``y`` on ``x``; NaN (undefined) with fewer than 2 distinct ``x``."""
    return float(np.polyfit(x, y, 1)[0]) if np.ptp(x) > 0 else np.nan


def choice_diagnostics(pred_log: np.ndarray, shots: np.ndarray, targets: np.ndarray, data: ConfigMeasurements,
                       app: int) -> np.ndarray:
    """Per draw, the :data:`DIAGNOSTICS` of predictions ``pred_log`` (draws, T, 2) at ``targets``, estimating cost as
    :func:`~flash_rl.fewshot.evaluate.score` does (priced from the runtime where the data has a price list); a
    :data:`~flash_rl.fewshot.evaluate.Scorer`."""
    runtime, cost = data.runtime_s[app, targets], data.cost_usd[app, targets]
    out = []
    for d in range(pred_log.shape[0]):
        unmeasured = ~np.isin(targets, shots[d])
        est_rt = np.exp(pred_log[d, :, 0])
        est_cost = data.pricing.cost(targets, est_rt) if data.pricing is not None else np.exp(pred_log[d, :, 1])
        est_rt, est_cost = np.where(unmeasured, est_rt, runtime), np.where(unmeasured, est_cost, cost)
        log_measured = np.log(runtime[unmeasured])
        error = np.log(est_rt[unmeasured]) - log_measured
        near = runtime[unmeasured] <= max(DEADLINE_FACTORS) * runtime.min()
        picks = [pick_config(est_rt, est_cost, factor * runtime.min()) for factor in DEADLINE_FACTORS]
        out.append([error.std(), error.mean(), _slope(log_measured, error + log_measured),
                    error[near].mean() if near.any() else np.nan,
                    _rank_correlation(est_rt[unmeasured], runtime[unmeasured]),
                    _rank_correlation(est_cost[unmeasured], cost[unmeasured]),
                    float(np.mean([np.log(runtime[p] / est_rt[p]) for p in picks]))])
    return np.asarray(out)


def diagnosis_summaries(per_app: dict[int, dict[str, dict[str, np.ndarray]]],
                        groups: dict[str, str] | None = None) -> dict[str, dict]:
    """The ``summary`` (mean and CI per K, method and measure) and ``flash_minus`` (FLASH - method, paired per app)
    of the per-app :data:`DIAGNOSTICS`; CIs over whole ``groups`` if given. An app whose value is NaN (no draw
    defined it) is left out of that measure's entry (``n`` counts the others)."""
    return {"summary": summarise(per_app, groups=groups, metrics=DIAGNOSTICS, skip_nan=True),
            "flash_minus": paired_differences(per_app, "FLASH", groups=groups, metrics=DIAGNOSTICS, skip_nan=True)}


#: What a cell shows for a measure that no held-out app has a value for.
NOT_AVAILABLE = "n/a"


def _cell(s: dict[str, float]) -> str:
    return NOT_AVAILABLE if s["n"] == 0 else ci_cell(s, 3)


def _undefined_note(report: dict) -> str:
    """A sentence for the notes where, at some K, some held-out app has no value for some measure (so that entry's
    ``n`` is below that of the error spread, which every draw defines); empty otherwise."""
    def left_out(k: str) -> bool:
        scored = report["summary"][k]["FLASH"]["error spread"]["n"]
        return any(e["n"] < scored for part in ("summary", "flash_minus") for measures in report[part][k].values()
                   for e in measures.values())

    if not any(left_out(k) for k in report["summary"]):
        return ""
    return (" Some measures are undefined for some draws: runtime slope and rank rho with fewer than 2 distinct "
            "measured values among the configurations that were not shots, bias near the deadlines where every "
            "configuration near the deadlines was a shot. Such a measure is averaged over the draws that define it, "
            "and an application that has none is left out of its mean and CI (`n` in diagnosis.json counts the "
            f"applications left in; [no CI]: a single one); {NOT_AVAILABLE}: no held-out application has a value.")


def diagnosis_table(report: dict, title: str) -> str:
    """Markdown: per K, the mean [95 % CI] of each measure per method, then FLASH minus each method."""
    lines = [f"### Diagnosis: {title}", "",
             "Mean over held-out applications [95% bootstrap CI] of measures of the predictions that the reported "
             "tables score (`flash_rl/fewshot/diagnose.py` defines them): error spread and bias of the log runtime "
             "error, Spearman rank correlations of predicted and measured runtime and cost, and log(measured / "
             "estimated runtime) of the picked configuration." + _undefined_note(report), ""]
    for k in sorted(report["summary"], key=int):
        summary, diffs = report["summary"][k], report["flash_minus"][k]
        lines += [f"K = {k}:", "", *md_table(("method", *DIAGNOSTICS),
                                             [(m, *(_cell(summary[m][d]) for d in DIAGNOSTICS)) for m in METHODS]),
                  "", f"FLASH minus each method, paired per held-out application (K = {k}):", "",
                  *md_table(("FLASH -", *DIAGNOSTICS),
                            [(m, *(_cell(diffs[m][d]) for d in DIAGNOSTICS)) for m in diffs]), ""]
    return "\n".join(lines)

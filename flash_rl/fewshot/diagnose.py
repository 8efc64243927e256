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
                        look slower than they are and its slow ones faster)
bias near the deadlines the bias over the configurations at most twice as slow as the app's fastest (those that can
                        meet the loosest deadline, 2x; > 0: believed slower than they are, a safe error there)
runtime rank rho        Spearman correlation of predicted and measured runtimes (1: the same order; 0 for a
                        prediction that is constant, which orders nothing)
cost rank rho           the same for the estimated and the measured costs
error at the pick       log(measured / estimated runtime) of the configuration picked for each deadline, as in the
                        regret (> 0: the pick is slower than the method believed, so it risks missing the deadline)
======================  ============================================================================================

Per app the values are averaged over draws, deadlines and seeds; the tables give the mean over held-out apps with a
95 % bootstrap CI and FLASH minus each method paired per app, as the reported tables do.
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
    """Spearman's rho; 0 for a constant prediction (it orders nothing; scipy would give NaN)."""
    if np.ptp(predicted) == 0 or np.ptp(measured) == 0:
        return 0.0
    return float(spearmanr(predicted, measured).statistic)


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
        out.append([error.std(), error.mean(), np.polyfit(log_measured, error + log_measured, 1)[0],
                    error[near].mean() if near.any() else np.nan,
                    _rank_correlation(est_rt[unmeasured], runtime[unmeasured]),
                    _rank_correlation(est_cost[unmeasured], cost[unmeasured]),
                    float(np.mean([np.log(runtime[p] / est_rt[p]) for p in picks]))])
    return np.asarray(out)


def diagnosis_summaries(per_app: dict[int, dict[str, dict[str, np.ndarray]]],
                        groups: dict[str, str] | None = None) -> dict[str, dict]:
    """The ``summary`` (mean and CI per K, method and measure) and ``flash_minus`` (FLASH - method, paired per app)
    of the per-app :data:`DIAGNOSTICS`; CIs over whole ``groups`` if given."""
    return {"summary": summarise(per_app, groups=groups, metrics=DIAGNOSTICS),
            "flash_minus": paired_differences(per_app, "FLASH", groups=groups, metrics=DIAGNOSTICS)}


def diagnosis_table(report: dict, title: str) -> str:
    """Markdown: per K, the mean [95 % CI] of each measure per method, then FLASH minus each method."""
    lines = [f"### Diagnosis: {title}", "",
             "Mean over held-out applications [95% bootstrap CI] of measures of the predictions that the reported "
             "tables score (`flash_rl/fewshot/diagnose.py` defines them): error spread and bias of the log runtime "
             "error, Spearman rank correlations of predicted and measured runtime and cost, and log(measured / "
             "estimated runtime) of the picked configuration.", ""]
    for k in sorted(report["summary"], key=int):
        summary, diffs = report["summary"][k], report["flash_minus"][k]
        lines += [f"K = {k}:", "", *md_table(("method", *DIAGNOSTICS),
                                             [(m, *(ci_cell(summary[m][d], 3) for d in DIAGNOSTICS)) for m in METHODS]),
                  "", f"FLASH minus each method, paired per held-out application (K = {k}):", "",
                  *md_table(("FLASH -", *DIAGNOSTICS),
                            [(m, *(ci_cell(diffs[m][d], 3) for d in DIAGNOSTICS)) for m in diffs]), ""]
    return "\n".join(lines)

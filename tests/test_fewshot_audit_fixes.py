"""Fixes from an audit of ``flash config-eval`` and the few-shot predictor: held-out apps that leaked into training
through their names, diagnostics that crashed or were NaN, early stopping that did not validate, options that
``--render`` let through, and errors that named the wrong thing."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from flash_envs.data import DataFormatError
from flash_envs.data.config_measurements import load_chunkfunc, load_ibm_multicloud, simulated_measurements
from flash_rl.cli import main
from flash_rl.fewshot.cli import HOLD_OUT_GROUPS
from flash_rl.fewshot.diagnose import DIAGNOSTICS, choice_diagnostics, diagnosis_summaries, diagnosis_table
from flash_rl.fewshot.episodes import EpisodeSampler
from flash_rl.fewshot.evaluate import evaluate_split, mean_over_runs, shot_rng
from flash_rl.fewshot.models import FewShotModel, train_model
from flash_rl.fewshot.predictor import FewShotPredictor
from flash_rl.fewshot.report import METHODS, summarise
from flash_rl.fewshot.splits import Split
from flash_rl.fewshot.train_config import TrainConfig
from test_fewshot import _data_error, _usage_error   # the tests' module folder is on sys.path (pytest's rootdir import)

IBM_HEADER = (",provider,A_family,A_vcpu,B_family,B_vcpu,C_family,C_type,C_vcpu,nodes,workload,target_cost,"
              "target_runtime,status\n")
CHUNKFUNC_HEADER = ("platform,function,step_id,resource_profile,memory_mib,milli_cpu,deployment_status,"
                    "input_size_bytes,execution_time_ms,execution_cost_usd,status_code\n")
SMOKE = ["--seeds", "1", "--steps", "20", "--draws", "1", "--jobs", "1", "--no-progress"]


def _ibm_csv(path, workloads: list[str], runtimes: tuple[float, ...] = (10.0, 20.0, 30.0, 40.0)) -> str:
    """An IBM-schema CSV: each workload measured at nodes 2, 3, ... (one per runtime), cost 0.001 x runtime."""
    rows = [f"0,A,0,0,,,,,,{2 + j},{w},{0.001 * (i + 1) * rt},{(i + 1) * rt},ok\n"
            for i, w in enumerate(workloads) for j, rt in enumerate(runtimes)]
    path.write_text(IBM_HEADER + "".join(rows))
    return str(path)




# 1. names with surrounding whitespace

def test_names_are_read_without_surrounding_whitespace(tmp_path):
    """"w " and "w" are one workload: their rows at one configuration are a repeated measurement (merged by the
    geometric mean and counted), in the IBM and the chunk-func schema alike."""
    ibm = tmp_path / "ibm.csv"
    ibm.write_text(IBM_HEADER + "0,A,0,0,,,,,,2,w ,0.01,10.0,ok\n1,A,0,0,,,,,,2, w,0.04,40.0,ok\n"
                   "2,A,0,0,,,,,,3,w,0.03,30.0,ok\n")
    data = load_ibm_multicloud(ibm)
    assert data.apps == ("w",) and data.counts["merged duplicates"] == 1
    np.testing.assert_allclose(data.runtime_s, [[20.0, 30.0]])           # sqrt(10 x 40) at nodes=2
    chunkfunc = tmp_path / "chunkfunc.csv"
    chunkfunc.write_text(CHUNKFUNC_HEADER + "aws_lambda,f ,s,128mib-1000m,128,1000,DeploymentSuccess,100,10,0,200\n"
                         "aws_lambda,f,s,128mib-1000m,128,1000,DeploymentSuccess,100,40,0,200\n")
    data = load_chunkfunc(chunkfunc)
    assert data.apps == ("aws_lambda/f/100",) and data.counts["merged duplicates"] == 1
    np.testing.assert_allclose(data.runtime_s, [[0.02]])


def test_a_held_out_workload_named_with_a_trailing_space_is_still_refused_in_training(tmp_path, capsys,
                                                                                       no_training):
    train = _ibm_csv(tmp_path / "train.csv", ["d0-alg0", "d1-alg1", "d2-alg2"])
    test = _ibm_csv(tmp_path / "test.csv", ["d0-alg0 ", "d3-alg1"])
    assert _data_error(["--train", train, "--test", test, "--shots", "1"], capsys).endswith(
        f"--train {train} and --test {test}: 1 app(s) both in training and held out: ['d0-alg0']; held-out apps "
        "must never be trained on")


# 2. --hold-out groups read from names with exactly the expected parts

def test_hold_out_groups_need_names_of_exactly_the_expected_parts():
    algorithm_of, function_of = HOLD_OUT_GROUPS["algorithm"][1], HOLD_OUT_GROUPS["function"][1]
    assert algorithm_of("buzz-kmeans") == "kmeans" and function_of("aws_lambda/detect-faces/100") == "detect-faces"
    for name in ("credit-card-kmeans", "kmeans", "buzz-", "-kmeans"):
        with pytest.raises(ValueError, match="does not split at '-' into 2 non-empty parts"):
            algorithm_of(name)
    for name in ("aws_lambda/f", "aws_lambda/f/100/x", "aws_lambda//100"):
        with pytest.raises(ValueError, match="does not split at '/' into 3 non-empty parts"):
            function_of(name)


def test_an_algorithm_name_with_more_than_one_hyphen_is_refused_not_misgrouped(tmp_path, capsys, no_training):
    """credit-card-kmeans was grouped as "card-kmeans", so kmeans was trained on while held out."""
    train = _ibm_csv(tmp_path / "hyph.csv", ["buzz-kmeans", "credit-card-kmeans", "buzz-xgboost"])
    assert _data_error(["--train", train, "--hold-out", "algorithm"], capsys) == (
        "flash: error: --hold-out algorithm: workload 'credit-card-kmeans' of ibm:hyph.csv does not name "
        "its algorithm (expected dataset-algorithm with exactly one '-', e.g. buzz-kmeans)")


def test_an_algorithm_is_read_without_surrounding_blanks():
    """"creditcard- kmeans" made a group " kmeans" of its own, so kmeans was trained on while held out."""
    algorithm_of = HOLD_OUT_GROUPS["algorithm"][1]
    assert algorithm_of("creditcard- kmeans") == algorithm_of("buzz-kmeans ") == "kmeans"
    with pytest.raises(ValueError, match="non-empty parts"):
        algorithm_of("buzz- ")


# 3. and 4. diagnostics that some draws leave undefined

def test_slope_and_rank_rho_are_undefined_with_fewer_than_two_distinct_measured_values(tmp_path):
    """One unmeasured target (or all unmeasured runtimes equal) has no slope and no order: NaN, not a crash (polyfit)
    or a rho of 0; a constant prediction over distinct values still has rho 0."""
    data = load_ibm_multicloud(_ibm_csv(tmp_path / "d.csv", ["a-x"], runtimes=(10.0, 20.0, 40.0)))
    targets = np.arange(3)
    truth = np.log(np.stack([data.runtime_s[0], data.cost_usd[0]], axis=-1))[None]
    one_left = dict(zip(DIAGNOSTICS, choice_diagnostics(truth + 0.1, targets[None, :2], targets, data, 0)[0]))
    assert np.isnan(one_left["runtime slope"]) and np.isnan(one_left["runtime rank rho"])
    assert np.isnan(one_left["cost rank rho"]) and one_left["bias"] == pytest.approx(0.1)
    flat = dict(zip(DIAGNOSTICS, choice_diagnostics(np.zeros_like(truth), targets[None, :1], targets, data, 0)[0]))
    assert flat["runtime rank rho"] == 0 and flat["runtime slope"] == pytest.approx(0, abs=1e-12)
    tied = load_ibm_multicloud(_ibm_csv(tmp_path / "t.csv", ["a-x"], runtimes=(10.0, 20.0, 20.0)))
    truth = np.log(np.stack([tied.runtime_s[0], tied.cost_usd[0]], axis=-1))[None]
    ties = dict(zip(DIAGNOSTICS, choice_diagnostics(truth, targets[None, :1], targets, tied, 0)[0]))
    assert np.isnan(ties["runtime slope"]) and np.isnan(ties["runtime rank rho"])


def test_diagnose_with_a_single_unmeasured_target_says_n_a(tmp_path, capsys):
    """3 configurations and K = 2 leave one target: the run ends normally (it crashed with "SVD did not converge"),
    the undefined measures read n/a and the notes say why."""
    train = _ibm_csv(tmp_path / "onesec.csv", [f"d{i}-alg{i % 2}" for i in range(6)], runtimes=(1.0, 2.0, 4.0))
    out = tmp_path / "out"
    assert main(["config-eval", "--train", train, "--folds", "2", "--shots", "2", "--diagnose", "--out", str(out),
                 *SMOKE]) == 0
    table = capsys.readouterr().out
    flash_row = next(line for line in table.splitlines() if line.startswith("| FLASH | "))
    cells = dict(zip(DIAGNOSTICS, flash_row.strip("| ").split(" | ")[1:]))
    assert cells["runtime slope"] == cells["runtime rank rho"] == cells["cost rank rho"] == "n/a"
    assert "nan" not in table and "n/a: no held-out application has a value" in table
    report = json.loads((out / "diagnosis.json").read_text())
    assert report["summary"]["2"]["FLASH"]["runtime slope"] == {"mean": None, "low": None, "high": None, "n": 0}
    assert report["summary"]["2"]["FLASH"]["error spread"]["n"] == 6


def test_a_draw_without_a_value_is_left_out_of_the_diagnostics_average(tmp_path, capsys):
    """K = 1 on runtimes 1, 10, 30: "bias near the deadlines" is undefined exactly in the draws whose shot is the
    fastest configuration. An app keeps the value of its other draws (one such draw made it NaN), and only an app
    with no defined draw is left out of the mean."""
    workloads = [f"d{i}-alg{i % 2}" for i in range(6)]
    train = _ibm_csv(tmp_path / "near.csv", workloads, runtimes=(1.0, 10.0, 30.0))
    out = tmp_path / "out"
    argv = ["--train", train, "--folds", "2", "--shots", "1", "--diagnose", "--out", str(out), *SMOKE]
    argv[argv.index("--draws") + 1] = "3"
    assert main(["config-eval", *argv]) == 0
    capsys.readouterr()
    data = load_ibm_multicloud(train)
    sampler = EpisodeSampler(data, 1)
    fastest_shot = [[shot[0] == 0 for shot in sampler.evaluation(i, 3, shot_rng(0, app))[1]]
                    for i, app in enumerate(data.apps)]
    partly = [any(draws) and not all(draws) for draws in fastest_shot]
    assert any(partly)                                                   # the case this test is about
    report = json.loads((out / "diagnosis.json").read_text())
    near = report["summary"]["1"]["FLASH"]["bias near the deadlines"]
    assert near["n"] == sum(not all(draws) for draws in fastest_shot) and near["mean"] is not None
    per_app = report["per_app"]["1"]["FLASH"]
    assert all((per_app[app][3] is None) == all(draws) for app, draws in zip(data.apps, fastest_shot))


def test_diagnostic_averages_skip_undefined_values_and_the_scores_do_not():
    assert np.array_equal(mean_over_runs([np.array([1.0, np.nan]), np.array([3.0, 5.0])], nan_aware=True), [2, 5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(mean_over_runs(np.array([[np.nan], [np.nan]]), nan_aware=True)).all()
    assert np.isnan(mean_over_runs([np.array([1.0, np.nan]), np.array([3.0, 5.0])])[1])
    measures = {a: np.array([1.0, v, np.nan, 2.0, 0.5, 0.5, 0.0]) for a, v in (("a", 1.0), ("b", np.nan),
                                                                                 ("c", 3.0))}
    per_app = {2: {m: dict(measures) for m in METHODS}}
    report = diagnosis_summaries(per_app)
    bias, slope = report["summary"][2]["FLASH"]["bias"], report["summary"][2]["FLASH"]["runtime slope"]
    assert bias["mean"] == 2.0 and bias["n"] == 2 and slope["n"] == 0 and np.isnan(slope["mean"])
    assert report["flash_minus"][2]["base learner"]["bias"]["n"] == 2
    table = diagnosis_table(report, "t")
    assert "| FLASH | 1.000 [1.000, 1.000] | 2.000 [1.000, 3.000] | n/a |" in table and "nan" not in table
    assert "left out of its mean and CI" in table
    with pytest.raises(ValueError, match="not finite"):   # the scored path skips nothing: a NaN there is refused
        summarise(per_app, metrics=DIAGNOSTICS)


def test_evaluate_split_averages_only_the_defined_draws_when_asked():
    sim = simulated_measurements(8)
    split = Split("s", sim.select_apps(sim.apps[:5]), sim.select_apps(sim.apps[5:]))

    def first_draw_undefined(pred, shots, targets, data, app):
        return np.array([[np.nan if d == 0 else float(d)] for d in range(pred.shape[0])])

    cfg = TrainConfig(steps=2, finetune_steps=1, hidden=8)
    kept = evaluate_split(split, 1, 0, cfg, 3, scorer=first_draw_undefined, nan_aware=True)
    assert all(v.tolist() == [1.5] for apps in kept.values() for v in apps.values())
    plain = evaluate_split(split, 1, 0, cfg, 3, scorer=first_draw_undefined)
    assert all(np.isnan(v).all() for apps in plain.values() for v in apps.values())


# 5. early stopping also validates the last step

@pytest.mark.parametrize("steps, evaluations", [(5, 1), (250, 1), (300, 2)])
def test_early_stopping_validates_after_the_last_step(steps, evaluations, monkeypatch):
    """With fewer steps than eval_every nothing was validated (no early stopping), and the steps after the last
    multiple of eval_every were discarded unvalidated."""
    sim = simulated_measurements(6)
    sampler = EpisodeSampler(sim.select_apps(sim.apps[:4]), 1)
    validation = EpisodeSampler(sim.select_apps(sim.apps[4:]), 1).sample(8, 4, np.random.default_rng(1))
    calls = []
    predict = FewShotModel.predict
    monkeypatch.setattr(FewShotModel, "predict", lambda self, ep: calls.append(1) or predict(self, ep))
    cfg = TrainConfig(steps=steps, batch=4, n_targets=4, hidden=8, embed_dim=2, eval_every=250)
    train_model(sampler, "base", cfg, np.random.default_rng(0), validation=validation)
    assert len(calls) == evaluations


# 6. --render refuses every option of a run that was given

def test_render_refuses_options_of_a_run_given_with_their_default_value(tmp_path, capsys):
    per_app = {"1": {m: {"a": [10.0, 11.0, 5.0, 0.0], "b": [20.0, 19.0, 7.0, 0.0]} for m in METHODS}}
    (tmp_path / "summary.json").write_text(json.dumps({
        "dataset": "ibm", "hold_out": "workload", "train": "ibm:t.csv", "test": "ibm:t.csv", "seeds": 1,
        "splits": [{"name": "fold 1/2", "train_apps": ["c", "d"], "test_apps": ["a", "b"]}],
        "train_config": {"val_fraction": 0.0}, "cost": "priced", "per_app": per_app}))
    for options, dropped in ((["--seeds", "3", "--cost", "priced", "--jobs", "2"], "--seeds, --cost, --jobs"),
                             (["--dataset", "ibm", "--shots", "1", "2", "5"], "--dataset, --shots"),
                             (["--hold-out", "workload", "--val-fraction", "0"], "--hold-out, --val-fraction")):
        assert _usage_error(["--render", str(tmp_path), *options], capsys, smoke=False) == (
            f"flash config-eval: error: --render only re-summarises the per-app values stored in "
            f"{tmp_path}/summary.json; drop {dropped}")
        assert not (tmp_path / "table.md").exists()
    assert main(["config-eval", "--render", str(tmp_path), "--json", "--no-progress"]) == 0


# 7. FewShotPredictor.fit names its arguments' types

def test_fit_names_data_and_cfg_of_the_wrong_type():
    data = simulated_measurements(6)
    with pytest.raises(TypeError, match="data must be a ConfigMeasurements .*, got a str"):
        FewShotPredictor.fit("data.csv", k=2, cfg=TrainConfig(steps=5), progress=False)
    with pytest.raises(TypeError, match=r"cfg must be a TrainConfig .*e.g. TrainConfig\(steps=500\), got a dict"):
        FewShotPredictor.fit(data, k=2, cfg={"steps": 5}, progress=False)


# 8. a chunk-func file without the chosen platform

def test_a_chunkfunc_file_without_the_chosen_platform_names_the_platforms_it_has(tmp_path, capsys):
    path = tmp_path / "gcp_only.csv"
    path.write_text(CHUNKFUNC_HEADER + "gcp_cloud_functions,f,s,128mib-83m,128,83,DeploymentSuccess,100,977,0.000003,"
                    "200\n" + "aws_lambda,f,s,128mib-1000m,128,1000,DeploymentFailed,100,,,\n")
    with pytest.raises(DataFormatError, match=r"^chunkfunc:gcp_only.csv: no successful run is on platform "
                                              r"aws_lambda; the file's are on gcp_cloud_functions \(choose the "
                                              r"platform with --platform\)$"):
        load_chunkfunc(path, ["aws_lambda"])
    assert load_chunkfunc(path, ["gcp_cloud_functions"]).apps == ("gcp_cloud_functions/f/100",)


def test_rows_of_a_platform_not_chosen_are_skipped_unread(tmp_path):
    """A GCP row with a cost that is not a number does not stop loading AWS Lambda's rows; loading GCP names it."""
    path = tmp_path / "mixed.csv"
    path.write_text(CHUNKFUNC_HEADER + "gcp_cloud_functions,f,s,128mib-83m,128,83,DeploymentSuccess,100,977,n/a,200\n"
                    + "aws_lambda,f,s,128mib-1000m,128,1000,DeploymentSuccess,100,900,,200\n")
    aws = load_chunkfunc(path, ["aws_lambda"])
    assert aws.apps == ("aws_lambda/f/100",) and aws.counts["skipped: platform gcp_cloud_functions"] == 1
    with pytest.raises(DataFormatError, match=r"mixed.csv:2: column 'execution_cost_usd'"):
        load_chunkfunc(path, ["gcp_cloud_functions"])


# 9. too few workloads for cross-validation, whatever --folds

def test_too_few_workloads_for_cross_validation_is_not_blamed_on_folds(tmp_path, capsys, no_training):
    one = _ibm_csv(tmp_path / "one.csv", ["only-alg"])
    assert _usage_error(["--train", one, "--shots", "1"], capsys) == (
        "flash config-eval: error: ibm:one.csv has 1 workload; cross-validation holds some out and trains on at "
        "least 2 others, so it needs at least 3")
    two = _ibm_csv(tmp_path / "two.csv", ["a-x", "b-x"])
    assert _usage_error(["--train", two, "--folds", "2", "--shots", "1"], capsys).endswith(
        "ibm:two.csv has 2 workloads; cross-validation holds some out and trains on at least 2 others, so it needs "
        "at least 3")
    three = _ibm_csv(tmp_path / "three.csv", ["a-x", "b-x", "c-x"])
    assert _usage_error(["--train", three, "--shots", "1"], capsys).endswith(
        "--folds 4 (the default): ibm:three.csv has only 3 workloads; give --folds 3 or fewer")
    assert _usage_error(["--train", three, "--folds", "5", "--shots", "1"], capsys).endswith(
        "--folds 5: ibm:three.csv has only 3 workloads; give --folds 3 or fewer")


def test_a_message_on_an_option_the_user_did_not_give_says_it_is_the_default(tmp_path, capsys, no_training):
    """Each workload has 4 measured configurations, so K = 5 (of the default shots 1 2 5) cannot be scored."""
    four = _ibm_csv(tmp_path / "four.csv", ["a-x", "b-x", "c-x", "d-x"])
    assert _usage_error(["--train", four, "--folds", "2"], capsys, smoke=False).endswith(
        "--shots 5 (the default): K shots and one target need K + 1 measured configurations, and the training apps "
        "of split 'fold 1/2' have at most 4 measured configurations; give --shots below 4")
    assert _usage_error(["--train", four, "--folds", "2", "--shots", "1", "4"], capsys, smoke=False).endswith(
        "--shots 4: K shots and one target need K + 1 measured configurations, and the training apps of split "
        "'fold 1/2' have at most 4 measured configurations; give --shots below 4")


# 10. a fold whose held-out apps are too sparse for K

def test_a_fold_with_no_scorable_held_out_app_is_skipped_not_the_whole_run(tmp_path, capsys, monkeypatch):
    """Leave-one-out over a file where one workload measured a single configuration: its fold has nothing to score
    at K = 1, so it is skipped (untrained) with the warning naming the app; the other folds are scored. (The run
    used to be refused, telling the user to give --shots below 1.)"""
    from flash_rl.fewshot import evaluate
    path = tmp_path / "sparse.csv"
    _ibm_csv(path, ["a-x", "b-x", "c-x", "d-x", "e-x"])
    path.write_text(path.read_text() + "0,A,0,0,,,,,,2,z-x,0.01,10.0,ok\n")
    trained_for = []
    real = evaluate.evaluate_split
    monkeypatch.setattr(evaluate, "evaluate_split",
                        lambda split, *args, **kw: trained_for.append(split.name) or real(split, *args, **kw))
    assert main(["config-eval", "--train", str(path), "--folds", "6", "--shots", "1", "--json", *SMOKE]) == 0
    out = capsys.readouterr()
    assert "K = 1: 1 held-out app(s) have fewer than K + 1 measured configurations and are not scored: ['z-x']" in (
        out.err)
    assert len(trained_for) == 5 and all("z-x" not in name for name in trained_for)
    assert json.loads(out.out)["1"]["FLASH"]["runtime MAPE (%)"]["n"] == 5


def test_a_k_that_cannot_be_trained_or_scored_says_which_side_lacks_measurements(tmp_path, capsys, no_training):
    singles = _ibm_csv(tmp_path / "singles.csv", ["a-x", "b-x", "c-x"], runtimes=(10.0,))
    assert _usage_error(["--train", singles, "--folds", "3", "--shots", "1"], capsys).endswith(
        "--shots 1: K shots and one target need K + 1 measured configurations, and the training apps of split "
        "'fold 1/3' have at most 1 measured configuration; no number of shots can be evaluated on these data")
    train = _ibm_csv(tmp_path / "train.csv", ["a-x", "b-x", "c-x"])
    test = _ibm_csv(tmp_path / "test.csv", ["d-x", "e-x"], runtimes=(10.0, 20.0))
    assert _usage_error(["--train", train, "--test", test, "--shots", "1", "2", *SMOKE], capsys, smoke=False).endswith(
        "--shots 2: K shots and one target need K + 1 measured configurations, and no held-out app has more than 2 "
        "measured configurations; give --shots below 2")


def test_run_refuses_a_k_no_split_can_score_before_training(monkeypatch):
    from dataclasses import replace

    from flash_rl.fewshot import evaluate
    monkeypatch.setattr(evaluate, "evaluate_split", lambda *a, **kw: pytest.fail("trained before refusing"))
    data = simulated_measurements(12)
    test = data.select_apps(data.apps[8:])
    two_measured = np.arange(len(test.configs)) < 2                      # every held-out app: 2 configurations
    test = replace(test, runtime_s=np.where(two_measured, test.runtime_s, np.nan),
                   cost_usd=np.where(two_measured, test.cost_usd, np.nan))
    with pytest.raises(ValueError, match="K = 2: no held-out app of the 1 split"):
        evaluate.run([Split("s", data.select_apps(data.apps[:8]), test)], (1, 2), (0,), TrainConfig(steps=5), 1)


# 11. a file of the other schema

def test_a_file_of_the_other_schema_is_told_which_dataset_to_give(tmp_path, capsys, no_training):
    ibm = _ibm_csv(tmp_path / "ibm.csv", ["a-x", "b-x", "c-x"])
    chunkfunc = tmp_path / "chunkfunc.csv"
    chunkfunc.write_text(CHUNKFUNC_HEADER + "aws_lambda,f,s,128mib-1000m,128,1000,DeploymentSuccess,100,10,0,200\n")
    assert _data_error(["--train", str(chunkfunc)], capsys).endswith(
        "it has the columns of the chunkfunc schema; give --dataset chunkfunc")
    assert _data_error(["--dataset", "chunkfunc", "--train", ibm], capsys).endswith(
        "it has the columns of the ibm schema; give --dataset ibm")
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    assert _data_error(["--train", str(other)], capsys).endswith("the header has ['a', 'b']")


# 12. a level that never varies in training, a split of two schemas, shots and seeds of another type

def test_a_cost_of_one_price_for_every_training_app_leaves_the_predictions_finite():
    """The level was standardised by the training apps' spread + 1e-6: a cost of one price for all gave a held-out app
    at another price a context near 10^6, and every neural method's runtime MAPE was inf (config-eval: a traceback)."""
    from dataclasses import replace

    data = simulated_measurements(10, memory_sizes=(128, 512, 2048))
    cost = np.where(np.arange(len(data.apps))[:, None] < 8, 1e-6, 2e-6) * np.ones_like(data.cost_usd)
    data = replace(data, cost_usd=cost)
    split = Split("s", data.select_apps(data.apps[:8]), data.select_apps(data.apps[8:]))
    scores = evaluate_split(split, 1, 0, TrainConfig(steps=20, val_fraction=0), 1)
    values = np.array([v for method in scores.values() for metric in method.values() for v in np.ravel(metric)])
    assert values.size and np.isfinite(values).all()


def test_a_split_of_two_schemas_is_refused_before_any_training():
    """A simulated training side and a chunk-func test side trained every model, then failed in numpy broadcasting."""
    from dataclasses import replace

    data = simulated_measurements(6, memory_sizes=(128, 512, 2048))
    other = replace(data, feature_names=tuple(f"x{i}" for i in range(len(data.feature_names))))
    with pytest.raises(ValueError, match="describe configurations by other features"):
        Split("s", data.select_apps(data.apps[:4]), other.select_apps(other.apps[4:]))
    shifted = replace(data, features=data.features[::-1].copy())   # the same names, other features per configuration
    with pytest.raises(ValueError, match=r"give other features to \d configuration\(s\) of the same name"):
        Split("s", data.select_apps(data.apps[:4]), shifted.select_apps(shifted.apps[4:]))


@pytest.mark.parametrize("shots, seeds, error, message", [
    ((2.5,), (0,), ValueError, r"shots must be a whole number >= 1, got 2.5"),
    ((True,), (0,), TypeError, r"shots must be a whole number, got True"),
    ((1,), (-1,), ValueError, r"seeds must be a whole number >= 0, got -1"),
    ((1, 1), (0,), ValueError, r"shots \(1, 1\) name one value twice"),
])
def test_run_names_bad_shots_and_seeds_before_training(monkeypatch, shots, seeds, error, message):
    from flash_rl.fewshot import evaluate
    monkeypatch.setattr(evaluate, "evaluate_split", lambda *a, **kw: pytest.fail("trained before refusing"))
    data = simulated_measurements(6, memory_sizes=(128, 512, 2048))
    with pytest.raises(error, match=message):
        evaluate.run([Split("s", data.select_apps(data.apps[:4]), data.select_apps(data.apps[4:]))], shots, seeds,
                     TrainConfig(steps=5), 1)

"""Few-shot configuration prediction (flash_rl.fewshot) and the flash config-eval command."""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from flash_envs.data.config_measurements import simulated_measurements
from flash_rl.cli import main
from flash_rl.fewshot.cli import _splits, held_out_groups, related_groups, report_title
from flash_rl.fewshot.episodes import EpisodeSampler, Episodes
from flash_rl.fewshot import evaluate
from flash_rl.fewshot.evaluate import DEADLINE_FACTORS, choice_quality, evaluate_split, pick_config, score, shot_rng
from flash_rl.fewshot.models import (INPUTS, FewShotModel, ShotEncoder, early_stopping_apps, early_stopping_split,
                                     fine_tune_predict, train_model)
from flash_rl.fewshot.report import (METHODS, METRICS, MISSED_DEADLINE_REGRET, OVERSPEND, markdown_table,
                                     metric_columns, paired_differences, plot_summary, summarise)
from flash_rl.fewshot.splits import Split, app_folds, group_folds, n_validation_apps
from flash_rl.fewshot.train_config import TrainConfig


@pytest.fixture(scope="module")
def sim():
    return simulated_measurements(90, seed=3)


def test_training_episodes_never_target_a_shot(sim):
    sampler = EpisodeSampler(sim, k=2)
    ep = sampler.sample(batch=32, n_targets=8, rng=np.random.default_rng(0))
    assert ep.shot_x.shape == (32, 2, 2) and ep.target_y.shape == (32, 8, 2)
    hit = (ep.target_x[:, :, None, :] == ep.shot_x[:, None, :, :]).all(-1).any(-1)
    assert not hit.any()
    with pytest.raises(ValueError, match="shots must be >= 1"):
        EpisodeSampler(sim, k=0)
    with pytest.raises(ValueError, match="no application"):
        EpisodeSampler(sim, k=len(sim.configs))


def test_flash_encoder_is_permutation_invariant():
    torch.manual_seed(0)
    enc = ShotEncoder(token_dim=5, hidden=16, embed_dim=4)
    tokens = torch.randn(3, 5, 5)
    torch.testing.assert_close(enc(tokens), enc(tokens[:, [1, 2, 3, 4, 0]]))   # every shot moves
    changed = tokens.clone()
    changed[:, 4] += 1.0
    assert not torch.allclose(enc(tokens), enc(changed))   # and each shot counts


def _shots(k: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, k, 2, generator=g), torch.randn(2, k, 2, generator=g), torch.stack(
        [torch.randperm(10, generator=g)[:k] for _ in range(2)]), torch.rand(2, 5, 2, generator=g)


def test_what_each_predictor_sees_of_the_shots():
    torch.manual_seed(0)
    shot_x, shot_y, index, target_x = _shots(3)
    later = [0, 2, 1]                                                      # shot 0 stays the base measurement
    models = {inputs: FewShotModel(2, 3, inputs, y_mean=np.zeros(2), y_std=np.ones(2)) for inputs in INPUTS}
    for model in models.values():
        out = model(shot_x, shot_y, index, target_x)
        assert out.shape == (2, 5, 2)
        same_base_order = model(shot_x[:, later], shot_y[:, later], index[:, later], target_x)
        torch.testing.assert_close(out, same_base_order)                   # no order dependence among later shots
    other_y = shot_y.clone()
    other_y[:, 1:] += 1.0
    base, flash = models["base"], models["flash"]
    torch.testing.assert_close(base(shot_x, other_y, index, target_x), base(shot_x, shot_y, index, target_x))
    assert not torch.allclose(flash(shot_x, other_y, index, target_x), flash(shot_x, shot_y, index, target_x))
    whole = [2, 0, 1]                                                       # the K-shot MLP has no base shot
    torch.testing.assert_close(models["k-shot"](shot_x[:, whole], shot_y[:, whole], index[:, whole], target_x),
                               models["k-shot"](shot_x, shot_y, index, target_x))
    with pytest.raises(ValueError, match="inputs must be one of"):
        FewShotModel(2, 3, "nope", y_mean=np.zeros(2), y_std=np.ones(2))


@pytest.mark.parametrize("inputs", ["base", "flash"])
def test_fine_tuning_adapts_a_predictor_to_the_shots(inputs):
    shot_x, shot_y, index, _ = _shots(2, seed=1)
    model = FewShotModel(2, 2, inputs, y_mean=np.zeros(2), y_std=np.ones(2)).eval()
    ep = Episodes(shot_x, shot_y, index, shot_x, shot_y, index)            # targets = the shots themselves
    cfg = TrainConfig(finetune_steps=200, finetune_lr=1e-2)
    pretrained = model.predict(ep)
    before = torch.nn.functional.mse_loss(pretrained, shot_y)
    after = torch.nn.functional.mse_loss(fine_tune_predict(model, ep, cfg), shot_y)
    assert after < 0.1 * before
    torch.testing.assert_close(model.predict(ep), pretrained, rtol=0, atol=0)   # the pretrained model is untouched
    with pytest.raises(ValueError, match="needs a predictor with a base shot"):
        fine_tune_predict(FewShotModel(2, 2, "k-shot", y_mean=np.zeros(2), y_std=np.ones(2)), ep, cfg)


def test_early_stopping_keeps_the_best_validated_weights(sim):
    torch.set_num_threads(1)
    # 6 training apps: the model over-fits after a few hundred steps, so the best checkpoint is not the last one
    train, held = EpisodeSampler(sim.select_apps(sim.apps[:6]), 2), EpisodeSampler(sim.select_apps(sim.apps[60:]), 2)
    validation = held.sample(128, 8, np.random.default_rng(1))

    def cfg(steps: int) -> TrainConfig:
        return TrainConfig(steps=steps, hidden=64, lr=3e-3, eval_every=100)

    def val_loss(model: FewShotModel) -> float:
        return torch.nn.functional.mse_loss(model.predict(validation), validation.target_y).item()

    best = train_model(train, "flash", cfg(800), np.random.default_rng(0), validation=validation)
    # the same seed replays the same trajectory, so a run of s steps is the checkpoint at step s
    checkpoints = [val_loss(train_model(train, "flash", cfg(s), np.random.default_rng(0)))
                   for s in range(100, 801, 100)]
    assert np.argmin(checkpoints) < len(checkpoints) - 1
    assert val_loss(best) == pytest.approx(min(checkpoints))


def test_folds_hold_apps_out_whole(sim):
    folds = app_folds(sim, 3)
    tests = [set(f.test.apps) for f in folds]
    assert set().union(*tests) == set(sim.apps) and sum(map(len, tests)) == len(sim.apps)
    assert all(not set(f.train.apps) & set(f.test.apps) for f in folds)


@pytest.mark.parametrize("n_folds, seed, message", [(2.5, 0, "n_folds must be a whole number >= 2, got 2.5"),
                                                    (3, -1, "seed must be a whole number >= 0, got -1")])
def test_folds_name_a_bad_count_or_seed(sim, n_folds, seed, message):
    """app_folds(data, 2.5) made 2 folds named "fold 1/2.5"; a seed of -1 was numpy's error, naming nothing."""
    with pytest.raises(ValueError, match=message):
        app_folds(sim, n_folds, seed)


def test_group_folds_hold_each_group_out_whole(sim, capsys):
    folds = group_folds(sim, lambda app: app[-1])                     # fn-012 -> group "2": ten groups
    assert len(folds) == 10
    for fold in folds:
        assert {a[-1] for a in fold.test.apps} == {fold.name[-1]}
        assert fold.name[-1] not in {a[-1] for a in fold.train.apps}
    with pytest.raises(ValueError, match=">= 2 groups"):
        group_folds(sim, lambda app: "all")
    halves = group_folds(sim, lambda app: "even" if int(app[-1]) % 2 == 0 else "odd")   # the fewest groups taken
    assert [fold.name for fold in halves] == ["held-out even", "held-out odd"]
    assert halves[0].test.apps == halves[1].train.apps and halves[0].train.apps == halves[1].test.apps
    with pytest.raises(SystemExit):
        main(["config-eval", "--dataset", "simulated", "--hold-out", "function"])
    assert "error: --hold-out function applies to --dataset chunkfunc" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["config-eval", "--dataset", "chunkfunc", "--hold-out", "algorithm"])
    assert "error: --hold-out algorithm applies to --dataset ibm without --test" in capsys.readouterr().err


def test_ibm_algorithms_are_held_out_with_all_their_datasets(shared_data):
    args = argparse.Namespace(dataset="ibm", train=None, test=None, platform=None, functions=None,
                              train_functions=None, folds=None, hold_out="algorithm")
    folds = _splits(args)
    assert len(folds) == 8                                            # 8 algorithms x 3 datasets
    for fold in folds:
        algorithm = {a.split("-", 1)[1] for a in fold.test.apps}
        assert len(algorithm) == 1 and len(fold.test.apps) == 3
        assert not algorithm & {a.split("-", 1)[1] for a in fold.train.apps}
    report = {"hold_out": "algorithm", "splits": [{"name": f.name, "test_apps": list(f.test.apps)} for f in folds]}
    assert len(set(held_out_groups(report).values())) == 8


def test_perfect_predictions_score_zero(sim):
    targets = np.arange(len(sim.configs))
    truth = np.log(np.stack([sim.runtime_s[0], sim.cost_usd[0]], axis=-1))[None]
    assert score(truth, np.array([[0, 1]]), targets, sim, 0) == pytest.approx(np.zeros((1, len(METRICS))), abs=1e-9)


def test_costs_are_priced_from_the_predicted_runtime_where_the_data_has_a_price_list(sim):
    targets, app = np.arange(len(sim.configs)), 0
    truth = np.log(np.stack([sim.runtime_s[app], sim.cost_usd[app]], axis=-1))
    pred = truth.copy()
    pred[:, 0] += 0.1                                     # runtimes 10.5 % too long everywhere
    pred[:, 1] = truth[::-1, 1]                           # a cost output that is nonsense
    shots = np.array([[0, 1]])
    unmeasured = targets[2:]
    priced = sim.pricing.cost(unmeasured, np.exp(pred[unmeasured, 0]))
    expected = 100 * np.mean(np.abs(priced / sim.cost_usd[app, unmeasured] - 1))
    runtime_mape, cost_mape = score(pred[None], shots, targets, sim, app)[0, :2]
    assert runtime_mape == pytest.approx(100 * (np.exp(0.1) - 1)) and cost_mape == pytest.approx(expected)
    nonsense = score(pred[None], shots, targets, replace(sim, pricing=None), app)[0, 1]   # --cost predicted
    assert nonsense > 10 * cost_mape


def test_regret_and_deadline_misses_of_a_choice():
    rt, cost = np.array([1.0, 1.4, 3.0]), np.array([10.0, 6.0, 2.0])     # deadlines 1.25, 1.5 and 2 s
    # believing configuration 2 fast: picked for every deadline, misses all three
    assert choice_quality(np.array([1.0, 1.4, 1.1]), cost, rt, cost) == (MISSED_DEADLINE_REGRET, 100.0)
    # believing configuration 1 slow: the fastest one is picked; on time, but 10 / 6 - 1 over the best at 1.5 and 2 s
    regret, misses = choice_quality(np.array([1.0, 2.5, 3.0]), cost, rt, cost)
    assert regret == pytest.approx(100 * (0 + 2 * (10 / 6 - 1)) / 3) and misses == 0.0
    # believing configuration 1 fast enough for 1.25 s: misses only that deadline, right for the others
    assert choice_quality(np.array([1.0, 1.2, 3.0]), cost, rt, cost) == pytest.approx((100 / 3, 100 / 3))
    # believing configuration 0 cheap: picked at every deadline, and charged what it costs (10), not the belief (1)
    regret, misses = choice_quality(rt, np.array([1.0, 6.0, 2.0]), rt, cost)
    assert regret == pytest.approx(100 * (0 + 2 * (10 / 6 - 1)) / 3) and misses == 0.0


def test_a_runtime_equal_to_the_deadline_meets_it_when_choosing_and_when_scored():
    """Deadlines 1.25, 1.5 and 2 s, with configurations 1 and 2 taking exactly 1.5 and 2 s: each is the cheapest
    on-time pick at its own deadline, so exact beliefs pick it there, on time and with no regret."""
    rt, cost = np.array([1.0, 1.5, 2.0]), np.array([10.0, 6.0, 2.0])
    assert [pick_config(rt, cost, factor * rt.min()) for factor in DEADLINE_FACTORS] == [0, 1, 2]
    assert choice_quality(rt, cost, rt, cost) == (0.0, 0.0)


def test_the_shots_measured_values_stand_for_the_predictions_at_them(sim):
    """A choice among all configurations uses the measured runtime and cost at the shots, whatever was predicted
    there: predictions right everywhere but at the shots, where they promise the fastest and cheapest of all,
    score as perfect."""
    app, targets = 0, np.arange(len(sim.configs))
    pred = np.log(np.stack([sim.runtime_s[app], sim.cost_usd[app]], axis=-1))
    shots = np.argsort(sim.cost_usd[app])[-2:]                   # the two dearest configurations
    pred[shots] = np.log(1e-6)
    assert score(pred[None], shots[None], targets, replace(sim, pricing=None), app) == pytest.approx(
        np.zeros((1, len(METRICS))), abs=1e-9)


def test_models_are_fitted_on_the_training_apps_only(sim, monkeypatch):
    """Every learned model and matrix completion are fitted on the split's training apps only (the held-out apps are
    scored, never fitted)."""
    fitted = []
    train_model, completion = evaluate.train_model, evaluate.matrix_completion_predictor

    def recorded_train_model(train, inputs, cfg, rng, progress, validation):
        fitted.append(set(train.data.apps))
        return train_model(train, inputs, cfg, rng, progress, validation)

    def recorded_completion(train, test):
        fitted.append(set(train.apps))
        return completion(train, test)

    monkeypatch.setattr(evaluate, "train_model", recorded_train_model)
    monkeypatch.setattr(evaluate, "matrix_completion_predictor", recorded_completion)
    split = Split("s", sim.select_apps(sim.apps[:30]), sim.select_apps(sim.apps[30:40]))
    evaluate_split(split, k=2, seed=0, cfg=TrainConfig(steps=5, hidden=8, val_fraction=0.2), draws=1)
    assert len(fitted) == len(INPUTS) + 1
    assert all(apps and apps < set(split.train.apps) for apps in fitted)   # less: 20% held back to validate


def test_overspend_and_misses_give_the_regret_of_any_miss_charge(monkeypatch):
    rt, cost = np.array([1.0, 1.4, 3.0]), np.array([10.0, 6.0, 2.0])     # deadlines 1.25, 1.5 and 2 s
    beliefs = [np.array([1.0, 1.2, 3.0]),    # misses 1.25 s, right for the others
               np.array([1.0, 2.5, 3.0]),    # on time, but 10 / 6 - 1 over the best at 1.5 and 2 s
               np.array([1.0, 1.4, 1.1])]    # misses all three
    scored = np.array([[5.0, 5.0, *choice_quality(b, cost, rt, cost)] for b in beliefs])
    columns = metric_columns(scored)
    assert list(columns) == [*METRICS, OVERSPEND]
    assert columns[OVERSPEND] == pytest.approx([0.0, 200 * (10 / 6 - 1) / 3, 0.0])
    monkeypatch.setattr(evaluate, "MISSED_DEADLINE_REGRET", 300.0)              # a miss charged three times as much
    tripled = [choice_quality(b, cost, rt, cost)[0] for b in beliefs]
    assert tripled == pytest.approx(columns[OVERSPEND] + 3 * columns["deadline misses (%)"])
    assert list(metric_columns(scored[:, :3])) == list(METRICS[:3])   # reports from before misses: no overspend


def test_an_app_is_scored_on_the_same_shots_in_every_run(sim):
    torch.set_num_threads(1)
    test = sim.select_apps(sim.apps[70:75])
    runs = [(Split("a", sim.select_apps(sim.apps[:30]), test), TrainConfig(steps=20, hidden=16)),
            (Split("b", sim.select_apps(sim.apps[30:68]), sim.select_apps(sim.apps[68:75])),   # more test apps
             TrainConfig(steps=40, hidden=16))]                                              # other training
    nearest = [evaluate_split(split, k=2, seed=1, cfg=cfg, draws=2)["nearest config"] for split, cfg in runs]
    assert all(np.array_equal(nearest[0][app], nearest[1][app]) for app in test.apps)   # it depends on the shots only
    shots = [EpisodeSampler(test, k).evaluation(0, 3, shot_rng(1, test.apps[0]))[1] for k in (1, 2, 5)]
    assert np.array_equal(shots[0], shots[1][:, :1]) and np.array_equal(shots[1], shots[2][:, :2])   # nested in K
    assert not np.array_equal(shots[1], EpisodeSampler(test, 2).evaluation(0, 3, shot_rng(2, test.apps[0]))[1])


def test_bad_evaluation_arguments_are_refused_before_any_training(sim, monkeypatch):
    """draws=0 trained every model, then failed in torch.cat; a held-out side whose apps have too few measured
    configurations was found only after training; run() took jobs=0, and returned nothing for no seeds."""
    from flash_rl.fewshot import evaluate

    def trained(*args, **kwargs):
        raise AssertionError("a model was trained")

    monkeypatch.setattr(evaluate, "train_model", trained)
    split = Split("t", sim.select_apps(sim.apps[:60]), sim.select_apps(sim.apps[60:]))
    for draws in (0, -1, 1.5):
        with pytest.raises(ValueError, match=f"^draws must be a whole number >= 1, got {draws}"):
            evaluate_split(split, 2, 0, TrainConfig(steps=5), draws)
    with pytest.raises(ValueError, match=r"no application has the 16 measured configurations that 15 shots"):
        evaluate_split(split, 15, 0, TrainConfig(steps=5), 1)   # the held-out side, before training
    with pytest.raises(ValueError, match="^jobs must be a whole number >= 1, got 0"):
        evaluate.run([split], (2,), (0,), TrainConfig(steps=5), 1, progress=False, jobs=0)
    with pytest.raises(ValueError, match=r"^nothing to evaluate: 1 split\(s\), shots \(2,\), seeds \(\)"):
        evaluate.run([split], (2,), (), TrainConfig(steps=5), 1, progress=False)


def test_learned_predictors_beat_nearest_config(sim):
    torch.set_num_threads(1)
    split = Split("t", sim.select_apps(sim.apps[:70]), sim.select_apps(sim.apps[70:]))
    res = evaluate_split(split, k=2, seed=0, cfg=TrainConfig(steps=250, hidden=64, finetune_steps=2), draws=1)
    mape = {m: np.mean([v[0] for v in apps.values()]) for m, apps in res.items()}
    assert all(mape[m] < mape["nearest config"] for m in ("FLASH", "base learner", "matrix completion"))
    # FLASH + fine-tuning starts from the FLASH model, not from the base learner, and does change it
    assert len({mape["FLASH"], mape["FLASH + fine-tuning"], mape["fine-tuned (transfer)"]}) == 3


SMOKE = ["--shots", "1", "--seeds", "1", "--steps", "20", "--draws", "1", "--no-progress"]


def test_cli_smoke_on_simulated_functions(tmp_path, capsys):
    assert main(["config-eval", "--dataset", "simulated", "--functions", "30", "--train-functions", "12",
                 "--val-fraction", "0.25", "--json", "--out", str(tmp_path), *SMOKE]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["1"]) == set(METHODS)
    assert {p.name for p in tmp_path.iterdir()} == {"table.md", "summary.json", "summary.png"}
    table = (tmp_path / "table.md").read_text()
    for reference in ("FLASH", "FLASH + fine-tuning"):                # one paired-difference table per reference
        assert f"| {reference} - |" in table
    assert "| FLASH + fine-tuning | " in table.split("| FLASH - |")[1]   # FLASH's table compares it with FLASH + FT
    assert table.startswith("### simulated: simulated:30fn-seed2024 -> simulated:30fn-seed2024; 1 split(s) of 12 "
                            "training (25% of them kept for early stopping) and 10 held-out apps; 1 seed(s)")
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["machine"]["packages"]["torch"] == torch.__version__   # which machine's numbers these are
    (split,) = written["splits"]
    assert len(split["train_apps"]) == 12 and not set(split["train_apps"]) & set(split["test_apps"])
    report = (tmp_path / "summary.json").read_text()
    older = json.loads(report)                                         # as written before overspend was derived
    for key in ("summary", "flash_minus", "flash_fine_tuned_minus"):
        for methods in older[key].values():
            for metrics in methods.values():
                del metrics[OVERSPEND]
    (tmp_path / "summary.json").write_text(json.dumps(older, indent=1))
    for name in ("table.md", "summary.png"):                           # --render rebuilds them from the per-app values
        (tmp_path / name).unlink()
    assert main(["config-eval", "--render", str(tmp_path)]) == 0
    assert (tmp_path / "table.md").read_text() == table and (tmp_path / "summary.png").is_file()
    assert (tmp_path / "summary.json").read_text() == report


def test_no_more_workers_start_than_there_are_evaluations(sim, monkeypatch):
    """``--jobs`` defaults to the usable CPUs; a run of one (K, seed, split) evaluation starts no worker process."""
    def no_pool(*args, **kwargs):
        raise AssertionError("a worker pool was started for one evaluation")

    monkeypatch.setattr(evaluate, "worker_pool", no_pool)
    split = app_folds(sim, 3)[0]
    per_app = evaluate.run([split], (1,), (0,), TrainConfig(steps=5, finetune_steps=1), draws=1, progress=False, jobs=4)
    assert len(per_app[1]["FLASH"]) == len(split.test.apps)


def test_worker_processes_give_the_serial_numbers(tmp_path):
    reports = []
    for jobs in ("1", "2"):
        out = tmp_path / jobs
        assert main(["config-eval", "--dataset", "simulated", "--functions", "30", "--train-functions", "12",
                     "--shots", "1", "2", "--seeds", "2", "--steps", "20", "--draws", "1", "--no-progress",
                     "--jobs", jobs, "--out", str(out)]) == 0
        reports.append(json.loads((out / "summary.json").read_text()))
    assert reports[0] == reports[1] and len(reports[0]["per_app"]["2"]["FLASH"]) == 10


def test_render_needs_a_summary(tmp_path, capsys):
    assert main(["config-eval", "--render", str(tmp_path)]) == 2
    assert "summary.json not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["config-eval", "--render", str(tmp_path), "--out", str(tmp_path)])
    assert exit_info.value.code == 2 and "drop --out" in capsys.readouterr().err
    (tmp_path / "diagnosis.json").write_text("{}")   # a --diagnose folder: the hint said to run with --out there
    assert main(["config-eval", "--render", str(tmp_path)]) == 2
    assert "holds a --diagnose run (diagnosis.json), which --render does not redraw" in capsys.readouterr().err


def test_table_bolds_every_method_that_prints_the_lowest_mean():
    means = {"FLASH": 22.62, "fine-tuned (transfer)": 22.64, "base learner": 22.66}   # print 22.6, 22.6, 22.7
    summary = {2: {m: {metric: {"mean": means.get(m, 30.0), "low": 0.0, "high": 40.0} for metric in METRICS}
                   for m in METHODS}}
    rows = {line.split(" | ")[0][2:]: line for line in markdown_table(summary, "t").splitlines()
            if line.startswith("| ") and not line.startswith("| method")}
    assert "**22.6" in rows["FLASH"] and "**22.6" in rows["fine-tuned (transfer)"]
    assert "**" not in rows["base learner"] and "**" not in rows["nearest config"]


def test_report_titles_say_how_cost_was_estimated():
    report = {"splits": [{"train_apps": ["a", "b"], "test_apps": ["c"]}], "hold_out": "workload", "dataset": "ibm",
              "train": "x", "test": "y", "seeds": 1, "train_config": {"val_fraction": 0.0}}
    assert report_title(report).endswith("; 1 seed(s); cost predicted by each method")   # written before --cost
    assert report_title({**report, "cost": "priced"}).endswith("; cost = price list x predicted runtime")


def test_reports_written_before_deadline_misses_still_render(tmp_path):
    summary = {2: {m: {metric: {"mean": 30.0, "low": 20.0, "high": 40.0} for metric in METRICS[:3]} for m in METHODS}}
    header = markdown_table(summary, "t").splitlines()[4]
    assert header.count("K=2") == 3 and "deadline misses" not in header
    plot_summary(summary, "t", str(tmp_path / "old.png"))
    assert (tmp_path / "old.png").is_file()


def test_cli_train_file_test_file_on_ibm(shared_data, tmp_path, capsys):
    with (shared_data / "ibm_multicloud" / "multi-cloud-configuration.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    workloads = sorted({r[10] for r in rows[1:]})
    for name, keep in (("train", workloads[:18]), ("test", workloads[18:])):
        with (tmp_path / f"{name}.csv").open("w", newline="") as f:
            csv.writer(f).writerows([rows[0]] + [r for r in rows[1:] if r[10] in keep])
    reports = {}
    for cost in ("priced", "predicted"):
        assert main(["config-eval", "--train", str(tmp_path / "train.csv"), "--test", str(tmp_path / "test.csv"),
                     "--cost", cost, "--out", str(tmp_path / cost), *SMOKE]) == 0
        reports[cost] = json.loads((tmp_path / cost / "summary.json").read_text())
        assert reports[cost]["cost"] == cost and "| FLASH |" in capsys.readouterr().out
    for method in METHODS:
        priced, predicted = (np.array(list(reports[c]["per_app"]["1"][method].values()))
                             for c in ("priced", "predicted"))
        # IBM's cost is runtime x a rate per configuration: priced, a method's cost errors are its runtime errors
        np.testing.assert_allclose(priced[:, 1], priced[:, 0], rtol=1e-6)   # float32 predictions
        np.testing.assert_array_equal(priced[:, 0], predicted[:, 0])   # the runtimes predicted do not change
    assert not np.allclose(*(np.array(list(reports[c]["per_app"]["1"]["FLASH"].values()))[:, 1]
                             for c in ("priced", "predicted")))
    rounded = [rows[0]] + [r[:11] + [f"{float(r[11]):.2g}"] + r[12:] for r in rows[1:] if r[10] in workloads[18:]]
    with (tmp_path / "rounded.csv").open("w", newline="") as f:     # costs no longer runtime x one rate
        csv.writer(f).writerows(rounded)
    assert main(["config-eval", "--train", str(tmp_path / "train.csv"), "--test", str(tmp_path / "rounded.csv"),
                 "--out", str(tmp_path / "rounded"), *SMOKE]) == 0
    assert "warning: --cost priced (the default), but ibm:rounded.csv has no price list" in capsys.readouterr().err
    assert json.loads((tmp_path / "rounded" / "summary.json").read_text())["cost"] == "predicted"
    both = ["--train", str(tmp_path / "train.csv"), "--test", str(tmp_path / "train.csv")]   # refused, not scored
    assert "18 app(s) both in training and held out" in _data_error(both, capsys)


def test_a_split_never_trains_on_a_held_out_app(sim):
    with pytest.raises(ValueError, match=r"1 app\(s\) both in training and held out: \['fn-003'\]"):
        Split("overlap", sim.select_apps(sim.apps[:4]), sim.select_apps(sim.apps[3:6]))


def test_validation_share_must_leave_apps_to_train_on(capsys):
    assert n_validation_apps(10, 0.0) == 0 and n_validation_apps(10, 0.1) == 2 and n_validation_apps(10, 0.5) == 5
    with pytest.raises(ValueError, match="leaves 1 to train on"):
        n_validation_apps(3, 0.1)
    with pytest.raises(SystemExit):
        main(["config-eval", "--dataset", "simulated", "--functions", "30", "--train-functions", "3",
              "--val-fraction", "0.1", *SMOKE])
    err = capsys.readouterr().err
    assert "flash config-eval: error: --val-fraction: simulated:30fn-seed2024, K = 1: 3 of the 3 training " \
           "applications have the 2 measured configurations an episode needs; validation fraction 0.1 of 3" in err


def test_held_out_apps_with_too_few_measurements_are_reported(tmp_path, capsys):
    header = ",provider,A_family,A_vcpu,B_family,B_vcpu,C_family,C_type,C_vcpu,nodes,workload,target_cost," \
             "target_runtime,status\n"
    rows = [f"0,A,{f},{v},,,,,,{n},{w},{0.01 * n},{10.0 / (v + 1) + (w == 'w2')},ok\n"
            for w in ("w1", "w2", "w3") for f in (1, 2) for v in (0, 1) for n in (3, 4)]
    rows.append("0,A,1,1,,,,,,3,lonely,0.01,10.0,ok\n")          # one measurement: cannot give 1 shot + 1 target
    (tmp_path / "train.csv").write_text(header + "".join(r for r in rows if ",w3," not in r and "lonely" not in r))
    (tmp_path / "test.csv").write_text(header + "".join(r for r in rows if ",w3," in r or "lonely" in r))
    assert main(["config-eval", "--train", str(tmp_path / "train.csv"), "--test", str(tmp_path / "test.csv"),
                 "--json", *SMOKE]) == 0
    captured = capsys.readouterr()
    assert "K = 1: 1 held-out app(s) have fewer than K + 1 measured configurations and are not scored: ['lonely']" \
        in captured.err
    assert json.loads(captured.out)["1"]["FLASH"]["runtime MAPE (%)"]["n"] == 1


@pytest.mark.parametrize("argv, message", [
    (["--shots", "2", "0"], "argument --shots: must be an integer >= 1, got '0'"),
    (["--jobs", "0"], "argument --jobs: must be an integer >= 1"),
    (["--folds", "1"], "argument --folds: must be an integer >= 2"),
    (["--dataset", "nope"], "argument --dataset: invalid choice: 'nope'"),
    (["--val-fraction", "1"], "argument --val-fraction: must lie in [0, 1), got '1'"),
    (["--functions", "30", "--train-functions", "21"], "--train-functions must lie in [2, 20] with --functions 30"),
    (["--train", "x.csv"], "--train/--test take CSV files of the ibm or chunkfunc schema"),
    (["--platform", "gcp_cloud_functions"], "--platform applies to --dataset chunkfunc only"),
    (["--dataset", "ibm", "--functions", "30"], "--functions applies to --dataset simulated only"),
    (["--folds", "7"], "--folds applies to --dataset ibm or chunkfunc without --test or --hold-out only"),
])
def test_cli_rejects_bad_arguments_with_a_usage_error(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["config-eval", "--dataset", "simulated", *argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("usage: flash config-eval")
    assert f"flash config-eval: error: {message}" in err


def test_cli_rejects_more_folds_or_shots_than_the_data_has(shared_data, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["config-eval", "--dataset", "ibm", "--folds", "25"])
    assert exit_info.value.code == 2 and "--folds 25: " in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["config-eval", "--dataset", "ibm", "--shots", "2", "500"])
    assert "--shots 500: K shots and one target need K + 1" in capsys.readouterr().err


def test_paired_differences_are_per_app():
    rng = np.random.default_rng(0)
    apps = {f"a{i}": rng.uniform(10, 50, size=len(METRICS)) for i in range(12)}   # wide spread between apps
    per_app = {2: {m: {a: v + (0.0 if m == "FLASH" else 1.0) for a, v in apps.items()} for m in METHODS}}
    diff = paired_differences(per_app)[2]
    assert set(diff) == set(METHODS) - {"FLASH"}
    for name, metric in diff["base learner"].items():                # regret and misses 1 higher: same overspend
        expected = 0.0 if name == OVERSPEND else -1.0
        assert [metric["low"], metric["mean"], metric["high"]] == pytest.approx([expected] * 3)
    summary = summarise(per_app)[2]["FLASH"]["runtime MAPE (%)"]
    assert summary["high"] - summary["low"] > 5.0                    # unpaired CIs overlap; the paired one does not


def test_apps_held_out_in_groups_are_resampled_as_groups():
    # two functions held out with three inputs each: the inputs of a function behave alike
    apps = {f"f{g}/in{i}": np.full(len(METRICS), 10.0 + 40.0 * g + i) for g in range(2) for i in range(3)}
    groups = {a: a.split("/")[0] for a in apps}
    per_app = {2: {m: {a: v + (0.0 if m == "FLASH" else 1.0 + 8.0 * (groups[a] == "f1"))
                       for a, v in apps.items()} for m in METHODS}}
    by_app = summarise(per_app)[2]["FLASH"]["runtime MAPE (%)"]
    by_group = summarise(per_app, groups=groups)[2]["FLASH"]["runtime MAPE (%)"]
    assert by_app["mean"] == by_group["mean"] == pytest.approx(31.0)
    # resampling 2 groups can only give either group's mean or their average: the CI spans the two group means
    assert by_group["low"] == pytest.approx(11.0) and by_group["high"] == pytest.approx(51.0)
    assert 11.0 < by_app["low"] < by_app["high"] < 51.0                 # apps as if independent: narrower
    diff = paired_differences(per_app, groups=groups)[2]["base learner"]["runtime MAPE (%)"]
    assert [diff["low"], diff["high"]] == pytest.approx([-9.0, -1.0])
    one_group = {a: "f0" for a in apps}                                  # nothing to resample: no CI
    assert np.isnan(summarise(per_app, groups=one_group)[2]["FLASH"]["runtime MAPE (%)"]["low"])
    summary = summarise(per_app, groups=groups)
    differences = {"FLASH": paired_differences(per_app, groups=groups)}
    table = markdown_table(summary, "t", differences, ci_unit="the 2 held-out functions", n_units=2)
    assert "resampling the 2 held-out functions whole" in table and "so few cannot make significant" in table
    assert "significantly so" not in table
    eight = markdown_table(summary, "t", differences, ci_unit="the 8 held-out algorithms", n_units=8)
    assert "resampling the 8 held-out algorithms whole" in eight and "significantly so" in eight   # 8/8: p < 0.01


def test_functions_held_out_whole_are_the_resampling_groups():
    report = {"hold_out": "function", "splits": [{"name": "held-out f0", "test_apps": ["f0/a", "f0/b"]},
                                                 {"name": "held-out f1", "test_apps": ["f1/a"]}]}
    assert held_out_groups(report) == {"f0/a": "held-out f0", "f0/b": "held-out f0", "f1/a": "held-out f1"}
    assert held_out_groups({**report, "hold_out": "workload"}) is None


def test_apps_of_a_few_functions_held_out_one_by_one_also_get_cis_resampling_the_functions():
    splits = [{"name": "fold 1", "test_apps": ["aws_lambda/f0/1", "aws_lambda/f0/2"]},
              {"name": "fold 2", "test_apps": ["aws_lambda/f1/1"]}]
    chunk = {"dataset": "chunkfunc", "hold_out": "workload", "splits": splits}
    assert related_groups(chunk) == ("function", {"aws_lambda/f0/1": "f0", "aws_lambda/f0/2": "f0",
                                                  "aws_lambda/f1/1": "f1"})
    assert related_groups({**chunk, "hold_out": "function"}) is None   # held out whole: its CIs resample them
    assert related_groups({**chunk, "dataset": "simulated"}) is None
    ibm = {"dataset": "ibm", "hold_out": "workload", "train": "ibm:multi-cloud-configuration.csv",
           "test": "ibm:multi-cloud-configuration.csv",
           "splits": [{"name": "all", "test_apps": ["b-kmeans", "s-kmeans", "b-svm"]}]}
    assert related_groups(ibm) == ("algorithm", {"b-kmeans": "kmeans", "s-kmeans": "kmeans", "b-svm": "svm"})
    own = [{"name": "all", "test_apps": ["my-app", "other"]}]          # own names without the dataset's pattern
    assert related_groups({**ibm, "splits": own}) is None
    assert related_groups({**ibm, "splits": [{"name": "all", "test_apps": ["b-kmeans", "s-kmeans"]}]}) is None
    assert related_groups({**ibm, "train": "ibm:mine.csv"}) is None   # own names ("web-1", "db-1") are not guessed at
    assert related_groups({**ibm, "test": "ibm:mine.csv"}) is None    # nor those of an own --test file


def test_differences_resampled_by_function_count_the_functions_that_favour_flash(tmp_path, capsys):
    apps = [f"aws_lambda/f{g}/{i}" for g in range(3) for i in range(4)]
    worse = {"f0": 1.0, "f1": 2.0, "f2": -3.0}   # what each method adds to FLASH's values, per function
    per_app = {"2": {m: {a: [10.0 + i + (0.0 if m == "FLASH" else worse[a.split("/")[1]])] * len(METRICS)
                         for i, a in enumerate(apps)} for m in METHODS}}
    report = {"dataset": "chunkfunc", "hold_out": "workload", "train": "t", "test": "t", "seeds": 1, "draws": 1,
              "splits": [{"name": "all", "train_apps": ["x", "y"], "test_apps": apps}], "cost": "priced",
              "train_config": {"val_fraction": 0.0}, "per_app": per_app}
    (tmp_path / "summary.json").write_text(json.dumps(report))
    assert main(["config-eval", "--render", str(tmp_path)]) == 0
    written = json.loads((tmp_path / "summary.json").read_text())
    assert list(written)[-2:] == ["flash_minus_by_group", "per_app"]   # the layout a run writes
    by_group = written["flash_minus_by_group"]
    assert by_group["group"] == "function"
    assert by_group["per_group"]["2"]["base learner"]["regret (%)"] == {"f0": -1.0, "f1": -2.0, "f2": 3.0}
    resampled = by_group["differences"]["2"]["base learner"]["regret (%)"]
    assert resampled["mean"] == pytest.approx(0.0) and resampled["n"] == 12
    assert [resampled["low"], resampled["high"]] == pytest.approx([-2.0, 3.0])   # all f1 .. all f2
    by_app = written["flash_minus"]["2"]["base learner"]["regret (%)"]
    assert resampled["high"] - resampled["low"] > by_app["high"] - by_app["low"]   # apps as if independent: narrower
    table = (tmp_path / "table.md").read_text()
    assert "resampling the 3 functions of the held-out applications whole" in table
    assert "so few cannot make significant" in table
    row = next(line for line in table.split("resampling the 3 functions")[1].splitlines()
               if line.startswith("| base learner |"))
    assert row.count("0.0 [-2.0, 3.0] (2/3)") == 4   # both MAPEs, regret and misses: -1, -2 and +3 by function
    assert row.endswith("| 0.0 [0.0, 0.0] (0/3) |")    # overspend = regret - misses: 0 everywhere, none favours
    capsys.readouterr()


def test_a_group_tied_up_to_float_rounding_does_not_count_as_favouring_flash(tmp_path, capsys):
    """On chunk-func, two methods' equal deadline misses on one function differed by -3e-16 and counted for FLASH."""
    apps = [f"aws_lambda/f{g}/{i}" for g in range(2) for i in range(3)]
    flash = dict(zip(apps, [1.0, 2.0, 3.0, 0.1, 0.2, 0.7]))
    other = dict(zip(apps, [2.0, 3.0, 4.0, 0.7, 0.1, 0.2]))   # f0: FLASH 1 point better; f1: the same sum
    per_app = {"2": {m: {a: [(flash if m == "FLASH" else other)[a]] * len(METRICS) for a in apps} for m in METHODS}}
    report = {"dataset": "chunkfunc", "hold_out": "workload", "train": "t", "test": "t", "seeds": 1, "draws": 1,
              "splits": [{"name": "all", "train_apps": ["x", "y"], "test_apps": apps}], "cost": "priced",
              "train_config": {"val_fraction": 0.0}, "per_app": per_app}
    (tmp_path / "summary.json").write_text(json.dumps(report))
    assert main(["config-eval", "--render", str(tmp_path)]) == 0
    written = json.loads((tmp_path / "summary.json").read_text())["flash_minus_by_group"]["per_group"]["2"]
    assert -1e-15 < written["base learner"]["regret (%)"]["f1"] < 0   # float rounding of a tie
    row = next(line for line in (tmp_path / "table.md").read_text().split("resampling the 2 functions")[1].splitlines()
               if line.startswith("| base learner |"))
    assert "(1/2)" in row and "(2/2)" not in row
    report["splits"][0]["test_apps"] = apps[:-1]   # an app no split held out: named, not a KeyError
    (tmp_path / "summary.json").write_text(json.dumps(report))
    assert main(["config-eval", "--render", str(tmp_path)]) == 2
    assert "per_app has apps that no split held out: ['aws_lambda/f1/2']" in capsys.readouterr().err


IBM_HEADER = (",provider,A_family,A_vcpu,B_family,B_vcpu,C_family,C_type,C_vcpu,nodes,workload,target_cost,"
              "target_runtime,status\n")


def _ibm_csv(path, workloads: list[str], nodes: tuple[int, ...] = (3, 4)) -> str:
    """An IBM-schema CSV with 4 x ``len(nodes)`` measured configurations of each of ``workloads``; returns its path."""
    rows = [f"0,A,{f},{v},,,,,,{n},{w},{0.01 * n},{10.0 / (v + 1) + i + 0.1 * f},ok\n"
            for i, w in enumerate(workloads) for f in (1, 2) for v in (0, 1) for n in nodes]
    path.write_text(IBM_HEADER + "".join(rows))
    return str(path)


def _usage_error(argv: list[str], capsys, smoke: bool = True) -> str:
    """The error line of ``flash config-eval argv`` (and the smoke-test options, unless not ``smoke``), which must end
    in a usage error (exit status 2)."""
    with pytest.raises(SystemExit) as exit_info:
        main(["config-eval", *argv, *(SMOKE if smoke else [])])
    assert exit_info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def _data_error(argv: list[str], capsys) -> str:
    """The last stderr line of ``flash config-eval argv`` (and the smoke-test options), which must end in a one-line
    error (exit status 2, no usage text, no traceback) about the data."""
    assert main(["config-eval", *argv, *SMOKE]) == 2
    err = capsys.readouterr().err
    assert "usage:" not in err and "Traceback" not in err, err
    return err.strip().splitlines()[-1]


def test_groups_held_out_whole_must_be_named_and_at_least_two(tmp_path, capsys, no_training):
    one_algorithm = _ibm_csv(tmp_path / "one.csv", ["buzz-kmeans", "dota-kmeans"])
    assert _usage_error(["--train", one_algorithm, "--hold-out", "algorithm"], capsys) == (
        "flash config-eval: error: --hold-out algorithm: ibm:one.csv has 1 algorithm (kmeans); holding each out in "
        "turn needs at least 2")
    unnamed = _ibm_csv(tmp_path / "unnamed.csv", ["w1", "w2"])
    assert _data_error(["--train", unnamed, "--hold-out", "algorithm"], capsys).endswith(
        "workload 'w1' of ibm:unnamed.csv does not name its algorithm (expected dataset-algorithm with exactly one "
        "'-', e.g. buzz-kmeans)")


def test_a_function_held_out_needs_another_to_train_on(shared_data, tmp_path, capsys, no_training):
    rows = (shared_data / "chunkfunc_faas_profiles" / "chunkfunc_profiles.csv").read_text().splitlines(keepends=True)
    (tmp_path / "one.csv").write_text(rows[0] + "".join(r for r in rows[1:] if ",detect-faces," in r))
    argv = ["--dataset", "chunkfunc", "--train", str(tmp_path / "one.csv"), "--hold-out", "function"]
    assert _usage_error(argv, capsys).endswith(
        "--hold-out function: chunkfunc:one.csv has 1 function (detect-faces); holding each out in turn needs at "
        "least 2")


def test_every_split_needs_two_training_workloads_before_any_training(tmp_path, capsys, no_training):
    """Matrix completion cannot be fitted on one workload: refused up front, not after training the others."""
    train = _ibm_csv(tmp_path / "train.csv", ["w1"])
    test = _ibm_csv(tmp_path / "test.csv", ["w2", "w3"])
    assert _usage_error(["--train", train, "--test", test], capsys) == (
        "flash config-eval: error: 1 training workload(s) in ibm:train.csv: ['w1']; every method needs at least 2 to "
        "train on")
    three = _ibm_csv(tmp_path / "three.csv", ["w1", "w2", "w3"])        # 2 folds: one trains on 1 workload
    assert "1 training workload(s) in ibm:three.csv (split " in _usage_error(["--train", three, "--folds", "2"], capsys)


def test_held_out_configurations_no_training_app_measured_are_named(tmp_path, capsys):
    """Matrix completion knows a configuration by name and predicts one no training app measured as the nearest one
    that some did: a test file that shares only some configurations with the training file is warned of with the
    counts and examples; one that shares none, for every learned method; one that shares all, not at all."""
    train = _ibm_csv(tmp_path / "train.csv", ["w1", "w2", "w3"], nodes=(3, 4))
    warnings = {}
    for name, nodes in (("same", (3, 4)), ("partly", (4, 5)), ("disjoint", (2, 5))):
        test = _ibm_csv(tmp_path / f"{name}.csv", ["w4", "w5"], nodes)
        assert main(["config-eval", "--train", train, "--test", test, *SMOKE]) == 0
        warnings[name] = [line for line in capsys.readouterr().err.splitlines() if "no training app" in line]
    assert warnings["same"] == []
    (partly,) = warnings["partly"]
    assert partly.startswith(
        "flash config-eval: warning: ibm:partly.csv: 4 of the 8 configurations measured for held-out apps (8 of 16 "
        "measurements) were measured for no training app, e.g. A/A_family=1/A_vcpu=0/nodes=5 -> "
        "A/A_family=1/A_vcpu=0/nodes=4, A/A_family=1/A_vcpu=1/nodes=5 -> A/A_family=1/A_vcpu=1/nodes=4, "
        "A/A_family=2/A_vcpu=0/nodes=5 -> A/A_family=2/A_vcpu=0/nodes=4 ...: matrix completion, which knows "
        "configurations by name, predicts each as its stand-in")
    (disjoint,) = warnings["disjoint"]
    assert "ibm:disjoint.csv: 8 of the 8 configurations measured for held-out apps (16 of 16 measurements)" in disjoint
    assert "no configuration is shared, so every learned method predicts only configurations it never saw" in disjoint


def test_a_single_held_out_app_is_tabled_without_a_confidence_interval(tmp_path, capsys):
    train = _ibm_csv(tmp_path / "train.csv", ["w1", "w2", "w3"])
    test = _ibm_csv(tmp_path / "test.csv", ["w4"])
    out = tmp_path / "out"
    assert main(["config-eval", "--train", train, "--test", test, "--out", str(out), *SMOKE]) == 0
    captured = capsys.readouterr()
    assert "K = 1: a single held-out app is scored; its values have no confidence interval" in captured.err
    assert "nan" not in captured.out and "| FLASH | " in captured.out
    assert "At K=1, a single held-out application (or group of them) is scored, which gives no confidence interval " \
           "(nothing to resample), so those cells show [no CI]." in captured.out
    rows = [line for line in captured.out.splitlines() if line.startswith("| ") and "[" in line]
    assert rows and all(line.count("[no CI]") == line.count("[") for line in rows)
    table = (out / "table.md").read_text()
    assert main(["config-eval", "--render", str(out)]) == 0 and (out / "table.md").read_text() == table


def _report(per_app: dict) -> dict:
    """A minimal report as ``--out`` writes it: one split holding out apps ``a`` and ``b``."""
    return {"dataset": "ibm", "hold_out": "workload", "train": "x", "test": "y", "seeds": 1,
            "splits": [{"name": "s", "train_apps": ["c", "d"], "test_apps": ["a", "b"]}],
            "train_config": {"val_fraction": 0.0}, "per_app": per_app}


def test_render_refuses_files_that_are_not_config_eval_reports(tmp_path, capsys):
    summary = tmp_path / "summary.json"
    per_app = {"1": {m: {"a": [10.0, 11.0, 5.0, 0.0], "b": [20.0, 19.0, 7.0, 0.0]} for m in METHODS}}
    summary.write_text(json.dumps(_report(per_app)))
    assert main(["config-eval", "--render", str(tmp_path)]) == 0                   # the minimal report renders
    capsys.readouterr()
    broken = {
        '{"per_app": ': "is not valid JSON (Expecting value: line 1 column 13 (char 12))",
        json.dumps({"methods": {}, "seeds": 3}): "is not a flash config-eval report (it lacks dataset, hold_out, "
                                                 "train, test, splits, train_config, per_app)",
        json.dumps(_report({"1": {"FLASH": per_app["1"]["FLASH"]}})): "per_app entry '1' must map K",
        json.dumps(_report({"1": {**per_app["1"], "FLASH": {"a": [1.0, "2", 3.0, 4.0], "b": [1.0] * 4}}})):
            "per_app K=1, FLASH, a: expected 4 numbers",
        json.dumps(_report({"1": {**per_app["1"], "FLASH": {"a": [1.0] * 4}}})):
            "per_app K=1, FLASH + fine-tuning: must map the same held-out apps as FLASH",
        json.dumps({**_report(per_app), "splits": "s"}): "splits must be a list of {name, train_apps, test_apps}",
    }
    for text, message in broken.items():
        summary.write_text(text)
        assert main(["config-eval", "--render", str(tmp_path)]) == 2
        err = capsys.readouterr().err                                      # one line naming the file and the problem
        assert err.startswith(f"flash: error: --render: {summary}") and message in err and err.count("\n") == 1


def test_help_and_render_start_without_torch(tmp_path):
    """Only training needs torch (about 2 s to import): ``--help`` and ``--render`` of a report do not import it."""
    per_app = {"1": {m: {"a": [10.0, 11.0, 5.0, 0.0], "b": [20.0, 19.0, 7.0, 0.0]} for m in METHODS}}
    (tmp_path / "summary.json").write_text(json.dumps(_report(per_app)))
    for args in (["--render", str(tmp_path)], ["--help"]):
        code = ("import sys\nfrom flash_rl.cli import main\ntry:\n    main(['config-eval', *sys.argv[1:]])\n"
                "except SystemExit:\n    pass\n"
                "print(sorted(m for m in ('torch', 'stable_baselines3') if m in sys.modules))")
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True).stdout
        assert out.splitlines()[-1] == "[]", args
    assert (tmp_path / "table.md").is_file() and (tmp_path / "summary.png").is_file()


def test_choice_diagnostics_measure_what_they_say(sim):
    """Exact predictions: no spread, no bias, slope 1, ranks kept, picks as believed. Twice the runtime everywhere:
    no spread, bias log 2 (near the deadlines too), slope 1, ranks kept, picks faster than believed. A constant
    prediction orders nothing (rho 0, slope 0). Halving the log-distance to the mean: slope 0.5, and the fast
    configurations near the deadlines look slower than they are."""
    from flash_rl.fewshot.diagnose import DIAGNOSTICS, choice_diagnostics

    targets = np.flatnonzero(sim.measured[0])
    shots = targets[None, :2]
    truth = np.log(np.stack([sim.runtime_s[0, targets], sim.cost_usd[0, targets]], axis=-1))[None]
    exact = dict(zip(DIAGNOSTICS, choice_diagnostics(truth, shots, targets, sim, 0)[0]))
    assert exact == pytest.approx({"error spread": 0, "bias": 0, "runtime slope": 1, "bias near the deadlines": 0,
                                   "runtime rank rho": 1, "cost rank rho": 1, "error at the pick": 0}, abs=1e-12)
    slow = dict(zip(DIAGNOSTICS, choice_diagnostics(truth + np.log(2), shots, targets, sim, 0)[0]))
    assert slow["error spread"] == pytest.approx(0, abs=1e-12) and slow["bias"] == pytest.approx(np.log(2))
    assert slow["runtime rank rho"] == pytest.approx(1) and -np.log(2) <= slow["error at the pick"] <= 0
    assert slow["runtime slope"] == pytest.approx(1) and slow["bias near the deadlines"] == pytest.approx(np.log(2))
    flat = dict(zip(DIAGNOSTICS, choice_diagnostics(np.zeros_like(truth), shots, targets, sim, 0)[0]))
    unmeasured = np.log(sim.runtime_s[0, targets[2:]])
    assert flat["runtime rank rho"] == 0 and flat["error spread"] == pytest.approx(unmeasured.std())
    assert flat["runtime slope"] == pytest.approx(0, abs=1e-12)
    wide = int(np.argmax(np.nanmax(sim.runtime_s, axis=1) / np.nanmin(sim.runtime_s, axis=1)))  # fast and slow ones
    targets = np.flatnonzero(sim.measured[wide])
    log_runtime = np.log(sim.runtime_s[wide, targets])
    unmeasured = log_runtime[2:]
    pulled = np.stack([(log_runtime + unmeasured.mean()) / 2, np.log(sim.cost_usd[wide, targets])], axis=-1)[None]
    shrunk = dict(zip(DIAGNOSTICS, choice_diagnostics(pulled, targets[None, :2], targets, sim, wide)[0]))
    near = np.exp(unmeasured) <= 2 * sim.runtime_s[wide, targets].min()
    assert shrunk["runtime slope"] == pytest.approx(0.5) and near.any()
    expected = np.mean(unmeasured.mean() - unmeasured[near]) / 2
    assert expected > 0 and shrunk["bias near the deadlines"] == pytest.approx(expected)


def test_diagnose_writes_its_own_files(tmp_path, capsys):
    assert main(["config-eval", "--dataset", "simulated", "--functions", "30", "--train-functions", "12", "--diagnose",
                 "--out", str(tmp_path), *SMOKE]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["diagnosis.json", "diagnosis.md"]   # the table is not touched
    report = json.loads((tmp_path / "diagnosis.json").read_text())
    assert set(report["summary"]["1"]) == set(METHODS)
    assert "error at the pick" in report["flash_minus"]["1"]["base learner"]
    assert "| FLASH | " in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["config-eval", "--render", str(tmp_path), "--diagnose"])
    assert "--diagnose trains and predicts anew" in capsys.readouterr().err


def test_render_refuses_an_unknown_cost_and_values_that_are_not_finite(tmp_path, capsys):
    """A NaN or infinite per-app value is refused like null or text (it gave NaN CIs), an unknown ``cost`` by name
    (it gave a KeyError)."""
    summary = tmp_path / "summary.json"
    per_app = {"1": {m: {"a": [10.0, 11.0, 5.0, 0.0], "b": [20.0, 19.0, 7.0, 0.0]} for m in METHODS}}
    nan, inf = [float("nan"), 1.0, 1.0, 0.0], [1.0, float("inf"), 1.0, 0.0]
    broken = {
        json.dumps({**_report(per_app), "cost": "guessed"}):
            "unknown cost 'guessed'; expected one of priced, predicted",
        json.dumps(_report({"1": {**per_app["1"], "FLASH": {"a": nan, "b": [1.0] * 4}}})):
            "per_app K=1, FLASH, a: expected 4 numbers (runtime MAPE (%), cost MAPE (%), regret (%), deadline misses "
            "(%)), each finite, got [nan, 1.0, 1.0, 0.0]",
        json.dumps(_report({"1": {**per_app["1"], "nearest config": {"a": [1.0] * 4, "b": inf}}})):
            "per_app K=1, nearest config, b: expected 4 numbers",
    }
    for text, message in broken.items():
        summary.write_text(text)
        assert main(["config-eval", "--render", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"flash: error: --render: {summary}: ") and message in err and err.count("\n") == 1
        assert not (tmp_path / "table.md").exists()


def test_a_clash_with_the_default_train_file_names_that_file(tmp_path, monkeypatch, capsys, no_training):
    """Without --train the shared file trains the models: the error names it, not "--train None"."""
    monkeypatch.setenv("FLASH_DATA_DIR", str(tmp_path))
    (tmp_path / "ibm_multicloud").mkdir()
    default = tmp_path / "ibm_multicloud" / "multi-cloud-configuration.csv"
    _ibm_csv(default, ["w1", "w2", "w3"])
    test = _ibm_csv(tmp_path / "test.csv", ["w3", "w4"])
    assert f"error: --train {default} and --test {test}: 1 app(s) both in training and held out: ['w3']" \
           in _data_error(["--test", test], capsys)


def test_render_refuses_the_options_of_a_run(tmp_path, capsys):
    """``--render`` trains and evaluates nothing, so an option of a run is a usage error (reference.md: an option that
    does not apply is not silently ignored); --json and --no-progress still go with it."""
    per_app = {"1": {m: {"a": [10.0, 11.0, 5.0, 0.0], "b": [20.0, 19.0, 7.0, 0.0]} for m in METHODS}}
    (tmp_path / "summary.json").write_text(json.dumps(_report(per_app)))
    for options, dropped in ((["--shots", "2"], "--shots"), (["--train", "x.csv", "--seeds", "2", "--jobs", "9"],
                                                            "--train, --seeds, --jobs"),
                             (["--dataset", "chunkfunc", "--cost", "predicted"], "--dataset, --cost")):
        with pytest.raises(SystemExit) as exit_info:
            main(["config-eval", "--render", str(tmp_path), *options])
        assert exit_info.value.code == 2
        assert (f"error: --render only re-summarises the per-app values stored in {tmp_path}/summary.json; "
                f"drop {dropped}\n") in capsys.readouterr().err
        assert not (tmp_path / "table.md").exists()
    assert main(["config-eval", "--render", str(tmp_path), "--json", "--no-progress"]) == 0
    assert set(json.loads(capsys.readouterr().out)["1"]) == set(METHODS)


def test_early_stopping_validates_on_training_apps_that_give_episodes(sim):
    """Validation apps are drawn among those with K + 1 measured configurations; the others are still fitted on
    (matrix completion uses them)."""
    data = sim.select_apps(sim.apps[:8])
    sparse = np.full_like(data.runtime_s, np.nan)
    sparse[:, 0] = data.runtime_s[:, 0]
    data = replace(data, runtime_s=np.where(np.arange(8)[:, None] < 4, data.runtime_s, sparse))   # apps 4-7: 1 each
    fit, validation = early_stopping_split(data, 2, TrainConfig(val_fraction=0.5), np.random.default_rng(0))
    assert set(data.apps[4:]) <= set(fit.apps) and len(fit.apps) == 6 and validation is not None
    assert early_stopping_apps(data, 2, 0.5) == (list(data.apps[:4]), 2)
    with pytest.raises(ValueError, match="K = 2: 4 of the 8 training applications have the 3 measured configurations "
                                         "an episode needs; validation fraction 0.9 of 4 training apps keeps 4"):
        early_stopping_apps(data, 2, 0.9)


def test_val_fraction_counts_the_training_apps_that_give_episodes(tmp_path, capsys, no_training):
    """Too few of them to share is a usage error before any training, not a traceback from a worker after it."""
    train = tmp_path / "train.csv"
    _ibm_csv(train, ["w1", "w2", "w3"])
    train.write_text(train.read_text() + "".join(f"0,A,1,0,,,,,,3,s{i},0.03,12.0,ok\n" for i in range(5)))
    test = _ibm_csv(tmp_path / "test.csv", ["w4", "w5"])
    assert _usage_error(["--train", str(train), "--test", test, "--val-fraction", "0.25"], capsys) == (
        "flash config-eval: error: --val-fraction: ibm:train.csv, K = 1: 3 of the 8 training applications have the 2 "
        "measured configurations an episode needs; validation fraction 0.25 of 3 training apps keeps 2 for "
        "validation and leaves 1 to train on; at least 2 of each are needed")


def test_training_apps_too_sparse_for_k_are_named(tmp_path, capsys):
    train = tmp_path / "train.csv"
    _ibm_csv(train, ["w1", "w2"])
    train.write_text(train.read_text() + "0,A,1,0,,,,,,3,sparse,0.03,12.0,ok\n")
    test = _ibm_csv(tmp_path / "test.csv", ["w4", "w5"])
    assert main(["config-eval", "--train", str(train), "--test", test, *SMOKE]) == 0
    assert ("K = 1: 1 training app(s) have fewer than K + 1 measured configurations; the neural methods do not train "
            "on them: ['sparse']") in capsys.readouterr().err


def test_json_output_has_no_nan(tmp_path, capsys):
    """A CI that a single held-out app cannot give is null: strict JSON parsers refuse NaN."""
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    train = _ibm_csv(tmp_path / "train.csv", ["w1", "w2", "w3"])
    test = _ibm_csv(tmp_path / "test.csv", ["w4"])
    assert main(["config-eval", "--train", train, "--test", test, "--json", "--out", str(tmp_path), *SMOKE]) == 0
    summary = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert summary["1"]["FLASH"]["regret (%)"]["low"] is None and summary["1"]["FLASH"]["regret (%)"]["n"] == 1
    report = json.loads((tmp_path / "summary.json").read_text(), parse_constant=refuse)
    assert report["summary"] == summary and report["flash_minus"]["1"]["nearest config"]["regret (%)"]["high"] is None


@pytest.mark.parametrize("n_units, significant", [(5, False), (6, True)])
def test_a_ci_clear_of_zero_is_called_significant_only_beyond_five_units(n_units, significant):
    """With 5 or fewer resampled units (where even a sign test with all on one side stays above p = 0.05), the notes
    say a CI below 0 shows agreement, not significance; with 6 or more, that it is significant."""
    entry = {"mean": 1.0, "low": 0.5, "high": 1.5, "n": n_units}
    summary = {2: {m: {metric: entry for metric in METRICS} for m in METHODS}}
    diffs = {2: {m: {metric: entry for metric in METRICS} for m in METHODS if m != "FLASH"}}
    table = markdown_table(summary, "t", {"FLASH": diffs}, ci_unit=f"the {n_units} held-out functions",
                           n_units=n_units)
    assert ("a CI below 0: significantly so" in table) is significant
    assert ("which so few cannot make significant" in table) is not significant


def test_the_notes_explain_every_k_that_has_a_cell_without_a_ci():
    """A K where any cell has no CI (NaN bounds, printed [no CI]) is named in the notes; a K without one is not."""
    nan = float("nan")
    summary = {k: {m: {metric: {"mean": 1.0, "low": 0.5, "high": 1.5, "n": 3} for metric in METRICS}
                   for m in METHODS} for k in (1, 2)}
    summary[2]["base learner"]["regret (%)"] = {"mean": 1.0, "low": nan, "high": nan, "n": 1}
    table = markdown_table(summary, "t")
    assert "At K=2, a single held-out application" in table and "K=1, 2" not in table


def test_the_error_at_the_pick_is_positive_where_the_picks_are_slower_than_believed(sim):
    """Predicting every configuration twice as fast as measured: a pick that was not a shot runs log 2 slower than
    believed (log(measured / estimated) > 0: it risks its deadline), a pick that was a shot as believed; so the
    error at the pick lies in (0, log 2]."""
    from flash_rl.fewshot.diagnose import DIAGNOSTICS, choice_diagnostics

    targets = np.flatnonzero(sim.measured[0])
    truth = np.log(np.stack([sim.runtime_s[0, targets], sim.cost_usd[0, targets]], axis=-1))[None]
    fast = dict(zip(DIAGNOSTICS, choice_diagnostics(truth - np.log(2), targets[None, :2], targets, sim, 0)[0]))
    assert 0 < fast["error at the pick"] <= np.log(2) + 1e-12
    assert fast["bias"] == pytest.approx(-np.log(2))


def test_the_shots_measured_runtimes_stand_for_the_predictions_in_the_diagnosed_picks(sim):
    """As in the regret, the picks are made with the measured values at the shots: predicting the others 100x slower
    than measured, with the two fastest configurations as shots, only shots meet the deadlines, so every pick runs
    as believed (error at the pick 0; predicted values at the shots would have picked them 100x slow)."""
    from flash_rl.fewshot.diagnose import DIAGNOSTICS, choice_diagnostics

    targets = np.flatnonzero(sim.measured[0])
    targets = targets[np.argsort(sim.runtime_s[0, targets])]   # the fastest first
    truth = np.log(np.stack([sim.runtime_s[0, targets], sim.cost_usd[0, targets]], axis=-1))[None]
    slow = dict(zip(DIAGNOSTICS, choice_diagnostics(truth + np.log(100), targets[None, :2], targets, sim, 0)[0]))
    assert slow["error at the pick"] == pytest.approx(0, abs=1e-12)


def test_the_diagnosis_notes_undefined_measures_only_where_an_app_was_left_out():
    """The note on undefined measures appears where some entry counts fewer apps than the error spread, not
    otherwise."""
    from flash_rl.fewshot.diagnose import DIAGNOSTICS, diagnosis_table

    def report(n_bias):
        entry = {"mean": 0.1, "low": 0.0, "high": 0.2, "n": 4}
        summary = {m: {d: dict(entry, n=n_bias) if d == "bias" else entry for d in DIAGNOSTICS} for m in METHODS}
        minus = {m: {d: entry for d in DIAGNOSTICS} for m in METHODS if m != "FLASH"}
        return {"summary": {"2": summary}, "flash_minus": {"2": minus}}

    assert "Some measures are undefined" not in diagnosis_table(report(4), "t")
    assert "Some measures are undefined" in diagnosis_table(report(3), "t")


@pytest.mark.parametrize("n_groups, significant", [(5, False), (6, True)])
def test_the_by_group_notes_call_a_ci_significant_only_beyond_five_groups(n_groups, significant):
    """The by-group differences resample the groups whole: with 5 or fewer, a CI below 0 shows that they all agreed,
    not significance; with 6 or more, it is significant."""
    entry = {"mean": -1.0, "low": -1.5, "high": -0.5, "n": n_groups}
    summary = {2: {m: {metric: entry for metric in METRICS} for m in METHODS}}
    others = [m for m in METHODS if m != "FLASH"]
    by_group = {"group": "function",
                "differences": {2: {m: {metric: entry for metric in METRICS} for m in others}},
                "per_group": {2: {m: {metric: {f"g{i}": -1.0 for i in range(n_groups)} for metric in METRICS}
                                  for m in others}}}
    table = markdown_table(summary, "t", by_group=by_group)
    assert f"resampling the {n_groups} functions of the held-out applications" in table
    assert ("a CI below 0: significantly so" in table) is significant
    assert ("they all agreed, which so few cannot make significant" in table) is not significant

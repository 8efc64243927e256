"""Few-shot configuration prediction (flash_rl.fewshot) and the flash config-eval command."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from flash_envs.data.config_measurements import simulated_measurements
from flash_rl.cli import main
from flash_rl.fewshot.episodes import EpisodeSampler
from flash_rl.fewshot.evaluate import Split, app_folds, evaluate_split, score
from flash_rl.fewshot.models import FewShotModel, ShotEncoder, TrainConfig


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
    enc = ShotEncoder(token_dim=5, hidden=16, embed_dim=4)
    tokens = torch.randn(3, 5, 5)
    torch.testing.assert_close(enc(tokens), enc(tokens[:, torch.randperm(5)]))


def test_prediction_is_relative_to_the_shots():
    model = FewShotModel(2, 1, flash=True, y_mean=np.zeros(2), y_std=np.ones(2))
    x, t = torch.rand(1, 1, 2), torch.rand(1, 3, 2)
    assert model(x, torch.zeros(1, 1, 2), t).shape == (1, 3, 2)


def test_folds_hold_apps_out_whole(sim):
    folds = app_folds(sim, 3)
    tests = [set(f.test.apps) for f in folds]
    assert set().union(*tests) == set(sim.apps) and sum(map(len, tests)) == len(sim.apps)
    assert all(not set(f.train.apps) & set(f.test.apps) for f in folds)


def test_perfect_predictions_score_zero(sim):
    targets = np.arange(len(sim.configs))
    truth = np.log(np.stack([sim.runtime_s[0], sim.cost_usd[0]], axis=-1))[None]
    assert score(truth, np.array([[0, 1]]), targets, sim, 0) == pytest.approx(np.zeros((1, 3)), abs=1e-9)


def test_learned_predictors_beat_nearest_config(sim):
    torch.set_num_threads(1)
    split = Split("t", sim.select_apps(sim.apps[:70]), sim.select_apps(sim.apps[70:]))
    res = evaluate_split(split, k=2, seed=0, cfg=TrainConfig(steps=250, hidden=64, finetune_steps=2), draws=1)
    mape = {m: np.mean([v[0] for v in apps.values()]) for m, apps in res.items()}
    assert mape["FLASH"] < mape["nearest config"] and mape["base learner"] < mape["nearest config"]


SMOKE = ["--shots", "1", "--seeds", "1", "--steps", "20", "--draws", "1", "--no-progress"]


def test_cli_smoke_on_simulated_functions(tmp_path, capsys):
    assert main(["config-eval", "--dataset", "simulated", "--functions", "30", "--json", "--out", str(tmp_path),
                 *SMOKE]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["1"]) == {"FLASH", "base learner", "fine-tuned (transfer)", "nearest config"}
    assert {p.name for p in tmp_path.iterdir()} == {"table.md", "summary.json", "summary.png"}


def test_cli_train_file_test_file_on_ibm(shared_data, tmp_path, capsys):
    rows = list(csv.reader((shared_data / "ibm_multicloud" / "multi-cloud-configuration.csv").open()))
    workloads = sorted({r[10] for r in rows[1:]})
    for name, keep in (("train", workloads[:18]), ("test", workloads[18:])):
        with (tmp_path / f"{name}.csv").open("w", newline="") as f:
            csv.writer(f).writerows([rows[0]] + [r for r in rows[1:] if r[10] in keep])
    assert main(["config-eval", "--train", str(tmp_path / "train.csv"), "--test", str(tmp_path / "test.csv"),
                 *SMOKE]) == 0
    assert "| FLASH |" in capsys.readouterr().out


def test_cli_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        main(["config-eval", "--dataset", "simulated", "--shots", "0"])
    with pytest.raises(SystemExit):
        main(["config-eval", "--dataset", "nope"])

"""Defects found by an audit of ``flash adapt`` and ``flash evaluate``: each test failed before its fix."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flash_envs.flash_warnings import FlashWarning
from flash_rl.cases import CONFIG_DIR, get_case
from flash_rl.cli import main
from flash_rl.commands import _common
from flash_rl.commands.adapt import pick_task
from flash_rl.config import ConfigError, load_config
from flash_rl.flash import Flash, TransferLearning
from flash_rl.maml import MAML
from flash_rl.trained_tasks import TRAINED_ON_FILE, read_trained_on

EPISODE = ["env.kwargs={episode_steps: 8}", "flash.adapt_kwargs={n_steps: 8, batch_size: 8, n_epochs: 1}",
           "transfer.adapt_kwargs={n_steps: 8, batch_size: 8, n_epochs: 1}"]   # 8-step episodes, fine-tuned per one
ONE_TASK = "adaptation.max_test_tasks=1"


def tiny_agent() -> Flash:
    return Flash("PPO", "flash/Autoscaling-v0", {"episode_steps": 8}, net_arch=[8], n_envs=1, context_len=6,
                 embedding_dim=4, encoder_hidden=8, agent_kwargs={"n_steps": 16, "batch_size": 16, "n_epochs": 1},
                 adapt_kwargs={"n_steps": 8, "batch_size": 8, "n_epochs": 1})


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny agent meta-trained on the train split of the autoscaling config's family (24 train tasks)."""
    cfg = load_config(CONFIG_DIR / "autoscaling.yaml", EPISODE)
    family = get_case("autoscaling").build_family(cfg)
    path = tmp_path_factory.mktemp("model") / "final"
    tiny_agent().meta_train(family, 16).save(path)
    return path


# ------------------------------------------------------------------ 1. test tasks the agent trained on
def test_the_tasks_an_agent_trained_on_are_saved_with_it(trained, tmp_path):
    family = get_case("autoscaling").build_family(load_config(CONFIG_DIR / "autoscaling.yaml", EPISODE))
    records = read_trained_on(trained)
    assert [r["name"] for r in records] == [t.name for t in family.train] and all(r["key"] for r in records)
    assert Flash.load(trained).trained_on == records
    maml = MAML("flash/Autoscaling-v0", {"episode_steps": 8}, hidden=[8], meta_batch=1, outer_episodes=1)
    maml.meta_train(family.train[:2], 1, checkpoint_dir=tmp_path / "ckpt")
    assert [r["name"] for r in MAML.load(tmp_path / "ckpt").trained_on] == [t.name for t in family.train[:2]]
    fresh = Flash.load(trained).fresh()
    fresh.save(trained.parent / "fresh")
    assert read_trained_on(trained.parent / "fresh") == []   # an untrained agent saw no task


@pytest.mark.parametrize("command", [["evaluate"], ["adapt", "--task", "task-08", "--episodes", "1"]])
def test_a_test_split_holding_tasks_the_agent_trained_on_is_refused(trained, command, capsys):
    """With tasks.n_train=8 the test split became task-08..task-31, of which the agent had trained on task-08..23:
    both commands scored them as held-out, without a word."""
    assert main([*command, "--model", str(trained), "--set", *EPISODE, "tasks.n_train=8"]) == 2
    err = capsys.readouterr().err
    assert f"flash: error: --model {trained} was meta-trained on " in err and "task-08" in err
    assert "task(s) of the config's test split" in err and "they are not held out" in err
    assert main(["evaluate", "--model", str(trained), "--set", *EPISODE, ONE_TASK]) == 0   # the training run's tasks


def test_an_agent_saved_without_the_record_is_warned_of(trained, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(trained, old)
    (old / TRAINED_ON_FILE).unlink()
    with pytest.warns(FlashWarning, match=f"--model {old} records no training tasks"):
        assert main(["evaluate", "--model", str(old), "--set", *EPISODE, ONE_TASK]) == 0
    over = tmp_path / "over"   # saved over an agent that has the record: the stale record goes, not claims its tasks
    shutil.copytree(trained, over)
    Flash.load(old).save(over)
    assert not (over / TRAINED_ON_FILE).exists() and read_trained_on(over) is None


@pytest.mark.parametrize("content", ['{"name": "task-00", "key": "k"}', "{}", '[{"name": "task-00"}]',
                                     '[{"name": "task-00", "key": "k", "extra": 1}]', '["task-00"]'])
def test_a_damaged_record_of_training_tasks_is_named(tmp_path, content):
    (tmp_path / TRAINED_ON_FILE).write_text(content)
    with pytest.raises(ValueError, match=r"trained_on.json is damaged \(not a list of \{name, key\} records\)"):
        read_trained_on(tmp_path)


# ------------------------------------------------------------------ 2. --json over an input
def test_json_may_not_overwrite_the_saved_agent_or_an_input_file(trained, tmp_path, capsys):
    """`flash adapt --json MODEL/flash.json` destroyed the saved agent; --json onto the --test-trace CSV replaced the
    trace with JSON."""
    before = (trained / "flash.json").read_text()
    assert main(["adapt", "--model", str(trained), "--json", str(trained / "flash.json"), "--set", *EPISODE]) == 2
    assert "is inside --model" in capsys.readouterr().err and (trained / "flash.json").read_text() == before
    trace = tmp_path / "trace.csv"
    trace.write_text("timestamp,requests\n0,1\n60,2\n")
    assert main(["evaluate", "--model", str(trained), "--set", *EPISODE, "--test-trace", str(trace), "--json",
                 str(trace)]) == 2
    assert f"--json would overwrite {trace}, the test trace file this command reads" in capsys.readouterr().err
    assert trace.read_text() == "timestamp,requests\n0,1\n60,2\n"


# ------------------------------------------------------------------ 3. methods the command does not run
def test_a_multi_server_power_agent_is_evaluated_without_naming_its_method(tmp_path, capsys):
    """evaluate and adapt checked every adaptation.methods against the env, and flash cannot act in two servers'
    MultiDiscrete: a transfer-learning agent that meta-train had trained there was refused."""
    kwargs = {"n_servers": 2, "episode_s": 30.0}
    TransferLearning("PPO", "flash/PowerManagement-v0", kwargs, net_arch=[8], n_envs=1).fresh().save(tmp_path / "m")
    overrides = ["env.kwargs={n_servers: 2, episode_s: 30.0}", ONE_TASK, *(f"{section}.adapt_kwargs={{n_steps: 6, "
                 "batch_size: 6, n_epochs: 1}" for section in ("flash", "transfer"))]   # 6-step episodes
    assert main(["evaluate", "--case", "power", "--model", str(tmp_path / "m"), "--set", *overrides]) == 0
    assert "cannot act" not in capsys.readouterr().err


# ------------------------------------------------------------------ 4. a reader that leaves early
def test_adapt_ends_quietly_when_its_reader_leaves(trained):
    """`flash adapt | head -1` ended with "flash: error: [Errno 32] Broken pipe", status 2."""
    proc = subprocess.Popen([sys.executable, "-m", "flash_rl.cli", "adapt", "--model", str(trained), "--set", *EPISODE,
                             "--episodes", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()   # before the first line of the curve
    with proc.stderr:
        err = proc.stderr.read()
    assert proc.wait(timeout=300) == 141
    assert "error" not in err and "Traceback" not in err


# ------------------------------------------------------------------ 5. characters beyond the BMP
def test_a_test_trace_named_with_an_emoji_keeps_its_name(tmp_path):
    """JSON escaped the emoji as a surrogate pair, which YAML read back as two lone surrogates: "file
    \\ud83d\\ude00.csv does not exist"."""
    path = tmp_path / "\U0001F600.csv"
    override, = _common.test_trace_overrides(argparse.Namespace(test_trace=[path], split="test"))
    assert yaml.safe_load(override.split("=", 1)[1]) == [str(path)]


@pytest.mark.parametrize("key", ["\u00b2", "\u0661"])   # superscript two; Arabic-Indic one
def test_a_task_key_of_other_digits_is_a_name(key):
    """str.isdigit() takes these: "²" ended in int()'s ValueError, "١" picked task 1."""
    tasks = get_case("autoscaling").build_family(load_config(CONFIG_DIR / "autoscaling.yaml", EPISODE)).test
    with pytest.raises(ConfigError, match=rf"--task '{key}': no such task in the test split"):
        pick_task(list(tasks), "test", key)


def test_json_written_by_adapt_is_the_curve(trained, tmp_path):
    with pytest.warns(FlashWarning, match="fine-tunes with the kwargs saved with it"):   # a model of other kwargs
        assert main(["adapt", "--model", str(trained), "--set", *EPISODE, "--episodes", "2", "--json",
                     str(tmp_path / "curve.json")]) == 0
    written = json.loads((tmp_path / "curve.json").read_text())
    assert written["task"] == "task-24" and [e for e, _ in written["curve"]][0] == 0


def test_the_checkpoint_of_an_unfinished_maml_meta_training_is_warned_of(tmp_path):
    """adapt and evaluate took models/maml/ckpt of a killed meta-training without a word."""
    import warnings

    family = get_case("autoscaling").build_family(load_config(CONFIG_DIR / "autoscaling.yaml", EPISODE))
    ckpt = tmp_path / "models" / "maml" / "ckpt"
    MAML("flash/Autoscaling-v0", {"episode_steps": 8}, hidden=[8], meta_batch=1, outer_episodes=1).meta_train(
        family.train[:1], 1, checkpoint_dir=ckpt)
    evaluate = ["evaluate", "--model", str(ckpt), "--set", *EPISODE, ONE_TASK]
    with pytest.warns(FlashWarning, match=rf"--model {ckpt} is the checkpoint of a meta-training that has not "
                                          r"finished \(no .*DONE\): its model after 1 iteration\(s\) is used"):
        assert main(evaluate) == 0
    (ckpt.parent / "DONE").write_text("1\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(evaluate) == 0

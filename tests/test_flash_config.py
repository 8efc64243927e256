"""Bad configs fail at start with a clear message; overrides and the saved effective config."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from flash_envs.flash_warnings import FlashWarning
from flash_rl.cases import CONFIG_DIR
from flash_rl.config import ConfigError, check_resume, load_config, save_config

ROOT = Path(__file__).resolve().parent.parent
CONFIG = CONFIG_DIR / "autoscaling.yaml"


def test_shipped_configs_load():
    full = load_config(CONFIG)
    quick = load_config(CONFIG_DIR / "autoscaling_quick.yaml")
    assert full.case == quick.case == "autoscaling"
    assert quick.flash.timesteps < full.flash.timesteps
    assert quick.flash.context_len == full.flash.context_len  # inherited


def test_overrides_any_field(tmp_path):
    cfg = load_config(CONFIG, ["flash.timesteps=1234", "adaptation.methods=[flash, maml]", "env.kwargs={alpha: 0.5}",
                               "flash.agent_kwargs={n_epochs: 2}"])
    assert cfg.flash.timesteps == 1234 and cfg.adaptation.methods == ["flash", "maml"]
    assert cfg.env.kwargs == {"alpha": 0.5}
    assert cfg.flash.agent_kwargs["n_epochs"] == 2 and cfg.flash.agent_kwargs["n_steps"] == 120  # merged
    save_config(cfg, tmp_path / "effective.yaml")
    assert load_config(tmp_path / "effective.yaml").to_dict() == cfg.to_dict()


def test_switching_algorithm_drops_the_kwargs_set_for_the_previous_one(tmp_path):
    with pytest.warns(UserWarning, match=r"switching from PPO to A2C drops .*'n_epochs': 4") as caught:
        a2c = load_config(CONFIG, ["flash.algo=A2C", "flash.adapt_kwargs={n_steps: 30}"])
    assert "'adapt_kwargs'" not in str(caught[0].message)   # the layer replaces it: nothing of it is lost
    assert [w.filename for w in caught] == [__file__]
    assert a2c.flash.agent_kwargs == {} and a2c.flash.adapt_kwargs == {"n_steps": 30}  # same layer's kwargs apply
    assert a2c.transfer.agent_kwargs["n_epochs"] == 4  # the other agent keeps its algorithm and kwargs
    save_config(a2c, tmp_path / "effective.yaml")
    assert load_config(tmp_path / "effective.yaml").to_dict() == a2c.to_dict()

    child = tmp_path / "dqn.yaml"  # a file that inherits and switches, with its own kwargs
    child.write_text(f"inherit: {CONFIG}\ntransfer: {{algo: DQN, adapt_kwargs: {{learning_starts: 0}}}}\n")
    with pytest.warns(UserWarning, match="switching from PPO to DQN"):
        dqn = load_config(child)
    assert dqn.transfer.agent_kwargs == {} and dqn.transfer.adapt_kwargs == {"learning_starts": 0}
    assert load_config(None, data={"flash": {"algo": "A2C"}}).flash.agent_kwargs == {}  # not the defaults' PPO ones

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same = load_config(CONFIG, ["flash.algo=PPO"])
        by_module = load_config(CONFIG, ["flash.algo=stable_baselines3:PPO"])   # PPO too: it dropped PPO's kwargs
        # a layer that switches and sets both kwargs loses nothing set for PPO (it was told to set them)
        own = load_config(CONFIG, ["flash.algo=A2C", "flash.agent_kwargs={n_steps: 5}", "flash.adapt_kwargs={}"])
    assert own.flash.agent_kwargs == {"n_steps": 5} and own.flash.adapt_kwargs == {}
    assert same.flash.agent_kwargs == by_module.flash.agent_kwargs == load_config(CONFIG).flash.agent_kwargs


@pytest.mark.parametrize("override, message", [
    ("flash.timestepz=5", "unknown config key(s) ['flash.timestepz']"),
    ("bogus=1", "unknown config key(s) ['bogus']"),
    ("flash.timesteps=lots", "flash.timesteps must be int, got str 'lots'"),
    ("adaptation.threshold=[1]", "adaptation.threshold must be float"),
    ("env.id=flash/Nope-v0", "unknown env id 'flash/Nope-v0'"),
    ("adaptation.budget=0", "adaptation.budget must be >= 1, got 0"),
    ("flash.timesteps=0", "flash.timesteps must be >= 1"),
    ("flash.algo=PPOO", "unknown stable-baselines3 algorithm 'PPOO'"),
    ("flash.agent_kwargs={n_stepz: 3}", "does not take ['n_stepz']"),
    ("adaptation.methods=[flash, magic]", "unknown method(s) ['magic']"),
    ("case=nope", "unknown case 'nope'"),
    ("tasks.trace_gaps=skip", "tasks.trace_gaps must be one of ('error', 'zero', 'join'), got 'skip'"),
    ("env.kwargs={alpa: 0.6}", "config key env.kwargs: flash/Autoscaling-v0 rejects {'alpa': 0.6}"),
    ("env.kwargs={alpha: 2}", "config key env.kwargs: flash/Autoscaling-v0 rejects {'alpha': 2}"),
    ("maml.inner_lr=-1", "maml.inner_lr must be > 0, got -1"),
    ("maml.outer_lr=0", "maml.outer_lr must be > 0, got 0"),
    ("maml.gamma=1.5", "maml.gamma must be in (0, 1], got 1.5"),
    ("probe.ridge=-1", "probe.ridge must be >= 0"),
    ("flash.adapt_kwargs={n_steps: 7}", "flash.adapt_kwargs: fine-tuning learns one 60-step episode at a time, but "
                                        "PPO's n_steps=7 would collect 63 steps"),
    ("flash.agent_kwargs={n_step:5}", "with a space after the colon"),
    ("maml.hidden=[0]", "maml.hidden must be a list of positive ints"),
    ("case=power", "case 'power' runs flash/PowerManagement-v0, but env.id is flash/Autoscaling-v0"),
    # a repeated method was run and counted twice (its CI too narrow); a seed numpy cannot take failed deep in SB3
    ("adaptation.methods=[flash, transfer, transfer]", "adaptation.methods names ['transfer'] more than once"),
    ("run.seed=4294967296", "run.seed must be at most 2**32 - 1 = 4294967295"),
    ("tasks.seed=4294967296", "tasks.seed must be at most 2**32 - 1"),
    ("adaptation.eval_seed=4294967295", "the last of 5 seeds would evaluate with eval_seed + 4, above 2**32 - 1"),
])
def test_config_errors(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(CONFIG, [override])
    assert message in str(err.value)


def test_a_whole_float_is_taken_for_an_int_key_and_stored_as_an_int():
    """YAML reads 1e5 as an int but 1.5e5 (a point) as a float: both are whole, so both are taken, as the env kwargs
    and the Python API take 2.0 for 2; 2.5 is refused."""
    config = load_config(CONFIG, ["flash.timesteps=1.5e5", "maml.iterations=3.0", "adaptation.max_test_tasks=4.0"])
    assert (config.flash.timesteps, config.maml.iterations, config.adaptation.max_test_tasks) == (150000, 3, 4)
    assert all(type(v) is int for v in (config.flash.timesteps, config.maml.iterations,
                                        config.adaptation.max_test_tasks))
    assert type(load_config(CONFIG, ["adaptation.threshold=1"]).adaptation.threshold) is float
    with pytest.raises(ConfigError, match=r"flash.timesteps must be int, got float 2.5"):
        load_config(CONFIG, ["flash.timesteps=2.5"])


def test_bad_yaml_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"inherit": str(CONFIG), "maml": {"iterations": "many"}}))
    with pytest.raises(ConfigError, match="maml.iterations must be int"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_cli_reports_config_errors_before_any_work(tmp_path):
    out = subprocess.run([sys.executable, "-m", "flash_rl.cli", "reproduce", "--quick", "--set", "adaptation.budget=0",
                          "--out", str(tmp_path / "o"), "--run-dir", str(tmp_path / "r")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "adaptation.budget must be >= 1" in out.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv, blocked", [
    (["reproduce", "--quick"], "results/autoscaling/quick: results is a file"),
    (["reproduce", "--quick", "--out", "o"], "runs/reproduce/autoscaling-quick: runs is a file"),
    (["meta-train", "--quick"], "runs/autoscaling/meta-train-flash-quick: runs is a file"),
])
def test_default_output_folders_are_checked_before_any_work(tmp_path, monkeypatch, capsys, argv, blocked):
    """A file where a default folder goes was found only when the results were written, after all the training
    (reproduce), or ended in a traceback (meta-train); a folder given with --out / --run-dir was checked at once."""
    from flash_rl.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").touch()
    (tmp_path / "runs").touch()
    assert main(argv) == 2
    assert capsys.readouterr().err == f"flash: error: {blocked}, so no folder can be made under it\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results", "runs"]


def test_resume_takes_a_setting_the_saved_run_lacks_at_its_default(tmp_path):
    saved = load_config(CONFIG).to_dict()
    del saved["tasks"]["trace_gaps"]                      # a run saved before the setting existed
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    check_resume(load_config(CONFIG), tmp_path)           # it ran with the default: the same settings
    with pytest.raises(ConfigError, match="tasks.trace_gaps: 'error' then, 'zero' now"):
        check_resume(load_config(CONFIG, ["tasks.trace_gaps=zero"]), tmp_path)


def test_meta_train_resume_without_a_checkpoint_is_an_error(tmp_path, capsys):
    from flash_rl.cli import main

    assert main(["meta-train", "--resume", "--run-dir", str(tmp_path / "typo")]) == 2
    assert "holds no checkpoint to continue" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()


@pytest.mark.parametrize("method, changes, refused", [
    ("flash", ["flash.timesteps=50", "adaptation.budget=3", "maml.hidden=[4]", "transfer.net_arch=[4]"], None),
    ("flash", ["flash.net_arch=[4]"], "flash.net_arch: [64, 64] then, [4] now"),
    ("transfer", ["run.seed=1", "flash.net_arch=[4]"], "run.seed: 0 then, 1 now"),
    ("maml", ["maml.iterations=7", "flash.net_arch=[4]", "references.expert_timesteps=10"], None),
    ("maml", ["maml.hidden=[4]"], "maml.hidden"),
])
def test_meta_train_resume_lets_what_it_does_not_read_change(tmp_path, capsys, method, changes, refused):
    """``meta-train --resume`` compares the run's config.yaml with the settings this meta-training reads: its own
    section but its total, the env, the tasks; the adaptation settings and the other methods' sections may differ."""
    from flash_rl.cli import main

    save_config(load_config(CONFIG), tmp_path / "config.yaml")   # a run with no checkpoint yet
    assert main(["meta-train", "--method", method, "--resume", "--run-dir", str(tmp_path), "--set", *changes]) == 2
    err = capsys.readouterr().err
    if refused is None:   # the settings pass; only the missing checkpoint stops it
        assert "holds no checkpoint to continue" in err
    else:
        assert "holds a run made with other settings" in err and refused in err


def test_meta_train_into_a_reproduce_run_dir_drops_the_adaptation_runs_of_its_model(tmp_path, capsys):
    """They stayed, and a reproduce --resume there reported the curves of the old model as the new one's. The runs of
    methods that start from another model stay (all were deleted, though their models were untouched), and a --resume
    that only loads the finished model removes none."""
    from flash_rl.cli import main
    from test_flash_reproduce import TINY

    runs = {method: f'{{"method": "{method}", "task": "task-24", "seed": 0, "curve": [[0, 1.0]]}}\n'
            for method in ("flash", "transfer", "flash_zero_embedding", "maml")}
    (tmp_path / "curves.jsonl").write_text("".join(runs.values()))
    assert main(["meta-train", "--method", "flash", "--run-dir", str(tmp_path), "--set", *TINY]) == 0
    assert (tmp_path / "curves.jsonl").read_text() == runs["transfer"] + runs["maml"]
    assert ("meta-train: removed 2 adaptation run(s) of the methods that start from flash from "
            f"{tmp_path / 'curves.jsonl'}") in capsys.readouterr().out
    (tmp_path / "curves.jsonl").write_text("".join(runs.values()))
    assert main(["meta-train", "--method", "flash", "--run-dir", str(tmp_path), "--resume", "--set", *TINY]) == 0
    assert (tmp_path / "curves.jsonl").read_text() == "".join(runs.values())
    assert "removed" not in capsys.readouterr().out


def test_a_model_of_another_env_is_refused(tmp_path, capsys):
    from flash_rl.cli import main
    from flash_rl.flash import Flash

    tiny = Flash("PPO", "flash/Autoscaling-v0", net_arch=[8], n_envs=1, adapt_kwargs={"n_steps": 60, "batch_size": 60})
    tiny.fresh().save(tmp_path / "model")
    for command in ("adapt", "evaluate"):
        assert main([command, "--case", "power", "--model", str(tmp_path / "model")]) == 2
        assert "was trained on flash/Autoscaling-v0, but the config runs flash/PowerManagement-v0" in \
            capsys.readouterr().err


def test_adapt_and_evaluate_use_the_test_tasks_that_reproduce_adapts_to(tmp_path, capsys):
    """The test split of ``adapt`` and ``evaluate`` is reproduce's: its first ``adaptation.max_test_tasks`` (4 in the
    quick config, of 8), then one task per ``--test-trace`` CSV and test application."""
    import json

    from flash_rl.cli import main
    from flash_rl.flash import Flash

    tiny = Flash("PPO", "flash/Autoscaling-v0", net_arch=[8], n_envs=1,
                 adapt_kwargs={"n_steps": 60, "batch_size": 60, "n_epochs": 4})   # the config's
    tiny.fresh().save(tmp_path / "model")
    trace = tmp_path / "mine.csv"
    trace.write_text("timestamp,requests\n" + "".join(f"{60 * i},{100 + 10 * (i % 5)}\n" for i in range(30)))
    model = ["--quick", "--model", str(tmp_path / "model")]
    assert main(["adapt", *model, "--task", "5"]) == 2
    err = capsys.readouterr().err
    assert "--task 5: the test split has 4 tasks" in err
    first_app = err.split("['")[1].split("'")[0]
    with pytest.warns(FlashWarning, match="fine-tunes with the kwargs saved with it"):   # not the config's kwargs
        assert main(["adapt", *model, "--test-trace", str(trace), "--task", f"trace:mine:{first_app}", "--episodes",
                     "1", "--json", str(tmp_path / "curve.json")]) == 0
    assert json.loads((tmp_path / "curve.json").read_text())["task"] == f"trace:mine:{first_app}"
    capsys.readouterr()
    assert main(["evaluate", *model, "--test-trace", str(trace), "--json", str(tmp_path / "table.json")]) == 0
    tasks = [row["task"] for row in json.loads((tmp_path / "table.json").read_text())]
    assert len(tasks) == 4 + 4 and tasks[0] == first_app and all(t.startswith("trace:mine:") for t in tasks[4:])
    table = capsys.readouterr().out.splitlines()[-(1 + 12):]   # the header, then a row per task, columns aligned
    assert len({len(line) for line in table}) == 1 and table[0].startswith("task ")


def test_adapt_fine_tunes_with_the_saved_agents_adapt_kwargs_and_says_so(tmp_path, capsys):
    """The docs said adapt used the config's adapt_kwargs; it uses the agent's (as reproduce does), and a --set of
    them was silently ignored."""
    from flash_rl.cli import main
    from flash_rl.flash import Flash

    kwargs = {"n_steps": 60, "batch_size": 60, "n_epochs": 4}
    trained_with = {"n_steps": 120, "batch_size": 240, "n_epochs": 4, "learning_rate": 0.0003, "gamma": 0.95,
                    "ent_coef": 0.01}   # the quick config's flash.agent_kwargs
    tiny = Flash("PPO", "flash/Autoscaling-v0", net_arch=[8], n_envs=1, agent_kwargs=trained_with, adapt_kwargs=kwargs)
    tiny.fresh().save(tmp_path / "model")
    adapt = ["adapt", "--quick", "--model", str(tmp_path / "model"), "--episodes", "1"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(adapt) == 0   # the config's are the agent's: nothing to say
    with pytest.warns(UserWarning, match=r"fine-tunes with the kwargs saved with it \(agent_kwargs, then adapt_kwargs "
                                         r"over them\); the config's flash.agent_kwargs and flash.adapt_kwargs, which "
                                         r"differ in n_epochs \(4 saved, 30 configured\), are not used"):
        assert main([*adapt, "--set", "flash.adapt_kwargs={n_epochs: 30}"]) == 0
    with pytest.warns(UserWarning, match=r"which differ in learning_rate \(0.0003 saved, 0.1 configured\), are not "
                                         r"used"):   # fine-tuning takes agent_kwargs too: the saved ones
        assert main([*adapt, "--set", "flash.agent_kwargs.learning_rate=0.1"]) == 0


def test_adapt_says_a_maml_models_saved_adaptation_settings_are_used(tmp_path):
    """A --set of maml.inner_lr (or inner_episodes, gamma) was silently ignored by adapt of a MAML model: it adapts
    with the settings saved in maml.pt. Settings adaptation does not use (iterations) are not warned of."""
    from flash_rl.cli import main
    from flash_rl.maml import MAML

    MAML("flash/Autoscaling-v0", hidden=[8], inner_lr=0.1).checkpoint(tmp_path / "maml")
    adapt = ["adapt", "--quick", "--model", str(tmp_path / "maml"), "--episodes", "1"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main([*adapt, "--set", "maml.iterations=5"]) == 0
    with pytest.warns(UserWarning, match=r"fine-tunes with the MAML settings saved with it, inner_lr=0.1, "
                                         r"inner_episodes=1; the config's maml.inner_lr=1000.0, "
                                         r"maml.inner_episodes=3 are not used"):
        assert main([*adapt, "--set", "maml.inner_lr=1000", "maml.inner_episodes=3"]) == 0
    with pytest.warns(UserWarning, match=r"saved with it, gamma=0.95; the config's maml.gamma=0.5 are not used"):
        assert main([*adapt, "--set", "maml.gamma=0.5"]) == 0


def test_test_trace_paths_reach_the_config_as_given(tmp_path):
    """They were quoted with repr(), which is not YAML: a backslash came back doubled, and a name holding both kinds
    of quote was no YAML at all."""
    import argparse

    from flash_rl.commands._common import test_trace_overrides

    paths = ["tr/a\\b.csv", "q\"x'y.csv", "día 1.csv"]
    overrides = test_trace_overrides(argparse.Namespace(test_trace=paths))
    assert load_config(CONFIG, overrides, runnable=False).tasks.test_traces == paths


def test_a_reference_cache_where_no_file_can_be_written_is_refused_before_any_work(tmp_path):
    """It failed after every meta-training, with a bare errno ("File exists", or "Is a directory" for '')."""
    from flash_rl.pipeline import check_reference_cache

    (tmp_path / "plain").touch()
    for path, problem in ((tmp_path / "plain" / "refs.json", "plain is a file, so no folder can be made under it"),
                          ("", "is a folder; give a file name")):
        with pytest.raises(ConfigError, match=f"references.cache '{path}': .*{problem}"):
            check_reference_cache(path)


def test_evaluate_refuses_episodes_whose_seeds_pass_the_limit(tmp_path, capsys):
    """Seed eval_seed + e of the last episode passed 2**32 - 1: a traceback after the table's header."""
    from flash_rl.cli import main
    from flash_rl.flash import Flash

    Flash("PPO", "flash/Autoscaling-v0", net_arch=[8], n_envs=1,
          adapt_kwargs={"n_steps": 60, "batch_size": 60, "n_epochs": 4}).fresh().save(tmp_path / "model")
    argv = ["evaluate", "--quick", "--model", str(tmp_path / "model"), "--episodes", "2",
            "--set", "adaptation.eval_seed=4294967295", "adaptation.seeds=1"]
    assert main(argv) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err == ("flash: error: --episodes 2: the last would evaluate with "
                                         "adaptation.eval_seed + 1, above 2**32 - 1 = 4294967295\n")


def test_adapt_refuses_a_seed_whose_evaluation_seed_passes_the_limit(capsys):
    """--seed takes [0, 2**32 - 1], but the evaluation uses eval_seed + seed: an error about a value never typed."""
    from flash_rl.cli import main

    assert main(["adapt", "--quick", "--model", "anything", "--seed", "4294967295"]) == 2
    assert capsys.readouterr().err == ("flash: error: --seed 4294967295: the evaluation episodes would use "
                                       "adaptation.eval_seed + seed = 10000 + 4294967295, above 2**32 - 1 = "
                                       "4294967295\n")


def test_methods_that_cannot_act_in_the_env_are_refused():
    power = CONFIG_DIR / "power.yaml"
    with pytest.raises(ConfigError, match=r"\['flash', 'maml', 'flash_zero_embedding'\] cannot act in "
                                          r"flash/PowerManagement-v0's action space MultiDiscrete"):
        load_config(power, ["env.kwargs={n_servers: 2}"])
    assert load_config(power, ["env.kwargs={n_servers: 2}", "adaptation.methods=[transfer, scratch]"])


def test_meta_train_checks_only_the_method_it_trains(tmp_path, capsys):
    """meta-train --method transfer on two servers trains transfer learning's model, which can act there, whatever
    adaptation.methods (which meta-train does not read) lists; --method flash is refused for its own method."""
    from flash_rl.cli import main

    power = CONFIG_DIR / "power.yaml"
    assert load_config(power, ["env.kwargs={n_servers: 2}"], methods=["transfer"])
    with pytest.raises(ConfigError, match=r"^flash cannot act in flash/PowerManagement-v0's action space Multi"):
        load_config(power, ["env.kwargs={n_servers: 2}"], methods=["flash"])
    two_servers = ["--case", "power", "--set", "env.kwargs.n_servers=2", "transfer.timesteps=64",
                   "transfer.n_envs=1", "transfer.agent_kwargs.n_steps=64", "transfer.agent_kwargs.batch_size=32"]
    assert main(["meta-train", "--method", "transfer", "--run-dir", str(tmp_path / "t"), *two_servers]) == 0
    assert (tmp_path / "t" / "models" / "transfer" / "final" / "agent.zip").is_file()
    assert main(["meta-train", "--method", "flash", "--run-dir", str(tmp_path / "f"), *two_servers]) == 2
    assert capsys.readouterr().err.strip().endswith("(env.kwargs {'episode_s': 300.0, 'n_servers': 2}); change the env")


def test_a_case_declared_as_an_entry_point_is_found(tmp_path, monkeypatch):
    """A package registers its own case through the flash_rl.cases entry-point group, and --case finds it."""
    import importlib.metadata

    from flash_rl import cases
    from flash_rl.commands._common import add_config_arguments, config_from_args

    (tmp_path / "mini.yaml").write_text(f"inherit: {CONFIG}\ncase: mini\n")
    (tmp_path / "mini_case.py").write_text(
        "from dataclasses import replace\nfrom flash_rl.cases import get_case, register_case\n"
        f"register_case(replace(get_case('autoscaling'), name='mini', config={str(tmp_path / 'mini.yaml')!r}, "
        "quick_config=None))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = importlib.metadata.EntryPoint(name="mini", value="mini_case", group=cases.PLUGIN_GROUP)
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group: [entry] if group == cases.PLUGIN_GROUP else [])
    monkeypatch.setattr(cases, "CASES", dict(cases.CASES))   # the registry as it was, after the test
    cases.load_plugin_cases()
    parser = __import__("argparse").ArgumentParser()
    add_config_arguments(parser)
    assert config_from_args(parser.parse_args(["--case", "mini"])).case == "mini"
    with pytest.raises(ConfigError, match="--quick: case 'mini' has no quick config"):   # not its full run, as quick
        config_from_args(parser.parse_args(["--case", "mini", "--quick"]))
    quick = config_from_args(parser.parse_args(["--case", "mini", "--quick", "--config", str(tmp_path / "mini.yaml")]))
    assert quick.case == "mini"


def test_an_off_policy_agent_left_at_sb3s_replay_buffer_size_is_warned_of():
    """DQN's default 10^6 transitions of FLASH's observations (context included) are about 5 GB, allocated up front
    and written with every checkpoint; an auditor's 2000-step run wrote a 4.4 GB checkpoint."""
    def buffer_warnings(overrides: list[str]) -> list[str]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            load_config(CONFIG, overrides)
        return [str(w.message) for w in caught if "buffer_size" in str(w.message)]

    assert buffer_warnings(["flash.algo=DQN", "transfer.algo=DQN"]) == [   # transfer: 0.07 GB without the context
        "config key flash.algo=DQN keeps SB3's default buffer_size of 1,000,000 transitions, allocated up front and "
        "written whole with every checkpoint: about 4.7 GB of observations; set a smaller one, e.g. --set "
        "flash.agent_kwargs.buffer_size=50000"]
    assert buffer_warnings(["flash.algo=DQN", "flash.agent_kwargs.buffer_size=5000"]) == []
    assert "about 18.5 GB" in buffer_warnings(["flash.algo=DQN", "flash.context_len=128"])[0]   # not 2e+01

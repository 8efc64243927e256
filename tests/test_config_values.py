"""Config values that pass the type checks but would fail once work started are refused at start, naming the key."""

from __future__ import annotations

import pytest
import torch

from flash_rl.cases import CONFIG_DIR
from flash_rl.cli import main
from flash_rl.config import ConfigError, check_resume, load_config, save_config

CONFIG = CONFIG_DIR / "autoscaling_quick.yaml"


@pytest.mark.parametrize("override, message", [
    ("maml.hidden=[]", "config key maml.hidden must be a list of positive ints (one per hidden layer, at least one)"),
    ("flash.net_arch=[]", "config key flash.net_arch must be a list of positive ints"),
    ("flash.agent_kwargs={learning_rate: abc}",
     "config key flash.agent_kwargs: learning_rate must be float | Callable[[float], float] (the annotation of PPO)"),
    ("transfer.adapt_kwargs={gamma: abc}", "config key transfer.adapt_kwargs: gamma must be float"),
    ("flash.agent_kwargs={clip_range_vf: -1}", "config key flash.agent_kwargs: PPO cannot be built with"),
    ("flash.agent_kwargs={1: 2, abc: 3}", "config key flash.agent_kwargs: PPO does not take [1, 'abc']"),
    ("flash.agent_kwargs={learning_rate: 2024-01-01}", "learning_rate=datetime.date(2024, 1, 1) cannot be saved"),
    ("tasks.test_traces=[1]", "config key tasks.test_traces must be a list of CSV file paths, got 1"),
    ("adaptation.methods=[{a: 1}]", "config key adaptation.methods: unknown method(s) [{'a': 1}]"),
    ("adaptation.methods=[]", "config key adaptation.methods must name at least one method of ['flash', "),
    ("adaptation.extra_thresholds=[true]", "extra_thresholds must be in (0, 1], got True"),
    ("flash=1", "config key flash must be a mapping of keys, got int 1"),
    ("tasks.trace_bin_s=0", "config key tasks.trace_bin_s must be a finite number >= 1e-06 and <= 1e+09, got 0"),
    ("tasks.trace_bin_s=abc", "config key tasks.trace_bin_s must be float | None, got str 'abc'"),
    ("tasks.trace_bin_s=true", "config key tasks.trace_bin_s must be float | None, got bool True"),
    ("tasks.trace_value_column=[]", "config key tasks.trace_value_column must be str | None, got list []"),
    ("tasks.trace_time_round_s=-60", "config key tasks.trace_time_round_s must be a finite number > 0, got -60"),
])
def test_values_that_would_fail_later_are_refused_naming_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(CONFIG, [override])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_agent_kwargs_are_checked_by_building_the_agent_as_it_trains():
    """SB3 refuses n_steps * n_envs < 2 only when it builds the agent: fine on the 8 meta-training envs, not on 1."""
    assert load_config(CONFIG, ["flash.agent_kwargs={n_steps: 1}"]).flash.agent_kwargs["n_steps"] == 1
    with pytest.raises(ConfigError, match=r"config key flash.agent_kwargs: PPO cannot be built .*n_steps \* n_envs"):
        load_config(CONFIG, ["flash.agent_kwargs={n_steps: 1}", "flash.n_envs=1"])
    with pytest.raises(ConfigError, match=r"config key transfer.adapt_kwargs: PPO cannot be built .*n_steps \* n_envs"):
        load_config(CONFIG, ["transfer.adapt_kwargs={n_steps: 1}"])
    state = torch.get_rng_state()
    load_config(CONFIG)
    assert torch.equal(torch.get_rng_state(), state), "validation leaves the global torch random state alone"


def test_an_expert_of_an_agent_that_trains_per_episode_is_refused():
    """The per-task expert trains the transfer agent on 4 envs, which stable-baselines3 refuses (at learn, in the
    references phase, after the meta-trainings) for a train_freq counted in episodes."""
    dqn = ["transfer.algo=DQN", "transfer.n_envs=1", "transfer.adapt_kwargs={learning_starts: 0}",
           "transfer.agent_kwargs={train_freq: [1, episode], buffer_size: 1000}"]
    with pytest.raises(ConfigError, match=r"config key transfer.agent_kwargs: DQN counts train_freq in episodes "
                                          r"\(\[1, 'episode'\]\), .* the per-task expert \(references.expert_timesteps "
                                          r"> 0\) trains on 4: count train_freq in steps, or set "
                                          r"references.expert_timesteps=0"):
        load_config(CONFIG, dqn)
    assert load_config(CONFIG, dqn + ["references.expert_timesteps=0"]).transfer.n_envs == 1


def test_a_refused_agent_kwarg_stops_meta_train_before_the_run_folder_is_made(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["meta-train", "--quick", "--run-dir", str(run), "--set", "flash.agent_kwargs={clip_range_vf: 0}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "`clip_range_vf` must be positive" in err and not run.exists()


@pytest.mark.parametrize("files, message", [
    ({"a.yaml": "inherit: 5\n"}, "a.yaml: inherit must be a file name (a path relative to a.yaml), got 5"),
    ({"a.yaml": "inherit: b.yaml\n", "b.yaml": "inherit: a.yaml\n"},
     "config files inherit in a cycle: {dir}/a.yaml -> {dir}/b.yaml -> {dir}/a.yaml"),
    ({"a.yaml": "inherit: a.yaml\n"}, "config file {dir}/a.yaml inherits from itself"),
])
def test_a_bad_inherit_is_named(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "a.yaml")
    assert message.format(dir=tmp_path) in str(err.value)


@pytest.mark.parametrize("override", ["tasks.trace_value_column=", 'tasks.trace_value_column=""',
                                      "tasks.trace_value_column=null"])
def test_an_empty_trace_value_column_reads_one_row_per_request(override, tmp_path):
    """docs/reference.md documents "" as one row per request; validation refused it as no column name. null (what a
    YAML key with no value reads as) was refused as no string, then taken but kept apart from "": a run made with
    one spelling could not be resumed with the other."""
    cfg = load_config(CONFIG, [override])
    assert cfg.tasks.trace_value_column == ""
    save_config(cfg, tmp_path / "config.yaml")
    for spelling in ("tasks.trace_value_column=", "tasks.trace_value_column=null"):
        check_resume(load_config(CONFIG, [spelling]), tmp_path)


def test_trace_time_round_s_is_refused_for_a_request_log():
    with pytest.raises(ConfigError, match="^config key tasks.trace_time_round_s=60 puts an aggregated file's "
                                          "timestamps on a grid; a file of one row per request"):
        load_config(CONFIG, ["tasks.trace_value_column=", "tasks.trace_time_round_s=60"])


def test_trace_bin_s_is_inferred_by_default_and_a_run_saved_before_it_existed_resumes(tmp_path):
    assert load_config(CONFIG).tasks.trace_bin_s is None
    assert load_config(CONFIG, ["tasks.trace_bin_s=60"]).tasks.trace_bin_s == 60
    save_config(load_config(CONFIG), tmp_path / "config.yaml")
    saved = (tmp_path / "config.yaml").read_text()
    (tmp_path / "config.yaml").write_text(saved.replace("  trace_bin_s: null\n", ""))   # saved before the key existed
    assert "trace_bin_s" not in (tmp_path / "config.yaml").read_text()
    check_resume(load_config(CONFIG), tmp_path)
    with pytest.raises(ConfigError, match="tasks.trace_bin_s: None then, 60 now"):
        check_resume(load_config(CONFIG, ["tasks.trace_bin_s=60"]), tmp_path)

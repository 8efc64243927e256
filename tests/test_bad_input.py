"""Bad input found by the CLI audit: each is a one-line error (or a refusal) before any work, not a traceback."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml

from flash_envs.baselines.autoscalers import ConstantPolicy
from flash_envs.data import DataFormatError, csv_rows
from flash_envs.data.trace_csv import RateTrace
from flash_envs.envs.autoscaling import REPLICA_UP
from flash_envs.sim.workloads import TraceWorkload
from flash_envs.tasks import AutoscalingTaskFamily
from flash_rl.adaptation import task_references
from flash_rl.cases import CONFIG_DIR
from flash_rl.cli import main
from flash_rl.commands.adapt import add_arguments as adapt_arguments
from flash_rl.commands.adapt import load_model
from flash_rl.commands.meta_train import default_run_dir
from flash_rl.config import ConfigError, load_config, save_config
from flash_rl.flash import Flash
from flash_rl.maml import MAML

ROOT = Path(__file__).resolve().parent.parent
QUICK_RESULTS = ROOT / "results" / "autoscaling" / "quick"


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("argv, message", [
    (["reproduce", "--quick", "--out", "{file}"], "argument --out: {file} is a file; give a folder"),
    (["meta-train", "--quick", "--run-dir", "{file}"], "argument --run-dir: {file} is a file; give a folder"),
    (["power-governors", "--out", "{file}"], "argument --out: {file} is a file; give a folder"),
    (["validate-fidelity", "--out", "{dir}"], "argument --out: {dir} is a folder; give a file name"),
    (["bench", "--out", "{file}/x.md"], "is a file, so no folder can be made under it"),
    (["adapt", "--model", "m", "--json", "{dir}"], "argument --json: {dir} is a folder; give a file name"),
])
def test_unwritable_outputs_are_refused_before_any_work(tmp_path, capsys, argv, message):
    file = tmp_path / "afile"
    file.write_text("")
    fill = {"file": str(file), "dir": str(tmp_path)}
    with pytest.raises(SystemExit) as stop:
        main([a.format(**fill) for a in argv])
    assert stop.value.code == 2 and message.format(**fill) in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["reproduce", "--quick", "--out", "{ro}/out"], "argument --out: {ro}/out: no permission to write in {ro}"),
    (["evaluate", "--model", "m", "--json", "{ro}/e.json"], "argument --json: {ro}/e.json: no permission to write in"),
    (["adapt", "--model", "m", "--json", "{ro}/new/a.json"], "--json: {ro}/new/a.json: no permission to write in {ro}"),
    (["meta-train", "--run-dir", "{ro}"], "argument --run-dir: {ro}: no permission to write in it"),
    (["adapt", "--model", "m", "--json", "{ro_file}"], "argument --json: {ro_file}: no permission to write to it"),
])
def test_outputs_without_write_permission_are_refused_before_any_work(tmp_path, capsys, monkeypatch, argv, message):
    """A folder or file this process may not write (os.access says so: a chmod does not stop root, so it is faked)."""
    ro, ro_file = tmp_path / "ro", tmp_path / "ro.json"
    ro.mkdir()
    ro_file.write_text("{}")
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) not in (ro, ro_file) and access(path, mode))
    with pytest.raises(SystemExit) as stop:
        main([a.format(ro=ro, ro_file=ro_file) for a in argv])
    assert stop.value.code == 2 and message.format(ro=ro, ro_file=ro_file) in capsys.readouterr().err
    assert list(ro.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write in a read-only folder; the test above fakes os.access")
def test_a_read_only_folder_is_refused_as_an_output(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    with pytest.raises(SystemExit) as stop:
        main(["reproduce", "--quick", "--out", str(ro / "out")])
    assert stop.value.code == 2 and f"{ro}/out: no permission to write in {ro}" in capsys.readouterr().err


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, where os.access says writable")
@pytest.mark.parametrize("argv", [["validate-fidelity", "--out", "/proc/x.md"], ["bench", "--out", "/proc/new/b.md"]])
def test_a_folder_where_no_file_can_be_created_is_refused_though_os_access_allows_it(capsys, monkeypatch, argv):
    """Root may write in /proc by os.access, yet no file can be made there: validate-fidelity ran every simulation
    and then failed to write. (os.access is faked to answer as it does for root.)"""
    monkeypatch.setattr(os, "access", lambda path, mode: True)
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2 and "no file can be created in /proc (" in capsys.readouterr().err


def test_validate_fidelity_writes_json_to_out_with_json(tmp_path, capsys):
    out = tmp_path / "new" / "fidelity.json"
    assert main(["validate-fidelity", "--horizon", "60", "--json", "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == json.loads(capsys.readouterr().out)


def test_csv_with_byte_order_mark_reads_and_non_utf8_is_named(tmp_path):
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbftimestamp,requests\n0,10\n")
    assert [row for _, row in csv_rows(bom, ("timestamp",))] == [{"timestamp": "0", "requests": "10"}]
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"timestamp,requests\n0,1\xe9\n")
    with pytest.raises(DataFormatError, match=r"latin.csv: not UTF-8 text \(byte 22 is b'\\xe9'\)"):
        list(csv_rows(latin, ("timestamp",)))


@pytest.mark.parametrize("content, message", [
    ("x: [1, 2\n", "not YAML text"),
    ("", "expected a mapping with the splits"),
    ("train: []\n", r"missing \['test'\]"),
    ("train: [{app: 1}]\ntest: []\n", "task family .*fam.yaml: "),
])
def test_a_bad_task_family_file_is_named(tmp_path, content, message):
    path = tmp_path / "fam.yaml"
    path.write_text(content)
    with pytest.raises(DataFormatError, match=message):
        AutoscalingTaskFamily.load_yaml(path)


def test_meta_train_with_a_bad_family_file_fails_before_writing(tmp_path, capsys):
    (tmp_path / "fam.yaml").write_text("")
    run = tmp_path / "run"
    assert main(["meta-train", "--quick", "--run-dir", str(run), "--set",
                 f"tasks.family_file={tmp_path / 'fam.yaml'}"]) == 2
    assert "expected a mapping" in one_line_error(capsys) and not run.exists()


@pytest.mark.parametrize("override, message", [
    ("tasks.seed=-1", "tasks.seed must be >= 0, got -1"),
    ("adaptation.eval_seed=-5", "adaptation.eval_seed must be >= 0"),
    ("probe.ridge=.nan", "probe.ridge must be a finite number, got nan"),
    ("maml.inner_lr=.inf", "maml.inner_lr must be a finite number, got inf"),
    ("tasks.trace_value_kind=bogus", "tasks.trace_value_kind must be one of ('count', 'rate')"),
    ("flash.agent_kwargs={gamma: 1.5}", "flash.agent_kwargs: gamma must be a finite number >= 0 and <= 1, got 1.5"),
    ("flash.agent_kwargs={learning_rate: -1}", "learning_rate must be a finite number > 0, got -1"),
    ("flash.agent_kwargs={n_steps: 0}", "n_steps must be a finite number >= 1, got 0"),
    ("transfer.agent_kwargs={ent_coef: -3}", "transfer.agent_kwargs: ent_coef must be a finite number >= 0"),
])
def test_config_values_out_of_range_are_named(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(CONFIG_DIR / "autoscaling_quick.yaml", [override])


def test_a_config_path_that_is_a_folder_or_not_text(tmp_path):
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)
    (tmp_path / "c.yaml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not a YAML text file"):
        load_config(tmp_path / "c.yaml")
    (tmp_path / "c.yaml").write_text("a: [1\n")
    with pytest.raises(ConfigError, match=r"not valid YAML: .*\n?") as err:
        load_config(tmp_path / "c.yaml")
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"override 'flash.net_arch=\[64': value is not valid YAML") as err:
        load_config(CONFIG_DIR / "autoscaling_quick.yaml", ["flash.net_arch=[64"])
    assert "\n" not in str(err.value)   # it was 7 lines


@pytest.fixture(scope="module")
def saved_agent(tmp_path_factory):
    path = tmp_path_factory.mktemp("agent")
    flash = Flash("PPO", "flash/Autoscaling-v0", {"episode_steps": 10}, context_len=4, embedding_dim=4,
                  encoder_hidden=8, net_arch=[8], agent_kwargs={"n_steps": 10, "batch_size": 10, "n_epochs": 1})
    flash.meta_train(flash.make_env().unwrapped.family.train[:2], 10)
    flash.save(path)
    return path


def test_a_saved_agent_runs_only_in_the_env_it_was_trained_in(saved_agent):
    assert load_model(saved_agent, "flash/Autoscaling-v0", {"episode_steps": 10}).env_kwargs == {"episode_steps": 10}
    with pytest.raises(ConfigError, match=r"env.kwargs \{'episode_steps': 10\}.*differing: \['episode_steps'\]"):
        load_model(saved_agent, "flash/Autoscaling-v0", {"episode_steps": 20})
    # kwargs that make the same env are the same env: a default spelled out, a list for a tuple, 10.0 for 10
    same = {"episode_steps": 10.0, "control_interval_s": 30.0, "cpu_bounds": [128, 2048, 128]}
    assert load_model(saved_agent, "flash/Autoscaling-v0", same).env_kwargs == {"episode_steps": 10}


def test_a_damaged_saved_agent_is_named(saved_agent, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(saved_agent, broken)
    (broken / "agent.zip").unlink()
    with pytest.raises(FileNotFoundError, match=r"holds no saved agent \(no agent.zip\)"):
        Flash.load(broken)
    shutil.copy(saved_agent / "agent.zip", broken / "agent.zip")
    (broken / "flash.json").write_text("{")
    with pytest.raises(ValueError, match=r"flash.json is damaged \(not JSON text: Expecting"):
        Flash.load(broken)
    (broken / "flash.json").write_bytes(b'{"kind": "\xff"}')         # not UTF-8
    with pytest.raises(ValueError, match=r"flash.json is damaged \(not JSON text: 'utf-8' codec"):
        Flash.load(broken)


@pytest.mark.parametrize("damage, message", [
    (lambda saved: {}, r"flash.json is damaged \(missing \['adapt_kwargs', 'agent_cls', .*'seed'\]\)"),
    (lambda saved: {**saved, "bogus": 1}, r"flash.json is damaged \(unknown keys \['bogus'\]\)"),
    (lambda saved: {**saved, "kind": "Nope"}, r"flash.json is damaged \(unknown kind 'Nope' \(expected one of"),
    (lambda saved: {**saved, "net_arch": [0]}, r"flash.json: the saved settings are refused: net_arch must be a list"),
    (lambda saved: [], r"flash.json is damaged \(not a JSON object of settings: \[\]\)"),
])
def test_a_saved_agent_with_missing_or_unknown_settings_is_named(saved_agent, tmp_path, capsys, damage, message):
    broken = tmp_path / "broken"
    shutil.copytree(saved_agent, broken)
    (broken / "flash.json").write_text(json.dumps(damage(json.loads((saved_agent / "flash.json").read_text()))))
    with pytest.raises(ValueError, match=message):
        Flash.load(broken)
    assert main(["evaluate", "--quick", "--model", str(broken)]) == 2
    assert re.search(message, one_line_error(capsys))


class _RunsCodeWhenUnpickled:
    """Unpickling this touches the file ``marker``: what a malicious checkpoint could do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


NOT_A_ZIP = ": it is not a whole zip archive, as torch.save writes (another format, or a file cut short)"


def test_a_maml_checkpoint_is_read_without_running_its_code(tmp_path):
    """``maml.pt`` is unpickled by torch's weights-only loader: a file carrying code is refused before the code runs;
    an empty, non-torch or foreign file is a ValueError naming it (the CLI's one-line error)."""
    MAML("flash/Autoscaling-v0", {"episode_steps": 10}, hidden=[8], meta_batch=2).checkpoint(tmp_path / "good")
    assert MAML.load(tmp_path / "good").iteration == 0
    marker = tmp_path / "code-ran"
    bad = {  # the file's content, the error's end
        "evil": ({"x": _RunsCodeWhenUnpickled(marker)}, ": it holds objects other than tensors and plain values"),
        "empty": (b"", NOT_A_ZIP), "text": (b"hello", NOT_A_ZIP), "garbage": (b"garbage\n", NOT_A_ZIP),
        "foreign": ({"weights": torch.zeros(2)}, " (it lacks env_id, env_kwargs, hparams")}
    for name, (content, message) in bad.items():
        path = tmp_path / name / "maml.pt"
        path.parent.mkdir()
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            torch.save(content, path)
        with pytest.raises(ValueError, match=re.escape(f"{path} is not a MAML checkpoint that flash wrote{message}")):
            MAML.load(path.parent)
    assert not marker.exists()


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "curves.csv").write_text((d / "curves.csv").read_text().replace(",0.", ",abc", 1)),
     "curves.csv, line 4: could not convert string to float"),
    (lambda d: (d / "references.csv").write_text("\n".join((d / "references.csv").read_text().splitlines()[:2])),
     "no reference returns for"),
    (lambda d: (d / "episodes_to_adapt.csv").write_text((d / "episodes_to_adapt.csv").read_text().splitlines()[0]),
     "episodes_to_adapt.csv: no data rows"),
    (lambda d: (d / "summary.json").write_text("{"), "summary.json: not JSON text (Expecting property name"),
    (lambda d: (d / "summary.json").write_bytes(b"\xff"), "summary.json: not JSON text ('utf-8' codec"),
])
def test_rendering_a_damaged_reproduction_folder_is_a_one_line_error(tmp_path, capsys, damage, message):
    folder = tmp_path / "quick"
    shutil.copytree(QUICK_RESULTS, folder)
    damage(folder)
    assert main(["reproduce", "--render", str(folder)]) == 2
    assert message in one_line_error(capsys)


def test_an_all_zero_trace_cannot_be_scaled_to_a_mean_rate():
    zeros = RateTrace(np.zeros(3), 1.0)
    assert TraceWorkload.from_trace(zeros).load() is zeros   # replayed as it is: fine
    with pytest.raises(ValueError, match="has no requests, so it cannot be scaled to mean_rate=50"):
        TraceWorkload.from_trace(zeros, mean_rate=50)
    with pytest.raises(ValueError, match="start_s must be a finite number >= 0, got nan"):
        TraceWorkload.from_trace(RateTrace(np.ones(3), 1.0), start_s=float("nan"))


@pytest.mark.parametrize("command", ["adapt", "evaluate"])
def test_commands_that_train_nothing_take_no_run_dir_or_resume(capsys, command):
    for option in ("--run-dir=x", "--resume"):   # they were listed and silently ignored
        with pytest.raises(SystemExit):
            main([command, "--model", "m", option])
        assert f"unrecognized arguments: {option}" in capsys.readouterr().err


def test_exponent_numbers_are_numbers_and_repeated_set_options_add_up():
    cfg = load_config(CONFIG_DIR / "autoscaling_quick.yaml",
                      ["flash.timesteps=2e4", "flash.agent_kwargs={learning_rate: 3e-4}"])
    assert cfg.flash.timesteps == 20_000 and cfg.flash.agent_kwargs["learning_rate"] == 3e-4   # YAML 1.1: text
    parser = argparse.ArgumentParser()
    adapt_arguments(parser)
    args = parser.parse_args(["--model", "m", "--set", "run.seed=1", "--set", "tasks.seed=2", "adaptation.seeds=3"])
    assert args.overrides == ["run.seed=1", "tasks.seed=2", "adaptation.seeds=3"]   # the first --set was dropped


def test_a_quoted_exponent_stays_text_and_a_saved_config_reads_back_equal(tmp_path):
    cfg = load_config(CONFIG_DIR / "autoscaling_quick.yaml", ["run.dir='1e3'", "flash.timesteps=2e4"])
    assert cfg.run.dir == "1e3" and cfg.flash.timesteps == 20_000   # it was the number 1000 (an int's error)
    save_config(cfg, tmp_path / "config.yaml")
    assert "dir: '1e3'" in (tmp_path / "config.yaml").read_text()
    assert load_config(tmp_path / "config.yaml") == cfg
    # a name that starts like one is a name (PyYAML's resolvers match a prefix: float('1e3_run') failed)
    assert load_config(CONFIG_DIR / "autoscaling_quick.yaml", ["run.dir=1e3_run"]).run.dir == "1e3_run"


def test_a_task_family_file_reads_exponent_numbers_as_a_config_file_does(tmp_path):
    from flash_envs.tasks import AutoscalingTaskFamily

    family = AutoscalingTaskFamily.generate(2, 1, 0).to_dict()
    family["test"][0]["workload"]["scale"] = "SCALE"
    (tmp_path / "family.yaml").write_text(yaml.safe_dump(family).replace("SCALE", "7e-1"))
    assert AutoscalingTaskFamily.load_yaml(tmp_path / "family.yaml").test[0].workload.scale == 0.7   # was text


def test_quick_and_full_meta_training_get_their_own_run_folders():
    assert default_run_dir("runs", "power", "maml", quick=False) == Path("runs/power/meta-train-maml")
    assert default_run_dir("runs", "power", "maml", quick=True) == Path("runs/power/meta-train-maml-quick")


def test_the_per_task_expert_is_named_after_its_algorithm():
    class A2C(ConstantPolicy):   # stands for an SB3 agent: only its class name and predict() matter here
        pass

    env = gym.make("flash/Autoscaling-v0", episode_steps=5)
    task = env.unwrapped.family.test[0]
    refs = task_references(env, task, [0], lambda e: {}, lambda e: {}, lambda t: A2C(env, REPLICA_UP),
                           random_episodes=1)
    assert refs[0].expert_source == "per-task A2C"   # the only candidate; it was labelled "per-task PPO" regardless


def test_a_case_that_is_not_the_config_files_is_refused(capsys):
    quick = str(CONFIG_DIR / "autoscaling_quick.yaml")
    assert main(["meta-train", "--case", "power", "--config", quick]) == 2   # it trained an autoscaling agent
    assert "--case power, but the config" in one_line_error(capsys)


def test_a_warning_of_flash_is_one_line_naming_the_command(tmp_path):
    """It was Python's two lines: the source path of flash_rl/config.py, then a line of its code."""
    out = subprocess.run([sys.executable, "-m", "flash_rl.cli", "evaluate", "--model", str(tmp_path / "none"),
                          "--set", "flash.algo=A2C"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    lines = out.stderr.splitlines()
    assert out.returncode == 2 and len(lines) == 2, out.stderr
    assert lines[0].startswith("flash evaluate: warning: config key flash.algo: switching from PPO to A2C drops")
    assert lines[1].startswith("flash: error: --model")


def test_only_flashs_own_warnings_are_shortened():
    """numpy's RuntimeWarning raised in flash's code read as one of flash's own, without its category. flash's own are
    known by their class, not by the line they are attributed to (the user's, when flash is called from code)."""
    import warnings

    from flash_envs.data.trace_csv import TraceAliasWarning
    from flash_envs.flash_warnings import FlashWarning
    from flash_rl import cli
    from flash_rl.warning_lines import OneLineWarnings

    fallback = lambda message, category, *rest: f"{category.__name__}: {message}"
    fmt = OneLineWarnings("reproduce", fallback, warnings.showwarning)
    ours = "flash reproduce: warning: w\n"
    assert fmt("w", FlashWarning, __file__, 1) == fmt("w", TraceAliasWarning, __file__, 1) == ours
    assert fmt("Mean of empty slice", RuntimeWarning, cli.__file__, 1) == "RuntimeWarning: Mean of empty slice"
    assert fmt("w", UserWarning, cli.__file__, 1) == "UserWarning: w"


def _warn_in_worker(category: type[Warning]) -> None:
    import warnings

    warnings.warn_explicit("from a worker", category, "elsewhere.py", 1)


def test_a_worker_writes_flashs_warnings_as_one_line_too(capfd, monkeypatch):
    """A spawned worker started with Python's two-line format: flash reproduce's adaptation workers wrote a DQN
    learning_starts warning as a source path and a line of code."""
    import warnings

    from flash_envs.flash_warnings import FlashWarning
    from flash_rl.warning_lines import OneLineWarnings
    from flash_rl.workers import worker_pool

    fmt = OneLineWarnings("reproduce", warnings.formatwarning, warnings.showwarning)
    monkeypatch.setattr(warnings, "formatwarning", fmt)
    monkeypatch.setattr(warnings, "showwarning", fmt.show)
    with worker_pool(1) as pool:
        pool.submit(_warn_in_worker, FlashWarning).result()
        pool.submit(_warn_in_worker, UserWarning).result()
    err = capfd.readouterr().err.splitlines()
    assert "flash reproduce: warning: from a worker" in err
    assert any(line.endswith("UserWarning: from a worker") and "elsewhere.py" in line for line in err), err


def test_flashs_own_warnings_are_written_once_per_command_workers_included(capfd, monkeypatch):
    """flash reproduce on a task family made for another episode length wrote the same warning twice with --jobs 1
    (where the family was loaded and where it was trained on) and six times with --jobs 2 (the workers too)."""
    import warnings

    from flash_envs.flash_warnings import FlashWarning
    from flash_rl.warning_lines import OneLineWarnings
    from flash_rl.workers import worker_pool

    written: list[str] = []
    fmt = OneLineWarnings("reproduce", lambda message, category, *rest: f"{category.__name__}: {message}",
                          lambda *args: written.append(fmt(*args[:4])))
    assert fmt("w", FlashWarning, __file__, 1) == fmt("w", FlashWarning, __file__, 1)   # formatting stays pure
    fmt.show("w", FlashWarning, __file__, 1)
    fmt.show("w", FlashWarning, __file__, 2)   # the same warning from another place
    fmt.show("v", FlashWarning, __file__, 2)
    fmt.show("w", UserWarning, __file__, 1)   # not ours: left to Python, every time
    fmt.show("w", UserWarning, __file__, 1)
    assert written == ["flash reproduce: warning: w\n", "flash reproduce: warning: v\n", "UserWarning: w",
                       "UserWarning: w"]

    def to_stderr(*args):   # (pytest records what Python's own showwarning writes)
        print(fmt(*args[:4]), end="", file=sys.stderr)

    fmt = OneLineWarnings("reproduce", warnings.formatwarning, to_stderr)
    monkeypatch.setattr(warnings, "formatwarning", fmt)
    monkeypatch.setattr(warnings, "showwarning", fmt.show)
    fmt.show("from a worker", FlashWarning, __file__, 1)   # the command writes it before it starts its workers
    with worker_pool(2) as pool:
        for _ in range(3):   # a worker's registry forgets (catch_warnings resets it), as SB3 and flash's own code do
            for future in [pool.submit(_warn_in_worker, FlashWarning), pool.submit(_warn_in_worker_elsewhere)]:
                future.result()
    fmt.show("from a worker, new", FlashWarning, __file__, 9)   # written by a worker already
    assert capfd.readouterr().err.splitlines() == ["flash reproduce: warning: from a worker",
                                                  "flash reproduce: warning: from a worker, new"]


def _warn_in_worker_elsewhere() -> None:
    import warnings

    from flash_envs.flash_warnings import FlashWarning

    with warnings.catch_warnings():   # resets the registry of warnings already shown, at its end
        pass
    warnings.warn_explicit("from a worker, new", FlashWarning, "elsewhere.py", 3)


def test_an_empty_flash_data_dir_is_the_default(monkeypatch):
    from flash_envs.data import DEFAULT_DATA_DIR, data_dir

    monkeypatch.setenv("FLASH_DATA_DIR", "")
    assert data_dir() == Path(DEFAULT_DATA_DIR)   # it was the working directory


@pytest.mark.parametrize("command", ["evaluate", "adapt"])
def test_a_test_trace_with_another_split_is_refused(command, tmp_path, capsys):
    """flash evaluate --split train --test-trace X.csv evaluated the train tasks and left the trace out, silently."""
    from flash_rl.cli import main

    trace = tmp_path / "trace.csv"
    trace.write_text("timestamp,requests\n0,60\n60,60\n")
    assert main([command, "--model", str(tmp_path / "none"), "--split", "train", "--test-trace", str(trace)]) == 2
    assert capsys.readouterr().err.strip() == ("flash: error: --test-trace adds held-out tasks to the test split, not "
                                               "to --split train: drop one of them")


def test_test_traces_in_the_config_with_another_split_are_warned_of(tmp_path, capsys):
    """--set tasks.test_traces=[...] --split train evaluated the train tasks and left the traces out, silently."""
    from flash_rl.cli import main

    trace = tmp_path / "trace.csv"
    trace.write_text("timestamp,requests\n0,60\n60,60\n")
    with pytest.warns(UserWarning, match=r"^config key tasks.test_traces names 1 trace\(s\), whose tasks join the "
                                         r"test split: --split train leaves them out$"):
        assert main(["evaluate", "--model", str(tmp_path / "none"), "--split", "train", "--quick",
                     "--set", f"tasks.test_traces=['{trace}']"]) == 2   # (no model there: the error comes after)


@pytest.mark.parametrize("argv, taken, work", [
    (["power-governors", "--out", "{out}"], "governors.md", "flash_envs.baselines.power_report.governor_rows"),
    (["compare-seeds", "{a}", "{b}", "--out", "{out}"], "across_seeds.png", "flash_rl.across_seeds.read_reproduction"),
    (["config-eval", "--out", "{out}"], "summary.json", "flash_rl.fewshot.cli.run_command"),
    (["config-eval", "--diagnose", "--out", "{out}"], "diagnosis.json", "flash_rl.fewshot.cli.run_command"),
    (["reproduce", "--quick", "--out", "{out}"], "results.md", "flash_rl.pipeline.reproduce"),
])
def test_a_folder_in_the_way_of_an_output_file_is_refused_before_any_work(tmp_path, capsys, monkeypatch, argv, taken,
                                                                          work):
    """Only the --out folder was checked: a folder named as one of the files it gets failed the command at its end,
    after all the work, with some files written and an errno line."""
    monkeypatch.setattr(work, lambda *a, **kw: pytest.fail("worked before refusing"))
    out = tmp_path / "out"
    (out / taken).mkdir(parents=True)
    for name in "ab":
        (tmp_path / name).mkdir()
    try:
        code = main([a.format(out=out, a=tmp_path / "a", b=tmp_path / "b") for a in argv])
    except SystemExit as stop:   # a usage error
        code = stop.code
    assert code == 2 and f"--out {out}: {out / taken} is a folder; give a file name" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == [taken]   # nothing written


@pytest.mark.parametrize("argv", [["validate-fidelity", "--out", "{link}"], ["power-governors", "--out", "{link}"]])
def test_an_output_that_is_a_dangling_link_is_refused_before_any_work(tmp_path, capsys, argv):
    """exists() is false for a link to nothing, so the check probed the link's folder; the command failed at its end."""
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "missing" / "target")
    with pytest.raises(SystemExit) as stop:
        main([a.format(link=link) for a in argv])
    assert stop.value.code == 2
    assert f"{link} is a link to {tmp_path / 'missing' / 'target'}, which does not exist" in capsys.readouterr().err


def test_a_power_env_of_more_servers_than_it_can_simulate_is_refused():
    """n_servers=10**14 failed in a MemoryError making the action space (power-governors: a traceback)."""
    from flash_envs.envs.power_management import MAX_SERVERS

    assert gym.make("flash/PowerManagement-v0", n_servers=MAX_SERVERS).unwrapped.n_servers == MAX_SERVERS
    with pytest.raises(ValueError, match=r"n_servers must be at most 1000 \(each server is simulated on its own\)"):
        gym.make("flash/PowerManagement-v0", n_servers=10**14)

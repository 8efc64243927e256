"""Defects found by an audit of ``flash meta-train``, ``flash reproduce`` and the pipeline behind them, each pinned by
a test that fails without its fix."""

from __future__ import annotations

import math
import shutil
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest

from flash_rl.cases import CONFIG_DIR, get_case
from flash_rl.cli import main
from flash_rl.config import ConfigError, load_config, save_config
from flash_rl.pipeline import linear_probe, reproduce
from test_flash_reproduce import TINY

PROJECT = Path(__file__).resolve().parent.parent
QUICK = PROJECT / "results" / "autoscaling" / "quick"


def _scalar_tags(folder: Path) -> set[str]:
    """The TensorBoard scalar tags logged under ``folder``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    for events in folder.glob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
    return tags


def test_reproduce_resume_refuses_a_model_meta_trained_on_other_tasks(tmp_path):
    """A meta-train of another tasks.seed into a reproduce's --run-dir rewrote its config.yaml, and a reproduce
    --resume under that config then used the other models, trained on the old train tasks, without a word. MAML's
    TensorBoard logs go to tb/maml (they went to tb/adaptation, among the adaptation scalars)."""
    settings = TINY + [f"references.cache={tmp_path / 'refs.json'}", "adaptation.methods=[transfer, maml]",
                       "references.expert_timesteps=0"]
    run, out = tmp_path / "run", tmp_path / "out"
    reproduce(load_config(CONFIG_DIR / "autoscaling.yaml", settings), out, run, command="test")
    assert "maml/outer_loss" in _scalar_tags(run / "tb" / "maml")
    assert not any(tag.startswith("maml/") for tag in _scalar_tags(run / "tb" / "adaptation"))
    other = load_config(CONFIG_DIR / "autoscaling.yaml", settings + ["tasks.seed=5"])
    save_config(other, run / "config.yaml")   # what a meta-train of the other seed (of one method) leaves
    with pytest.raises(ConfigError, match=r"holds transfer meta-trained on other tasks than the config's train tasks"):
        reproduce(other, out, run, resume=True, command="test")


def test_resume_refuses_a_checkpoint_meta_trained_on_other_tasks(tmp_path):
    """A FLASH or transfer checkpoint kept no record of its tasks, so the check above passed any unfinished one."""
    from flash_rl.pipeline import check_saved_model, make_model

    cfg = load_config(CONFIG_DIR / "autoscaling.yaml", TINY)
    family = get_case("autoscaling").build_family(cfg)
    make_model("flash", cfg).meta_train(family.train, 64, checkpoint_dir=tmp_path / "models" / "flash" / "ckpt",
                                        checkpoint_interval=32)
    check_saved_model("flash", cfg, tmp_path, family.train)   # its own tasks pass
    with pytest.raises(ConfigError, match=r"holds flash meta-trained on other tasks than the config's train tasks"):
        check_saved_model("flash", cfg, tmp_path, family.train[1:])


def test_a_damaged_curves_line_does_not_stop_meta_train(tmp_path, capsys):
    """A record whose method was a list raised TypeError (unhashable) after the earlier model was deleted."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "curves.jsonl").write_text('{"method": ["flash"]}\n{"method": "maml", "task": "t", "seed": 0}\n'
                                      '{"method": "flash", "task": "t", "seed": 0}\n{"method": "fl')
    assert main(["meta-train", "--method", "flash", "--run-dir", str(run), "--set", *TINY]) == 0
    assert (run / "curves.jsonl").read_text() == '{"method": "maml", "task": "t", "seed": 0}\n'
    assert "removed 1 adaptation run(s) of the methods that start from flash" in capsys.readouterr().out


def test_an_empty_render_folder_is_refused(tmp_path, capsys, monkeypatch):
    """``--render ""`` (an empty shell variable, say) was taken as no --render: a whole default run began."""
    import flash_rl.pipeline

    def no_run(*args, **kwargs):
        raise AssertionError("--render '' began a run")

    monkeypatch.setattr(flash_rl.pipeline, "reproduce", no_run)
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", "--render", ""]) == 2
    assert "--render needs the folder of an earlier run's results, got an empty string" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_a_probe_without_ridge_fits_a_singular_system():
    """probe.ridge=0 is documented as valid; an embedding dimension that never varies (or fewer samples than
    dimensions) made np.linalg.solve raise LinAlgError after every adaptation run, and no report was written."""
    class ConstantEmbedding:
        def embed(self, task, episodes, seed):
            return np.ones(4)

    case = get_case("autoscaling")
    cfg = load_config(CONFIG_DIR / "autoscaling.yaml", ["probe.ridge=0", "probe.samples_per_task=1"])
    family = case.build_family(cfg)
    probe = linear_probe(ConstantEmbedding(), case, family.train[:4], family.test[:2], cfg)
    assert probe["mean_r2_train"] == pytest.approx(0.0)   # the fit is the train mean: nothing is explained

    class WideEmbedding:   # 8 dimensions, 4 train samples: a least-squares fit explains them exactly
        def embed(self, task, episodes, seed):
            return np.random.default_rng(zlib.crc32(task.name.encode())).normal(size=8)

    probe = linear_probe(WideEmbedding(), case, family.train[:4], family.test[:2], cfg)
    assert probe["mean_r2_train"] == pytest.approx(1.0)


def test_a_probe_of_one_test_task_has_no_r2_and_says_nothing_of_empty_slices():
    """No task parameter varies across one test task, so every R^2 is NaN; their mean printed NumPy's "Mean of empty
    slice" RuntimeWarning in the middle of a run's output."""
    class Embedding:
        def embed(self, task, episodes, seed):
            return np.random.default_rng(zlib.crc32(task.name.encode())).normal(size=4)

    case = get_case("autoscaling")
    cfg = load_config(CONFIG_DIR / "autoscaling.yaml", ["probe.samples_per_task=1"])
    family = case.build_family(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        probe = linear_probe(Embedding(), case, family.train[:6], family.test[:1], cfg)
    assert math.isnan(probe["mean_r2_test"]) and all(math.isnan(v) for v in probe["r2_test"].values())
    assert not math.isnan(probe["mean_r2_train"])


@pytest.mark.parametrize("command", ["reproduce", "meta-train"])
def test_a_run_may_not_overwrite_the_config_it_reads(tmp_path, capsys, command):
    """--config D/config.yaml with --run-dir D replaced the user's config (its inherit: and comments) with the
    effective one."""
    config = tmp_path / "config.yaml"
    save_config(load_config(CONFIG_DIR / "autoscaling.yaml", TINY), config)
    config.write_text("# my tiny run\n" + config.read_text())   # what the effective config would drop
    before = config.read_text()
    extra = ["--method", "flash"] if command == "meta-train" else ["--out", str(tmp_path / "out")]
    assert main([command, "--config", str(config), "--run-dir", str(tmp_path), *extra]) == 2
    assert f"--run-dir would overwrite {config}, the --config file this command reads" in capsys.readouterr().err
    assert config.read_text() == before


def test_a_runs_own_config_may_be_given_back(tmp_path, capsys):
    """The check above must not refuse a config.yaml that already holds the effective config: a run's own, given as
    --config to resume it (the reference suggests running a run's saved config.yaml)."""
    config = tmp_path / "config.yaml"
    save_config(load_config(CONFIG_DIR / "autoscaling.yaml", TINY), config)
    assert main(["meta-train", "--method", "flash", "--config", str(config), "--run-dir", str(tmp_path)]) == 0
    assert "would overwrite" not in capsys.readouterr().err


def test_reproduce_may_not_overwrite_a_test_trace_in_its_out_folder(tmp_path, capsys):
    """A trace saved as --out's curves.csv was replaced by the report's, and the run's config still named it."""
    trace = tmp_path / "curves.csv"
    trace.write_text("timestamp,requests\n" + "".join(f"{60 * i},{100 + i}\n" for i in range(30)))
    before = trace.read_text()
    assert main(["reproduce", "--out", str(tmp_path), "--run-dir", str(tmp_path / "run"), "--test-trace", str(trace),
                 "--set", *TINY]) == 2
    assert f"--out would overwrite {trace}, the test trace file this command reads" in capsys.readouterr().err
    assert trace.read_text() == before and not (tmp_path / "run").exists()


def test_the_report_says_which_way_lower_extra_thresholds_go():
    """The sensitivity section said 'a larger fraction' above a row of a lower threshold (extra_thresholds may be
    lower than the threshold)."""
    import json

    from flash_rl.report import markdown

    cfg, summary = load_config(QUICK / "config.yaml"), json.loads((QUICK / "summary.json").read_text())
    assert "when the threshold is a larger fraction of the way" in markdown(cfg, summary)   # 90%, 95%, 98%
    sens = summary["threshold_sensitivity"]
    summary["threshold_sensitivity"] = {"0.9": sens["0.9"], "0.5": sens["0.95"]}
    text = markdown(cfg, summary)
    assert "when the threshold is another fraction of the way" in text and "| 50% |" in text


def test_render_writes_nothing_when_a_report_file_cannot_be_written(tmp_path):
    """A results.md that is a folder failed render only after the plots and summary.json were rewritten."""
    from flash_rl.report import render

    folder = tmp_path / "quick"
    shutil.copytree(QUICK, folder)
    (folder / "results.md").unlink()
    (folder / "results.md").mkdir()
    (folder / "summary.json").write_text((folder / "summary.json").read_text().replace('"speedup"', '"speedup" '))
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    with pytest.raises(ValueError, match="--render .*results.md"):
        render(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("given", ["missing", "run folder"])
def test_a_model_path_that_is_no_agent_says_what_it_is(tmp_path, capsys, given):
    """A missing --model, or a run folder given for one of its agents, got 'neither a saved agent nor a MAML
    checkpoint', which did not say what to give (found by a new user's walk through the README)."""
    model = tmp_path / "nowhere"
    if given == "run folder":
        model = tmp_path
        (tmp_path / "models" / "flash" / "final").mkdir(parents=True)
        (tmp_path / "models" / "flash" / "final" / "flash.json").write_text("{}")
    assert main(["evaluate", "--model", str(model), "--set", *TINY]) == 2
    err = capsys.readouterr().err
    if given == "missing":
        assert f"--model {model}: no such folder; give the folder of a saved agent" in err
    else:
        assert f"--model {model} is a run folder; give one of its saved agents ({tmp_path}/models/flash/final)" in err


def test_adapt_names_the_algorithm_when_the_model_is_another_one():
    """An A2C agent adapted under the default (PPO) config was warned of each kwarg, as "'(unset)' saved, 60
    configured", and not of the algorithm; the kwargs of two algorithms are not comparable."""
    from flash_envs.flash_warnings import FlashWarning
    from flash_rl.commands.adapt import warn_of_unused_adapt_settings
    from flash_rl.flash import Flash

    cfg = load_config(CONFIG_DIR / "autoscaling.yaml", TINY)
    model = Flash("A2C", cfg.env.id, cfg.env.kwargs, n_envs=1, net_arch=[8], context_len=6, embedding_dim=4,
                  encoder_hidden=8, agent_kwargs={"n_steps": 8}).fresh()
    with pytest.warns(FlashWarning, match=r"--model m is a A2C agent and fine-tunes as one, with the kwargs saved "
                                          r"with it; the config's flash.algo \(PPO\) and its kwargs are not used"):
        warn_of_unused_adapt_settings(model, cfg, "m")

"""What a run records of the machine and software its numbers come from (``flash_rl.machine``), in ``flash reproduce``
and ``flash config-eval`` reports and in ``flash compare-seeds``' warning when seeds ran on different machines."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

from flash_rl.across_seeds import compare, markdown
from flash_rl.machine import (PACKAGES, code_commit, cpu_model, describe_machine, machine_text, machine_without_commit,
                              package_versions)
from flash_rl.report import read_reproduction
from tests.test_across_seeds import _write_seed


def test_the_machine_names_the_cpu_torchs_kernels_and_the_installed_versions():
    machine = describe_machine()
    assert machine["packages"]["torch"] == torch.__version__
    assert machine["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert isinstance(machine["cpu"], str) and machine["cpu"] and machine["cores"] >= 1   # "unknown" where unnamed
    assert package_versions(("numpy", "no-such-distribution-xyz")) == {
        "numpy": __import__("numpy").__version__, "no-such-distribution-xyz": None}
    text = machine_text(machine)
    assert machine["cpu"] in text and f"torch {torch.__version__}" in text and machine["torch_cpu_capability"] in text
    assert json.loads(json.dumps(machine)) == machine


def test_the_cpu_is_named_on_x86_and_on_arm_whose_cpuinfo_has_no_model_name(tmp_path, monkeypatch):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n\nprocessor\t: 1\nmodel name\t: other\n")
    assert cpu_model(x86) == "AMD EPYC 7B13"
    arm = tmp_path / "arm"   # as a Graviton 2 (Neoverse N1) prints it
    arm.write_text("processor\t: 0\nBogoMIPS\t: 243.75\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
                   "CPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n")
    assert cpu_model(arm) == "CPU implementer 0x41, part 0xd0c"
    monkeypatch.setattr("platform.processor", lambda: "")
    assert cpu_model(tmp_path / "absent") == "unknown"

def _git(directory: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(directory), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True,
                   capture_output=True)


def test_the_commit_is_the_checkouts_and_says_when_tracked_files_changed(tmp_path):
    assert code_commit(tmp_path) is None   # not a git checkout
    _git(tmp_path, "init", "-q")
    (tmp_path / "flash_rl").mkdir()
    (tmp_path / "flash_rl" / "a.py").write_text("x = 1\n")
    (tmp_path / "README.md").write_text("v1\n")
    _git(tmp_path, "add", "flash_rl/a.py", "README.md")
    _git(tmp_path, "commit", "-q", "-m", "one")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert code_commit(tmp_path) == head
    (tmp_path / "new.py").write_text("untracked\n")   # untracked files are not the code that ran
    assert code_commit(tmp_path) == head
    (tmp_path / "README.md").write_text("v2\n")   # nor are results or documents
    assert code_commit(tmp_path) == head
    (tmp_path / "flash_rl" / "a.py").write_text("x = 2\n")
    assert code_commit(tmp_path) == head + "+changes"


def test_an_install_inside_another_projects_checkout_has_no_commit(tmp_path):
    """A wheel installed in a virtual environment inside another project's git checkout: git finds that project's
    repository from site-packages, but its commit is not this code's."""
    _git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text(".venv/\n")
    (tmp_path / "app.py").write_text("x = 1\n")
    _git(tmp_path, "add", ".gitignore", "app.py")
    _git(tmp_path, "commit", "-q", "-m", "their project")
    site = tmp_path / ".venv" / "lib" / "site-packages"
    (site / "flash_rl").mkdir(parents=True)
    (site / "flash_rl" / "machine.py").write_text("# installed\n")
    assert code_commit(site) is None


def test_a_reproduction_records_its_machine_and_its_results_md_prints_it(tmp_path):
    run = read_reproduction(_write_seed(tmp_path / "s0", 0, 2.0))
    machine = run.summary["machine"]
    assert machine["packages"]["stable-baselines3"] and machine["commit"] == code_commit()
    assert f"Machine: {machine_text(machine)}." in (tmp_path / "s0" / "results.md").read_text()
    assert machine_text("x86_64, 2 cores, torch threads 1") == "x86_64, 2 cores, torch threads 1"   # older runs


def _set_machine(folder: Path, machine: dict | str) -> None:
    summary = json.loads((folder / "summary.json").read_text())
    summary["machine"] = machine
    (folder / "summary.json").write_text(json.dumps(summary))


def test_compare_seeds_lists_the_machines_when_seeds_ran_on_more_than_one(tmp_path):
    folders = [_write_seed(tmp_path / f"s{seed}", seed, 2.0) for seed in range(3)]
    machine = {**describe_machine(), "commit": "one-commit"}
    for folder, commit in zip(folders, ("one-commit", "another-commit", "one-commit")):
        _set_machine(folder, {**machine, "commit": commit})            # a results-neutral commit: same machine
    one = compare({f: read_reproduction(f) for f in folders})
    assert one["machines"] == [{"machine": machine_without_commit(machine), "seeds": [0, 1, 2]}]
    assert one["commits"] == [{"commit": "one-commit", "seeds": [0, 2]}, {"commit": "another-commit", "seeds": [1]}]
    assert "machines" not in markdown(one, "cmd")
    assert "The seeds ran 2 commits of the code" in markdown(one, "cmd")
    assert "- seeds 0, 2: one-commit\n- seed 1: another-commit" in markdown(one, "cmd")
    other_capability = "AVX512" if machine["torch_cpu_capability"] == "AVX2" else "AVX2"   # differs from this CPU's
    _set_machine(folders[2], {**machine, "torch_cpu_capability": other_capability})
    _set_machine(folders[0], "x86_64, 2 cores, torch threads 1")
    two = compare({f: read_reproduction(f) for f in folders})
    assert [m["seeds"] for m in two["machines"]] == [[0], [1], [2]]
    text = markdown(two, "cmd")
    assert "The seeds' summary.json record 3 different machines" in text
    assert "- seed 0: x86_64, 2 cores, torch threads 1" in text
    assert "- seed 2: " in text and f"({other_capability})" in text
    assert [c["seeds"] for c in two["commits"]] == [[1], [2]]   # seed 0's one-line string names no commit


@pytest.mark.parametrize("machine", [describe_machine(), "x86_64, 2 cores, torch threads 1"])
def test_render_keeps_the_recorded_machine(tmp_path, machine):
    folder = _write_seed(tmp_path / "s0", 0, 2.0)
    _set_machine(folder, machine)
    from flash_rl.report import render
    render(folder)
    assert json.loads((folder / "summary.json").read_text())["machine"] == machine
    assert f"Machine: {machine_text(machine)}." in (folder / "results.md").read_text()


def test_the_set_up_pins_every_package_a_run_records_within_pyprojects_ranges(project):
    """constraints.txt (the README's set-up) pins each numeric package that :data:`PACKAGES` records, at a version
    that pyproject.toml's requirement admits, so that the main job reproduces the committed numbers."""
    from packaging.requirements import Requirement

    root = Path(__file__).parents[1]
    pins = {}
    for line in (root / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            pins[requirement.name] = next(iter(requirement.specifier)).version
    assert set(PACKAGES) - {"flash-cloud"} <= set(pins)
    required = [Requirement(r) for r in (*project["dependencies"], *project["optional-dependencies"]["rl"])]
    for requirement in required:
        if requirement.name in pins:
            assert requirement.specifier.contains(pins[requirement.name]), (requirement, pins[requirement.name])


@pytest.mark.parametrize("machine", [{"cpu": "x"}, ["x"], {**describe_machine(), "packages": "torch 2"}])
def test_a_damaged_machine_is_a_one_line_error_naming_the_file(tmp_path, machine, capsys):
    """compare-seeds and reproduce --render printed a KeyError/TypeError traceback from machine_text."""
    folders = [_write_seed(tmp_path / f"s{seed}", seed, 2.0) for seed in range(2)]
    _set_machine(folders[1], machine)
    from flash_rl.cli import main
    assert main(["compare-seeds", *map(str, folders), "--out", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err
    assert "summary.json: machine" in err and "Traceback" not in err
    assert main(["reproduce", "--render", str(folders[1])]) != 0
    assert "summary.json: machine" in capsys.readouterr().err


def test_compare_seeds_says_when_seeds_recorded_too_little_to_tell_their_machines_apart(tmp_path):
    """Runs before flash_rl.machine recorded one string ("x86_64, 2 cores, torch threads 1") on every machine: equal
    strings are no evidence of one machine (results/autoscaling's seeds 0 to 2 and 3 to 9 ran on two)."""
    folders = [_write_seed(tmp_path / f"s{seed}", seed, 2.0) for seed in range(3)]
    for folder in folders[:2]:
        _set_machine(folder, "x86_64, 2 cores, torch threads 1")
    text = markdown(compare({f: read_reproduction(f) for f in folders}), "cmd")
    assert "Seeds 0, 1 ran before runs recorded their CPU and package versions" in text
    recorded = markdown(compare({f: read_reproduction(f) for f in folders[2:]}), "cmd")
    assert "ran before runs recorded" not in recorded


def test_a_reproduction_records_the_machine_as_it_began_not_as_it_ended(tmp_path, monkeypatch):
    """A long run loads its code at the start; the checkout can move on while it runs (a commit, an edit), so the
    commit recorded when the report was written named code the run never ran."""
    import flash_rl.machine as machine_module
    from flash_rl.cases import CONFIG_DIR
    from flash_rl.config import load_config
    from flash_rl.pipeline import reproduce
    from tests.test_flash_reproduce import TINY

    curves = tmp_path / "run" / "curves.jsonl"   # a line per finished adaptation run: none before they run
    monkeypatch.setattr(machine_module, "code_commit",
                        lambda: "at-end" if curves.exists() and curves.stat().st_size else "at-start")
    tiny = [o for o in TINY if not o.startswith("env.kwargs")] + ["env.kwargs={episode_s: 40.0}",
                                                                    "adaptation.methods=[flash, transfer]"]
    cfg = load_config(CONFIG_DIR / "power.yaml", tiny + [f"references.cache={tmp_path / 'refs.json'}"])
    summary = reproduce(cfg, tmp_path / "out", tmp_path / "run", command="test")
    assert summary["machine"]["commit"] == "at-start"
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["machine"]["commit"] == "at-start"


def test_config_eval_records_the_machine_as_it_began_not_as_it_ended(tmp_path, monkeypatch):
    """As for reproduce: the commit is taken before the training starts, not when the report is written."""
    import flash_rl.machine as machine_module
    from flash_rl.cli import main
    from flash_rl.fewshot import evaluate
    from tests.test_fewshot import SMOKE

    moment = {"now": "at-start"}
    run = evaluate.run

    def run_then_move_on(*args, **kwargs):
        moment["now"] = "at-end"                       # the checkout moves on while the methods train
        return run(*args, **kwargs)

    monkeypatch.setattr(machine_module, "code_commit", lambda: moment["now"])
    monkeypatch.setattr(evaluate, "run", run_then_move_on)
    assert main(["config-eval", "--dataset", "simulated", "--functions", "30", "--train-functions", "12",
                 "--val-fraction", "0.25", "--out", str(tmp_path), *SMOKE]) == 0
    assert moment["now"] == "at-end"
    assert json.loads((tmp_path / "summary.json").read_text())["machine"]["commit"] == "at-start"

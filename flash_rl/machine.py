"""What a run's numbers depend on besides its config: the code's commit, the CPU and the numeric packages' versions.

The same code and seeds can give other numbers on another CPU or with another release of torch, numpy or
stable-baselines3 (a different SIMD kernel rounds differently, and a meta-trained policy amplifies it). So every
``flash reproduce`` and ``flash config-eval`` run records :func:`describe_machine` in its ``summary.json`` (and
``flash reproduce``'s ``results.md`` prints it, :func:`machine_text`): two folders whose numbers differ can then be
told apart by machine.
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

#: The distributions whose versions are recorded: the numeric stack a result's numbers go through, the plots' writers
#: (matplotlib, pillow), and this one.
PACKAGES = ("flash-cloud", "torch", "numpy", "scipy", "stable-baselines3", "gymnasium", "simpy", "higher",
            "matplotlib", "pillow")


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model: Linux's ``model name`` in ``cpuinfo`` (x86), else its ``CPU implementer`` and ``CPU part``
    codes (Arm, whose cpuinfo names no model: the codes name the core design, e.g. ``0x41``/``0xd0c`` for Arm's
    Neoverse N1), else :func:`platform.processor`, else ``"unknown"``."""
    fields: dict[str, str] = {}
    try:
        with open(cpuinfo) as handle:
            for line in handle:
                key, colon, value = line.partition(":")
                if colon:
                    fields.setdefault(key.strip(), value.strip())   # the first processor's
    except OSError:
        pass
    if fields.get("model name"):
        return fields["model name"]
    if fields.get("CPU implementer") and fields.get("CPU part"):
        return f"CPU implementer {fields['CPU implementer']}, part {fields['CPU part']}"
    return platform.processor() or "unknown"


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Each distribution's installed version (None: not installed)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


#: What counts as the code in a checkout: a change elsewhere (``results/``, the README) leaves the numbers alone.
CODE_PATHS = ("flash_envs", "flash_rl", "pyproject.toml")


def code_commit(directory: Path = Path(__file__).resolve().parent.parent) -> str | None:
    """The git commit ``directory`` (default: this package's checkout) is at, with ``+changes`` when tracked files of
    :data:`CODE_PATHS` differ from it; None outside a git checkout, without git, or when the repository around
    ``directory`` does not track the code (an install in a virtual environment inside another project's checkout:
    that project's commit is not this code's)."""
    def git(*args: str) -> str:   # --no-optional-locks: status takes no index lock that a user's git could trip on
        return subprocess.run(["git", "--no-optional-locks", "-C", str(directory), *args], capture_output=True,
                              text=True, check=True, timeout=10).stdout.strip()

    try:
        if not git("ls-files", "--", *CODE_PATHS):
            return None
        commit = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS)
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+changes" if changed else "")


#: The entries of :func:`describe_machine`'s record (what :func:`machine_text` reads).
MACHINE_KEYS = ("platform", "cpu", "cores", "torch_cpu_capability", "torch_threads", "python", "packages", "commit")


def machine_problem(machine: Any) -> str | None:
    """What is wrong with ``machine`` as read back from a ``summary.json`` (None: a :func:`describe_machine` record,
    or the string that runs before it recorded)."""
    if isinstance(machine, str):
        return None
    if not isinstance(machine, dict) or any(key not in machine for key in MACHINE_KEYS):
        return f"machine must be a string or an object with {', '.join(MACHINE_KEYS)}"
    if not isinstance(machine["packages"], dict):
        return "machine.packages must map each package to its version"
    return None


def describe_machine() -> dict[str, Any]:
    """The machine and software a run's numbers come from (JSON-ready). ``torch_threads`` is the project's fixed
    setting (:mod:`flash_rl.torch_threads`: training, adaptation and the few-shot models run on one thread), not the
    caller's."""
    import torch

    return {"platform": platform.machine(), "cpu": cpu_model(), "cores": os.cpu_count(),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch_threads": 1,
            "python": platform.python_version(), "packages": package_versions(), "commit": code_commit()}


def machine_without_commit(machine: dict[str, Any] | str) -> dict[str, Any] | str:
    """``machine`` less the code's commit: what two runs of results-neutral commits can share."""
    return {k: v for k, v in machine.items() if k != "commit"} if isinstance(machine, dict) else machine


def machine_text(machine: dict[str, Any] | str) -> str:
    """One line for ``results.md``; a string (what runs before this module recorded) is returned as it is."""
    if isinstance(machine, str):
        return machine
    packages = ", ".join(f"{name} {version}" for name, version in machine["packages"].items() if version)
    commit = f"; code at {machine['commit']}" if machine.get("commit") else ""
    return (f"{machine['platform']} {machine['cpu']} ({machine['torch_cpu_capability']}), {machine['cores']} cores, "
            f"torch threads {machine['torch_threads']}; Python {machine['python']}, {packages}{commit}")

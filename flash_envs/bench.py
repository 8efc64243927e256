"""``flash bench``: environment steps per second, as a ratio to Gymnasium's CartPole-v1 measured in the same run.

Shared machines are noisy, so the ratio (our per-step time / CartPole-v1's) is the figure to compare across runs; the
absolute numbers are printed next to it. ``--memory-steps`` runs one long loop of the fast env and reports the
resident set size along the way: it must not grow.
"""

from __future__ import annotations

import argparse
import platform
import resource
import time
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym

import flash_envs  # noqa: F401  (registers the envs)
from flash_envs.cli_args import UsageError, command_of, emit, float_at_least, int_at_least, json_text, output_file
from flash_envs.fields import check_number
from flash_envs.markdown import md_table
from flash_envs.progress import tqdm_bar

# (label, env id, make kwargs, steps measured)
CASES: list[tuple[str, str, dict[str, Any], int]] = [
    ("CartPole-v1 (reference)", "CartPole-v1", {}, 100_000),
    ("Autoscaling-v0, fast", "flash/Autoscaling-v0", {"fidelity": "fast"}, 20_000),
    ("Autoscaling-v0, request", "flash/Autoscaling-v0", {"fidelity": "request"}, 300),
    ("PowerManagement-v0, 1 server, fast", "flash/PowerManagement-v0", {}, 5_000),
    ("PowerManagement-v0, 4 servers, fast", "flash/PowerManagement-v0", {"n_servers": 4}, 2_000),
    ("PowerManagement-v0, 1 server, request", "flash/PowerManagement-v0", {"fidelity": "request"}, 100),
    ("ConfigSearch-v0", "flash/ConfigSearch-v0", {}, 20_000),
]


@dataclass
class BenchRow:
    """One measured case: its label and env id, ``steps`` timed over ``seconds``, the resulting steps per second and
    microseconds per step, and the per-step time as a ratio to CartPole-v1's in the same run."""

    case: str
    env_id: str
    steps: int
    seconds: float
    steps_per_s: float
    us_per_step: float
    ratio_to_cartpole: float


def time_steps(env_id: str, kwargs: dict[str, Any], steps: int, seed: int = 0) -> float:
    """Seconds for ``steps`` random-action steps of ``gym.make(env_id, **kwargs)``, resets included."""
    env = gym.make(env_id, **kwargs)
    env.action_space.seed(seed)
    env.reset(seed=seed)
    for _ in range(min(steps // 10, 1000)):  # warm-up
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return time.perf_counter() - start


def rss_mib() -> float:
    """Current resident set size of this process in MiB."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


MAX_SCALE = 1000.0
"""The largest ``--scale``: 10^8 CartPole-v1 steps and 2 * 10^7 of the fast autoscaling env, hours of work (a scale
such as 1e306 made the step counts overflow)."""

MEMORY_CASES = ("flash/Autoscaling-v0", "flash/PowerManagement-v0")
MEMORY_SAMPLES = 10


def memory_run(env_id: str, steps: int, samples: int = MEMORY_SAMPLES, progress: bool = False
               ) -> list[tuple[int, float]]:
    """RSS (MiB) after each of ``samples`` equal parts of a ``steps``-step run of ``env_id`` (fast fidelity); with a
    progress bar (moved between the parts) if ``progress``."""
    if steps < samples:
        raise ValueError(f"a memory run of {steps} steps cannot be sampled {samples} times")
    env = gym.make(env_id)
    env.action_space.seed(0)
    env.reset(seed=0)
    trace: list[tuple[int, float]] = []
    done = 0
    with tqdm_bar(steps, f"memory {env_id}", progress, unit="step") as bar:
        for part in range(1, samples + 1):
            for _ in range(part * steps // samples - done):
                _, _, terminated, truncated, _ = env.step(env.action_space.sample())
                if terminated or truncated:
                    env.reset()
            bar.update(part * steps // samples - done)
            done = part * steps // samples
            trace.append((done, rss_mib()))
    return trace


def benchmark(scale: float = 1.0, progress: bool = False) -> list[BenchRow]:
    """One row per :data:`CASES` entry, each timed over ``scale`` x its steps (at least 10); the first case
    (CartPole-v1) is the reference of the ratios. ``scale`` is in (0, :data:`MAX_SCALE`]. With a progress bar if
    ``progress``, moved between the timings only."""
    check_number("scale", scale, 0.0, MAX_SCALE, strict=True)
    rows, reference = [], None
    with tqdm_bar(len(CASES), "bench", progress, unit="env") as bar:
        for label, env_id, kwargs, steps in CASES:
            steps = max(10, int(steps * scale))
            seconds = time_steps(env_id, kwargs, steps)
            per_step = seconds / steps
            reference = reference or per_step
            rows.append(BenchRow(label, env_id, steps, seconds, steps / seconds, 1e6 * per_step,
                                 per_step / reference))
            bar.update(1)
    return rows


def markdown(rows: list[BenchRow], memory: dict[str, list[tuple[int, float]]], command: str) -> str:
    """The Markdown report: the timing table, then per env id of ``memory`` its RSS trace (from :func:`memory_run`),
    then the ``command`` that regenerates it."""
    lines = [
        "# flash bench",
        "",
        f"Python {platform.python_version()}, gymnasium {gym.__version__}, {platform.machine()}; random actions, "
        "resets included, `gym.make` wrappers on. Ratio = per-step time / CartPole-v1's in the same run.",
        "",
        *md_table(("env", "steps", "steps/s", "µs/step", "ratio to CartPole-v1"),
                  [(r.case, r.steps, f"{r.steps_per_s:,.0f}", f"{r.us_per_step:,.1f}", f"{r.ratio_to_cartpole:.1f}x")
                   for r in rows]),
    ]
    for env_id, trace in memory.items():
        growth = trace[-1][1] - trace[0][1]
        lines += ["", f"Memory over {trace[-1][0]:,} steps of {env_id} (fast, one process after the runs above): "
                  f"RSS {trace[0][1]:.1f} MiB after the first tenth, {trace[-1][1]:.1f} MiB at the end "
                  f"({growth:+.1f} MiB).", "",
                  *md_table(("steps", "RSS MiB"), [(f"{s:,}", f"{m:.1f}") for s, m in trace])]
    lines += ["", f"Regenerate: `{command}`", ""]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    parser.add_argument("--scale", type=float_at_least(0, strict=True, high=MAX_SCALE), default=1.0,
                        help=f"multiply the number of measured steps (> 0, at most {MAX_SCALE:g})")
    parser.add_argument("--memory-steps", type=int_at_least(0), default=0,
                        help=f"also run this many steps (0, or at least {MEMORY_SAMPLES}) of each of the fast envs "
                             "watching memory")
    parser.add_argument("--out", type=output_file, default=None,
                        help="also write the report (markdown, or JSON with --json) to this file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    if 0 < args.memory_steps < MEMORY_SAMPLES:
        raise UsageError(f"--memory-steps {args.memory_steps}: memory is sampled {MEMORY_SAMPLES} times, so give 0 "
                         f"or at least {MEMORY_SAMPLES} steps")
    rows = benchmark(args.scale, progress=not args.no_progress)
    memory = ({env_id: memory_run(env_id, args.memory_steps, progress=not args.no_progress)
               for env_id in MEMORY_CASES} if args.memory_steps else {})
    if args.json:
        text = json_text({"rows": [asdict(r) for r in rows], "memory_rss_mib": memory}, indent=2)
    else:
        text = markdown(rows, memory, command_of("bench", args, add_arguments, leave_out=("no_progress",)))
    emit(text, args.out)
    return 0

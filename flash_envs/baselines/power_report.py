"""``flash power-governors``: every Linux cpufreq governor on every power-management task.

Per task and governor: energy per episode (kJ), mean power / peak power, share of intervals violating the p95 SLO, and
the episode return (the env's reward, ``-power_share - slo_weight * slo_violation`` per step), each averaged over
seeds. The summary gives each governor's median over tasks and how many tasks it wins on return.
"""

from __future__ import annotations

import argparse
import csv
import inspect
from pathlib import Path
from typing import Any

import numpy as np

from flash_envs.baselines.governors import GOVERNORS, make_governor
from flash_envs.baselines.runner import run_episode
from flash_envs.cli_args import check_files_in, emit, float_at_least, int_at_least, output_dir
from flash_envs.data import DataFormatError
from flash_envs.envs.power_management import MAX_SERVERS, PowerManagementEnv
from flash_envs.markdown import md_table
from flash_envs.progress import tqdm_bar
from flash_envs.tasks import SPLITS

COLUMNS = ("split", "task", "server", "cpu_fraction", "governor", "energy_kj", "power_share", "slo_violation",
           "return", "transitions")


def governor_rows(splits: tuple[str, ...] = SPLITS, seeds: int = 2, progress: bool = False,
                  **env_kwargs: Any) -> list[dict[str, Any]]:
    """One row per (task, governor), metrics averaged over episodes seeded ``0 .. seeds - 1``; with a progress bar
    if ``progress``."""
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    env = PowerManagementEnv(**env_kwargs)
    steps = round(env.episode_s / env.interval_s)
    rows = []
    bar = tqdm_bar(sum(len(env.family.split(s)) for s in splits) * len(GOVERNORS), "power-governors", progress,
                   unit="task")
    for split in splits:
        for task in env.family.split(split):
            for name in GOVERNORS:
                governor = make_governor(name, task.server.freq_levels, env.n_servers)
                runs = [run_episode(env, governor, task, seed) for seed in range(seeds)]
                mean = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
                rows.append({"split": split, "task": task.name, "server": task.server.name,
                             "cpu_fraction": task.app.cpu_fraction, "governor": name,
                             "energy_kj": mean["energy_j"] * steps / 1000, "power_share": mean["power_share"],
                             "slo_violation": mean["slo_violation"], "return": mean["return"],
                             "transitions": mean["transitions"] * steps})
                bar.update()
    bar.close()
    return rows


def _family(path: Path, episode_s: float | None, timeout_s: float) -> tuple[Any, float]:
    """The power task family in the YAML file ``path`` and the episode length to run it for: ``episode_s`` if given,
    else the one the file records, else the env's default. The env (with ``timeout_s``) must run both (its tasks'
    servers with as many P-states each, SLOs below the timeout, and the length); a ``DataFormatError`` naming the file
    otherwise."""
    from flash_envs.power_tasks import PowerTaskFamily

    family = PowerTaskFamily.load_yaml(path)   # a DataFormatError naming the file for a bad one
    recorded = episode_s is None and family.episode_s is not None
    length: float = episode_s or family.episode_s or DEFAULT_EPISODE_S   # (an episode_s is > 0 when given)
    try:
        PowerManagementEnv(family=family, episode_s=length, timeout_s=timeout_s)
    except ValueError as err:
        hint = "; the file records this episode_s: give --episode-s" if recorded and "episode_s" in str(err) else ""
        raise DataFormatError(f"--family-file {path}: {err}{hint}") from None
    return family, length


def summary_markdown(rows: list[dict[str, Any]]) -> str:
    """Per split and governor: medians over tasks and the number of tasks where it has the best return (a task where
    several governors tie for the best, as powersave and schedutil do when the load never needs a higher P-state,
    counts for each of them and is also counted as tied)."""
    table = []
    for split in dict.fromkeys(r["split"] for r in rows):
        in_split = [r for r in rows if r["split"] == split]
        winners = {}
        for task in dict.fromkeys(r["task"] for r in in_split):
            returns = {r["governor"]: r["return"] for r in in_split if r["task"] == task}
            best = max(returns.values())
            winners[task] = {g for g, ret in returns.items() if np.isclose(ret, best, rtol=1e-12, atol=1e-9)}
        for name in GOVERNORS:
            mine = [r for r in in_split if r["governor"] == name]
            won = [w for w in winners.values() if name in w]
            tied = sum(len(w) > 1 for w in won)
            table.append((split, name, f"{np.median([r['power_share'] for r in mine]):.3f}",
                          f"{100 * np.median([r['slo_violation'] for r in mine]):.1f}%",
                          f"{100 * np.mean([r['slo_violation'] for r in mine]):.1f}%",
                          f"{np.median([r['return'] for r in mine]):.1f}",
                          f"{len(won)}/{len(winners)}{f' ({tied} tied)' if tied else ''}"))
    return "\n".join(md_table(("split", "governor", "median power/peak", "median SLO-violating intervals",
                                "mean SLO-violating intervals", "median return", "tasks won (return; of which tied)"),
                               table))


def rows_markdown(rows: list[dict[str, Any]]) -> str:
    """The per-task Markdown table of :func:`governor_rows` (floats to 3 decimals)."""
    return "\n".join(md_table(COLUMNS, ([f"{r[c]:.3f}" if isinstance(r[c], float) else r[c] for c in COLUMNS]
                                         for r in rows)))


DEFAULT_EPISODE_S = inspect.signature(PowerManagementEnv).parameters["episode_s"].default
DEFAULT_TIMEOUT_S = inspect.signature(PowerManagementEnv).parameters["timeout_s"].default


def episode_seconds(text: str) -> float:
    """An argparse type: an ``episode_s`` the env takes (a positive multiple of its default interval, at most a
    year)."""
    value = float_at_least(0.0, strict=True)(text)
    try:
        PowerManagementEnv(episode_s=value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", choices=("train", "test", "all"), default="all", help="which tasks (default all)")
    parser.add_argument("--seeds", type=int_at_least(1), default=2,
                        help="episodes per task and governor (seeds 0..N-1; default 2)")
    parser.add_argument("--n-servers", type=int_at_least(1, MAX_SERVERS), default=1,
                        help="servers of the task's type sharing the load (the env's n_servers; default 1)")
    parser.add_argument("--fidelity", choices=("fast", "request"), default="fast",
                        help="the env's simulator: fluid model (fast, default) or one event per request")
    parser.add_argument("--episode-s", type=episode_seconds, default=None,
                        help="episode length in simulated seconds, a multiple of the env's 5 s interval (the env's "
                             f"episode_s; default: the one a --family-file's tasks were generated for, as the file "
                             f"records it, else {DEFAULT_EPISODE_S:g})")
    parser.add_argument("--family-file", type=Path, default=None,
                        help="task-family YAML (PowerTaskFamily.save_yaml) to run instead of the default family, "
                             "e.g. tasks on your own servers")
    parser.add_argument("--timeout-s", type=float_at_least(0.0, strict=True), default=DEFAULT_TIMEOUT_S,
                        help="the env's timeout_s: the latency cap, which every task's SLO must be below (tasks on a "
                             f"slow server may need more; default {DEFAULT_TIMEOUT_S:g})")
    parser.add_argument("--out", type=output_dir, default=None,
                        help="folder for governors.csv and governors.md (default: print the markdown only)")


#: What ``--out`` gets.
OUT_FILES = ("governors.csv", "governors.md")


def run(args: argparse.Namespace) -> int:
    if args.out is not None:
        check_files_in(args.out, OUT_FILES)
    splits = SPLITS if args.split == "all" else (args.split,)
    env_kwargs: dict[str, Any] = {"n_servers": args.n_servers, "fidelity": args.fidelity, "timeout_s": args.timeout_s}
    if args.family_file is None:
        tasks, env_kwargs["episode_s"] = "the default family", args.episode_s or DEFAULT_EPISODE_S
    else:
        env_kwargs["family"], env_kwargs["episode_s"] = _family(args.family_file, args.episode_s, args.timeout_s)
        tasks = f"tasks of `{args.family_file}`"
    rows = governor_rows(splits, args.seeds, progress=True, **env_kwargs)
    timeout = "" if args.timeout_s == DEFAULT_TIMEOUT_S else f"timeout_s {args.timeout_s:g}, "
    text = (f"# Linux cpufreq governors on flash/PowerManagement-v0\n\n{args.seeds} seed(s) per task, "
            f"{args.n_servers} server(s), fidelity {args.fidelity}, {env_kwargs['episode_s']:g} s episodes, {timeout}"
            f"{tasks}.\n\n## Summary\n\n{summary_markdown(rows)}\n\n## Per task\n\n{rows_markdown(rows)}\n")
    csv_name, markdown_name = OUT_FILES
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        with (args.out / csv_name).open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    emit(text, None if args.out is None else args.out / markdown_name)
    return 0

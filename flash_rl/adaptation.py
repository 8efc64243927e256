"""The adaptation protocol: per-task reference returns, the success threshold, episodes-to-adapt with censoring.

For each held-out task and seed a method starts from its meta-trained (or pretrained, or random) weights and
fine-tunes online for up to ``budget`` episodes; its deterministic policy is evaluated on the same evaluation episode
(env seed ``eval_seed``) before any fine-tuning and after every ``eval_every`` episodes, giving a curve
``[(episodes fine-tuned, return), ...]``.

**Threshold.** ``random + fraction * (expert - random)`` per task and evaluation seed, where ``random`` is the mean
return of uniformly random actions and ``expert`` the best of (a) a per-task sweep of tuned heuristics and (b) the
pretrained transfer agent trained long on that task alone (``references.expert_timesteps``). References are computed
once per task and cached (JSON, keyed by task, env arguments and reference settings).

**Episodes-to-adapt.** The number of episodes spent on the task when the evaluation first reaches the threshold,
counting the evaluation episode itself: ``e + 1`` for the first evaluation after ``e`` fine-tuning episodes (1 =
zero-shot). A run that never reaches it within the budget is *censored* and counted as ``budget + 1`` (a lower bound on
its true value), never dropped. As a sensitivity check, :func:`episodes_to_sustained_adaptation` counts instead the
first evaluation from which the return stays at or above the threshold at every later one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from concurrent.futures import Executor, as_completed
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence, cast

import gymnasium as gym
import numpy as np

from flash_envs.baselines.runner import run_episode
from flash_envs.fields import check_whole, is_real_number
from flash_envs.flash_warnings import warn
from flash_rl.atomic_files import atomic_write_text
from flash_envs.progress import tqdm_bar


def evaluation_points(episodes: int, eval_every: int) -> list[int]:
    """The fine-tuning episodes after which an adaptation curve of ``episodes`` episodes is evaluated: 0 (before any),
    every ``eval_every``-th, and the last."""
    if episodes < 0 or eval_every < 1:
        raise ValueError(f"need episodes >= 0 and eval_every >= 1, got {episodes}, {eval_every}")
    return [e for e in range(episodes + 1) if e % eval_every == 0 or e == episodes]


def adaptation_points(episodes: Any, eval_every: Any) -> tuple[int, list[int]]:
    """``episodes`` as an int, and the fine-tuning episodes after which ``adapt`` evaluates (:func:`evaluation_points`);
    a TypeError or ValueError names a count that is not a whole number >= 0 (``episodes``) or >= 1 (``eval_every``)."""
    episodes, eval_every = check_whole("episodes", episodes, 0), check_whole("eval_every", eval_every, 1)
    return episodes, evaluation_points(episodes, eval_every)


def check_on_eval(on_eval: Any) -> None:
    """A TypeError naming ``adapt``'s ``on_eval`` unless it is None or callable (an int failed after the first
    evaluation, as ``'int' object is not callable``)."""
    if on_eval is not None and not callable(on_eval):
        raise TypeError(f"on_eval must be a function of (episodes, evaluation return), or None, got {on_eval!r}")


def _checked_threshold_and_budget(threshold: Any, budget: Any) -> tuple[float, int]:
    """A finite ``threshold`` and a whole ``budget`` >= 1, else a TypeError or ValueError naming them: a NaN threshold
    censored every run, and a budget of 2.5 counted a censored one as 3.5 episodes."""
    if not is_real_number(threshold) or not math.isfinite(threshold):
        error = ValueError if is_real_number(threshold) else TypeError
        raise error(f"threshold must be a finite number, got {threshold!r}")
    return float(threshold), check_whole("budget", budget, 1)


def episodes_to_adapt(curve: Sequence[tuple[int, float]], threshold: float, budget: int) -> tuple[int, bool]:
    """``(episodes, censored)`` for one adaptation curve (see the module docstring)."""
    threshold, budget = _checked_threshold_and_budget(threshold, budget)
    for episode, value in sorted(curve):
        if episode > budget:
            break
        if value >= threshold:
            return int(episode) + 1, False
    return budget + 1, True


def episodes_to_sustained_adaptation(curve: Sequence[tuple[int, float]], threshold: float,
                                     budget: int) -> tuple[int, bool]:
    """``(episodes, censored)`` as :func:`episodes_to_adapt`, counting the first evaluation (within the budget) from
    which every later evaluation within the budget reaches the threshold too: a run that reaches it once by chance
    and falls back counts from when it stays."""
    threshold, budget = _checked_threshold_and_budget(threshold, budget)
    points = [(episode, value) for episode, value in sorted(curve) if episode <= budget]
    for i, (episode, _) in enumerate(points):
        if all(value >= threshold for _, value in points[i:]):
            return int(episode) + 1, False
    return budget + 1, True


@dataclass
class References:
    """Reference returns of one task on one evaluation episode."""

    task: str
    eval_seed: int
    random: float
    expert: float
    expert_source: str
    heuristics: dict[str, float] = field(default_factory=dict)

    def threshold(self, fraction: float) -> float:
        """The success threshold ``random + fraction * (expert - random)``."""
        return self.random + fraction * (self.expert - self.random)


def run_policy(env: gym.Env, policy: Any, task: Any, seed: int, actions: list[Any] | None = None) -> float:
    """Return of one deterministic episode of ``policy`` (SB3-style ``predict``) on ``task``; each action taken is
    appended to ``actions`` when it is given."""
    return run_episode(env, policy, task, seed, metrics=(), actions=actions)["return"]


class SpaceSampler:
    """An SB3-style policy whose actions are uniform samples of ``space`` (seed the space to repeat them)."""

    def __init__(self, space: gym.Space) -> None:
        self.space = space

    def predict(self, obs: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[Any, Any]:
        return self.space.sample(), state


def random_return(env: gym.Env, task: Any, seed: int, episodes: int = 5) -> float:
    """Mean return of uniformly random actions (action sampling seeded from ``seed``)."""
    env.action_space.seed(seed)
    policy = SpaceSampler(env.action_space)
    return float(np.mean([run_policy(env, policy, task, seed) for _ in range(episodes)]))


@lru_cache(maxsize=64)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _with_file_digests(node: Any) -> Any:
    """``node`` (a task's dict form) with the content digest of every trace file it names, so that a trace edited in
    place gets a new key rather than the references cached for its old content."""
    if isinstance(node, list):
        return [_with_file_digests(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _with_file_digests(v) for k, v in node.items()}
    if node.get("kind") == "trace" and node.get("path"):
        stat = os.stat(node["path"])
        out["path_sha1"] = _file_digest(str(node["path"]), stat.st_mtime_ns, stat.st_size)
    return out


def task_key(task: Any) -> str:
    """A digest of the task's content, trace files' contents included."""
    content = _with_file_digests(task.to_dict())
    return hashlib.sha1(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]


class ReferenceCache:
    """A JSON file of :class:`References`, keyed by task content, evaluation seed and reference settings."""

    def __init__(self, path: str | Path, settings: dict[str, Any]) -> None:
        self.path = Path(path)
        self.salt = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]
        self.entries: dict[str, dict[str, Any]] = self._stored()

    def _stored(self) -> dict[str, dict[str, Any]]:
        """The entries in the file (none if there is no file); a ValueError names a file that is not a JSON object."""
        if not self.path.exists():
            return {}
        try:
            entries = json.loads(self.path.read_text())
        except (OSError, ValueError) as err:   # unreadable, not UTF-8 or not JSON
            raise ValueError(f"{self.path} cannot be read ({err}); delete it to compute the references again") from None
        if not isinstance(entries, dict):
            raise ValueError(f"{self.path} is damaged (not a JSON object of references); delete it to compute the "
                             "references again")
        return entries

    def key(self, task: Any, eval_seed: int) -> str:
        """``settings digest/task content digest/eval_seed``: the entry's key in the file."""
        return f"{self.salt}/{task_key(task)}/{eval_seed}"

    def get(self, task: Any, eval_seed: int) -> References | None:
        """The cached references of ``task`` on ``eval_seed`` under these settings, or None."""
        entry = self.entries.get(self.key(task, eval_seed))
        return References(**entry) if entry else None

    def put(self, task: Any, ref: References) -> None:
        """Store ``ref`` for ``task`` and rewrite the whole file (atomically), keeping the entries that another run
        sharing the file wrote since this one read it (it kept only its own, the last writer's)."""
        self.entries[self.key(task, ref.eval_seed)] = asdict(ref)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.entries = {**self._stored(), **self.entries}
        atomic_write_text(self.path, json.dumps(self.entries, indent=1))


def task_references(env: gym.Env, task: Any, eval_seeds: Sequence[int],
                    heuristics: Callable[[gym.Env], dict[str, Any]],
                    expert_sweep: Callable[[gym.Env], dict[str, Any]],
                    train_expert: Callable[[Any], Any] | None, random_episodes: int = 5) -> list[References]:
    """The references of one task on each evaluation seed.

    ``heuristics(env)`` gives the reference lines (reported, e.g. HPA), ``expert_sweep(env)`` the tuned heuristics
    whose per-task best is an expert candidate, and ``train_expert(task)`` a long-trained per-task agent (or None),
    trained once for all the seeds.
    """
    reference_policies = heuristics(env)
    sweep_policies = expert_sweep(env)
    expert = train_expert(task) if train_expert is not None else None
    out = []
    for seed in eval_seeds:
        lines = {name: run_policy(env, p, task, seed) for name, p in reference_policies.items()}
        candidates = {f"heuristic {name}": run_policy(env, p, task, seed) for name, p in sweep_policies.items()}
        candidates.update({f"heuristic {k}": v for k, v in lines.items()})
        if expert is not None:
            candidates[f"per-task {type(expert).__name__}"] = run_policy(env, expert, task, seed)
        source = max(candidates, key=lambda name: candidates[name])
        out.append(References(task.name, int(seed), random_return(env, task, seed, random_episodes),
                              float(candidates[source]), source, lines))
    return out


def compute_references(tasks: Sequence[Any], eval_seeds: Sequence[int], cache: ReferenceCache,
                       references_of: Callable[[Any, list[int]], list[References]], progress_bar: bool = False,
                       executor: Executor | None = None) -> dict[tuple[str, int], References]:
    """References for every (task, evaluation seed), in that order, from the cache where present.

    ``references_of(task, seeds)`` computes a task's missing ones (e.g. :func:`task_references` with its other
    arguments bound); with an ``executor`` the tasks are shared out among its workers, and ``references_of`` must then
    be picklable. The result is keyed by task name, so tasks that share one are refused (ValueError): the second's
    references replaced the first's.
    """
    names = [task.name for task in tasks]
    if repeated := sorted({name for name in names if names.count(name) > 1}):
        raise ValueError(f"compute_references keys the references by task name, and tasks share the name(s) "
                         f"{repeated[:5]}{' ...' * (len(repeated) > 5)}; give each task its own name")
    found = {(task.name, int(seed)): cache.get(task, seed) for task in tasks for seed in eval_seeds}
    todo = [(task, [int(s) for s in eval_seeds if found[(task.name, int(s))] is None]) for task in tasks]
    todo = [(task, seeds) for task, seeds in todo if seeds]
    with tqdm_bar(len(found), "references", progress_bar,
                  initial=sum(ref is not None for ref in found.values())) as bar:   # closed on Ctrl-C too

        def store(task: Any, refs: list[References]) -> None:
            for ref in refs:
                cache.put(task, ref)
                found[(task.name, ref.eval_seed)] = ref
            bar.update(len(refs))

        if executor is None:
            for task, seeds in todo:
                store(task, references_of(task, seeds))
        else:
            futures = {executor.submit(references_of, task, seeds): task for task, seeds in todo}
            for future in as_completed(futures):
                store(futures[future], future.result())
    refs = cast("dict[tuple[str, int], References]", found)   # every None was computed above
    if inverted := [key for key, ref in refs.items() if ref.expert <= ref.random]:
        warn(f"{len(inverted)} (task, evaluation seed) pair(s) whose expert return is not above the random policy's, "
             f"e.g. {inverted[:3]}: the success threshold there lies at or below random's return, so every method "
             "counts as adapted at once, and normalised returns are undefined or flip sign; give the expert more "
             "training (references.expert_timesteps) or check the task")
    return refs

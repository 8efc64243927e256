"""Case studies that ``flash reproduce --case NAME`` runs: a registry of what differs between them.

A :class:`Case` names its default config file (which fixes the env id and its kwargs), how to build its task family,
the heuristic policies drawn as reference lines, the tuned-heuristic sweep whose per-task best is an expert
candidate, the hidden task parameters the linear probe predicts, and (optionally) how to turn a CSV trace into extra
held-out tasks. Registered: ``autoscaling`` (``flash/Autoscaling-v0``, heuristics HPA / threshold / static) and
``power`` (``flash/PowerManagement-v0``, heuristics the Linux cpufreq governors).

Adding a case is a config file (with ``case: <name>``; ``config=`` an absolute path, or one relative to this
package's ``configs/`` folder) plus one :func:`register_case` call in a module that the ``flash`` command (and its
worker processes) import: declare that module as an entry point of the group ``flash_rl.cases`` in your package's
``pyproject.toml`` (``[project.entry-points."flash_rl.cases"] mycase = "mypackage.mycase"``), and
``flash reproduce --case mycase`` finds it.
"""

from __future__ import annotations

import inspect
import json
import math
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import gymnasium as gym
import numpy as np

from flash_envs.flash_warnings import warn

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass(frozen=True)
class Case:
    """A registered case study: its ``name``, default (and optional ``quick_config``) config file, and the callables
    that build its task family, its heuristic reference policies and tuned-heuristic sweep, the hidden task features
    the probe predicts, and (optionally) extra held-out tasks from CSV traces (see the comment on each field)."""

    name: str
    config: str  # default config file (relative to CONFIG_DIR or absolute)
    build_family: Callable[[Any], Any]  # ExperimentConfig -> TaskFamily
    heuristics: Callable[[gym.Env], dict[str, Any]]  # reference lines (SB3-style predict)
    expert_sweep: Callable[[gym.Env], dict[str, Any]]  # tuned heuristics; the best per task is an expert candidate
    task_features: Callable[[Any], dict[str, float]]  # hidden task parameters for the linear probe
    trace_tasks: Callable[[Any, Any], list[Any]] | None = None  # (ExperimentConfig, family) -> extra test tasks
    quick_config: str | None = None

    def config_path(self, quick: bool = False) -> Path:
        """The config file to load: the quick one when ``quick`` and the case has one, relative to :data:`CONFIG_DIR`
        unless absolute."""
        name = self.quick_config if quick and self.quick_config else self.config
        path = Path(name)
        return path if path.is_absolute() else CONFIG_DIR / path


def effective_env_kwargs(env_id: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Every argument of the env ``env_id`` made with ``kwargs``: its constructor's defaults, then its registration's
    kwargs, then ``kwargs``; as JSON would save them (tuples as lists, other objects by ``repr``), so that
    ``{episode_steps: 60}`` and ``{}`` compare equal where 60 is the default."""
    from gymnasium.envs.registration import load_env_creator

    from flash_rl.config import registered_name

    spec = gym.spec(registered_name(env_id))
    creator = load_env_creator(spec.entry_point) if isinstance(spec.entry_point, str) else spec.entry_point
    defaults = {name: p.default for name, p in inspect.signature(creator).parameters.items()
                if p.default is not inspect.Parameter.empty}
    return json.loads(json.dumps({**defaults, **spec.kwargs, **kwargs}, default=repr))


def episode_seconds(cfg: Any) -> float:
    """Simulated seconds of one episode of the config's env: ``episode_s`` (power management), or
    ``control_interval_s * episode_steps`` (autoscaling)."""
    kwargs = effective_env_kwargs(cfg.env.id, cfg.env.kwargs)
    if "episode_s" in kwargs:
        return float(kwargs["episode_s"])
    return float(kwargs["control_interval_s"]) * int(kwargs["episode_steps"])


CASES: dict[str, Case] = {}
PLUGIN_GROUP = "flash_rl.cases"   # entry points whose modules register more cases


def register_case(case: Case) -> None:
    """Add ``case`` to :data:`CASES` under its name (replacing a case registered earlier under that name)."""
    CASES[case.name] = case


def get_case(name: str) -> Case:
    """The registered case ``name`` (a ValueError naming the known cases if there is none)."""
    if name not in CASES:
        raise ValueError(f"unknown case {name!r}; known cases: {sorted(CASES)}")
    return CASES[name]


def _family_file(family_type: Any, cfg: Any, check_task: Callable[[Any, Any, Any], None] | None = None) -> Any:
    """The task family (of type ``family_type``) in the YAML file ``cfg.tasks.family_file``, each task checked before
    any training: ``check_task(env, family, task)``, if given, raises a ValueError that says which config setting
    fixes what the config's env (``cfg.env``) cannot run; the env must run it, and its workload is realised for a
    second (a trace file that is missing, bad or has no requests to scale to its ``mean_rate`` fails). A task that
    fails is a ``DataFormatError`` naming the family file and it. A family generated for another episode length than
    the config's env runs is warned of."""
    from flash_envs.data import DataFormatError
    from flash_envs.envs.task_env import check_workload, warn_of_another_episode_length
    from flash_envs.tasks import SPLITS

    path = cfg.tasks.family_file
    family = family_type.load_yaml(path)
    env = gym.make(cfg.env.id, **cfg.env.kwargs).unwrapped   # the env the agents are built on
    warn_of_another_episode_length(type(env).__name__, family, getattr(env, "episode_s", None))
    for split in SPLITS:
        for index, task in enumerate(family.split(split)):
            try:
                if check_task is not None:
                    check_task(env, family, task)
                env.set_task(task)
                check_workload(task)
            except (OSError, TypeError, ValueError) as err:
                raise DataFormatError(f"task family {path}: {split}[{index}] ({task.name}): {err}") from None
    env.close()
    return family


# ----------------------------------------------------------------------------------------------------- autoscaling
def _autoscaling_family(cfg: Any):
    from flash_envs.tasks import AutoscalingTaskFamily

    if cfg.tasks.family_file:
        return _family_file(AutoscalingTaskFamily, cfg)
    return AutoscalingTaskFamily.generate(cfg.tasks.n_train, cfg.tasks.n_test, cfg.tasks.seed,
                                          episode_s=episode_seconds(cfg))


def _autoscaling_heuristics(env: gym.Env) -> dict[str, Any]:
    from flash_envs.baselines.autoscalers import HPA, StaticPolicy, ThresholdAutoscaler

    return {"HPA": HPA(env), "threshold": ThresholdAutoscaler(env), "static": StaticPolicy(env)}


def _autoscaling_sweep(env: gym.Env) -> dict[str, Any]:
    from flash_envs.baselines.autoscalers import HPA, StaticPolicy

    out: dict[str, Any] = {}
    for target in (0.3, 0.5, 0.7, 0.9):
        for cpu in (512, 1024, 2048):
            out[f"HPA {target} @ {cpu} m"] = HPA(env, target=target, cpu_millicores=cpu, memory_mb=2048)
    for replicas in (2, 4, 8, 12, 16):
        for cpu in (512, 1024, 2048):
            for memory in (1024, 2048):
                out[f"static {replicas} x {cpu} m x {memory} MiB"] = StaticPolicy(env, replicas, cpu, memory)
    return out


def _workload_mean_rate(workload: Any, seconds: float = 3600.0) -> float:
    """Mean arrival rate (req/s) of ``workload`` over its first ``seconds``, realised with seed 0. The probe's
    features take an hour, a property of the task whatever the episode length; a test trace is replayed at the test
    task's rate over one episode, the load the agent meets on that task."""
    curve = workload.realise(np.random.default_rng(0), seconds)
    return curve.mean_rate(0.0, seconds)


def _autoscaling_features(task: Any) -> dict[str, float]:
    app = task.app
    return {"log service time": math.log(app.service_time_ms), "CPU fraction": app.cpu_fraction,
            "service CV": app.service_cv, "log working set": math.log(app.working_set_mb),
            "idle memory fraction": app.idle_memory_fraction, "startup delay": app.startup_delay_s,
            "log SLO": math.log(app.slo_ms),
            "log offered load": math.log(_workload_mean_rate(task.workload) * app.mean_service_s(1000) + 1e-9)}


def _replayed_traces(cfg: Any, family: Any) -> Iterator[tuple[Path, Any, Any]]:
    """(trace, test task, workload replaying the trace at the test task's mean rate over an episode) for every trace x
    test task.

    Each trace is read once first, so that a bad file or column fails before any training (the reader names the file,
    line and column), and each replay is realised for a second, so that a trace without requests to scale to a test
    task's rate fails then too.
    """
    from flash_envs.data.trace_csv import TraceBinError, TraceColumnError, TraceGapError, TraceRoundError
    from flash_envs.sim.workloads import TraceWorkload

    t, seconds = cfg.tasks, episode_seconds(cfg)
    for path in t.test_traces:
        columns = {"path": str(path), "time_column": t.trace_time_column,
                   "value_column": t.trace_value_column or None, "value_kind": t.trace_value_kind,
                   "time_unit_s": t.trace_time_unit_s, "bin_s": t.trace_bin_s, "gaps": t.trace_gaps,
                   "time_round_s": t.trace_time_round_s}
        try:
            TraceWorkload(**columns).load()
        except TraceColumnError as err:
            raise TraceColumnError(f"{err} (config keys tasks.trace_time_column and tasks.trace_value_column, e.g. "
                                   f"--set tasks.trace_time_column=minute; a value column of \"\" reads one row per "
                                   f"request)") from None
        except TraceGapError as err:
            raise TraceGapError(f"{err} (config key tasks.trace_gaps, e.g. --set tasks.trace_gaps=zero)") from None
        except TraceRoundError as err:
            raise TraceRoundError(f"{err} (config key tasks.trace_time_round_s)") from None
        except TraceBinError as err:
            raise TraceBinError(f"{err} (config key tasks.trace_bin_s, e.g. --set tasks.trace_bin_s=60; time_round_s "
                                f"is config key tasks.trace_time_round_s)") from None
        for test_task in family.test:
            rate = float(f"{_workload_mean_rate(test_task.workload, seconds):.6g}")   # (2 decimals made 0.004/s 0)
            workload = TraceWorkload(**columns, time_scale=t.trace_time_scale, mean_rate=rate)
            try:
                workload.realise(np.random.default_rng(0), 1.0)
            except ValueError as err:   # no requests: the rate is the test task's, which the user never gave
                raise ValueError(f"--test-trace / tasks.test_traces {path}: it is replayed at each test task's mean "
                                 f"rate (test task {test_task.name!r}: {rate}/s), but {err}") from None
            yield Path(path), test_task, workload


def _autoscaling_trace_tasks(cfg: Any, family: Any) -> list[Any]:
    """One task per (trace CSV, test task): the test task's application, the trace replayed at its mean rate; named
    after the test task (not its application, which two test tasks may share)."""
    from flash_envs.tasks import AutoscalingTask

    return [AutoscalingTask(task.app, workload, f"trace:{path.stem}:{task.name}")
            for path, task, workload in _replayed_traces(cfg, family)]


register_case(Case(name="autoscaling", config="autoscaling.yaml", quick_config="autoscaling_quick.yaml",
                   build_family=_autoscaling_family, heuristics=_autoscaling_heuristics,
                   expert_sweep=_autoscaling_sweep, task_features=_autoscaling_features,
                   trace_tasks=_autoscaling_trace_tasks))


# ------------------------------------------------------------------------------------------------ power management
def _power_family(cfg: Any):
    from flash_envs.power_tasks import PowerTaskFamily

    if cfg.tasks.family_file:
        family = _family_file(PowerTaskFamily, cfg, lambda env, f, task: _check_p_states(cfg, env, f, task))
        if shared := sorted({t.server.name for t in family.train} & {t.server.name for t in family.test}):
            warn(f"task family {cfg.tasks.family_file}: test tasks run on server types that training tasks run on "
                 f"too ({', '.join(shared)}); the power case holds server types out, as PowerTaskFamily.generate "
                 "does")
        return family
    family = PowerTaskFamily.generate(cfg.tasks.n_train, cfg.tasks.n_test, cfg.tasks.seed,
                                      episode_s=episode_seconds(cfg))
    if own := cfg.env.kwargs.get("family_file"):   # the env acts with that file's P-states, the tasks with these
        from flash_envs.envs.power_management import load_family_file

        acts, has = load_family_file(own).train[0].server.n_levels, family.train[0].server.n_levels
        if acts != has:
            raise ValueError(f"env.kwargs.family_file {own} gives the env {acts} P-states, but the tasks are the "
                             f"generated family's (tasks.family_file is unset), whose servers have {has}: set config "
                             f"key tasks.family_file to {own} too "
                             f"(--set {shlex.quote(f'tasks.family_file={own}')})")
    return family


def _check_p_states(cfg: Any, env: Any, family: Any, task: Any) -> None:
    """A ValueError saying what fixes it when ``task`` of ``family`` (the family file ``cfg.tasks.family_file``) has
    another number of P-states than the config's ``env`` acts with, those of the env's own family: the setting
    ``env.kwargs.family_file`` (saved with the trained agents, as every env kwarg is), unless the family's tasks
    differ in it (the env acts with one number)."""
    if task.server.n_levels == env.n_levels:
        return
    mismatch = f"task {task.name!r} has {task.server.n_levels} P-states; this env's action space has {env.n_levels}"
    counts = sorted({t.server.n_levels for t in (*family.train, *family.test)})
    if len(counts) > 1:
        raise ValueError(f"{mismatch}, and the family's tasks have {counts} P-states: give every task as many (the "
                         "env acts with one action space)")
    path, own = cfg.tasks.family_file, cfg.env.kwargs.get("family_file")
    has = f"the family of env.kwargs.family_file {own}" if own else "the default family"
    raise ValueError(f"{mismatch} ({has}); give the env this family's P-states: set config key "
                     f"env.kwargs.family_file to {path}{'' if own else ' too'} "
                     f"(--set {shlex.quote(f'env.kwargs.family_file={path}')})")


def _governors(env: gym.Env) -> dict[str, Any]:
    from flash_envs.baselines.governors import GOVERNORS

    return {name: governor.for_env(env) for name, governor in GOVERNORS.items()}


def _power_sweep(env: gym.Env) -> dict[str, Any]:
    from flash_envs.baselines.governors import Ondemand

    out = _governors(env)
    for threshold in (0.5, 0.6, 0.7, 0.9, 0.95):
        out[f"ondemand up_threshold {threshold}"] = Ondemand.for_env(env, up_threshold=threshold)
    return out


def _power_features(task: Any) -> dict[str, float]:
    app, server = task.app, task.server
    top = server.millicores(server.n_levels - 1)
    return {"log idle / peak power": math.log(server.power(1.0, 0.0) / server.peak_w),
            "log cores": math.log(server.cores), "log core speed": math.log(server.core_speed),
            "frequency sensitivity": app.cpu_fraction, "log service time": math.log(app.service_time_ms),
            "log SLO / service time": math.log(app.slo_ms / (1000 * app.mean_service_s(top))),
            "load at f_max": _workload_mean_rate(task.workload) * app.mean_service_s(top) / server.cores}


def _power_trace_tasks(cfg: Any, family: Any) -> list[Any]:
    """One task per (trace CSV, test task): the trace replayed at the test task's mean rate on its server type."""
    from flash_envs.power_tasks import PowerTask

    return [PowerTask(task.server, task.app, workload, f"trace:{path.stem}:{task.name}")
            for path, task, workload in _replayed_traces(cfg, family)]


register_case(Case(name="power", config="power.yaml", quick_config="power_quick.yaml", build_family=_power_family,
                   heuristics=_governors, expert_sweep=_power_sweep, task_features=_power_features,
                   trace_tasks=_power_trace_tasks))


def load_plugin_cases() -> None:
    """Import every module declared under the entry-point group ``flash_rl.cases`` (each registers its cases)."""
    from importlib.metadata import entry_points

    for entry in entry_points(group=PLUGIN_GROUP):
        entry.load()


load_plugin_cases()

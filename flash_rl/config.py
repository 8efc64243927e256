"""Experiment configuration: typed dataclasses loaded from YAML, overridable from the command line, validated at start.

A config file holds the sections below (every field optional; defaults are the autoscaling full run). A file may
start with ``inherit: other.yaml`` (a path relative to it) to apply its fields on top of another file. Command-line
overrides use dotted keys: ``--set flash.timesteps=50000 adaptation.seeds=3`` (values parsed as YAML). Mappings merge
key by key (``--set 'flash.agent_kwargs={n_epochs: 2}'``, quoted for the shell, keeps the other kwargs), except that
switching an agent's ``algo`` drops the ``agent_kwargs`` / ``adapt_kwargs`` set for the previous algorithm (with a
warning).

Validation fails at start with a message naming the key: unknown keys, wrong types, unknown env ids or algorithms,
and budgets / counts that must be positive.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import math
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

from flash_envs.fields import MAX_SEED, check_number, is_real_number
from flash_envs.flash_warnings import warn
from flash_envs.yaml_numbers import dump_yaml, parse_yaml


class ConfigError(ValueError):
    """A bad experiment configuration (the message names the key and the problem)."""


def registered_name(env_id: str) -> str:
    """The id under which ``env_id`` is registered: ``env_id`` itself, or for ``"module:id"`` the ``id``, once its
    module is imported (as ``gym.make`` does; ``gym.spec`` takes no module part). A ValueError if that import fails."""
    module, _, name = env_id.rpartition(":")
    if module:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ValueError(f"env id {env_id!r}: its module {module!r} cannot be imported ({err})") from None
    return name


def check_env_id(env_id: Any) -> str:
    """``env_id`` if ``gym.make`` can make it: a registered id, or ``"module:id"``, whose module is imported first (as
    ``gym.make`` does) so that it can register an env of its own; a ValueError otherwise, saying how to register one.
    """
    import gymnasium as gym

    if not isinstance(env_id, str):
        raise TypeError(f"env id must be a str such as 'flash/Autoscaling-v0', got {env_id!r} "
                        f"({type(env_id).__name__})")
    if (name := registered_name(env_id)) not in gym.registry:
        flash_ids = sorted(k for k in gym.registry if k.startswith("flash/"))
        raise ValueError(f"unknown env id {env_id!r}; FLASH registers {flash_ids}. For an env of your own, call "
                         f"gymnasium.register(id=..., entry_point=...) in a module and give the id as "
                         f"'module:{name}', which imports that module wherever the env is made (worker processes and "
                         f"Flash.load included)")
    return env_id


@dataclass
class EnvConfig:
    """``env:``: the gymnasium env id and the keyword arguments passed to ``gym.make``."""

    id: str = "flash/Autoscaling-v0"
    kwargs: dict = field(default_factory=dict)


@dataclass
class TasksConfig:
    """``tasks:``: the train/test task split (generated, or from a family file) and extra held-out trace tasks."""

    n_train: int = 24
    n_test: int = 8
    seed: int = 2024
    family_file: str = ""  # a task-family YAML replaces the generated split when set
    test_traces: list = field(default_factory=list)  # CSV files replayed as extra held-out workloads
    trace_time_column: str = "timestamp"
    trace_value_column: str | None = "requests"  # "": one row per request (null, or no value in YAML, is read as "")
    trace_value_kind: str = "count"
    trace_time_unit_s: float = 1.0  # seconds per unit of a numeric time column (60: minutes)
    trace_time_scale: float = 1.0
    trace_bin_s: float | None = None  # bin width (s); None: the smallest spacing between rows (per request: 1 s)
    trace_gaps: str = "error"  # bins without a row: "error", "zero" (no requests) or "join" (spliced out)
    trace_time_round_s: float | None = None  # round drifting timestamps to multiples of this (s); None: as written


@dataclass
class AgentConfig:
    """A stable-baselines3 agent (FLASH's base learner, or the transfer-learning agent)."""

    algo: str = "PPO"
    timesteps: int = 300_000
    n_envs: int = 8
    episodes_per_task: int = 4
    net_arch: list = field(default_factory=lambda: [64, 64])
    agent_kwargs: dict = field(default_factory=lambda: {"n_steps": 120, "batch_size": 240, "n_epochs": 4,
                                                          "learning_rate": 3e-4, "gamma": 0.95, "ent_coef": 0.01})
    adapt_kwargs: dict = field(default_factory=lambda: {"n_steps": 60, "batch_size": 60, "n_epochs": 4})


@dataclass
class FlashConfig(AgentConfig):
    """``flash:``: FLASH's agent (the fields of :class:`AgentConfig`) plus its context window and encoder."""

    context_len: int = 32
    embedding_dim: int = 32
    encoder: str = "gru"
    encoder_hidden: int = 64


@dataclass
class MamlConfig:
    """``maml:``: the MAML baseline's meta-training schedule, learning rates, policy network and discount."""

    iterations: int = 300
    meta_batch: int = 8
    inner_steps: int = 1
    inner_episodes: int = 1
    outer_episodes: int = 2
    inner_lr: float = 0.1
    outer_lr: float = 1e-3
    first_order: bool = False
    hidden: list = field(default_factory=lambda: [64, 64])
    gamma: float = 0.95


@dataclass
class AdaptationConfig:
    """``adaptation:``: methods adapted, episode budget, evaluation schedule, success thresholds, seeds."""

    methods: list = field(default_factory=lambda: ["flash", "transfer", "scratch", "maml", "flash_zero_embedding"])
    budget: int = 30
    eval_every: int = 1
    threshold: float = 0.9
    extra_thresholds: list = field(default_factory=lambda: [0.95, 0.98])  # reported as a sensitivity table
    seeds: int = 5
    eval_seed: int = 10_000
    max_test_tasks: int = 0  # 0: all test tasks


EXPERT_N_ENVS = 4
"""Vectorised envs the per-task expert trains on (all running its one task)."""


@dataclass
class ReferencesConfig:
    """``references:``: the per-task expert and random reference returns, and the file caching them."""

    expert_timesteps: int = 40_000
    random_episodes: int = 5
    cache: str = "runs/cache/references.json"


@dataclass
class ProbeConfig:
    """``probe:``: the embedding's linear probe: episodes before embedding, samples per task, ridge penalty."""

    episodes: int = 1
    samples_per_task: int = 3
    ridge: float = 1.0


@dataclass
class RunConfig:
    """``run:``: output folder, checkpoint interval (timesteps), progress bar and the agents' seed."""

    dir: str = "runs"
    checkpoint_interval: int = 20_000  # timesteps (MAML: iterations / 10)
    progress_bar: bool = True
    seed: int = 0


@dataclass
class ExperimentConfig:
    """A whole config file: the ``case:`` it runs and one field per section above."""

    case: str = "autoscaling"
    env: EnvConfig = field(default_factory=EnvConfig)
    tasks: TasksConfig = field(default_factory=TasksConfig)
    flash: FlashConfig = field(default_factory=FlashConfig)
    transfer: AgentConfig = field(default_factory=AgentConfig)
    maml: MamlConfig = field(default_factory=MamlConfig)
    adaptation: AdaptationConfig = field(default_factory=AdaptationConfig)
    references: ReferencesConfig = field(default_factory=ReferencesConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dicts, one per section (the layout of a config file)."""
        return dataclasses.asdict(self)


POSITIVE = {"flash.timesteps", "transfer.timesteps", "maml.iterations", "adaptation.budget", "adaptation.seeds",
            "adaptation.eval_every", "flash.n_envs", "transfer.n_envs", "flash.episodes_per_task",
            "transfer.episodes_per_task", "flash.context_len", "flash.embedding_dim", "flash.encoder_hidden",
            "maml.meta_batch", "maml.inner_steps", "maml.inner_episodes", "maml.outer_episodes", "tasks.n_train",
            "tasks.n_test", "references.random_episodes", "probe.episodes", "probe.samples_per_task"}
SEEDS = ("run.seed", "tasks.seed", "adaptation.eval_seed")
METHOD_MODEL = {"flash": "flash", "flash_zero_embedding": "flash", "transfer": "transfer", "scratch": "transfer",
                "maml": "maml"}
"""The adaptation methods ``adaptation.methods`` may name, and the trained model (flash, transfer or maml) each
starts from."""
NON_NEGATIVE = {"references.expert_timesteps", "run.checkpoint_interval", "adaptation.max_test_tasks",
                "probe.ridge", *SEEDS}
ABOVE_ZERO = {"maml.inner_lr", "maml.outer_lr", "tasks.trace_time_unit_s"}  # reals > 0


def _type_ok(value: Any, annotation: Any) -> bool:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_type_ok(value, member) for member in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:   # a whole float too (YAML's 1.5e5 is one): _build stores it as the int it is
        return (isinstance(value, int) and not isinstance(value, bool)) or _whole_float(value)
    if annotation in (str, bool, list, dict):
        return isinstance(value, annotation)
    return True


def _whole_float(value: Any) -> bool:
    return isinstance(value, float) and value.is_integer()


def _admits_float(annotation: Any) -> bool:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_admits_float(member) for member in typing.get_args(annotation))
    return annotation is float


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", str(annotation))


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    if not isinstance(data, dict):
        where = f"config key {prefix.rstrip('.')}" if prefix else "a config"
        raise ConfigError(f"{where} must be a mapping of keys, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown config key(s) {[prefix + k for k in unknown]}; valid keys in "
                          f"{prefix.rstrip('.') or 'the top level'}: {sorted(names)}")
    obj = cls()
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            setattr(obj, key, _build(cast(type, hint), value, f"{prefix}{key}."))   # a dataclass type hint
            continue
        if not _type_ok(value, hint):
            raise ConfigError(f"config key {prefix}{key} must be {_type_name(hint)}, got "
                              f"{type(value).__name__} {value!r}")
        if hint is float:
            value = float(value)
        elif _whole_float(value) and not _admits_float(hint):   # an int key given as 1.5e5 or 3.0
            value = int(value)
        setattr(obj, key, value)
    return obj


AGENT_SECTIONS = ("flash", "transfer")
ALGORITHM_KWARGS = ("agent_kwargs", "adapt_kwargs")


def _same_algorithm(name: Any, other: Any) -> bool | None:
    """Whether the algorithm names ``name`` and ``other`` give the same class (``PPO`` and ``stable_baselines3:PPO``
    do); None if either names none. Equal names need no import of SB3 (a config only read loads without torch)."""
    if name == other:
        return True
    from flash_rl.agent_settings import algorithm

    try:
        return algorithm(name) is algorithm(other)
    except (TypeError, ValueError):
        return None


def _switch_algorithm(section: dict[str, Any], above: dict[str, Any], name: str) -> dict[str, Any]:
    """The agent ``section`` of the layers below one (``above``) that sets ``algo``: if that is another algorithm,
    without its keyword arguments (a warning names those ``above`` does not replace). They were set for the other
    algorithm, and a name both take can mean different things (PPO's ``n_steps`` is a rollout length, DQN's an
    n-step return)."""
    algo, before = above["algo"], section.get("algo", AgentConfig.algo)
    if _same_algorithm(algo, before) is not False:   # unknown (None): validation names it
        return section
    dropped = {key: section[key] for key in ALGORITHM_KWARGS if section.get(key) and key not in above}
    if dropped:
        warn(f"config key {name}.algo: switching from {before} to {algo} drops the keyword arguments set for "
             f"{before} ({dropped}); set {algo}'s own with --set {name}.agent_kwargs={{...}} "
             f"{name}.adapt_kwargs={{...}}")
    return {**section, **{key: {} for key in ALGORITHM_KWARGS}}


def _merge_layer(base: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    """``layer`` (a config file, or the command line's ``--set`` overrides) applied on top of ``base``. A layer that
    switches an agent's ``algo`` starts it from the new algorithm's own defaults: ``--set flash.algo=A2C`` drops the
    ``agent_kwargs`` and ``adapt_kwargs`` set for PPO below it (those of the same layer apply)."""
    base = dict(base)
    for name in AGENT_SECTIONS:
        below, above = base.get(name), layer.get(name)
        if isinstance(below, dict) and isinstance(above, dict) and "algo" in above:
            base[name] = _switch_algorithm(below, above, name)
    return _merge(base, layer)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in ("kwargs", "agent_kwargs",
                                                                                       "adapt_kwargs"):
            out[key] = _merge(out[key], value)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def read_yaml(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file as a dict, with ``inherit:`` resolved (``_chain``: the files that inherit from it, in order)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} {'is a folder' if path.is_dir() else 'does not exist'}")
    resolved = [p.resolve() for p in _chain]
    if path.resolve() in resolved:
        cycle = [*_chain[resolved.index(path.resolve()):], path]
        raise ConfigError(f"config file {path} inherits from itself" if len(cycle) == 2 else
                          f"config files inherit in a cycle: {' -> '.join(map(str, cycle))}")
    try:
        data = parse_yaml(path.read_text()) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a YAML text file (not UTF-8)") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    parent = data.pop("inherit", None)
    if parent is not None and not (isinstance(parent, str) and parent):
        raise ConfigError(f"{path}: inherit must be a file name (a path relative to {path.name}), got {parent!r}")
    if parent:
        data = _merge_layer(read_yaml(path.parent / parent, _chain + (path,)), data)
    return data


def parse_override(text: str) -> dict[str, Any]:
    """``a.b.c=value`` -> ``{"a": {"b": {"c": value}}}`` with the value parsed as YAML (:func:`parse_yaml`)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = parse_yaml(raw) if raw != "" else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: value is not valid YAML: {' '.join(str(err).split())}") from None
    out: dict[str, Any] = {}
    node = out
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
                data: dict[str, Any] | None = None, runnable: bool = True,
                methods: Sequence[str] | None = None) -> ExperimentConfig:
    """Defaults, then ``path`` (if any), then ``data``, then dotted ``overrides`` (one layer, applied in order);
    validated (see :func:`validate` for ``runnable`` and ``methods``). Switching an agent's ``algo`` drops the
    keyword arguments set for the previous one (see :func:`_merge_layer`)."""
    merged: dict[str, Any] = read_yaml(path) if path else {}
    if path and not merged:   # (a file truncated, or the wrong one, would otherwise start a default run unremarked)
        warn(f"config file {path} sets no setting (nor does any file it inherits): only the defaults and --set apply")
    if data:
        merged = _merge_layer(merged, data)
    command_line: dict[str, Any] = {}
    for text in overrides:
        command_line = _merge(command_line, parse_override(text))
    merged = _merge_layer(merged, command_line)
    for name in AGENT_SECTIONS:  # the defaults' kwargs are PPO's: another algorithm starts from its own
        section = merged.get(name)
        if isinstance(section, dict) and _same_algorithm(section.get("algo", AgentConfig.algo),
                                                         AgentConfig.algo) is False:
            merged[name] = {**{key: {} for key in ALGORITHM_KWARGS}, **section}
    cfg = _build(ExperimentConfig, merged, "")
    if cfg.tasks.trace_value_column is None:   # YAML's null, a key with no value: one row per request, written ""
        cfg.tasks.trace_value_column = ""
    validate(cfg, runnable, methods)
    return cfg


def _get(cfg: ExperimentConfig, dotted: str) -> Any:
    obj: Any = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def validate(cfg: ExperimentConfig, runnable: bool = True, methods: Sequence[str] | None = None) -> None:
    """Raise a :class:`ConfigError` naming the key of the first problem found: out-of-range counts, budgets, rates,
    discount or thresholds; an unknown env id, or env kwargs the env rejects; an unknown encoder or algorithm, or
    agent kwargs it does not take or cannot be built with (:func:`flash_rl.agent_settings.check_agent`); layer sizes
    that are not a non-empty list of positive ints; an unknown case, or one whose env is not ``env.id``; unknown
    methods, or methods that cannot act in the env's action space, or a method named twice; an unknown trace-gap
    policy, or a trace that is not the path of an existing file; a seed above :data:`~flash_envs.fields.MAX_SEED`.
    Builds the env once to check it. ``runnable=False`` skips what only a run needs, for a config only read (a
    finished run's folder rendered from its own files): what needs torch and SB3 (the encoder, the algorithms and
    their kwargs, which methods can act in the env) and the trace files, which may have moved since. ``methods``
    (default: ``adaptation.methods``) are the methods checked to act in the env: ``flash meta-train --method
    transfer`` trains only transfer learning's model, whatever ``adaptation.methods`` lists."""
    import gymnasium as gym

    import flash_envs  # noqa: F401

    for keys, low, strict in ((POSITIVE, 1, False), (NON_NEGATIVE, 0, False), (ABOVE_ZERO, 0, True)):
        for key in sorted(keys):
            value = _get(cfg, key)
            if not math.isfinite(value):
                raise ConfigError(f"config key {key} must be a finite number, got {value}")
            if not (value > low if strict else value >= low):
                raise ConfigError(f"config key {key} must be {'>' if strict else '>='} {low}, got {value}")
    for key in SEEDS:
        if _get(cfg, key) > MAX_SEED:
            raise ConfigError(f"config key {key} must be at most 2**32 - 1 = {MAX_SEED} (numpy's seeding, which SB3 "
                              f"uses, takes no more), got {_get(cfg, key)}")
    if cfg.adaptation.eval_seed + cfg.adaptation.seeds - 1 > MAX_SEED:   # seed s evaluates with eval_seed + s
        raise ConfigError(f"config key adaptation.eval_seed: the last of {cfg.adaptation.seeds} seeds would evaluate "
                          f"with eval_seed + {cfg.adaptation.seeds - 1}, above 2**32 - 1 = {MAX_SEED}")
    if not 0 < cfg.maml.gamma <= 1:
        raise ConfigError(f"config key maml.gamma must be in (0, 1], got {cfg.maml.gamma}")
    try:
        check_env_id(cfg.env.id)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"config key env.id: {err}") from None
    try:
        env = gym.make(cfg.env.id, **cfg.env.kwargs)
    except (OSError, TypeError, ValueError) as err:   # (OSError: a file an argument names, e.g. a family_file)
        raise ConfigError(f"config key env.kwargs: {cfg.env.id} rejects {cfg.env.kwargs}: {err}") from err
    try:
        _check_settings(cfg, runnable)
        if runnable:
            _check_agents(cfg, env, methods)
    finally:
        env.close()


def check_layer_sizes(sizes: Any, name: str) -> list[int]:
    """``sizes`` (the hidden layers of a network) as a list of ints if it is a non-empty list or tuple of positive
    whole numbers (as counts are: ``64.0`` is 64), else a :class:`ConfigError` (a ValueError) naming ``name``: the one
    check of ``flash.net_arch``, ``transfer.net_arch`` and ``maml.hidden``, in a config and in the
    :class:`~flash_rl.flash.Flash` and :class:`~flash_rl.maml.MAML` APIs."""
    if not (isinstance(sizes, (list, tuple)) and sizes and all(
            is_real_number(n) and float(n).is_integer() and n >= 1 for n in sizes)):
        raise ConfigError(f"{name} must be a list of positive ints (one per hidden layer, at least one), got {sizes!r}")
    return [int(n) for n in sizes]


def _check_settings(cfg: ExperimentConfig, runnable: bool) -> None:
    """The part of :func:`validate` after the env was built that needs neither the env nor torch (the trace files
    only if ``runnable``)."""
    for value in [cfg.adaptation.threshold, *cfg.adaptation.extra_thresholds]:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise ConfigError(f"config keys adaptation.threshold / extra_thresholds must be in (0, 1], got {value!r}")
    for key in ("flash.net_arch", "transfer.net_arch", "maml.hidden"):
        check_layer_sizes(_get(cfg, key), f"config key {key}")
    from flash_rl.cases import CASES

    if cfg.case not in CASES:
        raise ConfigError(f"config key case: unknown case {cfg.case!r}; known cases: {sorted(CASES)}")
    case_env = (read_yaml(CASES[cfg.case].config_path()).get("env") or {}).get("id", EnvConfig.id)
    if case_env != cfg.env.id:
        raise ConfigError(f"config key case: case {cfg.case!r} runs {case_env}, but env.id is {cfg.env.id}; name the "
                          f"case of this env in the config file (case: ...) or with --set case=...")
    known = set(METHOD_MODEL)
    bad = [m for m in cfg.adaptation.methods if not isinstance(m, str) or m not in known]
    if not cfg.adaptation.methods:
        raise ConfigError(f"config key adaptation.methods must name at least one method of {sorted(known)}")
    if bad:
        raise ConfigError(f"config key adaptation.methods: unknown method(s) {bad}; known: {sorted(known)}")
    repeated = sorted({m for m in cfg.adaptation.methods if cfg.adaptation.methods.count(m) > 1})
    if repeated:   # each would be run and counted twice, narrowing its CI
        raise ConfigError(f"config key adaptation.methods names {repeated} more than once: "
                          f"{cfg.adaptation.methods}")
    from flash_envs.data.trace_csv import check_reader_options
    from flash_envs.sim.workloads import SHORTEST_TIME_S

    t = cfg.tasks
    try:   # the trace reader's own checks, named as config keys ("" is the reader's None: one row per request)
        check_reader_options(t.trace_time_column, t.trace_value_column or None, t.trace_value_kind,
                             t.trace_time_unit_s, t.trace_bin_s, t.trace_gaps, owner="config key tasks.trace_",
                             time_round_s=t.trace_time_round_s)
        check_number("config key tasks.trace_time_scale", t.trace_time_scale, SHORTEST_TIME_S)
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err)) from None
    for trace in cfg.tasks.test_traces:
        if not isinstance(trace, str):
            raise ConfigError(f"config key tasks.test_traces must be a list of CSV file paths, got {trace!r} in "
                              f"{cfg.tasks.test_traces}")
        if runnable and not Path(trace).exists():
            raise ConfigError(f"config key tasks.test_traces: file {trace} does not exist")


def _check_agents(cfg: ExperimentConfig, env: Any, methods: Sequence[str] | None) -> None:
    """The part of :func:`validate` that needs torch and SB3: the encoder, each agent's algorithm and kwargs (against
    ``env``'s episode length), and whether every method in ``methods`` (default ``adaptation.methods``; names already
    checked) can act in ``env``'s action space."""
    import gymnasium as gym

    from flash_rl.agent_settings import (algorithm, check_adaptation_kwargs, check_agent, episode_steps_of,
                                         trains_per_episode)
    from flash_rl.context import CONTEXT_ACTION_SPACES
    from flash_rl.encoder import ENCODERS
    from flash_rl.maml import MAML_ACTION_SPACES

    if cfg.flash.encoder not in ENCODERS:
        raise ConfigError(f"config key flash.encoder must be one of {ENCODERS}, got {cfg.flash.encoder!r}")
    episode_steps = episode_steps_of(env)
    for section in ("flash", "transfer"):
        agent: AgentConfig = getattr(cfg, section)
        try:
            cls = algorithm(agent.algo)
        except ValueError as err:
            raise ConfigError(f"config key {section}.algo: {err}") from err
        try:
            check_agent(cls, agent.agent_kwargs, agent.adapt_kwargs, cfg.env.id, cfg.env.kwargs, agent.n_envs,
                        f"config key {section}.")
            check_adaptation_kwargs(cls, {**agent.agent_kwargs, **agent.adapt_kwargs}, episode_steps,
                                    f"config key {section}.adapt_kwargs")
        except ValueError as err:
            raise ConfigError(str(err)) from err
        expert = section == "transfer" and cfg.references.expert_timesteps > 0
        if expert and trains_per_episode(cls, agent.agent_kwargs):
            raise ConfigError(f"config key transfer.agent_kwargs: {cls.__name__} counts train_freq in episodes "
                              f"({agent.agent_kwargs['train_freq']!r}), which stable-baselines3 allows on one env "
                              f"only, but the per-task expert (references.expert_timesteps > 0) trains on "
                              f"{EXPERT_N_ENVS}: count train_freq in steps, or set references.expert_timesteps=0")
        _warn_of_a_default_replay_buffer(cfg, section, cls, env)
    acts_in = {"flash": CONTEXT_ACTION_SPACES, "flash_zero_embedding": CONTEXT_ACTION_SPACES,
               "maml": MAML_ACTION_SPACES}
    checked = cfg.adaptation.methods if methods is None else methods
    unfit = [m for m in checked if not isinstance(env.action_space, acts_in.get(m, gym.spaces.Space))]
    if unfit and methods is None:
        raise ConfigError(f"config key adaptation.methods: {unfit} cannot act in {cfg.env.id}'s action space "
                          f"{env.action_space} (env.kwargs {cfg.env.kwargs}); drop them or change the env")
    if unfit:
        raise ConfigError(f"{', '.join(unfit)} cannot act in {cfg.env.id}'s action space {env.action_space} "
                          f"(env.kwargs {cfg.env.kwargs}); change the env")


def _warn_of_a_default_replay_buffer(cfg: ExperimentConfig, section: str, cls: type, env: Any) -> None:
    """Warn when the ``section`` agent, of off-policy algorithm ``cls``, keeps SB3's default ``buffer_size`` and that
    holds :data:`~flash_rl.checkpoints.LARGE_REPLAY_BUFFER_GB` or more: SB3 allocates it up front, and every
    checkpoint writes it whole (about 5 GB with FLASH's context on autoscaling)."""
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

    from flash_rl.agent_settings import init_parameters
    from flash_rl.checkpoints import LARGE_REPLAY_BUFFER_GB
    from flash_rl.context import row_dim

    if not issubclass(cls, OffPolicyAlgorithm) or "buffer_size" in getattr(cfg, section).agent_kwargs:
        return
    size = init_parameters(cls)["buffer_size"].default
    floats = math.prod(env.observation_space.shape)
    if section == "flash":
        floats += cfg.flash.context_len * row_dim(env.observation_space, env.action_space)
    gigabytes = size * 2 * floats * 4 / 1e9   # float32 observations and next observations
    if gigabytes >= LARGE_REPLAY_BUFFER_GB:
        warn(f"config key {section}.algo={cls.__name__} keeps SB3's default buffer_size of {size:,} transitions, "
             f"allocated up front and written whole with every checkpoint: about {gigabytes:.1f} GB of "
             f"observations; set a smaller one, e.g. --set {section}.agent_kwargs.buffer_size=50000")


def save_config(cfg: ExperimentConfig, path: str | Path) -> None:
    """Write ``cfg`` as YAML to ``path`` (creating its folder), in the layout :func:`load_config` reads."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(dump_yaml(cfg.to_dict()))


#: Settings (glob patterns) that may differ between a run and its ``--resume``: they change no saved model and no
#: saved adaptation curve (curves are raw returns keyed by method, task and seed; references, thresholds and the
#: probe are recomputed at every run), so a resumed run may add methods, seeds or test tasks, or re-score.
RESUME_MAY_CHANGE = ("run.dir", "run.progress_bar", "run.checkpoint_interval", "references.*", "probe.*",
                     "adaptation.methods", "adaptation.seeds", "adaptation.max_test_tasks", "adaptation.threshold",
                     "adaptation.extra_thresholds")


def dotted_settings(data: dict[str, Any]) -> dict[str, Any]:
    """A config's mapping with its sections flattened: ``{"flash": {"timesteps": 1}}`` -> ``{"flash.timesteps": 1}``
    (a section's mapping values, such as ``env.kwargs``, stay whole)."""
    out: dict[str, Any] = {}
    for name, value in data.items():
        out.update({f"{name}.{k}": v for k, v in value.items()} if isinstance(value, dict) else {name: value})
    return out


def differing_settings(old: dict[str, Any], new: dict[str, Any], may_differ: tuple[str, ...] = ()) -> list[str]:
    """The settings (keys of two :func:`dotted_settings`) whose values differ, a missing one counting as ``None``,
    sorted, but for those matching one of the glob patterns ``may_differ``."""
    return [k for k in sorted(old.keys() | new.keys())
            if old.get(k) != new.get(k) and not any(fnmatch.fnmatch(k, p) for p in may_differ)]


def check_resume(cfg: ExperimentConfig, run_dir: str | Path, may_also_change: tuple[str, ...] = ()) -> None:
    """Raise :class:`ConfigError` if ``run_dir`` holds a run made with other settings than ``cfg``: resuming would
    mix its saved models and adaptation curves into this run's results. Settings matching :data:`RESUME_MAY_CHANGE`
    or ``may_also_change`` (glob patterns) may differ. A setting the saved config lacks (a run made before the setting
    existed) counts as its default, which is how such a run ran. A saved config that is not UTF-8 YAML of a mapping
    is refused by name."""
    saved = Path(run_dir) / "config.yaml"
    if not saved.is_file():
        return

    def as_saved(c: ExperimentConfig) -> dict[str, Any]:
        return dotted_settings(parse_yaml(dump_yaml(c.to_dict())))

    old = as_saved(ExperimentConfig()) | dotted_settings(read_yaml(saved))   # a damaged file is refused by name
    new = as_saved(cfg)
    changed = differing_settings(old, new, RESUME_MAY_CHANGE + may_also_change)
    if changed:
        details = "; ".join(f"{k}: {old.get(k)!r} then, {new.get(k)!r} now" for k in changed[:5])
        raise ConfigError(f"--resume: {run_dir} holds a run made with other settings ({details}"
                          f"{'; ...' if len(changed) > 5 else ''}); use another --run-dir, or drop --resume to start "
                          "over")

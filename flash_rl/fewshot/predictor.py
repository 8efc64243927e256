"""A trained few-shot predictor as one object: fit it on measured applications, then predict a new application's
runtime and cost at every configuration from the few configurations measured so far, and pick one.

Example::

    from flash_envs.data.config_measurements import simulated_measurements
    from flash_rl.fewshot.predictor import FewShotPredictor

    data = simulated_measurements(200)                                # or load_ibm_multicloud / load_chunkfunc
    predictor = FewShotPredictor.fit(data, k=2)                       # FLASH, trained episodically on every app
    shots = {"512MiB": (1.84, 1.6e-5), "2048MiB": (0.61, 2.1e-5)}    # config -> measured (runtime s, cost USD)
    runtime_s, cost_usd = predictor.predict(shots)                    # one value per config in predictor.configs
    predictor.choose(shots, deadline_s=1.0)                           # cheapest config predicted to meet it
    predictor.save("my-predictor.pt");  predictor = FewShotPredictor.load("my-predictor.pt")

The first shot is the *base measurement* the model reads as the application's level (see
:mod:`flash_rl.fewshot.models`); the others inform FLASH's embedding and, with ``fine_tune=True``, the gradient steps
of *FLASH + fine-tuning*. At the measured configurations the prediction is the measurement itself. Where the data has
a price list, the cost is the predicted runtime priced as the data's costs were, as ``flash config-eval`` scores it.

:meth:`~FewShotPredictor.fit` records the range of the runtimes and costs it was trained on at each configuration; a
shot more than :data:`RANGE_TOLERANCE` times outside that range warns (:class:`ShotOutOfRangeWarning`): the model
has never seen an application like it, so its predictions are extrapolations.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from flash_envs.data.config_measurements import (ConfigMeasurements, LambdaPricing, PerSecondPricing, Pricing,
                                                 check_pricing)
from flash_envs.fields import check_flag, check_number, check_whole, is_real_number
from flash_envs.flash_warnings import FlashWarning, warn
from flash_rl.atomic_files import atomic_write
from flash_rl.fewshot.episodes import EpisodeSampler, Episodes
from flash_rl.fewshot.evaluate import pick_config
from flash_rl.fewshot.models import INPUTS, FewShotModel, early_stopping_split, fine_tune_predict, train_model
from flash_rl.fewshot.train_config import TrainConfig
from flash_rl.weights_file import load_weights_file

#: The price lists :meth:`FewShotPredictor.save` writes (by class name and their arrays).
PRICE_LISTS = {cls.__name__: cls for cls in (PerSecondPricing, LambdaPricing)}
#: What :meth:`FewShotPredictor.save` writes.
SAVED_KEYS = ("state_dict", "inputs", "k", "configs", "features", "pricing", "cfg", "n_features", "training_range")
#: What a file saved by an earlier version of flash lacks; :meth:`FewShotPredictor.load` reads it without them.
LATER_KEYS = ("training_range",)
#: How far outside the training range (a factor, beyond its minimum or maximum) a shot warns. Leaving each
#: application out of ``simulated_measurements(200)`` (or of 20), of the IBM multi-cloud data and of chunk-func, its
#: measurements lie at most 1.5x (1.9x), 2.2x and, but for 0.07% of them, 10x outside the range of the others at
#: their configuration; a factor of 10, an order of magnitude, keeps such applications quiet.
RANGE_TOLERANCE = 10.0
#: How :meth:`FewShotPredictor.predict` takes the shots, for the errors that name it.
SHOTS_SHAPE = "a mapping configuration name -> (runtime_s, cost_usd), e.g. {'512MiB': (1.84, 1.6e-05)}"


class ShotOutOfRangeWarning(FlashWarning):
    """A shot given to :meth:`FewShotPredictor.predict` whose runtime or cost lies more than
    :data:`RANGE_TOLERANCE` times outside the range the predictor was trained on at its configuration: its
    predictions are extrapolations of the model, likely far off."""


class FewShotPredictor:
    """A :class:`~flash_rl.fewshot.models.FewShotModel` with what it needs to read and answer in configuration names:
    the configurations and their features, the data's price list (if any) and, where known, the training range:
    ``training_range[config]`` holds the (min, max) of the log runtimes, then of the log costs, the model was trained
    on at that configuration (NaN where it has none); ``None`` (a file saved before flash recorded it) checks no
    shot."""

    def __init__(self, model: FewShotModel, configs: tuple[str, ...], features: np.ndarray, k: int,
                 pricing: Pricing | None = None, cfg: TrainConfig = TrainConfig(),
                 training_range: np.ndarray | None = None) -> None:
        self.model, self.configs, self.pricing, self.cfg = model.eval(), tuple(configs), pricing, cfg
        self.k = check_whole("k", k, 1)
        self.features = np.asarray(features, dtype=np.float32)
        self._index = {c: i for i, c in enumerate(self.configs)}
        if pricing is not None:
            check_pricing(pricing, self.configs, "FewShotPredictor")
        self.training_range = None if training_range is None else np.asarray(training_range, dtype=np.float64)
        if self.training_range is not None and self.training_range.shape != (len(self.configs), 2, 2):
            raise ValueError(f"training_range must have shape (configs, 2, 2) = {(len(self.configs), 2, 2)}: the "
                             f"(min, max) of log runtime and of log cost per configuration, got "
                             f"{self.training_range.shape}")

    @classmethod
    def fit(cls, data: ConfigMeasurements, k: int = 2, method: str = "flash", cfg: TrainConfig = TrainConfig(),
            seed: int = 0, progress: bool = True) -> "FewShotPredictor":
        """Train ``method`` (``"flash"``, ``"base"`` or ``"k-shot"``) episodically with ``k`` shots on every
        application of ``data`` that has at least ``k + 1`` measured configurations (``cfg.steps`` steps, with a
        progress bar unless ``progress=False``); with ``cfg.val_fraction > 0``, that share of them is kept aside
        for early stopping, as ``flash config-eval --val-fraction`` does
        (:func:`~flash_rl.fewshot.models.early_stopping_split`)."""
        if not isinstance(data, ConfigMeasurements):
            raise TypeError(f"data must be a ConfigMeasurements (load_ibm_multicloud, load_chunkfunc or "
                            f"simulated_measurements of flash_envs.data.config_measurements), got a "
                            f"{type(data).__name__}")
        if not isinstance(cfg, TrainConfig):
            raise TypeError(f"cfg must be a TrainConfig (flash_rl.fewshot.train_config), e.g. TrainConfig(steps=500), "
                            f"got a {type(cfg).__name__}")
        k, seed = check_whole("k", k, 1), check_whole("seed", seed, 0)
        progress = check_flag("progress", progress)   # "no" would count as true
        if method not in INPUTS:
            raise ValueError(f"method must be one of {INPUTS}, got {method!r}")
        rng = np.random.default_rng(seed)
        fit, validation = early_stopping_split(data, k, cfg, rng)
        model = train_model(EpisodeSampler(fit, k), method, cfg, rng, progress, validation)
        return cls(model, data.configs, data.features, k, data.pricing, cfg, _training_range(data))

    def _episode(self, shots: Mapping[str, tuple[float, float]]) -> tuple[Episodes, np.ndarray, np.ndarray]:
        if not isinstance(shots, Mapping):
            raise TypeError(f"shots must be {SHOTS_SHAPE}; got a {type(shots).__name__}")
        unknown = [c for c in shots if c not in self._index]
        if unknown:
            raise ValueError(f"unknown configuration(s) {unknown}; this predictor knows {list(self.configs)}")
        if not shots or (self.model.inputs == "k-shot" and len(shots) != self.k):
            need = f"exactly {self.k}" if self.model.inputs == "k-shot" else "at least 1"
            raise ValueError(f"the {self.model.inputs} predictor needs {need} shot(s), got {len(shots)}")
        measured = np.array([_shot_pair(c, shots[c]) for c in shots], dtype=np.float64)
        if measured.shape != (len(shots), 2) or not np.all(np.isfinite(measured) & (measured > 0)):
            raise ValueError(f"each shot is (runtime_s, cost_usd), both finite and > 0; got {dict(shots)}")
        index = np.array([self._index[c] for c in shots])
        everything = np.arange(len(self.configs))
        as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a))[None]  # noqa: E731  (a batch of one)
        episode = Episodes(as_tensor(self.features[index]), as_tensor(np.log(measured).astype(np.float32)),
                           as_tensor(index.astype(np.int64)), as_tensor(self.features),
                           torch.zeros(1, len(everything), 2), as_tensor(everything.astype(np.int64)))
        return episode, index, measured

    def predict(self, shots: Mapping[str, tuple[float, float]], fine_tune: bool = False
                ) -> tuple[np.ndarray, np.ndarray]:
        """Runtime (s) and cost (USD) at every configuration (in :attr:`configs` order) of an application measured
        at ``shots`` (configuration name -> (runtime s, cost USD), the first the base measurement). ``fine_tune``
        first takes transfer learning's gradient steps on the shots (FLASH + fine-tuning, for ``"flash"``). A shot
        more than :data:`RANGE_TOLERANCE` times outside the training range warns (:class:`ShotOutOfRangeWarning`)."""
        fine_tune = check_flag("fine_tune", fine_tune)   # "no" would count as true
        episode, index, measured = self._episode(shots)
        self._warn_out_of_range(index, measured)
        log_pred = fine_tune_predict(self.model, episode, self.cfg) if fine_tune else self.model.predict(episode)
        runtime, cost = np.exp(log_pred[0].detach().numpy().astype(np.float64)).T
        if self.pricing is not None:
            cost = self.pricing.cost(np.arange(len(self.configs)), runtime)
        runtime[index], cost[index] = measured[:, 0], measured[:, 1]   # measured configurations keep their values
        if not (np.isfinite(runtime).all() and np.isfinite(cost).all()):   # (choose would pick a NaN one)
            bad = [c for c, r, u in zip(self.configs, runtime, cost) if not (np.isfinite(r) and np.isfinite(u))]
            cause = ("the price list gives no finite cost for the predicted runtimes there (check pricing)"
                     if np.isfinite(runtime).all() else
                     f"fine-tuning on the shots diverged: lower TrainConfig.finetune_lr ({self.cfg.finetune_lr:g})"
                     if fine_tune else "the model's weights are not finite numbers")
            raise ValueError(f"FewShotPredictor.predict: no finite runtime and cost at {len(bad)} configuration(s), "
                             f"e.g. {bad[:3]}: {cause}")
        return runtime, cost

    def _warn_out_of_range(self, index: np.ndarray, measured: np.ndarray) -> None:
        """Warn of the shots (configuration ``index``, ``measured`` runtime and cost) outside the training range at
        their configuration, or overall where the training data had none at it."""
        if self.training_range is None:
            return
        overall = np.stack([np.nanmin(self.training_range[:, :, 0], axis=0),
                            np.nanmax(self.training_range[:, :, 1], axis=0)], axis=1)
        margin, found = np.log(RANGE_TOLERANCE), []
        for j, values in zip(index, measured):
            known = not np.isnan(self.training_range[j]).any()
            low_high = self.training_range[j] if known else overall
            where = f"at {self.configs[j]}" if known else "overall (none at this configuration)"
            for (what, unit), value, (low, high) in zip((("runtime", "s"), ("cost", "USD")), values, low_high):
                if not low - margin <= np.log(value) <= high + margin:
                    found.append(f"shot {self.configs[j]!r}: {what} {value:.4g} {unit}, training range {where} "
                                 f"{np.exp(low):.4g} to {np.exp(high):.4g} {unit}")
        if found:
            warn(f"{'; '.join(found)}: more than {RANGE_TOLERANCE:g}x outside the runtimes and costs this predictor "
                 "was trained on, so its predictions are extrapolations, likely far off", ShotOutOfRangeWarning)

    def choose(self, shots: Mapping[str, tuple[float, float]], deadline_s: float, fine_tune: bool = False) -> str:
        """The configuration predicted cheapest among those predicted to meet ``deadline_s`` (the fastest if none
        is), as ``flash config-eval`` scores a choice."""
        check_number("deadline_s", deadline_s, 0.0, strict=True)
        return self.configs[pick_config(*self.predict(shots, fine_tune), deadline_s)]

    def save(self, path: str | Path) -> None:
        """Write the model, the configurations, their features, the price list, the training settings and the
        training range, as tensors and plain values only, so that :meth:`load` needs no unpickling of code. The file
        is written whole or not at all, its missing folders made; a ``path`` that is a folder is an
        ``IsADirectoryError``."""
        path = Path(path)
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a folder; give the predictor a file path "
                                    f"(e.g. {path / 'predictor.pt'})")
        if self.pricing is not None and type(self.pricing) not in PRICE_LISTS.values():
            raise TypeError(f"cannot save a predictor priced by {type(self.pricing).__name__}; the price lists it "
                            f"saves are {sorted(PRICE_LISTS)}")
        m = self.model
        pricing = None if self.pricing is None else {
            "class": type(self.pricing).__name__,
            **{name: torch.from_numpy(np.asarray(value)) for name, value in vars(self.pricing).items()}}
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as tmp:
            torch.save({"state_dict": m.state_dict(), "inputs": m.inputs, "k": self.k, "configs": list(self.configs),
                        "features": torch.from_numpy(self.features), "pricing": pricing, "cfg": asdict(self.cfg),
                        "n_features": self.features.shape[1],
                        "training_range": None if self.training_range is None
                        else torch.from_numpy(self.training_range)}, tmp)

    @classmethod
    def load(cls, path: str | Path) -> "FewShotPredictor":
        """A predictor :meth:`save` wrote, read without unpickling code
        (:func:`~flash_rl.weights_file.load_weights_file`; a ValueError names a file that is not one). A file saved
        by an earlier version of flash has no training range: its predictor checks no shot against it."""
        saved = load_weights_file(Path(path), "a few-shot predictor",
                                  [key for key in SAVED_KEYS if key not in LATER_KEYS])
        unknown = sorted(set(saved["cfg"]) - {field.name for field in fields(TrainConfig)})
        if unknown:
            raise ValueError(f"{path}: its training settings hold {unknown}, which this version of flash does not "
                             "know; it was written by another version (retrain, or load it with that version)")
        try:   # a file of the right keys whose values do not fit together: edited, or damaged
            cfg = TrainConfig(**saved["cfg"])
            state = saved["state_dict"]
            model = FewShotModel(saved["n_features"], saved["k"], saved["inputs"], state["y_mean"].numpy(),
                                 state["y_std"].numpy(), cfg.hidden, cfg.embed_dim)
            model.load_state_dict(state)
            pricing = saved["pricing"]
            if pricing is not None:
                pricing = PRICE_LISTS[pricing.pop("class")](**{name: v.numpy() for name, v in pricing.items()})
            training_range = saved.get("training_range")
            return cls(model, tuple(saved["configs"]), saved["features"].numpy(), saved["k"], pricing, cfg,
                       None if training_range is None else training_range.numpy())
        except (AttributeError, KeyError, RuntimeError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: not a few-shot predictor that flash wrote, or damaged ({type(err).__name__}: "
                             f"{' '.join(str(err).split())[:300]})") from None


def _training_range(data: ConfigMeasurements) -> np.ndarray:
    """The (min, max) of the log runtimes, then of the log costs, measured in ``data`` at each configuration:
    shape (configs, 2, 2), NaN at a configuration with no measurement."""
    logs = np.log(np.where(data.measured, np.stack([data.runtime_s, data.cost_usd]), np.nan))   # (2, apps, configs)
    result = np.full((len(data.configs), 2, 2), np.nan)
    some = data.measured.any(axis=0)
    result[some, :, 0] = np.nanmin(logs[:, :, some], axis=1).T
    result[some, :, 1] = np.nanmax(logs[:, :, some], axis=1).T
    return result


def _shot_pair(config: str, value: object) -> tuple[float, float]:
    """Shot ``config``'s measurement ``value``, checked to be a pair of numbers (not strings or bools)."""
    pair = tuple(value) if isinstance(value, (tuple, list, np.ndarray)) and np.ndim(value) == 1 else None
    if pair is None or len(pair) != 2 or not all(is_real_number(v) for v in pair):
        raise TypeError(f"shot {config!r}: expected a pair (runtime_s, cost_usd) of numbers, got {value!r}; "
                        f"shots must be {SHOTS_SHAPE}")
    return pair

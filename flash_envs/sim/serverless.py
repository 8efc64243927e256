"""Simulated serverless functions: execution time and cost across AWS-Lambda-style memory sizes.

Model (one invocation of a function at memory size ``m`` MiB)
--------------------------------------------------------------
* **CPU share.** As on AWS Lambda the CPU share grows in proportion to memory: 1769 MiB buy one vCPU, and 10240 MiB
  buy six (:func:`vcpus`, piecewise linear through those two points).
* **Compute.** ``cpu_work_s`` is the function's CPU time on one full vCPU. A share ``parallel_fraction`` of it runs on
  up to ``max_threads`` threads (Amdahl's law); the serial rest runs on ``min(1, vcpus)``.
* **I/O.** ``io_s`` seconds of network / storage wait that more memory does not shorten.
* **Memory pressure.** Below ``memory_need_mib`` the function pages and collects garbage: compute is slowed by
  ``1 + pressure * (need / m - 1)``.
* **Cost.** AWS's x86 price: ``m / 1024`` GB times the billed duration (rounded up to 1 ms) times
  :data:`PRICE_PER_GB_S`, plus :data:`PRICE_PER_REQUEST`.
* **Noise.** A measurement multiplies the expected time by a log-normal factor with log-sd ``noise_cv`` (at most
  :data:`MAX_NOISE_CV`), drawn from the :class:`numpy.random.Generator` the caller passes (no global RNG).

:func:`random_function` draws functions from wide ranges (CPU-bound to I/O-bound, serial to parallel, small to large
memory), :func:`generate_functions` a seeded list of hundreds of them.
"""

from __future__ import annotations

import math
import reprlib
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from flash_envs.fields import check_fields, check_number, check_whole

#: AWS Lambda x86 price per GB-second of billed duration and per request (us-east-1, 2024).
PRICE_PER_GB_S = 0.0000166667
PRICE_PER_REQUEST = 0.0000002
#: Memory that buys one vCPU, and the largest size (six vCPUs).
MIB_PER_VCPU = 1769
MAX_MEMORY_MIB = 10240
MIN_MEMORY_MIB = 128
#: The default grid of memory sizes (MiB): the sizes practitioners try, 128 MiB to 10 GiB.
MEMORY_SIZES_MIB: tuple[int, ...] = (128, 256, 384, 512, 768, 1024, 1536, 1769, 2048, 3008, 4096, 5120, 6144, 8192,
                                     10240)
#: The largest log-sd of a measurement's noise: a factor of e^3 = 20 at one standard deviation; beyond it a measurement
#: says nothing, and ``exp`` overflows.
MAX_NOISE_CV = 3.0


def vcpus(memory_mib: np.ndarray | float) -> np.ndarray:
    """vCPUs allotted at ``memory_mib``: linear through (1769 MiB, 1 vCPU) and (10240 MiB, 6 vCPUs)."""
    m = np.asarray(memory_mib, dtype=float)
    if np.any((m < MIN_MEMORY_MIB) | (m > MAX_MEMORY_MIB)):
        raise ValueError(f"memory sizes must lie in [{MIN_MEMORY_MIB}, {MAX_MEMORY_MIB}] MiB, got {m}")
    return np.interp(m, [0.0, MIB_PER_VCPU, MAX_MEMORY_MIB], [0.0, 1.0, 6.0])


def invocation_cost(memory_mib: np.ndarray | float, duration_s: np.ndarray | float) -> np.ndarray:
    """USD for one invocation: billed GB-seconds (duration rounded up to 1 ms) plus the request price."""
    milliseconds = np.round(np.asarray(duration_s, dtype=float) * 1000.0, 6)   # 32.59 s * 1000 is 32590.000000000004
    billed_s = np.ceil(milliseconds) / 1000.0
    return np.asarray(memory_mib, dtype=float) / 1024.0 * billed_s * PRICE_PER_GB_S + PRICE_PER_REQUEST


@dataclass(frozen=True)
class ServerlessFunction:
    """Hidden characteristics of one serverless function."""

    name: str = "fn"
    cpu_work_s: float = 1.0
    parallel_fraction: float = 0.0
    max_threads: int = 1
    io_s: float = 0.1
    memory_need_mib: float = 256.0
    pressure: float = 1.0
    noise_cv: float = 0.05

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"ServerlessFunction.name must be a str, got {self.name!r} ({type(self.name).__name__})")
        numbers = {name: check_number(f"ServerlessFunction.{name}", getattr(self, name), 0.0, high)
                   for name, high in (("cpu_work_s", math.inf), ("parallel_fraction", 1.0), ("io_s", math.inf),
                                      ("pressure", math.inf), ("noise_cv", MAX_NOISE_CV))}
        numbers["memory_need_mib"] = check_number("ServerlessFunction.memory_need_mib", self.memory_need_mib, 0.0,
                                                  strict=True)
        for name, value in numbers.items():   # plain floats (a NumPy scalar is no YAML) and an int thread count
            object.__setattr__(self, name, value)
        object.__setattr__(self, "max_threads", check_whole("ServerlessFunction.max_threads", self.max_threads, 1))
        if self.cpu_work_s + self.io_s <= 0:
            raise ValueError(f"a function needs cpu_work_s + io_s > 0: {self}")

    def expected_time_s(self, memory_mib: np.ndarray | float) -> np.ndarray:
        """Noise-free execution time (s) at each memory size."""
        m = np.asarray(memory_mib, dtype=float)
        cpu = vcpus(m)
        serial = (1.0 - self.parallel_fraction) / np.minimum(cpu, 1.0)
        parallel = self.parallel_fraction / np.minimum(cpu, float(self.max_threads))
        slowdown = 1.0 + self.pressure * np.maximum(self.memory_need_mib / m - 1.0, 0.0)
        return self.cpu_work_s * (serial + parallel) * slowdown + self.io_s

    def measure(self, memory_mib: np.ndarray | float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One noisy measurement per memory size: ``(time_s, cost_usd)``."""
        expected = self.expected_time_s(memory_mib)
        time_s = expected * np.exp(rng.normal(0.0, self.noise_cv, size=expected.shape))
        return time_s, invocation_cost(memory_mib, time_s)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ServerlessFunction":
        check_fields(d, cls.__dataclass_fields__, "serverless function")
        return cls(**d)


def random_function(rng: np.random.Generator, name: str) -> ServerlessFunction:
    """A function from wide log-uniform ranges: 10 ms to 60 s of CPU work, 5 ms to 5 s of I/O, 64 MiB to 3 GiB
    needed."""
    return ServerlessFunction(
        name=name,
        cpu_work_s=round(float(np.exp(rng.uniform(np.log(0.01), np.log(60.0)))), 4),
        parallel_fraction=round(float(rng.choice([0.0, rng.uniform(0.0, 0.98)])), 3),
        max_threads=int(rng.choice([1, 2, 4, 6, 8])),
        io_s=round(float(np.exp(rng.uniform(np.log(0.005), np.log(5.0)))), 4),
        memory_need_mib=round(float(np.exp(rng.uniform(np.log(64), np.log(3072)))), 1),
        pressure=round(float(rng.uniform(0.1, 1.0)), 2),
        noise_cv=round(float(rng.uniform(0.02, 0.10)), 3),
    )


def generate_functions(n: int, seed: int = 2024) -> list[ServerlessFunction]:
    """``n`` functions ``fn-000``, ``fn-001``, ... drawn from a fixed seed."""
    n, seed = check_whole("n", n, 1), check_whole("seed", seed, 0)
    rng = np.random.default_rng(seed)
    return [random_function(rng, f"fn-{i:03d}") for i in range(n)]


def memory_config_name(memory_mib: float) -> str:
    """The configuration name of a memory size, e.g. ``"128MiB"``."""
    return f"{memory_mib:g}MiB"


def check_memory_sizes(memory_sizes: Any) -> tuple[float, ...]:
    """``memory_sizes`` (of ``ConfigSearchTaskFamily.generate`` or ``simulated_measurements``) as a tuple of floats
    if it is a list (tuple, 1-D array) of >= 2 distinct sizes in [128, 10240] MiB; else a TypeError or ValueError
    naming the argument (a scalar, a nested list, one size or a repeated one gave raw NumPy errors, or tasks with the
    same configuration twice)."""
    if not isinstance(memory_sizes, (list, tuple)) and not (isinstance(memory_sizes, np.ndarray)
                                                            and memory_sizes.ndim == 1):
        raise TypeError(f"memory_sizes must be a list of memory sizes (MiB), got {reprlib.repr(memory_sizes)} "
                        f"({type(memory_sizes).__name__})")
    sizes = tuple(check_number(f"memory_sizes[{i}]", m, MIN_MEMORY_MIB, MAX_MEMORY_MIB)
                  for i, m in enumerate(memory_sizes))
    if len(sizes) < 2:
        raise ValueError(f"memory_sizes must hold >= 2 sizes (a task chooses among its configurations), got "
                         f"{list(memory_sizes)}")
    names = [memory_config_name(m) for m in sizes]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:   # (sizes equal to 6 digits name one configuration)
        raise ValueError(f"memory_sizes repeats the size(s) {repeated}; each configuration must be a size of its own, "
                         f"got {list(memory_sizes)}")
    return sizes

"""How many threads torch runs on: one, for FLASH's, MAML's and the few-shot models' training and adaptation. These
networks are small, so one thread is faster than several, and results do not depend on the core count."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


def use_one_torch_thread() -> None:
    """Run this process's torch on one thread from now on (for a command, or a worker process as its initializer)."""
    torch.set_num_threads(1)


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run a block (or, as a decorator, a function) on one torch thread, then give the caller back its own setting."""
    previous = torch.get_num_threads()
    use_one_torch_thread()
    try:
        yield
    finally:
        torch.set_num_threads(previous)

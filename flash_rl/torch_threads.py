"""How many threads torch runs FLASH's and MAML's training and adaptation on."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run a block (or, as a decorator, a function) on one torch thread, then give the caller back its own setting.
    These networks are small, so one thread is faster than several, and results do not depend on the core count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)

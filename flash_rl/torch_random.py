"""Seeding torch without touching the caller's random state."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def torch_seeded(seed: int) -> Iterator[None]:
    """Run a block with torch's global generator seeded with ``seed`` (so the networks it builds start from the same
    weights on every run), then give the caller back the generator's state from before the block: a library call
    that builds a network does not reseed the user's torch."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield

"""Forward hooks that live for one block: the one way atlas attaches them.

A hook may raise `Reached` to stop the forward pass once it has what it came for.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterable, Iterator

from torch import nn

Hook = Callable[[nn.Module, tuple, object], object]


class Reached(Exception):
    """Raised from a hook once the forward pass has gone far enough."""


@contextlib.contextmanager
def hooks(pairs: Iterable[tuple[nn.Module, Hook]]) -> Iterator[None]:
    """Within the block, each (module, hook) is a forward hook of its module; all are removed on exit."""
    handles = []
    try:
        for module, hook in pairs:
            handles.append(module.register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()

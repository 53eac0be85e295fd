"""Where a build's messages and progress go: the CLI prints them; a notebook may not."""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, ContextManager, Iterator, Protocol

Advance = Callable[[int], None]


class Reporter(Protocol):
    def say(self, text: str, err: bool = False) -> None: ...

    def progress(self, total: int, label: str) -> ContextManager[Advance]: ...


class PrintReporter:
    """Plain lines on stdout/stderr, progress counted silently: for notebooks and scripts."""

    def say(self, text: str, err: bool = False) -> None:
        print(text, file=sys.stderr if err else sys.stdout, flush=True)

    @contextlib.contextmanager
    def progress(self, total: int, label: str) -> Iterator[Advance]:
        yield lambda n: None

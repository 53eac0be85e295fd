"""Input rules: which square image sides a model accepts, one registry entry per kind of rule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class RuleKind:
    """One kind of input rule: which sides it allows, the allowed side nearest to a
    wanted one, and how it reads. `side` is the rule's number."""
    allowed: Callable[[int, int], bool]
    nearest: Callable[[int, int], int]
    text: Callable[[int], str]


# One entry per kind of rule; a model spec names its rule by the entry's name.
RULE_KINDS: dict[str, RuleKind] = {
    "free": RuleKind(lambda size, side: size >= side, lambda size, side: max(size, side),
                     lambda side: f"at least {side} px" if side > 1 else "any size"),
    "at_least": RuleKind(lambda size, side: size >= side, lambda size, side: max(size, side),
                         lambda side: f"at least {side} px" if side > 1 else "any size"),
    "exactly": RuleKind(lambda size, side: size == side, lambda size, side: side, lambda side: f"exactly {side} px"),
    "multiple": RuleKind(lambda size, side: size >= side and size % side == 0,
                         lambda size, side: max(1, round(size / side)) * side,
                         lambda side: f"a multiple of {side} px"),
}


@dataclass(frozen=True)
class InputRule:
    """Which square image sides a model accepts: a kind of rule (RULE_KINDS) and its number."""

    kind: str = "free"
    side: int = 1

    def __post_init__(self):
        if self.kind not in RULE_KINDS or self.side < 1:
            raise ValueError(f"bad input rule {self.kind} {self.side}")

    @property
    def free(self) -> bool:
        """Whether every side is allowed (nothing to check a picture size against)."""
        return self.kind == "free"

    def allowed(self, size: int) -> bool:
        return RULE_KINDS[self.kind].allowed(size, self.side)

    def model_size(self, size: int) -> int:
        """The allowed side nearest to `size` (never smaller than the rule's minimum)."""
        return RULE_KINDS[self.kind].nearest(size, self.side)

    def __str__(self) -> str:
        return RULE_KINDS[self.kind].text(self.side)


FREE = InputRule()


def at_least(side: int) -> InputRule:
    return InputRule("at_least", side) if side > 1 else FREE

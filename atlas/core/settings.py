"""Render settings: a frozen dataclass whose dict is part of every cache key.

A recipe names how an image is optimized beyond its parameterization: which
random views of it the model sees at each step, and how far and by which
optimizer each step goes; class units may take a recipe of their own. The cache
key holds the knobs of the recipe a unit renders with as well as the recipe's
name, so editing a recipe can never serve images made by the old one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from .errors import AtlasError

# Bump when the rendering code changes what an image looks like for the same
# settings, so images made by an older recipe are never served from the cache.
RECIPE_VERSION = 2

PARAMS = ("fourier", "pixel", "phase")
# Recipe.optimizer names -> the torch.optim class each stands for (named, so settings need no torch).
OPTIMIZERS = {"adam": "Adam", "nadam": "NAdam"}


@dataclass(frozen=True)
class Recipe:
    """How an image is optimized beyond its parameterization: what the model sees
    of it at every step, and how the step size moves."""

    # "lucid": one view, padded with grey, jittered, scaled 0.9-1.1, rotated
    # +-10 degrees (the reference chain). "crops": `views` random square crops
    # of the image, each resampled to `view_scale` x the image side.
    transforms: str
    views: int = 1  # views per image per step; the objective is their mean
    min_crop: float = 1.0  # smallest crop side, as a fraction of the image side
    flip: bool = False  # mirror half the crops left-right
    max_angle: float = 10.0  # crops are rotated uniformly within +-max_angle degrees
    view_scale: float = 1.0  # crops are resampled to view_scale x the image side (cost ~ its square)
    # The smallest crop side moves linearly from min_crop at the first step to
    # min_crop_end at the last (None: fixed): whole-frame crops early set the
    # layout, smaller ones late add detail.
    min_crop_end: float | None = None
    # Each crop's colours are shifted per channel: gain and offset uniform in
    # +-color_shift (Ghiasi et al. 2022), so no single hue carries the objective.
    color_shift: float = 0.0
    # The shift's bound moves linearly from color_shift at the first step to
    # color_shift_end at the last (None: fixed). Fading it to 0 lets the last steps
    # optimize the colours the image is shown in: a channel tuned to a hue stays tuned.
    color_shift_end: float | None = None
    # Gaussian noise of this standard deviation (pixel values in [0, 1]) is added to
    # every crop (Ghiasi et al. 2022), its bound moving linearly to noise_end (None:
    # fixed), so no single pixel's exact value carries the objective.
    noise: float = 0.0
    noise_end: float | None = None
    lr: float = 0.05  # the optimizer's step size, unless the settings name another (--lr)
    lr_schedule: str = "constant"  # or "cosine": the learning rate falls to a tenth by the last step
    optimizer: str = "adam"  # or "nadam": Adam with Nesterov momentum (one of OPTIMIZERS)
    # Weight of a total-variation penalty (mean absolute difference of neighbouring
    # pixels, in [0, 1] units) subtracted from every image's objective: a charge
    # for pixel-level speckle (issue 14 measured no gain with other judges at 50).
    smoothness: float = 0.0
    # The recipe class units take, where it differs from every other unit's (None:
    # the same). A crop schedule with colour shifts makes class images that judges
    # of other families recognize, but lowers a channel's activation on the image as
    # it is shown (issue 14), so a recipe can give it to class units alone. It
    # shares the number of views, so a step costs the same for every kind; its step
    # size is relative to this one's: a step size named in the settings scales both
    # kinds' alike (Settings.lr_for).
    classes: Recipe | None = None

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
        if (self.noise or self.noise_end) and self.transforms != "crops":
            raise ValueError("pixel noise is added to crops: it needs the crops transforms")
        if self.noise < 0 or (self.noise_end or 0) < 0:
            raise ValueError("a noise level is a standard deviation: it must be >= 0")
        if self.classes is not None and self.classes.views != self.views:
            raise ValueError("a recipe's class views must share its number of views")

    def for_unit(self, unit) -> Recipe:
        """The recipe `unit` renders with: the class views for class units, else this
        one without them (so what a unit's cache key holds is what renders it)."""
        if self.classes is None:
            return self
        return self.classes if unit.kind.is_class else replace(self, classes=None)

    def key(self) -> dict:
        """The knobs as the cache key holds them. Knobs added after the first
        recipes appear only when set, so images cached before they existed keep
        their keys."""
        return {k: v for k, v in asdict(self).items() if k not in LATER_KNOBS or v != LATER_KNOBS[k]}


# Knobs added after atlases were cached, with the value that means "off".
LATER_KNOBS = {"min_crop_end": None, "color_shift": 0.0, "color_shift_end": None, "noise": 0.0, "noise_end": None,
               "lr": 0.05, "lr_schedule": "constant", "optimizer": "adam", "smoothness": 0.0, "classes": None}


_VIEWS = Recipe("crops", views=2, min_crop=0.5, flip=True, view_scale=0.75)
_STEADY = replace(_VIEWS, lr=0.03)
_ZOOM_CLASSES = replace(_STEADY, min_crop=1.0, min_crop_end=0.3, color_shift=0.1)
_SETTLE_CLASSES = replace(_ZOOM_CLASSES, lr=0.02)
RECIPES = {
    "lucid": Recipe("lucid"),
    "views": _VIEWS,
    "steady": _STEADY,
    # Class units: crops shrinking from the whole frame to 0.3 of it, colours shifted;
    # every other unit: steady's crops (its channels keep their activation).
    "zoom": replace(_STEADY, classes=_ZOOM_CLASSES),
    # zoom, with class units at two thirds of the step size: over 512 steps their
    # images settle where a judge of another family is surer of them.
    "settle": replace(_STEADY, classes=_SETTLE_CLASSES),
    # settle's class units; every other unit's crops span a quarter of the frame to
    # all of it (settle: a half): in the two-photo test a channel's picture picks the
    # photo that excites it more often (issue 28), at the same cost per step.
    "closeup": replace(_STEADY, min_crop=0.25, classes=_SETTLE_CLASSES),
}
RECIPE_HELP = {
    "lucid": "the reference recipe: one jittered, scaled, rotated view per step",
    "views": "two random crops per step (half to whole frame, mirrored, rotated) seen at 3/4 size, objective averaged",
    "steady": "views at three fifths of its step size (lr 0.03): a judge of another model family recognizes "
              "its class images more often, at the same cost",
    "zoom": "steady, but class units' smallest crop shrinks from the whole frame to 0.3 of it over the run, "
            "colours shifted +-0.1 per crop: the layout is set early, detail late; a judge of another model family "
            "recognizes its class images more often again, at the same cost, and channels keep steady's activation",
    "settle": "zoom, but class units take two thirds of its step size (0.02): at 512 steps a judge of another "
              "model family recognizes them more surely again; at 128 a little less surely than under zoom",
    "closeup": "settle, but every unit other than a class sees crops from a quarter of the frame to all of it: "
               "a judge shown a channel's picture picks the photo that excites the channel more often "
               "(0.572 -> 0.586 of pairs; the channel's top photos: 0.828), at the same cost",
}
DEFAULT_RECIPE = "closeup"
PRECISIONS = ("fp32", "bf16")
MAX_SIZE = 2048
MAX_STEPS = 100_000


@dataclass(frozen=True)
class Settings:
    """Everything that decides what a rendered image looks like.

    Device and batch size are deliberately absent: they change speed, not the
    image (beyond float noise), so they must not split the cache.
    """

    size: int = 224
    steps: int = 512
    # Steps of class units, where they differ from every other unit's (None: `steps`).
    # A channel's picture predicts real photos as well at 256 steps as at 512, a class
    # image keeps gaining to 512 (BENCHMARKS.md, "Steps per kind"). Only the steps a
    # unit renders with enter its cache key (`for_unit`).
    class_steps: int | None = None
    lr: float | None = None  # None: the recipe's step size
    param: str = "fourier"
    decay_power: float = 1.0
    # Steps at the start during which ReLU gradients are redirected so units
    # silent on noise still receive a gradient (Lucid's trick; 0 disables it).
    redirect_steps: int = 16
    # Weight of the diversity term for units rendered with diversity > 1
    # (Lucid's examples use 100 against a channel mean).
    diversity_weight: float = 100.0
    precision: str = "fp32"
    seed: int = 0
    # "views" beat the reference "lucid" with independent judges at the same cost
    # per step; "steady" beats "views" with a judge of another family (MobileNetV1,
    # 100 classes, two seeds), "zoom" beats "steady" the same way (top-1 0.85 ->
    # 0.895 at 128 steps) on class units, rendering the rest as "steady" does, and
    # "settle" beats "zoom" at the 512 steps full atlases take (top-1 0.91 -> 0.94
    # on the 100 classes), a little behind it at 128; "closeup" is settle with channels
    # seen in smaller crops, whose pictures predict which of two photos excites the
    # channel more often (issue 28). BENCHMARKS.md, bench/judges.py, bench/channels.py,
    # bench/channels_2afc.py.
    recipe: str = DEFAULT_RECIPE

    def __post_init__(self):
        _require(self.recipe in RECIPES, f"unknown recipe {self.recipe!r}; choose from {', '.join(RECIPES)}")
        if self.lr is None:  # resolved here, so the dict (and the cache key) holds the number
            object.__setattr__(self, "lr", RECIPES[self.recipe].lr)
        _require(16 <= self.size <= MAX_SIZE, f"image size must be between 16 and {MAX_SIZE} px, got {self.size}")
        _require(1 <= self.steps <= MAX_STEPS, f"steps must be between 1 and {MAX_STEPS}, got {self.steps}")
        _require(self.class_steps is None or 1 <= self.class_steps <= MAX_STEPS,
                 f"class steps must be between 1 and {MAX_STEPS}, got {self.class_steps}")
        _require(0 < self.lr <= 10, f"learning rate must be in (0, 10], got {self.lr}")
        _require(self.param in PARAMS, f"unknown parameterization {self.param!r}; choose from {', '.join(PARAMS)}")
        _require(self.precision in PRECISIONS, f"unknown precision {self.precision!r}; choose from {', '.join(PRECISIONS)}")
        _require(self.redirect_steps >= 0, "redirect steps must be >= 0")
        _require(self.diversity_weight >= 0, "diversity weight must be >= 0")

    @property
    def recipe_spec(self) -> Recipe:
        return RECIPES[self.recipe]

    def recipe_for(self, unit) -> Recipe:
        """The recipe `unit` renders with under these settings (class units may differ)."""
        return self.recipe_spec.for_unit(unit)

    def lr_for(self, unit) -> float:
        """`unit`'s step size: these settings' (the recipe's, or the one named), in the
        ratio the recipe sets between its class units and the rest."""
        own, base = self.recipe_for(unit).lr, self.recipe_spec.lr
        return own if self.lr == base else self.lr * (own / base)

    def steps_for(self, unit) -> int:
        """How many steps `unit` renders for: class units take `class_steps` where set."""
        return self.class_steps if self.class_steps is not None and unit.kind.is_class else self.steps

    def for_unit(self, unit) -> "Settings":
        """The settings `unit` renders under: its kind's steps as `steps`, nothing of the
        other kind's. Its dict is what the unit's cache key and its page hold, so a channel
        at 256 steps keys as any 256-step render did before per-kind steps existed."""
        steps = self.steps_for(unit)
        return self if self.class_steps is None else replace(self, steps=steps, class_steps=None)

    def as_dict(self) -> dict:
        """The fields as the cache key holds them; `class_steps` only where set (keys made
        before it existed stay)."""
        data = asdict(self)
        if data["class_steps"] is None:
            del data["class_steps"]
        return data

    def replace(self, **changes) -> "Settings":
        """A copy with `changes`. A new recipe brings its own step size, unless
        this one's differs from the old recipe's (then it was named, not defaulted)."""
        if "recipe" in changes and "lr" not in changes and self.lr == self.recipe_spec.lr:
            changes["lr"] = None
        return replace(self, **changes)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise AtlasError(message)

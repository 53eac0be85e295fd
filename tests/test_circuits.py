"""Expanded weights (atlas.circuits) on small hand-built nets with known weights."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from atlas.circuits import weights as circuits, connections
from atlas.store import circuits as stored_circuits
from atlas.model.loading import from_module
from atlas.core.units import Unit
from atlas.model.runtime import resolve_runtime


class Direct(nn.Module):
    """conv -> ReLU -> maxpool? no: conv -> ReLU -> conv, then logits."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3, padding=1),
                                      nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(5, 6, 3, padding=1))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 7))

    def forward(self, x):
        return self.head(self.features(x))


class Residual(nn.Module):
    """a = conv(x); out = 1x1 conv(relu(c(relu(b(a)))) + a): a bottleneck with a skip."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.c = nn.Conv2d(4, 4, 3, padding=1, groups=4)   # depthwise
        self.out = nn.Conv2d(4, 3, 1)
        self.fc = nn.Linear(3, 5)

    def forward(self, x):
        a = self.a(x)
        h = self.c(torch.relu(self.bn(self.b(a)))) + a
        return self.fc(self.out(torch.relu(h)).mean((2, 3)))


def _model(module, name):
    torch.manual_seed(0)
    for p in module.parameters():
        nn.init.normal_(p, std=0.5)
    return from_module(module, name, "test")


def _pair(model, source, target):
    net = circuits.linearized(model.module)
    return circuits.expanded_weights(model, net, source, target, device=torch.device("cpu"), chunk=3)


def test_directly_connected_convs_give_the_kernel():
    model = _model(Direct(), "direct")
    pair = _pair(model, "features.0", "features.2")
    kernel = model.module.features[2].weight.detach().numpy()
    assert pair.heat.shape == (5, 4, 3, 3)
    np.testing.assert_allclose(pair.heat.astype(np.float32), kernel, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(pair.norm, np.sqrt((kernel ** 2).sum((2, 3))), rtol=1e-5)
    np.testing.assert_allclose(pair.total, kernel.sum((2, 3)), rtol=1e-4, atol=1e-5)


def test_residual_block_gives_the_sum_of_both_paths():
    model = _model(Residual(), "residual")
    m = model.module
    m.bn.running_mean.normal_()
    m.bn.running_var.uniform_(0.5, 2.0)
    pair = _pair(model, "a", "out")

    # The conv path alone, by plain autograd on the original (already linear) modules.
    z = torch.zeros(1, 4, 15, 15, requires_grad=True)
    h = m.c(m.bn(m.b(z))) - m.c(m.bn(m.b(torch.zeros_like(z))))
    conv = torch.stack([torch.autograd.grad(m.out(h)[0, b, 7, 7], z, retain_graph=True)[0][0]
                        for b in range(3)]).numpy()
    # The skip path adds the 1x1 `out` kernel itself, at the centre (7, 7).
    skip = np.zeros_like(conv)
    skip[:, :, 7, 7] = m.out.weight.detach().numpy()[:, :, 0, 0]
    both = conv + skip
    assert np.abs(skip).max() > 0.05   # far above the tolerances below: leaving the skip path out fails
    np.testing.assert_allclose(pair.norm, np.sqrt((both ** 2).sum((2, 3))), rtol=1e-4)
    np.testing.assert_allclose(pair.total, both.sum((2, 3)), rtol=1e-3, atol=1e-4)
    # The stored window is the 5x5 support around the centre (two 3x3 convs in a row).
    assert pair.heat.shape[2:] == (5, 5)
    np.testing.assert_allclose(pair.heat.astype(np.float32), both[:, :, 5:10, 5:10], rtol=2e-3, atol=2e-3)


def test_class_pair_has_norms_and_no_spatial_pattern():
    model = _model(Direct(), "direct")
    pair = _pair(model, "features.5", "head.2")
    assert pair.norm.shape == (7, 6) and pair.heat.shape[2:] == (0, 0)
    # Through global average pooling, the logit's weight on a channel is the Linear weight:
    # its sum over the map is exactly that weight.
    np.testing.assert_allclose(pair.total, model.module.head[2].weight.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_pairs_follow_the_rendered_layers(tmp_path):
    model = _model(Direct(), "direct")
    units = [Unit("features.5", 0), Unit("features.0", 1), Unit("features.2", 0), Unit("head.2", 3, "logit")]
    assert connections.rendered_pairs(model, units) == [("features.0", "features.2"), ("features.2", "features.5"),
                                                     ("features.5", "head.2")]
    computed, _ = connections.connect(model, connections.rendered_pairs(model, units), root=tmp_path, runtime=resolve_runtime("cpu"))
    assert computed == 3
    assert connections.connect(model, connections.rendered_pairs(model, units), root=tmp_path, runtime=resolve_runtime("cpu"))[0] == 0
    found = stored_circuits.scan(tmp_path)
    assert {(s, t) for (_, _, s, t) in found} == {("features.0", "features.2"), ("features.2", "features.5"),
                                                  ("features.5", "head.2")}


def test_lite0s_connections_run_whatever_the_render_size(tmp_path):
    """Lite0's static "same" padding is fixed for its own input: a probe too small for its
    deepest maps fails, so the probe grows until the copy runs (a build at 96 px stopped
    here after its units had rendered)."""
    from atlas.model.loading import load_model
    from tinynet import shown_at

    model = shown_at(load_model("efficientnet_lite0", "default"), 96)
    output = model.output_layer
    runtime = resolve_runtime("cpu", "fp32")
    assert connections.connect(model, [("_blocks.4._project_conv", output)], root=tmp_path, runtime=runtime)[0] == 1
    pair = stored_circuits.load(tmp_path, connections.pair_key(model, "_blocks.4._project_conv", output))
    assert not pair.skipped and pair.norm.shape == (1000, 40) and pair.size >= 32 and np.isfinite(pair.norm).all()


def test_a_pair_that_fails_is_told_and_left_uncached_and_the_rest_go_on(tmp_path, monkeypatch):
    model = _model(Direct(), "direct")
    pairs = [("features.0", "features.2"), ("features.2", "features.5")]
    real = connections.expanded_weights

    def flaky(model, net, source, target, **options):
        if source == "features.0":
            raise RuntimeError("Kernel size can't be greater than actual input size\nmore detail")
        return real(model, net, source, target, **options)

    monkeypatch.setattr(connections, "expanded_weights", flaky)
    told = []
    computed, _ = connections.connect(model, pairs, root=tmp_path, runtime=resolve_runtime("cpu"),
                                      on_failure=lambda s, t, error: told.append((s, t, error)))
    assert computed == 1 and told == [("features.0", "features.2", "Kernel size can't be greater than actual input size")]
    assert {(s, t) for (_, _, s, t) in stored_circuits.scan(tmp_path)} == {("features.2", "features.5")}

"""What a step with redirected ReLU gradients costs against a plain one, on a CPU or GPU.

Every render redirects the first `Settings.redirect_steps` steps (16), so this is
a fixed share of every unit. Lite0 (real weights, full of ReLU6) at 128 px, the
quick preset's size: 8 class units and 8 channels of a middle layer, rendered
for 16 steps all redirected and all plain, alternating, three passes each after
a warm-up. The ratio within a pass is what to compare; absolute times on a
shared machine drift.

    python bench/redirect.py
"""

from __future__ import annotations

import argparse
import statistics
import time

from atlas.core.settings import Settings
from atlas.core.units import Unit
from atlas.engine.batching import render
from atlas.model.classifier import to_device
from atlas.model.loading import load_model
from atlas.model.runtime import resolve_runtime


def main():
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    runtime = resolve_runtime("auto", "auto")   # batches: the device's default size
    model = to_device(load_model("efficientnet_lite0"), runtime.device)
    steps = 16
    settings = Settings(size=128, steps=steps, precision=runtime.precision)
    sets = {"_fc": [Unit("_fc", c, "logit") for c in range(8)],
            "_blocks.8._project_conv": [Unit("_blocks.8._project_conv", c) for c in range(8)]}
    print(f"efficientnet_lite0 on {runtime.where}, {settings.precision}, 128 px, {steps} steps")
    for name, units in sets.items():
        list(render(model, units, settings.replace(steps=2), runtime))  # warm
        ratios = []
        for _ in range(3):
            ms = {}
            for redirect in (0, steps):
                start = time.perf_counter()
                for _ in render(model, units, settings.replace(redirect_steps=redirect), runtime):
                    pass
                ms[redirect] = (time.perf_counter() - start) / (len(units) * steps) * 1e3
            ratios.append(ms[steps] / ms[0])
            print(f"{name:24} plain {ms[0]:6.1f}  redirected {ms[steps]:6.1f} ms/unit-step  "
                  f"ratio {ratios[-1]:.2f}", flush=True)
        print(f"{name:24} median ratio {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()

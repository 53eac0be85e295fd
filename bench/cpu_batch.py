"""Images per batch on a CPU: ms per unit-step at several batch sizes (engine.batching.default_batch_size).

Lite0 (real weights) at 128 px, the quick preset's size: 16 class units and 16
channels of a middle layer, each rendered whole at batch 2, 4, 8 and 16 images
(the default recipe takes 2 views of each), twice, alternating, after a warm-up.
The default it checks: CPU_VIEWS_PER_BATCH views per batch (`atlas.engine.batching`).

    python bench/cpu_batch.py
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from atlas.core.settings import Settings
from atlas.core.units import Unit
from atlas.engine.batching import default_batch_size, render
from atlas.model.classifier import to_device
from atlas.model.loading import load_model
from atlas.model.runtime import resolve_runtime

BATCHES = (2, 4, 8, 16)


def main():
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    runtime = resolve_runtime("auto", "auto")
    model = to_device(load_model("efficientnet_lite0"), runtime.device)
    settings = Settings(size=128, steps=24, precision=runtime.precision)
    sets = {"_fc": [Unit("_fc", c, "logit") for c in range(16)],
            "_blocks.8._project_conv": [Unit("_blocks.8._project_conv", c) for c in range(16)]}
    print(f"efficientnet_lite0 on {runtime.where}, {settings.precision}, 128 px, {settings.steps} steps; "
          f"default batch {default_batch_size(runtime, settings)} images")
    for name, units in sets.items():
        list(render(model, units[:4], settings.replace(steps=2), replace(runtime, batch_size=4)))  # warm
        for _ in range(2):
            for size in BATCHES:
                start = time.perf_counter()
                for _ in render(model, units, settings, replace(runtime, batch_size=size)):
                    pass
                ms = (time.perf_counter() - start) / (len(units) * settings.steps) * 1e3
                print(f"{name:24} batch {size:3d} images  {ms:6.1f} ms/unit-step", flush=True)


if __name__ == "__main__":
    main()

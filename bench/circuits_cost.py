"""What connections (atlas.circuits) cost for a whole model: seconds and bytes per layer pair.

    python bench/circuits_cost.py vgg16 --weights random --device cuda
    python bench/circuits_cost.py efficientnet_lite0 --layers '_conv_stem,_blocks.*._project_conv,_conv_head'

Every channel of the chosen layers (default: every conv layer) and every class,
as a full build would render them; expanded weights depend on the weights' values
only through their numbers, not their cost, so random weights time the same.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from atlas.circuits import connections
from atlas.model.classifier import to_device
from atlas.model.loading import load_model
from atlas.model.runtime import resolve_runtime
from atlas.plan.selection import Selection, select_units
from atlas.store import circuits as stored_circuits


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--weights", default="default")
    parser.add_argument("--layers")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--pairs", type=int, help="only the last N pairs (a quick projection)")
    args = parser.parse_args()
    runtime = resolve_runtime(args.device)
    device = runtime.device
    model = to_device(load_model(args.model, args.weights), device)
    units = select_units(model, Selection(layers=args.layers, classes="all"))
    pairs = connections.rendered_pairs(model, units)
    if args.pairs:
        pairs = pairs[-args.pairs:]
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        computed, _ = connections.connect(model, pairs, root=Path(root), runtime=runtime)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        files = sorted((Path(root) / stored_circuits.FOLDER).glob("*.npz"))
        found = stored_circuits.scan(Path(root))
        for (_, _, source, target), pair in found.items():
            print(f"{source:>28} -> {target:<28} {pair.norm.shape[0]:>5} x {pair.norm.shape[1]:<5} "
                  f"window {pair.heat.shape[2]}  input {pair.size:>3} px  {pair.seconds:7.2f} s")
        total = sum(f.stat().st_size for f in files)
        print(f"{model.name} on {device}: {computed} pairs in {seconds:.1f} s (including the linearized copy), "
              f"{total / 1e6:.1f} MB cached")


if __name__ == "__main__":
    main()

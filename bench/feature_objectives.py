"""Which objective gives a dictionary feature the picture that tells most about photos? (issue 33)

    .venv/bin/python bench/feature_objectives.py --photos /work/data/imagenet-sample \
        --report bench/out/dictionary.json --layer _blocks.10._project_conv

A feature's code is computed on the layer's activation vectors centred on the
dictionary's origin (the data's mean plus its decoder bias), through its encoder row:

    code_f(x) = relu((x - origin) . e_f / scale + b_f)          origin = mean + scale * b_dec

A build pictures a feature by its decoder atom a_f compared with the raw activation
vectors (`atlas.engine.objectives.spread_direction`: dot times cosine, over the map).
Where the layer's mean is large next to its spread, the cosine then measures the mean
more than the feature. Rendered here, for the same --count live features of one
dictionary seed (spread evenly by index, as bench/features_vs_channels.py picks them):

  atom           the build's objective: a_f against raw vectors
  atom-centred   a_f against x - origin
  encoder        e_f (what fires the feature) against x - origin

Scored per picture, with the same photos as bench/features_vs_channels.py:
  2afc     the two-photo test with the picture as reference (MobileNetV1 penultimate,
           centred on the photos' mean), the photos ranked by the feature's code pooled
           over each photo by max (what pages rank by) and by mean (what the picture's
           objective, a mean over the map, is closest to); each variant's paired
           difference from `atom`
  fires    the feature's code on its own picture (max over positions) over its 9th best
           photo's: above 1, the picture excites the feature more than its exemplars do

Run bench/dictionary.py first (it keeps the trained dictionaries under --store).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from atlas.core import kinds                                     # noqa: E402
from atlas.core.layouts import SPATIAL                           # noqa: E402
from atlas.core.settings import Settings                         # noqa: E402
from atlas.core.units import Unit                                # noqa: E402
from atlas.data import sources                                   # noqa: E402
from atlas.data.stream import stream                             # noqa: E402
from atlas.dictionary.features import POOLINGS, POWER, PhotoCodes, direction, feature_unit   # noqa: E402
from atlas.dictionary.sae import DictionaryShape, SparseDictionary   # noqa: E402
from atlas.engine import objectives                              # noqa: E402
from atlas.engine.batching import render                         # noqa: E402
from atlas.model.classifier import normalize                     # noqa: E402
from atlas.model.forward import activations                      # noqa: E402
from atlas.model.loading import load_model                       # noqa: E402
from atlas.model.runtime import resolve_runtime                  # noqa: E402
from atlas.store import dictionary as stored                     # noqa: E402
from atlas.two_photo import protocol                             # noqa: E402
from atlas.two_photo.consumers import JudgeEmbeddings            # noqa: E402
from channels_2afc import embed_renders, judge_embeddings, load_judge   # noqa: E402

PROBE = "feature_probe"
VARIANTS = ("atom", "atom-centred", "encoder")
kinds.register(kinds.Kind(PROBE, "feature objective probe", layouts=SPATIAL, page=kinds.Page.FEATURE,
                          params=("direction", "power", "origin")))


@kinds.builds(PROBE)
def _probe(rows, ctx):
    vectors = torch.tensor([u.param("direction") for u in rows], dtype=torch.float32, device=ctx.device)
    origins = torch.tensor([u.param("origin") for u in rows], dtype=torch.float32, device=ctx.device)
    powers = torch.tensor([float(u.param("power")) for u in rows], device=ctx.device)
    inner = objectives.spread_direction(rows[0].layer, vectors, powers)

    def score(acts):
        out = acts[rows[0].layer]
        return inner.score({rows[0].layer: out.float() - origins.to(out.device)[:, :, None, None]})
    return objectives.Objective(score, inner.layers)


def variants(layer: str, dictionary: SparseDictionary, feature: int, names: list[str]) -> dict[str, Unit]:
    """The feature's unit under each objective of `names` (VARIANTS)."""
    scale = float(dictionary.scale)
    origin = (dictionary.mean + scale * dictionary.decoder_bias).detach()
    encoder = torch.nn.functional.normalize(dictionary.encoder.detach()[:, feature], dim=0)
    atom = dictionary.directions()[feature]
    probe = lambda d: Unit(layer, feature, PROBE, params={"direction": direction(d.numpy()), "power": POWER,  # noqa: E731
                                                          "origin": direction(origin.numpy())})
    made = {"atom": feature_unit(layer, feature, atom.numpy()),
            "atom-centred": probe(atom), "encoder": probe(encoder)}
    return {name: made[name] for name in names}


@torch.no_grad()
def own_codes(model, layer: str, dictionary: SparseDictionary, images: np.ndarray, features: list[int],
              device) -> np.ndarray:
    """[U] each picture's code of its feature, max over positions (images [U, S, S, 3] uint8)."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).to(device)
    maps = activations(model, normalize(model, x), {layer})[layer].float()
    dictionary = dictionary.to(device)
    return np.array([float(dictionary.encode(maps[n].flatten(1).T)[:, f].max()) for n, f in enumerate(features)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, required=True)
    parser.add_argument("--report", type=Path, default=Path("bench/out/dictionary.json"))
    parser.add_argument("--store", type=Path, default=Path("bench/out/dictionary-store"))
    parser.add_argument("--layer", default="_blocks.10._project_conv")
    parser.add_argument("--seed", type=int, default=0, help="the dictionary seed")
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--min-photos", type=int, default=30)
    parser.add_argument("--variants", default="atom,encoder",
                        help=f"objectives to render, of {', '.join(VARIANTS)} (atom-centred scored level with atom, "
                             "+0.003 se 0.025, at _blocks.10)")
    parser.add_argument("--out", type=Path, default=Path("bench/out/feature_objectives.json"))
    args = parser.parse_args()

    made = json.loads(args.report.read_text())
    row = made["layers"][args.layer]
    shape = DictionaryShape(row["channels"], row["size"], row["k"], row["kind"])
    dictionary = SparseDictionary.from_weights(shape, stored.load_trained(args.store, row["key"], args.seed)[1])
    runtime = resolve_runtime("auto", "auto")
    model = load_model(made["model"], "default")
    source = sources.image_folder(args.photos, model)
    judge = load_judge(runtime.device)
    view = JudgeEmbeddings(lambda images: judge_embeddings(judge, images), len(source))
    codes = PhotoCodes({args.layer: dictionary}, len(source), runtime.device)
    stream(model, source, [view, codes], runtime)
    center = {"logits": view.logits.mean(0), "penultimate": view.penultimate.mean(0)}
    embedding = protocol.spaces(view.logits, view.penultimate, center)["penultimate"]
    values = codes.pooled[args.layer]["max"]
    live = np.flatnonzero(((values > 0).sum(0) >= args.min_photos) & protocol.live_units(values))
    picked = [int(f) for f in live[protocol.pick_channels(len(live), args.count)]]

    made_units = {f: variants(args.layer, dictionary.cpu(), f, args.variants.split(",")) for f in picked}
    names = list(made_units[picked[0]])
    units = [made_units[f][name] for name in names for f in picked]
    settings = Settings(size=224, steps=args.steps, seed=0, precision=runtime.precision)
    results = {r.unit: r for batch in render(model, units, settings, runtime) for r in batch}
    images = np.stack([np.stack(results[u].images) for u in units])              # [U, 1, S, S, 3]
    renders = embed_renders(judge, images, center)["penultimate"]
    fired = own_codes(model, args.layer, dictionary, images[:, 0], [u.index for u in units], runtime.device)

    report = {"model": made["model"], "layer": args.layer, "dictionary": row, "seed": args.seed,
              "steps": args.steps, "features": picked, "variants": {}}
    for v, name in enumerate(names):
        got = {"fires": []}
        for pooling in POOLINGS:
            got[pooling] = []
            for n, f in enumerate(picked):
                split = protocol.split_ranking(codes.pooled[args.layer][pooling][:, f])
                got[pooling].append(protocol.pair_score(renders[v * len(picked) + n], embedding[split.strong],
                                                        embedding[split.weak]))
        for n, f in enumerate(picked):
            ninth = values[protocol.split_ranking(values[:, f]).exemplars[-1], f]
            got["fires"].append(fired[v * len(picked) + n] / max(float(ninth), 1e-8))
        report["variants"][name] = got
    print(f"\n{args.layer}, {len(picked)} features of seed {args.seed}, {args.steps} steps\n")
    print("| objective | photos ranked by | 2AFC (picture) | paired difference from `atom`, max | "
          "fires: own code / 9th photo's, median |")
    print("|---|---|---|---|---|")
    base = np.array(report["variants"]["atom"]["max"])
    for name, got in report["variants"].items():
        for pooling in POOLINGS:
            s = np.array(got[pooling])
            print(f"| {name} | {pooling} code | {s.mean():.3f} (se {protocol.standard_error(s):.3f}) | "
                  f"{(s - base).mean():+.3f} (se {protocol.standard_error(s - base):.3f}) | "
                  f"{np.median(got['fires']):.2f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

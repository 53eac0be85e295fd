"""Do dictionary features read better than channels? The same photos, the same judge (issue 33).

    .venv/bin/python bench/features_vs_channels.py --photos /work/data/imagenet-sample \
        --report bench/out/dictionary.json

Run bench/dictionary.py first: it trains each layer's dictionaries (two seeds) and keeps
them under --store; its report names their keys. Here, one streaming pass over the
photos gives, per layer, every photo's mean activation of every channel (the channel
objective), every photo's code of every feature pooled over its positions by max and
by mean (`atlas.dictionary.features.PhotoCodes`), and the judge's embedding of every
photo (MobileNetV1 0.75 at 192 px, another family than the subject, penultimate
features centred on the photos' mean; ../shared/judges, `pip install tflite`).

Per unit (every channel but dead ones, whose photos all score alike; every feature of each
seed that fires on at least --min-photos photos), with atlas.two_photo:
  2afc         the two-photo test with the 9 exemplar photos as reference: which of a
               strong (ranks 10-29) and a weak (the 20 lowest) photo excites the unit
               (chance 0.5)
  coherence    mean pairwise similarity of the 9 exemplars under the judge
  ms           Pach et al.'s monosemanticity score over all photos (rewards sparsity
               itself: a sparse code scores higher before meaning enters)
Features are reported per seed and as their mean with half the seed-to-seed spread;
"ahead" says whether features beat channels by more than that spread.

With --pictures N, also the 2AFC with pictures as reference: N live channels and N live
features of each dictionary seed per layer (each spread evenly over the live ones by
index), rendered as a build renders them (`closeup`, --steps, 224 px, render seed 0: the
channel objective, and the feature's direction objective), each picture judged against
the same strong and weak photos as its unit's exemplars (a feature's photos ranked by
its code pooled by max and by mean). Features are reported per dictionary seed and as
their mean with half the spread; one render seed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from atlas.data import sources                                    # noqa: E402
from atlas.data.stream import stream                             # noqa: E402
from atlas.dictionary.features import POOLINGS, PhotoCodes       # noqa: E402
from atlas.dictionary.sae import DictionaryShape, SparseDictionary   # noqa: E402
from atlas.model.loading import load_model                       # noqa: E402
from atlas.model.runtime import resolve_runtime                  # noqa: E402
from atlas.store import dictionary as stored                     # noqa: E402
from atlas.two_photo import protocol                             # noqa: E402
from atlas.two_photo.coherence import coherence, monosemanticity   # noqa: E402
from atlas.two_photo.consumers import ChannelMeans, JudgeEmbeddings   # noqa: E402
from channels_2afc import judge_embeddings, load_judge           # noqa: E402


def unit_scores(values: np.ndarray, embedding: np.ndarray) -> dict[str, np.ndarray]:
    """Per column of `values` [N photos, U units]: exemplar 2AFC, exemplar coherence, MS."""
    afc, coh = [], []
    for u in range(values.shape[1]):
        split = protocol.split_ranking(values[:, u])
        afc.append(protocol.pair_score(embedding[split.exemplars], embedding[split.strong], embedding[split.weak]))
        coh.append(coherence(embedding[split.exemplars]))
    return {"2afc": np.array(afc), "coherence": np.array(coh), "ms": np.asarray(monosemanticity(values, embedding))}


def summary(scores: dict[str, np.ndarray]) -> dict[str, float]:
    return {name: float(np.nanmean(values)) for name, values in scores.items()} | {"units": len(scores["2afc"])}


def picture_scores(model, layer: str, channels: np.ndarray, live_channels: np.ndarray, pictured: dict,
                   judge, center: dict, embedding: np.ndarray, runtime, *, count: int, steps: int) -> dict:
    """The 2AFC with each unit's picture as reference, for `count` live channels of `layer`
    and `count` live features of each dictionary seed (`pictured`: seed -> (dictionary,
    {pooling: codes [N, D]}, live feature indices)), each spread evenly by index and all
    rendered in one run; a feature's photos ranked by each pooling of its codes. The
    photos' `embedding` and the renders' are both centred on `center`."""
    from atlas.core.settings import Settings
    from atlas.core.units import Unit
    from atlas.dictionary.features import feature_unit
    from atlas.engine.batching import render
    from channels_2afc import embed_renders

    groups = {"channels": ({"mean": channels}, live_channels[protocol.pick_channels(len(live_channels), count)], None)}
    for seed, (dictionary, codes, live) in pictured.items():
        groups[f"features_seed{seed}"] = (codes, live[protocol.pick_channels(len(live), count)],
                                          dictionary.directions().numpy())
    units = []
    for name, (_, picked, atoms) in groups.items():
        units += [Unit(layer, int(u), "channel") if atoms is None else feature_unit(layer, u, atoms[u])
                  for u in picked]
    settings = Settings(size=224, steps=steps, seed=0, precision=runtime.precision)
    results = {r.unit: r for batch in render(model, units, settings, runtime) for r in batch}
    renders = embed_renders(judge, np.stack([np.stack(results[u].images) for u in units]), center)["penultimate"]
    out, offset = {}, 0
    for name, (rankings, picked, _) in groups.items():
        out[name] = {"units": [int(u) for u in picked], "by": {}}
        for pooling, values in rankings.items():
            scores = []
            for n, unit in enumerate(picked):
                split = protocol.split_ranking(values[:, unit])
                scores.append(protocol.pair_score(renders[offset + n], embedding[split.strong], embedding[split.weak]))
            out[name]["by"][pooling] = {"2afc": float(np.mean(scores)), "se": protocol.standard_error(scores)}
        offset += len(picked)
    seeds = [v["by"] for k, v in out.items() if k.startswith("features_seed")]
    out["features"] = {pooling: protocol.spread([by[pooling]["2afc"] for by in seeds]) for pooling in seeds[0]}
    out["steps"], out["recipe"] = steps, settings.recipe
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, required=True)
    parser.add_argument("--report", type=Path, default=Path("bench/out/dictionary.json"))
    parser.add_argument("--store", type=Path, default=Path("bench/out/dictionary-store"))
    parser.add_argument("--min-photos", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("bench/out/features_vs_channels.json"))
    parser.add_argument("--pictures", type=int, default=0, help="units per layer and kind scored by their picture")
    parser.add_argument("--steps", type=int, default=256, help="steps of those pictures")
    args = parser.parse_args()

    made = json.loads(args.report.read_text())
    runtime = resolve_runtime("auto", "auto")
    model = load_model(made["model"], "default")
    source = sources.image_folder(args.photos, model)
    layers = list(made["layers"])
    dictionaries = {}
    for layer, row in made["layers"].items():
        shape = DictionaryShape(row["channels"], row["size"], row["k"], row["kind"])
        for seed in (0, 1):
            found = stored.load_trained(args.store, row["key"], seed)
            if found is not None:
                dictionaries[(layer, seed)] = SparseDictionary.from_weights(shape, found[1])
    judge = load_judge(runtime.device)
    means = ChannelMeans(layers, len(source))
    view = JudgeEmbeddings(lambda images: judge_embeddings(judge, images), len(source))
    codes = {seed: PhotoCodes({l: d for (l, s), d in dictionaries.items() if s == seed}, len(source), runtime.device)
             for seed in (0, 1) if any(s == seed for _, s in dictionaries)}
    stream(model, source, [means, view, *codes.values()], runtime)
    center = {"logits": view.logits.mean(0), "penultimate": view.penultimate.mean(0)}
    embedding = protocol.spaces(view.logits, view.penultimate, center)["penultimate"]
    report = {"model": made["model"], "photos": len(source), "min_photos": args.min_photos, "layers": {}}
    for layer in layers:
        channels = means.means[layer]
        alive = protocol.live_units(channels)
        row = {"channels": summary(unit_scores(channels[:, alive], embedding)), "dead_channels": int((~alive).sum())}
        for pooling in POOLINGS:
            per_seed = []
            for seed, consumer in codes.items():
                values = consumer.pooled[layer][pooling]
                live = ((values > 0).sum(0) >= args.min_photos) & protocol.live_units(values)
                per_seed.append(summary(unit_scores(values[:, live], embedding)))
            row[f"features_{pooling}"] = {
                name: protocol.spread([s[name] for s in per_seed]) for name in ("2afc", "coherence", "ms", "units")}
        if args.pictures and codes:
            pictured = {}
            for seed, consumer in codes.items():
                values = consumer.pooled[layer]["max"]
                live = np.flatnonzero(((values > 0).sum(0) >= args.min_photos) & protocol.live_units(values))
                pictured[seed] = (dictionaries[(layer, seed)], consumer.pooled[layer], live)
            row["pictures"] = picture_scores(model, layer, channels, np.flatnonzero(alive), pictured, judge,
                                             center, embedding, runtime, count=args.pictures, steps=args.steps)
        report["layers"][layer] = row
        print(layer, json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print("\n| layer | units | 2AFC (exemplars) | coherence of 9 | MS | ahead on 2AFC and coherence |")
    print("|---|---|---|---|---|---|")
    for layer, row in report["layers"].items():
        c = row["channels"]
        print(f"| `{layer}` channels | {c['units']} | {c['2afc']:.3f} | {c['coherence']:.3f} | {c['ms']:.3f} | |")
        for pooling in POOLINGS:
            f = row[f"features_{pooling}"]
            ahead = all(f[m][0] - f[m][1] > c[m] for m in ("2afc", "coherence"))
            print(f"| `{layer}` features ({pooling}) | {f['units'][0]:.0f} | {f['2afc'][0]:.3f} ± {f['2afc'][1]:.3f} | "
                  f"{f['coherence'][0]:.3f} ± {f['coherence'][1]:.3f} | {f['ms'][0]:.3f} ± {f['ms'][1]:.3f} | "
                  f"{'yes' if ahead else 'no'} |")
    pictured = {layer: row["pictures"] for layer, row in report["layers"].items() if "pictures" in row}
    if pictured:
        print("\n| layer | pictures | features' photos ranked by | channels: 2AFC (picture) | "
              "features: 2AFC (picture), per seed | features, mean ± spread | ahead |")
        print("|---|---|---|---|---|---|---|")
        for layer, p in pictured.items():
            c = p["channels"]["by"]["mean"]
            for pooling, (mean, half) in p["features"].items():
                seeds = " / ".join(f"{v['by'][pooling]['2afc']:.3f} (se {v['by'][pooling]['se']:.3f})"
                                   for k, v in p.items() if k.startswith("features_seed"))
                print(f"| `{layer}` | {len(p['channels']['units'])} each, {p['steps']} steps | {pooling} code | "
                      f"{c['2afc']:.3f} (se {c['se']:.3f}) | {seeds} | {mean:.3f} ± {half:.3f} | "
                      f"{'yes' if mean - half > c['2afc'] else 'no'} |")


if __name__ == "__main__":
    main()

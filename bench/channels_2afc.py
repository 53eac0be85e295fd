"""Do channel pictures predict real photos? A two-alternative forced choice (issue 28).

The automated version of the psychophysics test of Borowski et al. (ICLR 2021) and
Zimmermann et al. (NeurIPS 2021), with a judge model standing in for the person.

Photos. The 1,000 ImageNet photos of github:EliSchwartz/imagenet-sample-images (one
per class; never commit them), each framed as the subject's evaluation frames it
(atlas.data.sources.image_folder). One streaming pass (atlas.data.stream) gives every
photo's mean activation for every channel of the chosen layers (the channel
objective the visualization maximizes) and the judge's embeddings of every photo
(the consumers of atlas.two_photo.consumers); both are cached under --photo-cache,
keyed by the folder's fingerprint.

The protocol below (the split, the picks, the scores) is atlas.two_photo.protocol's;
this script brings the judge, the renders and the tables.

Per channel. Rank the photos by the channel's objective, most exciting first:
  exemplars  ranks 1-9
  strong     ranks 10-29 (20 queries)
  weak       the 20 lowest ranks (the weakest photo last)
  pairs      strong query i with weak query i, i = 0..19: rank 10 with the weakest
             photo, rank 11 with the second weakest, ... rank 29 with the 20th weakest.
For each pair a reference picks the query whose judge embedding is closer (cosine
similarity); a pick is correct when it is the strong query, and an exact tie counts
half (so a reference that sees no difference scores exactly 0.5, deterministically).
A channel's score is the share of correct picks over its 20 pairs; chance is 0.5.

References.
  visualization  the channel's rendered image(s): with one image, its similarity to
                 the query; with several (--diversity N), the mean of their
                 similarities to the query (the same rule as the exemplars).
  exemplars      the 9 exemplar photos: the mean of their 9 cosine similarities to
                 the query (each exemplar votes with its similarity; not the
                 similarity to their mean embedding).
  random         one photo drawn uniformly from the folder, the channel's 49 ranked
                 photos (exemplars, strong and weak queries) excluded; --random-draws
                 (20) independent draws per channel and seed, each scored alone, averaged.
                 It must come out near 0.5: it checks the test has no bias of its own.

Judge. MobileNetV1 0.75 at 192 px (../shared/judges, needs `pip install tflite`), of
another family than the subject, never part of an optimization. It sees the whole
frame (224 px render or the photo's 224 px evaluation view) resized to 192 px. Three
embeddings are scored in every run, each centred on the mean over the 1,000 photos
and scaled to unit length:
  logits       its 1,000 class logits
  penultimate  its 768 pooled features, the input of the classifier
  both         the two unit vectors concatenated and divided by sqrt(2): the
               similarity is the mean of the two cosine similarities.
The tables show --embedding (default penultimate; BENCHMARKS.md, "Channel pictures
against real photos", says why).

Numbers. Per layer: the mean over its channels; pooled: over all channels. Each is
the mean over seeds with half the spread between seeds (max - min) beside it, as
BENCHMARKS.md does everywhere, and "se" the standard error over channels of the
seed-averaged score. The exemplars' score depends on no seed. Cost: seconds per
unit-step of each recipe, timed on the run's shapes in alternating passes after the
renders (--time-steps: renders of N and 2N steps, the difference per step), as ratios
against the first recipe.

    python bench/channels_2afc.py --steps 128 --layers _blocks.4._project_conv,_conv_head --channels 2 --seed 0
    python bench/channels_2afc.py --recipe steady --seed 0 --seed 1 --out bench/out/2afc-steady
    python bench/channels_2afc.py --recipe steady --candidate schedule --steps 256 --channels 4 --seed 0
    python bench/channels_2afc.py --tables REPORT.json [REPORT.json ...]    # tables of earlier runs, merged

`--photo-data NPZ` takes the photos' rankings and embeddings from a cached pass
(for a machine without the photos). `--photos-only` scores the exemplars and the random photo alone (no render). `--render-only` renders and saves images (renders/*.npz) without photos or judge, for
a machine without them; `--from-renders DIR` scores such images here.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atlas.two_photo import protocol  # noqa: E402  (numpy only: --tables needs no torch)
from atlas.two_photo.coherence import coherence, coherence_with  # noqa: E402
from atlas.two_photo.protocol import (EXEMPLARS, SPACES, STRONG, WEAK, Split, spaces, spread,  # noqa: E402
                                      standard_error, unit_rows)

OWN = "penultimate-own-centre"   # diagnostic: renders centred on the renders' mean (embed_renders)
DEFAULT_LAYERS = ("_blocks.1._project_conv", "_blocks.4._project_conv", "_blocks.7._project_conv",
                  "_blocks.10._project_conv", "_blocks.13._project_conv", "_conv_head")
PHOTOS = Path("/work/data/imagenet-sample")
JUDGES_DIR = Path(os.environ.get("ATLAS_JUDGES_DIR", Path(__file__).resolve().parents[2] / "shared" / "judges"))


# --- Candidates: channel recipes tried against `steady` (the ones kept are in atlas/core/settings.py) ---

@dataclass(frozen=True)
class Candidate:
    """One way of rendering channels: a recipe (a name in RECIPES, or a Recipe) with the
    objective, diversity and settings it is tried with."""
    recipe: object = "steady"
    objective: str = "channel"
    diversity: int = 1
    settings: tuple[tuple[str, object], ...] = ()   # Settings fields changed, e.g. (("decay_power", 1.5),)


def candidates() -> dict[str, Candidate]:
    from atlas.core.settings import RECIPES

    steady = RECIPES["steady"]
    return {
        # More, smaller views (the same pixels per step: 4 x 0.53^2 = 2 x 0.75^2).
        "views4": Candidate(replace(steady, views=4, view_scale=0.53)),
        # The class recipe's crop schedule: whole frame early, down to 0.3 of it late.
        "schedule": Candidate(replace(steady, min_crop=1.0, min_crop_end=0.3)),
        # Smaller crops throughout (a quarter to the whole frame): the model sees parts magnified.
        "crops0.25": Candidate(replace(steady, min_crop=0.25)),
        # A schedule the other way: small crops early, the whole frame late.
        "schedule-up": Candidate(replace(steady, min_crop=0.3, min_crop_end=1.0)),
        "color": Candidate(replace(steady, color_shift=0.1)),
        "color-fade": Candidate(replace(steady, color_shift=0.1, color_shift_end=0.0)),
        "lr0.02": Candidate(replace(steady, lr=0.02)),
        "lr0.05": Candidate(replace(steady, lr=0.05)),
        "cosine": Candidate(replace(steady, lr_schedule="cosine")),
        # The frequency spectrum: a charge for pixel-to-pixel variation, or a steeper 1/f.
        "tv": Candidate(replace(steady, smoothness=50.0)),
        "tv100": Candidate(replace(steady, smoothness=100.0)),
        "tv200": Candidate(replace(steady, smoothness=200.0)),
        "tv-crops0.25": Candidate(replace(steady, smoothness=50.0, min_crop=0.25)),
        "decay1.5": Candidate(settings=(("decay_power", 1.5),)),
        "decay1.25": Candidate(settings=(("decay_power", 1.25),)),
        "decay0.75": Candidate(settings=(("decay_power", 0.75),)),
        # Magnitude-constrained Fourier (MACO): a fixed 1/f spectrum, only phases move.
        "phase": Candidate(settings=(("param", "phase"),)),
        "phase-lr0.1": Candidate(settings=(("param", "phase"), ("lr", 0.1))),
        "noise": Candidate(replace(steady, noise=0.1, noise_end=0.0)),
        # The centre position of the map instead of its mean (the benchmark still ranks
        # photos by the channel mean: it asks about the channel).
        "neuron": Candidate(objective="neuron"),
        # Several images per channel pushed apart; the reference is their mean similarity.
        "diversity4": Candidate(diversity=4),
    }


def chosen(recipes: list[str], names: list[str]) -> dict[str, Candidate]:
    """What a run renders, by name: named recipes, then candidates (their recipes registered under their names)."""
    from atlas.core.settings import RECIPES

    table = candidates()
    tried = {name: Candidate(name) for name in recipes}
    for name in names:
        candidate = table[name]
        if not isinstance(candidate.recipe, str):
            RECIPES.setdefault(name, candidate.recipe)
            candidate = replace(candidate, recipe=name)
        tried[name] = candidate
    return tried


# --- The judge ---

def load_judge(device):
    sys.path.insert(0, str(JUDGES_DIR))
    from mobilenet_v1 import load  # takes RGB in [0, 1]
    return load().to(device)


def judge_embeddings(judge, images, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(logits [N, 1000], penultimate [N, 768]) of float RGB frames [N, 3, H, W] in [0, 1].

    Runs the judge's graph as its forward does (mobilenet_v1.Judge: resized whole to
    192 px, scaled to [-1, 1]) and keeps the pooled features before the last 1x1 conv."""
    import torch
    import torch.nn.functional as F
    from mobilenet_v1 import INPUT_SIZE, _same_pad

    net = judge.net
    logits, pooled = [], []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = images[start:start + batch].float().to(net.weights[0].device)
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=True)
            values, last, pool = {net.input_id: x * 2 - 1}, None, None
            for step in net.steps:
                op, a = step["op"], values.get(step["ins"][0])
                if op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                    w, b = net.weights[step["w"]], net.weights[step["w"] + 1]
                    if step["same"]:
                        a = _same_pad(a, w.shape[-2:], step["stride"])
                    y = F.conv2d(a, w, b, step["stride"], 0, 1, step["groups"])
                elif op == "ADD":
                    y = a + values[step["ins"][1]]
                elif op == "AVERAGE_POOL_2D":
                    y = a.mean((2, 3), keepdim=True)
                elif op == "RESHAPE":
                    y = a.flatten(1)
                else:
                    break
                if step.get("act") is not None:
                    y = step["act"](y)
                if op == "AVERAGE_POOL_2D":
                    pool = y.flatten(1)
                values[step["out"]] = last = y
            logits.append(last[:, 1:].cpu().numpy())
            pooled.append(pool.cpu().numpy())
    return np.concatenate(logits).astype(np.float32), np.concatenate(pooled).astype(np.float32)


# --- The photos: one streaming pass for rankings and judge embeddings, cached ---

def photo_pass(model, folder: Path, layers: list[str], judge, runtime, cache_dir: Path) -> dict:
    """Per layer [N, C] channel means, the judge's logits and penultimate features of the N
    photos, and their names; from the cache under `cache_dir` when the folder is unchanged."""
    import joblib

    from atlas.data.sources import image_folder
    from atlas.data.stream import stream
    from atlas.two_photo.consumers import ChannelMeans, JudgeEmbeddings

    source = image_folder(folder, model, "--photos")
    key = joblib.hash((source.fingerprint(), model.name, model.fingerprint, sorted(layers), runtime.precision, "v1"))
    path = cache_dir / f"photos-{key[:16]}.npz"
    if path.exists():
        return load_photo_data(path, layers)
    means = ChannelMeans(layers, len(source))
    view = JudgeEmbeddings(lambda images: judge_embeddings(judge, images), len(source))
    start = time.perf_counter()
    report = stream(model, source, [means, view], replace(runtime, photos_per_batch=32))
    print(f"photo pass: {report.images} photos in {time.perf_counter() - start:.0f} s, "
          f"{len(report.skipped)} skipped", flush=True)
    read = view.read()
    if not read.all():   # a skipped photo takes part in no ranking
        raise SystemExit(f"{(~read).sum()} photos could not be read: {report.skipped[:3]}")
    names = np.array([source.name(i) for i in range(len(source))])
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(path, logits=view.logits, penultimate=view.penultimate, names=names,
             **{f"means|{layer}": means.means[layer] for layer in layers})
    return {"means": means.means, "logits": view.logits, "penultimate": view.penultimate,
            "names": list(names), "cached": None}


def load_photo_data(path: Path, layers: list[str]) -> dict:
    """What photo_pass cached at `path`: channel means of `layers`, judge embeddings, names."""
    data = np.load(path, allow_pickle=False)
    return {"means": {layer: data[f"means|{layer}"] for layer in layers}, "logits": data["logits"],
            "penultimate": data["penultimate"], "names": [str(n) for n in data["names"]], "cached": str(path)}


# --- Rendering ---

def render_all(model, units, candidate: Candidate, runtime, *, steps: int, size: int, seed: int,
               redirect_steps: int | None = None):
    """Images [U, copies, S, S, 3] uint8, final objectives [U], seconds of the whole render,
    the units that failed. Batches hold `runtime.batch_size` images (None: the device's default)."""
    from atlas.core.settings import Settings
    from atlas.core.units import Unit
    from atlas.engine.batching import render

    jobs = [Unit(u.layer, u.index, candidate.objective, diversity=candidate.diversity) for u in units]
    settings = Settings(size=size, steps=steps, recipe=candidate.recipe, seed=seed,
                        precision=runtime.precision).replace(**dict(candidate.settings))
    if redirect_steps is not None:
        settings = settings.replace(redirect_steps=redirect_steps)
    start = time.perf_counter()
    results = {r.unit: r for batch in render(model, jobs, settings, runtime) for r in batch}
    _sync(runtime.device)
    seconds = time.perf_counter() - start
    images = np.stack([np.stack(results[u].images) for u in jobs])
    errors = [f"{u.layer}:{u.index}" for u in jobs if results[u].error]
    return images, [results[u].final_objective for u in jobs], seconds, errors


def time_recipes(model, units_by_layer: dict, tried: dict[str, Candidate], runtime, *, steps: int, size: int,
                 rounds: int = 2) -> dict[str, float]:
    """Seconds per unit-step of each candidate (a unit's copies included), on the run's own
    shapes: one batch of each layer's units (at most 8) rendered for `steps` and for
    2 x `steps` steps, no redirected ReLU steps; the difference over `steps` x units is
    the cost of a step without the fixed cost of a render (its start, its final pass).
    Candidates alternate, `rounds` passes, the fastest of each kept (the first pass
    warms the kernels)."""
    short, long = {n: math.inf for n in tried}, {n: math.inf for n in tried}
    units = [u for layer_units in units_by_layer.values() for u in layer_units[:8]]
    for _ in range(rounds):
        for name, candidate in tried.items():
            for n, table in ((steps, short), (2 * steps, long)):
                *_, seconds, _ = render_all(model, units, candidate, runtime, steps=n, size=size, seed=0,
                                            redirect_steps=0)
                table[name] = min(table[name], seconds)
    return {name: (long[name] - short[name]) / (len(units) * steps) for name in tried}


def _sync(device) -> None:
    import torch
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- Scoring a run ---

def score_channels(embedded: dict[str, np.ndarray], splits: list[Split], renders: dict[str, np.ndarray] | None,
                   seed: int, keys: list[str], draws: int) -> dict:
    """atlas.two_photo.protocol.score_channels, plus the OWN diagnostic when the renders carry
    it: the renders centred on their own mean, scored against the photos' penultimate space."""
    embedded = dict(embedded)
    if renders is not None and OWN in renders:
        embedded[OWN] = embedded["penultimate"]
    return protocol.score_channels(embedded, splits, renders, seed=seed, keys=keys, draws=draws)


def embed_renders(judge, images: np.ndarray, center: dict) -> dict[str, np.ndarray]:
    """Judge embeddings of rendered images [U, copies, S, S, 3] as unit rows [U, copies, D] per space."""
    import torch

    u, c = images.shape[:2]
    x = torch.from_numpy(images.reshape(u * c, *images.shape[2:])).permute(0, 3, 1, 2).float() / 255
    logits, pooled = judge_embeddings(judge, x)
    out = {k: v.reshape(u, c, -1) for k, v in spaces(logits, pooled, center).items()}
    # A diagnostic, not the protocol: the renders centred on their own mean (over the run's
    # channels) instead of the photos' mean, so a look every render shares drops out.
    out[OWN] = unit_rows(pooled, pooled.mean(0)).reshape(u, c, -1)
    return out


# --- Tables ---

def layer_groups(channels: list[dict]) -> list[tuple[str, list[int]]]:
    """(layer, the indices of its channels) in report order, then ("pooled", every index):
    the rows of every table here."""
    layers = list(dict.fromkeys(c["layer"] for c in channels))
    groups = [(layer, [i for i, c in enumerate(channels) if c["layer"] == layer]) for layer in layers]
    return groups + [("pooled", list(range(len(channels))))]


def tables(report: dict, space: str) -> str:
    """Per layer and pooled: each rendered row, then exemplars and random; mean over
    seeds (± half the spread between seeds), and the standard error over channels."""
    channels = report["channels"]
    groups = layer_groups(channels)
    runs: dict[str, list[dict]] = {}
    for run in report["runs"]:
        runs.setdefault(run["name"], []).append(run)
    columns = [(name, "visualization", rows) for name, rows in runs.items()]
    baseline = next(iter(runs.values())) if runs else [report["baseline"]]
    columns += [("exemplars", "exemplars", baseline), ("random photo", "random", baseline)]
    seeds = {name: sorted(r["seed"] for r in rows) for name, rows in runs.items()}
    head = "| layer | channels | " + " | ".join(name for name, _, _ in columns) + " |"
    lines = [f"Embedding: {space}. " + "; ".join(f"{n}: seeds {', '.join(map(str, s))}, {runs[n][0]['steps']} steps"
                                                 for n, s in seeds.items()),
             "", head, "|" + "---|" * (2 + len(columns))]
    for label, idx in groups:
        cells = []
        for _, ref, rows in columns:
            per_seed = [np.mean([r["scores"][space][ref][i] for i in idx]) for r in rows]
            mean, half = spread(per_seed)
            per_channel = np.mean([[r["scores"][space][ref][i] for i in idx] for r in rows], axis=0)
            cells.append(f"{mean:.3f} ±{half:.3f} (se {standard_error(per_channel):.3f})")
        lines.append(f"| {label} | {len(idx)} | " + " | ".join(cells) + " |")
    if runs:
        lines += ["", "| recipe | s per unit (render) | ms per unit-step (timed) | × first |", "|---|---|---|---|"]
        timing = report.get("timing", {})
        first = next(iter(timing.values()), None)
        for name, rows in runs.items():
            per_unit = np.mean([r["seconds"] / len(channels) for r in rows])
            t = timing.get(name)
            lines.append(f"| {name} | {per_unit:.2f} | " + (f"{t * 1000:.1f} | {t / first:.3f}" if t else "— | —") + " |")
    return "\n".join(lines)


def paired_table(report: dict, space: str, baseline: str = "steady") -> str:
    """One row per recipe: its pooled score (mean over seeds ± half the spread), its
    difference from `baseline` paired by channel and seed (over the seeds both have) with
    the standard error over channels, and that difference on the deepest layer and on the rest."""
    channels = report["channels"]
    deepest = channels[-1]["layer"]
    head = np.array([c["layer"] == deepest for c in channels])
    runs: dict[str, dict[int, np.ndarray]] = {}
    for run in report["runs"]:
        runs.setdefault(run["name"], {})[run["seed"]] = np.array(run["scores"][space]["visualization"])
    base = runs.get(baseline, {})
    ex = np.mean([r["scores"][space]["exemplars"] for r in report["runs"][:1]], axis=0)
    lines = [f"Embedding: {space}; exemplars {ex.mean():.3f} (se {standard_error(ex):.3f}) on the same channels", "",
             f"| recipe | seeds | visualization, pooled | − {baseline}, paired | − {baseline}, {deepest} | "
             f"− {baseline}, other layers |", "|---|---|---|---|---|---|"]
    order = sorted(runs, key=lambda n: -np.mean([v.mean() for v in runs[n].values()]))
    for name in order:
        mean, half = spread(v.mean() for v in runs[name].values())
        common = sorted(set(runs[name]) & set(base))
        cells = ["—"] * 3
        if common and name != baseline:
            d = np.mean([runs[name][k] - base[k] for k in common], axis=0)
            cells = [f"{d.mean():+.3f} (se {standard_error(d):.3f}, seeds {','.join(map(str, common))})",
                     f"{d[head].mean():+.3f}", f"{d[~head].mean():+.3f}"]
        lines.append(f"| {name} | {len(runs[name])} | {mean:.3f} ±{half:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def merge(reports: list[dict]) -> dict:
    """Runs from several reports over the same channels (more seeds, more recipes) as one report."""
    first = reports[0]
    keys = [(c["layer"], c["index"]) for c in first["channels"]]
    for other in reports[1:]:
        if [(c["layer"], c["index"]) for c in other["channels"]] != keys:
            raise SystemExit("reports over different channels cannot be merged")
    merged = dict(first)
    merged["runs"] = [r for rep in reports for r in rep["runs"]]
    merged["timing"] = {k: v for rep in reports for k, v in rep.get("timing", {}).items()}
    return merged


# --- The command ---

def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--photos", type=Path, default=PHOTOS)
    parser.add_argument("--layers", default=",".join(DEFAULT_LAYERS))
    parser.add_argument("--channels", type=int, default=8, help="channels per layer, spread evenly (default 8)")
    parser.add_argument("--recipe", action="append", default=[], help="named recipes (default: steady)")
    parser.add_argument("--candidate", action="append", default=[], help="candidates (see candidates())")
    parser.add_argument("--objective", default=None, help="override every run's objective (channel, neuron)")
    parser.add_argument("--diversity", type=int, default=None, help="override every run's diversity")
    parser.add_argument("--steps", type=int, default=512)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--seed", type=int, action="append")
    parser.add_argument("--embedding", default="penultimate", choices=SPACES, help="the space the tables show")
    parser.add_argument("--random-draws", type=int, default=20)
    parser.add_argument("--time-steps", type=int, default=8, help="steps per timed pass (0: no timing)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path("bench/out/channels_2afc"))
    parser.add_argument("--photo-cache", type=Path, default=Path("bench/out/channels_2afc-photos"))
    parser.add_argument("--photo-data", type=Path, help="a photos-*.npz an earlier pass cached (no photo folder needed)")
    parser.add_argument("--no-centre", action="store_true", help="embeddings not centred on the photos' mean")
    parser.add_argument("--photos-only", action="store_true", help="only the exemplars' and the random photo's scores")
    parser.add_argument("--time-only", action="store_true", help="only time the recipes (--time-steps)")
    parser.add_argument("--render-only", action="store_true", help="render and save images; no photos, no judge")
    parser.add_argument("--from-renders", type=Path, help="score the renders/*.npz a --render-only run saved")
    parser.add_argument("--tables", type=Path, nargs="+", help="only print the tables of these reports, merged")
    parser.add_argument("--sets", type=int, action="append", default=[],
                        help="with --from-renders: also score each recipe's seeds in disjoint sets of N pictures "
                             "per channel (--pictures N), as runs named RECIPE-setN")
    parser.add_argument("--paired", action="store_true", help="with --tables: one row per recipe, paired against steady")
    args = parser.parse_args(argv)
    if args.tables:
        report = merge([json.loads(p.read_text()) for p in args.tables])
        if args.paired:
            for space in SPACES:
                print(paired_table(report, space) + "\n")
            return report
        for space in SPACES + ((OWN,) if all(OWN in r["scores"] for r in report["runs"]) and report["runs"] else ()):
            print(tables(report, space) + "\n")
        print(coherence_table(report, args.embedding))
        return report

    import torch

    from atlas.core.units import Unit
    from atlas.model.classifier import to_device
    from atlas.model.loading import load_model
    from atlas.model.runtime import resolve_runtime

    runtime = resolve_runtime(args.device, "auto", batch_size=args.batch_size)
    device, precision = runtime.device, runtime.precision
    model = to_device(load_model(args.model), device)
    layers = args.layers.split(",")
    units = [Unit(layer, i) for layer in layers
             for i in protocol.pick_channels(model.layer(layer).channels, args.channels)]
    keys = [f"{u.layer}:{u.index}" for u in units]
    by_layer = {layer: [u for u in units if u.layer == layer] for layer in layers}   # what the timings batch
    tried = chosen(args.recipe or ([] if args.candidate else ["steady"]), args.candidate)
    if args.objective or args.diversity:
        tried = {f"{name}" + (f"-{args.objective}" if args.objective else "") +
                 (f"-div{args.diversity}" if args.diversity else ""):
                 replace(c, objective=args.objective or c.objective, diversity=args.diversity or c.diversity)
                 for name, c in tried.items()}
    seeds = args.seed or [0]
    args.out.mkdir(parents=True, exist_ok=True)
    renders_dir = args.out / "renders"
    where = f"{runtime.where}, {platform.node()}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    print(f"{args.model}, {len(units)} channels of {len(layers)} layers, {args.size} px, {args.steps} steps, "
          f"{precision}, on {where}", flush=True)

    if args.time_only:
        timing = time_recipes(model, by_layer, tried, runtime, steps=args.time_steps, size=args.size)
        first = next(iter(timing.values()))
        report = {"machine": where, "date": date.today().isoformat(), "precision": precision,
                  "time_steps": args.time_steps,
                  "units": [f"{u.layer}:{u.index}" for layer_units in by_layer.values() for u in layer_units[:8]],
                  "timing": timing, "ratio": {k: v / first for k, v in timing.items()}}
        (args.out / "timing.json").write_text(json.dumps(report, indent=1))
        for name, t in timing.items():
            print(f"{name}: {t * 1000:.1f} ms per unit-step, {t / first:.3f} x {next(iter(timing))}", flush=True)
        return report

    if args.render_only:
        renders_dir.mkdir(parents=True, exist_ok=True)
        for seed in seeds:
            for name, candidate in tried.items():
                images, finals, seconds, errors = render_all(model, units, candidate, runtime, steps=args.steps,
                                                             size=args.size, seed=seed)
                np.savez_compressed(renders_dir / f"{name}-s{seed}.npz", images=images, finals=np.array(finals),
                                    meta=json.dumps({"name": name, "seed": seed, "steps": args.steps,
                                                     "seconds": seconds, "units": keys, "errors": errors,
                                                     "candidate": _describe(candidate), "device": where,
                                                     "precision": precision}))
                print(f"{name} s{seed}: {seconds / len(units):.3f} s/unit", flush=True)
        if args.time_steps:
            timing = time_recipes(model, by_layer, tried, runtime, steps=args.time_steps, size=args.size)
            (renders_dir / "timing.json").write_text(json.dumps(timing, indent=1))
            print(json.dumps(timing), flush=True)
        return {}

    judge = load_judge(device)
    # The pass covers the default layers too, so runs over fewer layers share its cache.
    known = {layer.name for layer in model.layers}
    pass_layers = sorted(set(layers) | {layer for layer in DEFAULT_LAYERS if layer in known})
    if args.photo_data:   # a cached pass carried to a machine without the photos
        photos = load_photo_data(args.photo_data, layers)
    else:
        photos = photo_pass(model, args.photos, pass_layers, judge, runtime, args.photo_cache)
    center = {"logits": photos["logits"].mean(0), "penultimate": photos["penultimate"].mean(0)}
    if args.no_centre:   # raw cosine similarity: the comparison that chose the centring
        center = {"logits": None, "penultimate": None}
    embedded = spaces(photos["logits"], photos["penultimate"], center)
    splits = [protocol.split_ranking(photos["means"][u.layer][:, u.index]) for u in units]
    names = photos["names"]
    report = {
        "protocol": {"exemplars": EXEMPLARS, "strong_ranks": [STRONG[0] + 1, STRONG[1]], "weak": WEAK,
                     "similarity": "cosine" + ("" if args.no_centre else ", embeddings centred on the photos' mean"),
                     "reference_rule": "mean similarity over the reference's images",
                     "ties": "half a pick", "random_draws": args.random_draws},
        "model": args.model, "photos": str(args.photos), "photo_count": len(names), "size": args.size,
        "precision": precision, "machine": where, "date": date.today().isoformat(),
        "command": "python bench/channels_2afc.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "channels": [{"layer": u.layer, "index": u.index,
                      "exemplars": [names[i] for i in s.exemplars], "strong": [names[i] for i in s.strong],
                      "weak": [names[i] for i in s.weak]} for u, s in zip(units, splits)],
        "baseline": {"seed": seeds[0], "scores": score_channels(embedded, splits, None, seeds[0], keys,
                                                                args.random_draws)},
        "runs": [], "timing": {},
    }
    _print_baseline(report)
    if args.photos_only:
        (args.out / "report.json").write_text(json.dumps(report, indent=1))
        for space in SPACES:
            print("\n" + tables(report, space), flush=True)
        return report

    def add_run(name, seed, steps, images, finals, seconds, errors, candidate):
        renders = embed_renders(judge, images, center)
        scores = score_channels(embedded, splits, renders, seed, keys, args.random_draws)
        for space in SPACES:   # how alike the picture(s) and the 9 best photos look, and those photos alone
            scores[space]["coherence"] = [coherence_with(renders[space][n], embedded[space][split.exemplars])
                                          for n, split in enumerate(splits)]
            scores[space]["exemplar_coherence"] = [coherence(embedded[space][split.exemplars]) for split in splits]
        report["runs"].append({"name": name, "seed": seed, "steps": steps, "seconds": seconds, "errors": errors,
                               "candidate": candidate, "final_objective": finals, "scores": scores})
        line = "  ".join(f"{s}: vis {np.mean(scores[s]['visualization']):.3f} ex {np.mean(scores[s]['exemplars']):.3f}"
                         f" rnd {np.mean(scores[s]['random']):.3f}" for s in SPACES)
        print(f"{name} s{seed}: {seconds / len(units):.2f} s/unit  {line}", flush=True)
        (args.out / "report.json").write_text(json.dumps(report, indent=1))
        if not args.from_renders:   # every render kept, so a later protocol can score it again
            renders_dir.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(renders_dir / f"{name}-s{seed}.npz", images=images, finals=np.array(finals),
                                meta=json.dumps({"name": name, "seed": seed, "steps": steps, "seconds": seconds,
                                                 "units": keys, "errors": errors, "candidate": candidate,
                                                 "device": where, "precision": precision}))
        if seed == seeds[0] or args.from_renders:
            folder = args.out / "images" / f"{name}-s{seed}"
            folder.mkdir(parents=True, exist_ok=True)
            from PIL import Image
            for key, imgs in zip(keys, images):
                Image.fromarray(imgs[0]).save(folder / f"{key.replace(':', '-')}.png")

    if args.from_renders:
        for path in sorted(args.from_renders.glob("*.npz")):
            data = np.load(path)
            meta = json.loads(str(data["meta"]))
            if meta["units"] != keys:
                raise SystemExit(f"{path}: rendered other channels than this run's")
            add_run(meta["name"], meta["seed"], meta["steps"], data["images"], list(data["finals"]),
                    meta["seconds"], meta["errors"], meta["candidate"] | {"device": meta["device"]})
        for size in args.sets:
            for name, sets in picture_sets(args.from_renders, size).items():
                for n, (images, finals, seconds, seeds_in) in enumerate(sets):
                    add_run(f"{name}-set{size}", n, args.steps, images, finals, seconds, [],
                            {"pictures": size, "seeds": seeds_in})
        if (args.from_renders / "timing.json").exists():
            report["timing"] = json.loads((args.from_renders / "timing.json").read_text())
    else:
        for seed in seeds:   # seeds outermost: a run cut short has every recipe on the first seeds
            for name, candidate in tried.items():
                images, finals, seconds, errors = render_all(model, units, candidate, runtime, steps=args.steps,
                                                             size=args.size, seed=seed)
                add_run(name, seed, args.steps, images, finals, seconds, errors, _describe(candidate))
        if args.time_steps:
            report["timing"] = time_recipes(model, by_layer, tried, runtime, steps=args.time_steps,
                                            size=args.size)
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    for space in SPACES + ((OWN,) if report["runs"] else ()):
        print("\n" + tables(report, space), flush=True)
    print("\n" + coherence_table(report, args.embedding), flush=True)
    return report


def picture_sets(folder: Path, size: int) -> dict[str, list]:
    """Per recipe, disjoint sets of `size` seeds' renders (seeds in order: 0-3, 4-7, ...), each
    as one run whose every channel has `size` pictures [U, size, S, S, 3]: what `--pictures N`
    shows, scored by the mean of the pictures' similarities (the rule of every set here).
    Each set: (images, finals, seconds, its seeds)."""
    by_name: dict[str, dict[int, tuple]] = {}
    for path in sorted(folder.glob("*.npz")):
        data = np.load(path)
        meta = json.loads(str(data["meta"]))
        by_name.setdefault(meta["name"], {})[meta["seed"]] = (data["images"][:, :1], data["finals"], meta["seconds"])
    found = {}
    for name, runs in by_name.items():
        seeds = sorted(runs)
        groups = [seeds[i:i + size] for i in range(0, len(seeds) - size + 1, size)]
        found[name] = [(np.concatenate([runs[s][0] for s in group], 1),
                        list(np.mean([runs[s][1] for s in group], 0)), sum(runs[s][2] for s in group), group)
                       for group in groups]
    return found


def coherence_table(report: dict, space: str) -> str:
    """Per layer and pooled, per run name: the mean similarity of the pictures to the
    channel's 9 best photos (mean over seeds ± half the spread), and of those photos to
    each other (no picture: the ceiling a channel's own photos set)."""
    groups = layer_groups(report["channels"])
    runs: dict[str, list[dict]] = {}
    for run in report["runs"]:
        if "coherence" in run["scores"][space]:
            runs.setdefault(run["name"], []).append(run)
    if not runs:
        return ""
    lines = [f"Coherence with the 9 best photos, embedding {space}", "",
             "| layer | " + " | ".join(runs) + " | 9 best among themselves |", "|---|" + "---|" * (len(runs) + 1)]
    for label, idx in groups:
        cells = [("{:.3f} ±{:.3f}".format(*spread(np.mean([r["scores"][space]["coherence"][i] for i in idx])
                                                for r in rows))) for rows in runs.values()]
        first = next(iter(runs.values()))[0]["scores"][space]["exemplar_coherence"]
        cells.append(f"{np.mean([first[i] for i in idx]):.3f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _describe(candidate: Candidate) -> dict:
    from dataclasses import asdict
    from atlas.core.settings import RECIPES

    recipe = RECIPES[candidate.recipe] if isinstance(candidate.recipe, str) else candidate.recipe
    return {"recipe": candidate.recipe if isinstance(candidate.recipe, str) else None,
            "knobs": recipe.key() if hasattr(recipe, "key") else asdict(recipe),
            "objective": candidate.objective, "diversity": candidate.diversity,
            "settings": dict(candidate.settings)}


def _print_baseline(report: dict) -> None:
    for space in SPACES:
        s = report["baseline"]["scores"][space]
        print(f"{space:12} exemplars {np.mean(s['exemplars']):.3f} (se {standard_error(s['exemplars']):.3f})  "
              f"random {np.mean(s['random']):.3f} (se {standard_error(s['random']):.3f})", flush=True)


if __name__ == "__main__":
    main()

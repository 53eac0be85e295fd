"""The GPU check: one prepared command for a bare CUDA machine (`make gpu-check`).

Runs from a checkout with nothing installed beyond python3 and its torch,
torchvision, jinja2, click, joblib, pillow and pytest (PYTHONPATH=. is enough):

  1. tests/test_accelerator.py on the device: alone vs. batch, same seed,
     bf16 autocast and bf16 weights, out-of-memory halving, resume after a kill,
     CUDA-graph replay against eager steps, a bf16 image side; a test that skips
     (the graph test on a CPU, bf16 where it is not native) is listed with its
     reason, never counted as passed;
  2. a real build through the CLI: VGG16 (random weights), a few layers and
     classes at 224 px, then `atlas render`, with the batch the build measured;
     and picture sets (`--pictures 4` on a quarter of the channels) against one
     picture of every channel: the same images, so seconds per image compare;
  3. the throughput benchmark at 224 px in bf16, twice: as before issue 27 (eager
     steps, an fp32 image side: ATLAS_CUDA_GRAPHS=0 ATLAS_IMAGE_DTYPE=fp32) and as
     today (each batch's step replayed as a CUDA graph, the image side in bf16):
     per-layer ms per image-step, the floor, the fraction of the bf16 peak, the
     projected full VGG16 atlas at the presets' step counts;
  4. network dissection: both passes' images/s against the forward floor, projected
     to the full Broden (63,305 images) for all 13 conv layers of VGG16;
  5. an activation atlas of one VGG16 layer: sampling, layout, icons, page bytes;
  6. a dictionary of VGG16's `features.28` (512 -> 4,096 features, k = 32) trained on
     1,000,000 vectors: seconds per epoch, peak memory, the build's 20 epochs of two seeds;
  7. everything measured into OUT/gpu-check.md (to paste into BENCHMARKS.md)
     and OUT/gpu-check.json, with each step's log beside them.

Photos for steps 4 to 6: GPU_CHECK_PHOTOS (a folder; by default .gpu-data/photos
when it exists, else synthetic ones, which measure speed but mean nothing).

    PYTHONPATH=. python3 bench/gpu_check.py --out gpu-check-out
    GPU_CHECK_DEVICE=cpu PYTHONPATH=. python3 bench/gpu_check.py --out /tmp/check   # same steps, tiny sizes

Without CUDA (and without GPU_CHECK_DEVICE=cpu) it stops with one line saying so.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# What each step runs on a GPU, and at tiny sizes on a CPU (so a test keeps the script from rotting).
PROFILES = {
    "cuda": {
        "build": ["vgg16", "--weights", "random", "--layers", "features.0,features.14,features.28",
                  "--channels", "64", "--classes", "0-127", "--size", "224", "--steps", "64"],
        "throughput": ["--model", "vgg16", "--weights", "random", "--size", "224", "--steps", "16",
                       "--project", "--flops", "--baseline-units", "0"],
        "dissection": ["--model", "vgg16", "--weights", "random", "--batch-size", "64", "--broden-project",
                       "--limit", "1000"],
        "atlas": ["--model", "vgg16", "--weights", "random", "--layers", "features.28", "--positions", "100",
                  "--layout", "umap", "--icon-steps", "256", "--batch-size", "64", "--levels", "20,40,80"],
        "dictionary": ["--model", "vgg16", "--weights", "random", "--layer", "features.28", "--vectors", "1000000"],
        # (build arguments without --channels, channels per layer of the sets build)
        "pictures": (["vgg16", "--weights", "random", "--layers", "features.0,features.14,features.28",
                      "--classes", "none", "--size", "224", "--steps", "64"], 16),
    },
    "cpu": {
        "build": ["tests.tinynet:tiny_vgg", "--weights", "random", "--layers", "features.0,features.5",
                  "--channels", "4", "--classes", "0-3", "--size", "32", "--steps", "4"],
        "throughput": ["--model", "tests.tinynet:tiny_vgg", "--weights", "random", "--size", "32", "--steps", "4",
                       "--project", "--flops", "--baseline-units", "0"],
        "dissection": ["--model", "tests.tinynet:tiny_vgg", "--weights", "random", "--batch-size", "8",
                       "--broden-project", "--limit", "24", "--workers", "0"],
        "atlas": ["--model", "tests.tinynet:tiny_vgg_named", "--weights", "random", "--layers", "features.5",
                  "--positions", "8", "--layout", "pca", "--icon-steps", "4", "--unit-steps", "4", "--batch-size", "8",
                  "--workers", "0"],
        "dictionary": ["--model", "tests.tinynet:tiny_vgg", "--weights", "random", "--layer", "features.5",
                       "--vectors", "20000", "--epochs", "1", "--workers", "0"],
        "pictures": (["tests.tinynet:tiny_vgg", "--weights", "random", "--layers", "features.0,features.5",
                      "--classes", "none", "--size", "32", "--steps", "4"], 2),
    },
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-check-out"))
    parser.add_argument("--work", type=Path, help="where the build's cache and site go (default: OUT/work)")
    parser.add_argument("--skip", action="append", default=[],
                        choices=["tests", "build", "throughput-before", "throughput", "dissection", "atlas",
                                 "dictionary"])
    parser.add_argument("--class-steps", type=int, help="class units' steps in the projection (default: the full preset's)")
    args = parser.parse_args()

    import torch

    device = os.environ.get("GPU_CHECK_DEVICE", "cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        print(f"gpu-check: no CUDA GPU here (torch {torch.__version__} sees none); "
              "GPU_CHECK_DEVICE=cpu runs the same steps on the CPU at tiny sizes")
        return 2
    profile = PROFILES["cpu" if device == "cpu" else "cuda"]
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GPU_CHECK_DEVICE": device,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    report: dict = {"started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "device": _describe(torch, device), "torch": torch.__version__, "steps": {}}
    failed = []

    if "tests" not in args.skip:
        tests = out / "accelerator-tests.json"
        tests.unlink(missing_ok=True)
        step = _run("tests", [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                              "tests/test_accelerator.py"], out, {**env, "ATLAS_ACCELERATOR_REPORT": str(tests)})
        step["measured"] = json.loads(tests.read_text()) if tests.exists() else {}
        step["summary"] = _last_line(out / "tests.log")
        step["skipped"] = _skipped(out / "tests.log")
        report["steps"]["tests"] = step
        failed += ["tests"] if step["returncode"] else []

    if "build" not in args.skip:
        work = (args.work or out / "work").resolve()
        cache, site = work / "cache", work / "site"
        build = _run("build", [sys.executable, "-m", "atlas", "build", *profile["build"], "--device", device,
                               "--cache-dir", str(cache), "--out", str(site), "--no-site"], out, env)
        render = _run("render", [sys.executable, "-m", "atlas", "render", "--cache-dir", str(cache),
                                 "--out", str(site)], out, env)
        build["render_site"] = render
        build["entries"] = _entries(cache, out / "build.log")
        # The same build storing between batches: what the background writer saves.
        inline = _run("build-inline", [sys.executable, "-m", "atlas", "build", *profile["build"], "--device", device,
                                       "--cache-dir", str(work / "cache-inline"), "--no-site", "--inline-store"],
                      out, env)
        build["inline"] = {**inline, "entries": _entries(work / "cache-inline", out / "build-inline.log")}
        arguments, quarter = profile["pictures"]
        for label, channels, pictures in (("one picture", 4 * quarter, 1), ("sets of 4", quarter, 4)):
            name = f"build-pictures-{pictures}"
            run = _run(name, [sys.executable, "-m", "atlas", "build", *arguments, "--channels", str(channels),
                              "--pictures", str(pictures), "--device", device, "--cache-dir", str(work / name),
                              "--no-site"], out, env)
            build.setdefault("pictures", {})[label] = {**run, "entries": _entries(work / name, out / f"{name}.log")}
            failed += [name] if run["returncode"] else []
        report["steps"]["build"] = build
        failed += [name for name, step in (("build", build), ("render", render), ("build-inline", inline))
                   if step["returncode"]]

    projection = _projection_steps(args.class_steps)
    for name, extra in (("throughput-before", {"ATLAS_CUDA_GRAPHS": "0", "ATLAS_IMAGE_DTYPE": "fp32"}),
                        ("throughput", {})):
        if name in args.skip:
            continue
        step = _run(name, [sys.executable, "-c", _THROUGHPUT, str(out / f"{name}.json"), *profile["throughput"],
                           *projection, "--device", device], out, {**env, **extra})
        path = out / f"{name}.json"
        step["measured"] = json.loads(path.read_text()) if path.exists() else {}
        report["steps"][name] = step
        _save(out, report)
        failed += [name] if step["returncode"] else []

    work = (args.work or out / "work").resolve()
    photos = _photos(work)
    for name, script in (("dissection", "bench/dissection.py"), ("atlas", "bench/atlas_cost.py"),
                         ("dictionary", "bench/dictionary_cost.py")):
        if name in args.skip:
            continue
        extra = ["--photos", str(photos)] + (["--site", str(work / "atlas-site"), "--cache", str(work / "atlas-cache")]
                                             if name == "atlas" else [])
        step = _run(name, [sys.executable, script, *profile[name], *extra, "--device", device,
                           "--json", str(out / f"{name}.json")], out, env)
        path = out / f"{name}.json"
        step["measured"] = json.loads(path.read_text()) if path.exists() else {}
        step["summary"] = [line for line in (out / f"{name}.log").read_text().splitlines()
                           if "Warning" not in line and "warn(" not in line][-12:]
        report["steps"][name] = step
        _save(out, report)
        failed += [name] if step["returncode"] else []

    report["failed"] = failed
    _save(out, report)
    print((out / "gpu-check.md").read_text())
    print(f"gpu-check: {'FAILED: ' + ', '.join(failed) if failed else 'all steps passed'}; report in {out}")
    return 1 if failed else 0


# Runs bench/throughput.py's main in a child (its own CUDA context, its own log) and saves its report.
_THROUGHPUT = """
import json, sys
sys.path.insert(0, 'bench')
import throughput
report = throughput.main(sys.argv[2:])
open(sys.argv[1], 'w').write(json.dumps(report, indent=1))
"""


def _save(out: Path, report: dict) -> None:
    """Write the report so far: a run cut short still leaves every finished step's numbers."""
    (out / "gpu-check.json").write_text(json.dumps(report, indent=1, sort_keys=True))
    (out / "gpu-check.md").write_text(markdown(report))


def _projection_steps(class_steps: int | None) -> list[str]:
    """--full-steps / --full-class-steps of the `full` preset (its channels' and classes' steps)."""
    from atlas.plan.presets import PRESETS

    full = PRESETS["full"]
    steps = full["steps"]
    classes = class_steps or full.get("class_steps", steps)
    return ["--full-steps", str(steps), "--full-class-steps", str(classes)]


def _photos(work: Path) -> Path:
    """The photo folder for the dataset steps: GPU_CHECK_PHOTOS, .gpu-data/photos, or synthetic ones."""
    given = os.environ.get("GPU_CHECK_PHOTOS") or (ROOT / ".gpu-data" / "photos")
    if Path(given).is_dir():
        return Path(given)
    return synthetic_photos(work / "synthetic-photos")


def synthetic_photos(folder: Path, count: int = 64) -> Path:
    """`count` seeded 128 x 96 photos, a square of one colour on another: they time the
    dataset passes but mean nothing."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for n in range(count):
        pixels = np.zeros((96, 128, 3), np.uint8)
        pixels[:] = rng.integers(0, 256, 3)
        y, x = rng.integers(0, 60, 2)
        pixels[y:y + 32, x:x + 32] = rng.integers(0, 256, 3)
        Image.fromarray(pixels).save(folder / f"{n:03d}.png")
    return folder


def _run(name: str, command: list[str], out: Path, env: dict) -> dict:
    """Run one step with its output in OUT/<name>.log; a step's failure does not stop the others."""
    started = time.perf_counter()
    with open(out / f"{name}.log", "w") as log:
        code = subprocess.run(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL).returncode
    seconds = time.perf_counter() - started
    print(f"gpu-check: {name} {'ok' if code == 0 else f'FAILED ({code})'} in {seconds:.1f} s", flush=True)
    return {"command": " ".join(command[:4]) + " ...", "returncode": code, "seconds": round(seconds, 2)}


def _entries(cache: Path, log: Path) -> dict:
    """What the build stored: units, seconds of rendering (the batches' own time) and of the
    whole render-and-store loop (from the build's "rendered ... in X s" line), the device."""
    metas = [json.loads(p.read_text()) for p in cache.glob("entries/*/*.json")]
    if not metas:
        return {}
    seconds = sum(m.get("seconds", 0) for m in metas)
    found = re.search(r"rendered \d+, .* in ([\d.]+) (s|min|h)", log.read_text() if log.exists() else "")
    loop = float(found[1]) * {"s": 1, "min": 60, "h": 3600}[found[2]] if found else None
    return {"units": len(metas), "ok": sum(m.get("status") == "ok" for m in metas),
            "render_seconds": round(seconds, 2), "seconds_per_unit": round(seconds / len(metas), 4),
            "loop_seconds": loop, "device": metas[0].get("device")}


def _describe(torch, device: str) -> str:
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        return f"{props.name}, {props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs"
    return f"cpu ({torch.get_num_threads()} threads)"


def _skipped(path: Path) -> list[str]:
    """The tests pytest skipped (`-rs`), each as "file:line: reason"."""
    text = path.read_text() if path.exists() else ""
    return [m[1].strip() for m in re.finditer(r"^SKIPPED \[\d+\] (.+)$", text, re.MULTILINE)]


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    return lines[-1] if lines else ""


def _throughput_lines(title: str, step: dict) -> list[str]:
    m = step["measured"]
    lines = [f"## {title} ({step['seconds']:.0f} s)", ""]
    if not m:
        return lines + ["(no measurement: see the log)", ""]
    lines += [f"{m['model']} ({m['weights']}) on {m['device']}, {m['precision']}, {m['size']} px, "
              f"recipe {m['recipe']}, batch {m['batch']} images, {m['steps']} steps per measurement; "
              + (f"CUDA graphs {'on' if m['cuda_graphs'] else 'off'}, image side {m['image_dtype']}; "
                 if "cuda_graphs" in m else "")
              + f"bf16 matrix product {m.get('matmul_tflops', 0):.0f} TFLOP/s measured"
              + (f", {m['nominal_tflops']:.0f} nominal" if m.get("nominal_tflops") else ""), "",
              "| layer | images | ms/image-step | floor ms | vs floor | GFLOP/image-step | TFLOP/s | of bf16 peak |",
              "|---|---|---|---|---|---|---|---|"]
    for r in m["rows"]:
        lines.append(f"| {r['layer']} | {r['images']} | {r['ms_per_image_step']:.3f} | {r['floor_ms']:.3f} "
                     f"| {r['ms_per_image_step'] / r['floor_ms']:.2f}× | {r.get('gflop_per_image_step', 0):.1f} "
                     f"| {r.get('tflops', 0):.1f} | {r.get('fraction_of_peak', 0):.1%} |")
    if "projected_minutes" in m:
        lines += ["", f"Projected full atlas ({m['projected_units']} units, 224 px, {m.get('full_steps', 512)} steps, "
                      f"{m.get('full_class_steps', m.get('full_steps', 512))} for classes): "
                      f"**{m['projected_minutes']:.1f} min**; floor {m['floor_minutes']:.1f} min"
                      + (f"; whole-atlas mix {m['atlas_tflops']:.1f} TFLOP/s = "
                         f"{m['atlas_fraction_of_peak']:.1%} of bf16 peak" if "atlas_tflops" in m else "")]
    return lines + [""]


def markdown(report: dict) -> str:
    lines = [f"# GPU check, {report['started']}", "", f"Device: {report['device']}; torch {report['torch']}.", ""]
    steps = report["steps"]
    if "tests" in steps:
        t = steps["tests"]
        lines += [f"## 1. Accelerator tests ({t['seconds']:.0f} s): {t['summary']}", ""]
        for name, values in sorted(t["measured"].items()):
            lines.append(f"- {name}: " + ", ".join(f"{k} {v}" for k, v in sorted(values.items())))
        lines += [f"- skipped: {reason}" for reason in t.get("skipped", [])]
        lines.append("")
    if "build" in steps:
        b = steps["build"]
        e = b["entries"]
        lines += [f"## 2. Build through the CLI ({b['seconds']:.1f} s wall, exit {b['returncode']}); "
                  f"`atlas render` {b['render_site']['seconds']:.1f} s (exit {b['render_site']['returncode']})", ""]
        for label, e in (("background writer", e), ("stored between batches", b["inline"]["entries"])):
            if e:
                lines.append(f"- {label}: {e['ok']}/{e['units']} units stored; rendering {e['render_seconds']} s "
                             f"({e['seconds_per_unit']} s/unit), render-and-store loop {e['loop_seconds']} s, "
                             f"on {e['device']}")
        for label, run in b.get("pictures", {}).items():
            e = run["entries"]
            if e:
                lines.append(f"- {label}: {e['ok']} images, {e['render_seconds'] / e['units']:.4f} s of rendering "
                             f"per image, render-and-store loop {e['loop_seconds']} s")
        lines.append("")
    for name, title in (("throughput-before", "3a. Throughput before issue 27 (eager steps, fp32 image side)"),
                        ("throughput", "3b. Throughput today (CUDA graphs, bf16 image side)")):
        if name in steps:
            lines += _throughput_lines(title, steps[name])
    if "throughput-before" in steps and "throughput" in steps:
        before, after = steps["throughput-before"]["measured"], steps["throughput"]["measured"]
        if before.get("projected_minutes") and after.get("projected_minutes"):
            lines += [f"Speed-up of the projected full atlas: {before['projected_minutes']:.1f} -> "
                      f"{after['projected_minutes']:.1f} min ({before['projected_minutes'] / after['projected_minutes']:.2f}x)", ""]
    for name, title in (("dissection", "4. Network dissection"), ("atlas", "5. Activation atlas"),
                        ("dictionary", "6. Dictionary of one layer")):
        if name in steps:
            lines += [f"## {title} ({steps[name]['seconds']:.0f} s, exit {steps[name]['returncode']})", "", "```",
                      *steps[name].get("summary", []), "```", ""]
    lines.append(f"Failed steps: {', '.join(report.get('failed', [])) or 'none'}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())

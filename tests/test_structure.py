"""The house reads top-down: no import cycles, no import from a lower layer to a higher one,
and `atlas render` of a finished cache never imports torch.

Every import counts, wherever it is written: at the top of a module, inside a
function (a lazy import) or under `if TYPE_CHECKING:`. The layers are the ones
the README describes; a module missing from `LAYERS` fails the test, so a new
module has to say where it belongs.
"""

from __future__ import annotations

import ast
import fnmatch
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "atlas"

# The features: one folder each, above everything they use, beside each other.
FEATURES = ("pictures", "examples", "caricatures", "circuits", "dissection", "activation_atlas", "two_photo", "dictionary")
# Bottom to top; each layer may import itself and the layers it names.
LAYERS: dict[str, tuple[list[str], set[str]]] = {
    "core": (["core", "core.*"], set()),
    "store": (["store", "store.*"], {"core"}),
    "site": (["site", "site.*"], {"core", "store"}),
    "model": (["model", "model.*"], {"core"}),
    "engine": (["engine", "engine.*"], {"core", "model"}),
    "data": (["data", "data.*"], {"core", "model"}),
    "plan": (["plan", "plan.*"], {"core", "store", "model"}),
    "features": ([f"{name}{tail}" for name in FEATURES for tail in ("", ".*")],
                 {"core", "store", "model", "engine", "data", "plan"}),
    "pipeline": (["pipeline", "pipeline.*"], {"core", "store", "site", "model", "engine", "data", "plan", "features"}),
    "cli": (["cli", "__main__", "__init__"], {"core", "store", "site", "model", "engine", "data", "plan", "features",
                                              "pipeline"}),
}


def modules() -> dict[str, Path]:
    """Dotted names below `atlas` (packages by their own name) -> file."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The atlas modules `name` imports, lazily or not, TYPE_CHECKING included."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name.removeprefix("atlas.") for alias in node.names if alias.name.startswith("atlas.")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1] + (node.module.split(".") if node.module else [])
            elif node.module and (node.module == "atlas" or node.module.startswith("atlas.")):
                base = node.module.split(".")[1:]
            else:
                continue
            base_name = ".".join(base)
            targets = [f"{base_name}.{alias.name}".strip(".") if f"{base_name}.{alias.name}".strip(".") in known
                       else base_name for alias in node.names]
        else:
            continue
        found |= {t for t in targets if t and t in known and t != name}
    return found


def layer_of(name: str) -> str:
    for layer, (patterns, _) in LAYERS.items():
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
            return layer
    raise AssertionError(f"atlas.{name} belongs to no layer: add it to LAYERS and to the README's layering paragraph")


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, result, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return result


def test_the_import_reader_sees_lazy_and_type_checking_imports(tmp_path):
    source = tmp_path / "a.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import x\n"
                      "def f():\n    from .c import y\n    import atlas.d\n")
    assert imports("a", source, {"a", "b", "c", "d"}) == {"b", "c", "d"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_in_a_cycle():
    assert cycles(graph()) == []


def test_no_module_imports_a_higher_layer():
    wrong = []
    for name, targets in graph().items():
        mine = layer_of(name)
        allowed = LAYERS[mine][1] | {mine}
        wrong += [f"atlas.{name} ({mine}) imports atlas.{t} ({layer_of(t)})"
                  for t in sorted(targets) if layer_of(t) not in allowed]
    assert wrong == []


def test_the_objective_registry_is_a_leaf_the_site_can_read():
    """`core.kinds` names every objective for the site, so it imports no torch and no engine."""
    assert graph()["core.kinds"] <= {"core.errors", "core.layouts", "core.units"}


BLOCK_TORCH = """
import importlib.abc, sys

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith(("torch.", "torchvision")):
            raise ImportError(f"torch is unavailable here ({name})")

sys.meta_path.insert(0, NoTorch())
from atlas.cli import main
try:
    main(["render", "--cache-dir", sys.argv[1], "--out", sys.argv[2]])
except SystemExit as exit:
    assert not [m for m in sys.modules if m == "torch" or m.startswith("torch.")], "torch was imported"
    raise
"""


def test_atlas_render_of_a_finished_cache_needs_no_torch(tmp_path):
    from sitefixture import make_cache

    make_cache(tmp_path / "cache")
    done = subprocess.run([sys.executable, "-c", BLOCK_TORCH, str(tmp_path / "cache"), str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "site:" in done.stdout
    pages = list((tmp_path / "site").rglob("*.html"))
    assert len(pages) > 20 and (tmp_path / "site" / "index.html").is_file()


def test_the_torch_blocker_does_block_torch(tmp_path):
    """The check above would pass vacuously if the blocker let torch through."""
    done = subprocess.run([sys.executable, "-c", BLOCK_TORCH.split("from atlas.cli")[0] + "import torch\n"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "torch is unavailable here" in done.stderr


@pytest.mark.parametrize("name", sorted(modules()))
def test_every_module_belongs_to_a_layer(name):
    layer_of(name)


def test_public_functions_take_more_than_four_parameters_by_keyword():
    """A long positional list is a call site nobody can read (or reorder safely): past the
    fourth, parameters are keyword-only. Click's commands are called by keyword and exempt."""
    long = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.name.startswith("_"):
                continue
            if any("command" in ast.unparse(d) for d in node.decorator_list):
                continue
            positional = [a.arg for a in node.args.posonlyargs + node.args.args if a.arg not in ("self", "cls")]
            if len(positional) > 4:
                long.append(f"atlas.{name}.{node.name}: {', '.join(positional)}")
    assert long == []


def test_no_module_is_longer_than_300_lines():
    """A module past 300 lines usually holds several jobs."""
    assert [f"atlas.{name}: {n}" for name, path in modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > 300] == []


def test_every_package_folder_is_installed():
    """pyproject lists the packages (templates live outside the tree): a folder it misses
    would be absent from a wheel, and only a clean install would notice."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join(("atlas",) + p.parent.relative_to(PACKAGE).parts).rstrip(".")
               for p in PACKAGE.rglob("__init__.py")}
    assert folders <= listed and "atlas.templates" in listed


def test_every_template_the_site_names_exists_and_every_template_is_used():
    """The templates live beside the package, so the import graph never sees them: check them here."""
    import re

    site = "\n".join(p.read_text(encoding="utf-8") for p in (PACKAGE / "site").rglob("*.py"))
    templates = ROOT / "templates"
    texts = "\n".join(p.read_text(encoding="utf-8") for p in templates.glob("*.html"))
    named = set(re.findall(r'"([\w-]+\.(?:html|css|js))"', site)) | set(re.findall(r'(?:extends|import|include|from) "([\w-]+\.html)"', texts))
    files = {p.name for p in templates.iterdir() if p.suffix in (".html", ".css", ".js")}
    assert named - files == set()
    assert files - named == set()

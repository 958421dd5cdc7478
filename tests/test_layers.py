"""The layer map of docs/architecture.md, kept true: imports only go down, and no import cycle exists.

The import graph is read from the source with ``ast`` (module-level *and*
function-level imports, ``TYPE_CHECKING`` ones too), so a lazy import inside
a function cannot hide an upward dependency.  Each module of ``imtrans/``
belongs to one layer; an import may stay in its layer or go down, never up,
and the graph must have no cycle (inside a layer either).
"""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "imtrans"

# bottom to top; a module takes the layer of the first pattern that matches it
LAYERS: list[tuple[str, list[str]]] = [
    ("foundation", [
        "imtrans._version", "imtrans.errors", "imtrans.suggest", "imtrans.atomic", "imtrans.paths", "imtrans.hookspecs",
        "imtrans.registry", "imtrans.recipe_schema", "imtrans.engine", "imtrans.engine.runtime",
        "imtrans.engine.lock", "imtrans.engine.distributed",
    ]),
    ("formats", [
        "imtrans.recipe_refs", "imtrans.recipe_files", "imtrans.recipe", "imtrans.engine.checkpoint", "imtrans.provenance",
        "imtrans.statedict", "imtrans.data.imageio", "imtrans.data.download", "imtrans.zoo.fetch",
        "imtrans.translate.io", "imtrans.translate.video_codecs",
    ]),
    ("parts", [
        "imtrans.nets", "imtrans.nets.base", "imtrans.nets.blocks", "imtrans.nets.init", "imtrans.nets.generators",
        "imtrans.nets.norm_mode",
        "imtrans.nets.timm_unet", "imtrans.nets.discriminators", "imtrans.losses", "imtrans.augment",
        "imtrans.d_augment",
        "imtrans.data", "imtrans.data.*", "imtrans.eval.inception", "imtrans.eval.features", "imtrans.eval.weights",
        "imtrans.eval.metrics", "imtrans.eval.stats", "imtrans.zoo.catalogue",
    ]),
    # builds networks and loads weights into them: fine-tuning from the zoo, rebuilding from a
    # checkpoint, importing official weights (and the zoo's download + convert behind them)
    ("build", ["imtrans.build", "imtrans.nets.official", "imtrans.zoo", "imtrans.zoo.store", "imtrans.zoo.convert",
               "imtrans.zoo.hub", "imtrans.zoo.genfile"]),
    ("methods", ["imtrans.schemes", "imtrans.schemes.*", "imtrans.translate", "imtrans.translate.*"]),
    # zoo.push stages a run for the Hub (its samples, metrics and model card); zoo.publish writes a run's
    # generator file for a zoo entry
    ("applications", ["imtrans.engine.*", "imtrans.eval", "imtrans.eval.*", "imtrans.demo", "imtrans.demo.*",
                      "imtrans.check", "imtrans.zoo.push", "imtrans.zoo.card", "imtrans.zoo.publish"]),
    ("entry points", ["imtrans", "imtrans.__main__", "imtrans.cli", "imtrans.cli.*", "imtrans.plugins",
                      "imtrans.builtin"]),
]


def modules() -> dict[str, Path]:
    out = {}
    for p in sorted(ROOT.rglob("*.py")):
        parts = list(p.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def layer_of(module: str) -> int:
    for i, (_, patterns) in enumerate(LAYERS):
        if any(fnmatch.fnmatchcase(module, pat) for pat in patterns):
            return i
    raise AssertionError(f"module {module} has no layer: add it to LAYERS here and to docs/architecture.md")


def _target(name: str, mods: dict[str, Path]) -> str | None:
    """The imtrans module an imported dotted name lives in (its longest known prefix)."""
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str, path: Path, mods: dict[str, Path]) -> dict[str, int]:
    """imtrans modules that ``module`` imports anywhere in its source -> the line of the first such import."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(pkg + ([node.module] if node.module else []))
            # `from pkg import mod` imports the submodule; `from mod import name` the module itself
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
        for name in names:
            if name == "imtrans" or name.startswith("imtrans."):
                t = _target(name, mods)
                if t and t != module:
                    found.setdefault(t, node.lineno)
    return found


def graph() -> dict[str, dict[str, int]]:
    mods = modules()
    return {m: imports(m, p, mods) for m, p in mods.items()}


def find_cycle(g: dict[str, dict[str, int]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        stack.append(v)
        for w in sorted(g.get(v, {})):
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in state:
                found = visit(w)
                if found:
                    return found
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(g):
        if v not in state:
            found = visit(v)
            if found:
                return found
    return None


def test_every_module_has_a_layer():
    for m in modules():
        layer_of(m)


def test_no_import_goes_up_a_layer():
    g, mods = graph(), modules()
    bad = []
    for m, targets in g.items():
        for t, line in targets.items():
            if layer_of(t) > layer_of(m):
                bad.append(f"{mods[m].relative_to(ROOT.parent)}:{line}: {m} ({LAYERS[layer_of(m)][0]}) imports "
                           f"{t} ({LAYERS[layer_of(t)][0]})")
    assert not bad, "imports that go up a layer:\n" + "\n".join(bad)


def test_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_package_root_imports_only_foundation_at_module_level():
    # every `import imtrans.x` runs imtrans/__init__.py first: what it imports at module level is
    # imported by every module, so it must be foundation (its functions may reach higher: they are entry points)
    mods = modules()
    tree = ast.parse((ROOT / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("imtrans"):
            assert layer_of(_target(node.module, mods)) == 0, f"imtrans/__init__.py imports {node.module} at module level"


def test_only_entry_points_load_plugins():
    entry = len(LAYERS) - 1
    callers = []
    for m, p in modules().items():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                if name == "load_plugins" and layer_of(m) != entry:
                    callers.append(f"{m}:{node.lineno}")
    assert not callers, "load_plugins() called below the entry points: " + ", ".join(callers)


def test_the_checker_sees_function_level_and_relative_imports(tmp_path):
    # the checker itself can fail: a function-level upward import and a cycle are found
    mods = {"imtrans.a": tmp_path / "a.py", "imtrans.b": tmp_path / "b.py"}
    mods["imtrans.a"].write_text("def f():\n    from imtrans.b import thing\n")
    mods["imtrans.b"].write_text("from . import a\n")
    g = {m: imports(m, p, mods) for m, p in mods.items()}
    assert g == {"imtrans.a": {"imtrans.b": 2}, "imtrans.b": {"imtrans.a": 1}}
    assert find_cycle(g) == ["imtrans.a", "imtrans.b", "imtrans.a"]
    with pytest.raises(AssertionError, match="has no layer"):
        layer_of("imtrans.nowhere")

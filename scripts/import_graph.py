"""Check the import graph of the project's own modules: no circles, and every import goes down the layers.

    python scripts/import_graph.py            # globe/, pipelines/; exit 1 on a circle or a layer breach
    python scripts/import_graph.py --show     # also print every module's imports and its layer

Every `import` counts, the ones inside functions too: a lazy import only hides a circle (or a
breach) until the day the two modules are imported in the other order (docs/architecture.md,
"Layers"). Imports under `if TYPE_CHECKING:` do not run and do not count. `from a.b import c` is an
edge to module `a.b.c` when that is a module, else to the package `a.b` (its `__init__`).

The layers are `LAYERS` below, lowest first; a module belongs to the layer of its longest matching
prefix, may import its own layer and the ones below, and nothing above. Nothing in `globe/` below the
CLI imports a front-end (`pipelines`, the old `components`, `globe.cli`, `globe.commands`), found
by name even where no such module exists.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOTS = ("globe", "pipelines")

# Lowest first. One line per layer: the module prefixes in it (the longest matching prefix wins).
LAYERS: list[tuple[str, ...]] = [
    # shared helpers, no project imports of their own (but images -> paths, s3)
    ("globe", "globe.io", "globe.jsonl", "globe.redact", "globe.paths", "globe.s3", "globe.images", "globe.prompts", "globe.k8s"),
    ("globe.geo",),  # offline geography
    ("globe.answer", "globe.scorer", "globe.consensus"),  # the one parser, the one scorer, the vote
    ("globe.model", "globe.engines"),  # loading a checkpoint; the Engine protocol and its kinds
    ("globe.data.records",),  # the dataset format every stage reads and writes
    ("globe.tiny",),  # the tiny world: world, GeoScenes, scene reader, tiny model, tokenizer, teacher server
    ("globe.data", "globe.faithfulness", "globe.config"),  # import, distill, verify; config (presets name the tiny world)
    ("globe.rewards", "globe.evaluate", "globe.serve", "globe.mlflow_registry", "globe.lineage"),
    ("globe.train",),  # the stage runner: plans, SFT, reward model, GRPO, ablation
    ("globe.kfp",),  # the pipeline: step functions, components, the DAG, build, run, submit
    ("globe.commands", "globe.cli", "globe.__main__", "pipelines"),  # front-ends
]
FRONT_ENDS = ("pipelines", "components", "globe.cli", "globe.commands")  # never imported from globe/ below the CLI


def modules(repo: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under the roots (packages by `__init__`)."""
    out: dict[str, Path] = {}
    for root in ROOTS:
        for path in sorted((repo / root).rglob("*.py")):
            parts = list(path.relative_to(repo).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, here: str, is_package: bool):
    """The dotted names a module imports (absolute; relative imports resolved against `here`)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".") if is_package else here.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield base, alias.name
        stack.extend(ast.iter_child_nodes(node))


def graph(repo: Path, raw: dict[str, set[str]] | None = None) -> dict[str, set[str]]:
    """module -> the project modules it imports (`raw`, when given, gets every imported name too)."""
    known = modules(repo)
    edges: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for base, member in _imports(tree, name, path.name == "__init__.py"):
            if raw is not None:
                raw.setdefault(name, set()).add(f"{base}.{member}" if member else base)
            target = f"{base}.{member}" if member and f"{base}.{member}" in known else base
            while target and target not in known:  # `import globe.x.y` of a name inside a module
                target = target.rpartition(".")[0]
            if target and target != name:
                edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:  # iterative: deep chains must not hit the recursion limit
        nonlocal counter
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for name in sorted(edges):
        if name not in index:
            visit(name)
    return sorted(found)


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layer_of(name: str) -> int | None:
    """The index in LAYERS of `name`'s longest matching prefix (the package `globe`
    matches only itself, so a new package is in no layer until it is placed); None when none does."""
    best: tuple[int, int] | None = None
    for level, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            hit = name == prefix if prefix == "globe" else _within(name, prefix)
            if hit and (best is None or len(prefix) > best[0]):
                best = (len(prefix), level)
    return None if best is None else best[1]


def layer_breaches(edges: dict[str, set[str]], raw: dict[str, set[str]]) -> list[str]:
    """Every import that goes up the layers or reaches a front-end, and every module with no layer."""
    found = [f"{m}: in no layer (add its package to LAYERS in scripts/import_graph.py)" for m in sorted(edges) if layer_of(m) is None]
    cli = layer_of("globe.cli")
    for name in sorted(edges):
        here = layer_of(name)
        if here is None:
            continue
        for target in sorted(edges[name]):
            there = layer_of(target)
            if there is not None and there > here:
                found.append(f"{name} (layer {here}) imports {target} (layer {there})")
        if here < cli:
            fronts = {i for i in raw.get(name, ()) if any(_within(i, f) for f in FRONT_ENDS)}
            found += [f"{name} imports the front-end {i}" for i in sorted(fronts)]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--show", action="store_true", help="print every module's project imports")
    args = parser.parse_args(argv)
    raw: dict[str, set[str]] = {}
    edges = graph(args.repo, raw)
    if args.show:
        for name in sorted(edges):
            print(f"{name} [{layer_of(name)}]: {', '.join(sorted(edges[name])) or '-'}")
    breaches = layer_breaches(edges, raw)
    for breach in breaches:
        print(f"layer breach: {breach}")
    found = cycles(edges)
    for component in found:
        inner = {m: sorted(edges[m] & set(component)) for m in component}
        print("import circle: " + "; ".join(f"{m} -> {', '.join(t)}" for m, t in inner.items()))
    print(f"{len(edges)} modules, {sum(map(len, edges.values()))} imports, {len(found)} import circles, "
          f"{len(breaches)} layer breaches")
    return 1 if found or breaches else 0


if __name__ == "__main__":
    sys.exit(main())

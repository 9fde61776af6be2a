"""The package's layers point one way, and no module imports another that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "lib" / "spark_sentiment"
# Lowest first. A sub-package may import its own modules and those of lower layers only; the three jobs
# (one layer) never import each other.
LAYERS = [["core"], ["config"], ["io"], ["model"], ["inference"], ["monitoring"], ["training", "scoring", "validation"]]
RANK = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every spark_sentiment module ``path`` imports, at module level or inside functions."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{alias.name}" for alias in node.names]
            found.update(
                n if (PACKAGE.parent / Path(*n.split("."))).is_dir() or _is_module(n) else target for n in names
            )
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m.startswith("spark_sentiment.")}


def _is_package(dotted: str) -> bool:
    return (PACKAGE.parent / Path(*dotted.split("."))).is_dir()


def _is_module(dotted: str) -> bool:
    return (PACKAGE.parent / Path(*dotted.split("."))).with_suffix(".py").is_file()


def unit(module: str) -> str:
    return module.split(".")[1]


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


def test_every_sub_package_has_a_layer():
    units = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert units == set(RANK), f"assign these to a layer: {units ^ set(RANK)}"
    assert [p.name for p in PACKAGE.glob("*.py")] == ["__init__.py"], "modules belong in a layer's folder"


def test_imports_only_point_down():
    wrong = []
    for module, targets in graph().items():
        for target in targets:
            a, b = unit(module), unit(target)
            if a != b and RANK[b] >= RANK[a]:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports that point up or sideways:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles_between_modules():
    edges = graph()
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for target in sorted(edges.get(node, ())):
            if target not in edges:
                continue
            if state.get(target) == "open":
                cycles.append(" -> ".join(stack[stack.index(target) :] + [target]))
            elif target not in state:
                visit(target, stack + [target])
        state[node] = "done"

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_checker_sees_a_violation():
    """The checks above would catch an upward import (guards against a checker that sees nothing)."""
    found = graph()
    assert "spark_sentiment.io.delta" in found["spark_sentiment.scoring.job"]
    assert any(t.startswith("spark_sentiment.core") for t in found["spark_sentiment.io.tables"])
    assert RANK[unit("spark_sentiment.scoring.job")] > RANK[unit("spark_sentiment.io.delta")]

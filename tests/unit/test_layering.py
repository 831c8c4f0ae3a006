"""The house drawn from the imports: core -> device / cloud / training / stand-ins. The core (hybrid_router) imports
none of the others, anywhere; the device (edge_client) never imports the training tools or the stand-in cloud when
it loads (the CLI reaches `label`, `train` and `stack` lazily, inside their commands)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "layers" / "router" / "hybrid_router"
DEVICE = REPO / "edge_client"


def imported(path: Path, module_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def offending(folder: Path, forbidden: tuple[str, ...], module_level_only: bool) -> dict[str, list[str]]:
    found = {}
    for path in sorted(folder.rglob("*.py")):
        bad = sorted(n for n in imported(path, module_level_only) if n.split(".")[0] in forbidden)
        if bad:
            found[str(path.relative_to(REPO))] = bad
    return found


def test_the_core_imports_no_device_training_or_stand_in_code() -> None:
    assert offending(CORE, ("edge_client", "router_training", "local_stack"), module_level_only=False) == {}


def test_the_device_loads_without_the_training_tools_or_the_stand_ins() -> None:
    assert offending(DEVICE, ("router_training", "local_stack"), module_level_only=True) == {}


PRODUCT = ("layers/router/hybrid_router", "edge_client", "functions", "local_stack", "router_training")
LONGEST_FUNCTION = 80  # lines: a function a reader takes in on one screen


def test_no_product_function_is_longer_than_a_screen() -> None:
    long = []
    for folder in PRODUCT:
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = (node.end_lineno or node.lineno) - node.lineno + 1
                    if lines > LONGEST_FUNCTION:
                        long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []


def test_the_training_tools_import_no_circle() -> None:
    modules = {path.stem: path for path in (REPO / "router_training").glob("*.py")}
    graph = {
        name: {m.split(".")[1] for m in imported(path, module_level_only=False) if m.startswith("router_training.")}
        for name, path in modules.items()
    }

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, set()) - seen:
            if nxt == goal or reaches(nxt, goal, seen | {nxt}):
                return True
        return False

    assert sorted(name for name in graph if reaches(name, name, set())) == []

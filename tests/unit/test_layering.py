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

"""The house: every module imports only from the layers below its own, and
docs/architecture.md names every module."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "prdarts_jax"

LAYERS = (
    {"errors"},
    {"space"},
    {"kernels"},
    {"models"},
    {"optim"},
    {"data"},
    {"runtime"},
    {"loops"},
    {"search", "train"},
    {"analysis"},
    {"grid"},
    {"ablation"},
    {"evaluate", "report", "collect", "ablate"},
)
"""Rooms from the bottom up; a room may import its own modules and any room of a lower layer.
Rooms in one layer (search, train) do not import each other."""

CLI_FILES = {"cli.py", "__main__.py"}
"""A sub-package's command line sits above everything (it starts the process)."""


def _modules() -> list[pathlib.Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _layer(room: str) -> int:
    for i, rooms in enumerate(LAYERS):
        if room in rooms:
            return i
    raise AssertionError(f"room {room!r} is in no layer: add it to LAYERS and the docs")


def _imports(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "prdarts_jax":
                names.update(f"prdarts_jax.{a.name}" for a in node.names)
            elif node.module.startswith("prdarts_jax."):
                names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("prdarts_jax."))
    return names


def test_every_room_has_a_layer():
    rooms = {_room(_name(p)) for p in _modules()} - {None}
    for room in rooms:
        _layer(room)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    module = _name(path)
    room = _room(module)
    if room is None or path.name in CLI_FILES:
        return
    upward = [dep for dep in _imports(path)
              if _room(dep) != room and _layer(_room(dep)) >= _layer(room)]
    assert not upward, f"{module} imports from its own layer or above: {upward}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_models_reach_the_kernels(path):
    room = _room(_name(path))
    if room in ("kernels", "models"):
        return
    kernels = [dep for dep in _imports(path) if _room(dep) == "kernels"]
    assert not kernels, f"{_name(path)} imports {kernels}: choose formulations via models"


def test_architecture_doc_names_every_module():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    missing = [str(p.relative_to(PACKAGE)) for p in _modules()
               if p.name != "__init__.py" and str(p.relative_to(PACKAGE)) not in doc]
    assert not missing, f"docs/architecture.md does not name: {missing}"


MAX_FUNCTION_LINES = 60
"""A function does one thing: none in the package is longer (docstring included)."""


def test_no_function_is_longer_than_sixty_lines():
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({lines})")
    assert not long, f"split these functions: {long}"

"""Rules of the house that a test can check: lazy torch, UI-free core, one entry point."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest


def _modules_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.parametrize("module", ["dgterm", "dgterm.cli", "dgterm.engine", "dgterm.editor", "dgterm.config",
                                    "dgterm.editor.structure", "dgterm.commands.bench"])
def test_import_loads_no_torch(module):
    assert "torch" not in _modules_after_import(module)


@pytest.mark.parametrize(
    "module",
    ["dgterm.engine", "dgterm.engine.tasks", "dgterm.engine.local.denoise", "dgterm.engine.local.loading",
     "dgterm.training.recipe", "dgterm.engine.remote.client", "dgterm.engine.remote.run", "dgterm.engine.local.batch",
     "dgterm.server.app", "dgterm.editor", "dgterm.editor.document"],
)
def test_core_imports_no_ui_library(module):
    loaded = _modules_after_import(module)
    assert not {"textual", "rich", "prompt_toolkit"} & loaded


def test_cli_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "dgterm.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for name in ("open", "repl", "generate", "infill", "bench", "doctor", "quantize", "train", "serve", "lsp"):
        assert name in out.stdout


def test_unknown_flag_is_one_message_and_exit_2():
    out = subprocess.run([sys.executable, "-m", "dgterm.cli", "generate", "x", "--no-such-flag"],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert "unrecognized arguments: --no-such-flag" in out.stderr
    assert "Traceback" not in out.stderr


# ---------------------------------------------------------------- the module graph, read from the source
# Every import counts, the ones inside functions too: a lazy import is still a dependency.

ROOT = Path(__file__).resolve().parents[1]


def _modules() -> dict[str, Path]:
    found = {}
    for f in (ROOT / "dgterm").rglob("*.py"):
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = f
    return found


MODULES = _modules()


def _type_only(tree) -> set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:`` (imports for annotations: never run)."""
    return {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
            and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
            for stmt in block.body for n in ast.walk(stmt)}


def _imports(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports (dgterm's by module, others by their top-level name);
    imports for type annotations only (``if TYPE_CHECKING:``) do not count."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_only(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            out.update(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names)
    return {m if m.startswith("dgterm") else m.split(".")[0] for m in out}


GRAPH = {name: _imports(name, path) - {name} for name, path in MODULES.items()}


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize("importer, imported", [
    ("dgterm.tui", "dgterm.commands"),  # front ends meet in the engine (dgterm.engine.args), not in each other
    ("dgterm.tui", "dgterm.cli"),
    ("dgterm.tui", "dgterm.repl"),
    ("dgterm.repl", "dgterm.cli"),
    ("dgterm.repl", "dgterm.commands"),
    ("dgterm.repl", "dgterm.tui"),
    ("dgterm.commands", "dgterm.cli"),
    ("dgterm.server", "dgterm.cli"),
    ("dgterm.server", "dgterm.commands"),
    ("dgterm.server", "dgterm.tui"),
    ("dgterm.server", "dgterm.repl"),
    ("dgterm.lsp", "dgterm.cli"), ("dgterm.lsp", "dgterm.commands"), ("dgterm.lsp", "dgterm.tui"),
    ("dgterm.lsp", "dgterm.repl"), ("dgterm.lsp", "dgterm.server"),
    ("dgterm.tui", "dgterm.lsp"), ("dgterm.repl", "dgterm.lsp"), ("dgterm.server", "dgterm.lsp"),
    ("dgterm.engine", "dgterm.lsp"), ("dgterm.editor", "dgterm.lsp"),
    ("dgterm.tui", "dgterm.server"),
    ("dgterm.repl", "dgterm.server"),
    ("dgterm.engine", "dgterm.server"),
    ("dgterm.engine", "dgterm.cli"),
    ("dgterm.engine", "dgterm.commands"),
    ("dgterm.engine", "dgterm.tui"),
    ("dgterm.engine", "dgterm.repl"),
    ("dgterm.engine", "dgterm.editor"),
    ("dgterm.editor", "dgterm.engine"),
    ("dgterm.editor", "dgterm.tui"),
    ("dgterm.editor", "dgterm.repl"),
    ("dgterm.editor", "torch"),
    ("dgterm.engine", "textual"), ("dgterm.engine", "rich"), ("dgterm.engine", "prompt_toolkit"),
    ("dgterm.editor", "textual"), ("dgterm.editor", "rich"), ("dgterm.editor", "prompt_toolkit"),
    ("dgterm.errors", "torch"), ("dgterm.config", "torch"),
    # inside the engine: tasks, output and the remote client run on any engine, never on the local runtime's parts
    ("dgterm.engine.tasks", "dgterm.engine.local"),
    ("dgterm.engine.output", "dgterm.engine.local"),
    ("dgterm.engine.remote", "dgterm.engine.local"),
    ("dgterm.engine.local", "dgterm.engine.remote"),
    ("dgterm.engine", "dgterm.training"),  # the recipe builds the bundled model; the runtime never needs it
])
def test_layering(importer, imported):
    wrong = sorted(f"{name} imports {target}" for name, targets in GRAPH.items() if _inside(name, importer)
                   for target in targets if _inside(target, imported))
    assert not wrong, wrong


def test_every_user_facing_error_has_one_root():
    from dgterm.editor import DocumentError
    from dgterm.errors import DgtermError, InputError, ModelLoadError, OutOfMemory

    assert all(issubclass(e, DgtermError) for e in (DocumentError, InputError, ModelLoadError, OutOfMemory))


def test_no_silent_broad_except():
    """``except Exception: pass`` loses a failure without a word; say what happened instead."""
    silent = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ExceptHandler) and (node.type is None or (
                    isinstance(node.type, ast.Name) and node.type.id in ("Exception", "BaseException"))):
                if all(isinstance(s, ast.Pass) for s in node.body):
                    silent.append(f"{name}:{node.lineno}")
    assert not silent, silent


def test_the_module_graph_has_no_cycles():
    """No two modules of dgterm reach each other through imports (lazy ones included)."""
    order, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        order[v] = low[v] = len(order)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(GRAPH[v] & GRAPH.keys()):
            if w not in order:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], order[w])
        if low[v] == order[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in order:
            visit(v)
    assert not cycles, cycles


def test_every_third_party_import_is_declared():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    imported_as = {"pyyaml": "yaml"}  # distributions whose module has another name
    declared = {imported_as.get(name, name) for name in (
        re.split(r"[<>=!~; \[]", d)[0].lower().replace("-", "_")
        for d in project["dependencies"] + project["optional-dependencies"]["quant"]
        + project["optional-dependencies"]["yaml"])}
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    used = {target for targets in GRAPH.values() for target in targets
            if not target.startswith("dgterm") and target not in stdlib}
    assert used - declared == set(), sorted(used - declared)
    assert project["requires-python"].startswith(">=3.11")  # tomllib


def test_no_module_is_over_450_lines():
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text(encoding="utf-8").splitlines())) > 450}
    assert not long, long


def test_the_engine_is_grouped_by_concern():
    """The contract at the top (at most 8 modules), the rest in subpackages named by concern."""
    top = [p.name for p in (ROOT / "dgterm" / "engine").glob("*.py")]
    assert len(top) <= 8, sorted(top)
    packages = {p.name for p in (ROOT / "dgterm" / "engine").iterdir() if (p / "__init__.py").exists()}
    assert packages == {"local", "remote", "tasks", "output"}, packages
    assert not [m for m in MODULES if _inside(m, "dgterm.engine") and ("recipe" in m or "corpus" in m)]


def test_every_package_folder_is_named_in_the_architecture_page():
    """docs/architecture.md describes the layout: a package folder it does not name is a stale page."""
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    folders = sorted(str(init.parent.relative_to(ROOT)) for init in (ROOT / "dgterm").rglob("__init__.py"))
    missing = [f for f in folders if f"{f.rpartition('/')[2]}/" not in page]
    assert not missing, f"docs/architecture.md does not name {missing}"


def test_engine_modules_stay_small_or_say_why():
    """A file of the engine over ~400 lines holds more than one concern, unless its docstring
    says why it must not be split ("Longer than 400 lines because ...")."""
    long = [name for name, path in MODULES.items() if _inside(name, "dgterm.engine")
            and len(path.read_text(encoding="utf-8").splitlines()) > 400
            and "Longer than 400 lines because" not in (ast.get_docstring(ast.parse(path.read_text())) or "")]
    assert not long, long


# ---------------------------------------------------------------- lint and types, part of the suite


@pytest.mark.slow
def test_ruff_is_clean():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "dgterm"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


@pytest.mark.slow
def test_mypy_is_clean():
    """mypy over dgterm/ (pyproject.toml's [tool.mypy]): the Engine protocol and its two engines included."""
    out = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", "/dev/null"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]

"""The package's shape: no import cycles (function-local imports included), every module importable on
its own, one reader of the environment, one importer of the alignment backends, text below the aligner,
and the timing values a leaf."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "f5_worker"
BACKENDS = {"f5_worker.alignment.sphinx", "f5_worker.alignment.sphinx_pool", "f5_worker.alignment.ctc",
            "f5_worker.alignment.dtw"}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(path: Path) -> set[str]:
    """Every f5_worker module ``path`` imports, at any depth of its code (function-local imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from f5_worker.alignment import espeak` imports the submodule espeak
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name.startswith("f5_worker"):
                found.add(name)
    if path.is_relative_to(PACKAGE):
        found.discard(module_name(path))
    return found


def import_graph() -> dict[str, set[str]]:
    graph = {name: imported_modules(path) for name, path in MODULES.items()}
    for name in list(graph):  # importing a.b.c runs a/__init__ and a/b/__init__ first
        parts = name.split(".")
        graph[name] |= {".".join(parts[:i]) for i in range(1, len(parts))} - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle_through_a_local_import(tmp_path):
    """The check below can fail: a function-local import that closes a loop is seen."""
    graph = import_graph()
    assert cycles(graph) == []
    module = tmp_path / "probe.py"
    module.write_text("def late():\n    from f5_worker.worker import Worker\n")
    graph["f5_worker.config"] = graph["f5_worker.config"] | imported_modules(module)
    assert any("f5_worker.config" in c and "f5_worker.worker" in c for c in cycles(graph))


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_every_module_imports_on_its_own():
    """Each module imported first, in a process where no other f5_worker module has run yet (third-party
    modules stay loaded between them, so the whole check takes one interpreter)."""
    program = """
import importlib, json, sys, traceback
failures = {}
for name in json.loads(sys.argv[1]):
    for loaded in [m for m in sys.modules if m == "f5_worker" or m.startswith("f5_worker.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failures[name] = traceback.format_exc(limit=3)
print(json.dumps(failures))
"""
    run = subprocess.run([sys.executable, "-c", program, json.dumps(sorted(MODULES))], capture_output=True, text=True,
                         cwd=REPO_ROOT, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == {}


def environment_reads(path: Path) -> list[int]:
    """Lines that read os.environ / os.getenv (writes to os.environ for a child process count too)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") and \
                isinstance(node.value, ast.Name) and node.value.id == "os":
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os" and \
                any(alias.name in ("environ", "getenv") for alias in node.names):
            lines.append(node.lineno)
    return lines


def test_config_is_the_only_reader_of_the_environment():
    readers = {name: environment_reads(path) for name, path in MODULES.items()}
    assert readers.pop("f5_worker.config"), "config.py reads the environment"
    assert {name: lines for name, lines in readers.items() if lines} == {}
    assert environment_reads(REPO_ROOT / "runpod_handler.py") == []


def test_only_the_selection_imports_the_alignment_backends():
    graph = import_graph()
    importers = {name for name, deps in graph.items() if deps & BACKENDS} - BACKENDS
    assert importers == {"f5_worker.alignment.selection"}
    # what every backend shares imports no other part of the aligner
    assert not graph["f5_worker.alignment.aligner"] & {n for n in MODULES if n.startswith("f5_worker.alignment.")}


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module that importing ``start`` runs, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for w in graph.get(todo.pop(), ()):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def text_reaching_the_aligner(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Modules of ``f5_worker.text`` that import any of ``f5_worker.alignment``, directly or through others."""
    return {name: found for name in graph if name == "f5_worker.text" or name.startswith("f5_worker.text.")
            if (found := {n for n in reachable(graph, name) if n.split(".")[:2] == ["f5_worker", "alignment"]})}


def test_the_check_of_the_text_layer_finds_an_import_of_the_aligner(tmp_path):
    """The check below can fail: a function-local import of the aligner, even through another module, is seen."""
    graph = import_graph()
    assert text_reaching_the_aligner(graph) == {}
    module = tmp_path / "probe.py"
    module.write_text("def late():\n    from f5_worker.alignment.quality import align_audio\n")
    graph["f5_worker.timed_text"] = graph["f5_worker.timed_text"] | imported_modules(module)
    assert "f5_worker.text.written_timings" in text_reaching_the_aligner(graph)


def test_text_is_below_the_aligner():
    """The aligner reads text (how each word is said, where words are); text never reads the aligner, so the
    two cannot come to depend on each other, and the text's rules run with no aligner loaded."""
    assert text_reaching_the_aligner(import_graph()) == {}


def test_the_timing_values_are_a_leaf():
    """``timed_text`` is passed through every layer, so it imports no f5_worker module and nothing outside
    the standard library: anything may use it without pulling in more."""
    path = MODULES["f5_worker.timed_text"]
    assert imported_modules(path) == set()
    imported = {alias.name for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module for node in ast.walk(ast.parse(path.read_text()))
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert {name.split(".")[0] for name in imported} <= set(sys.stdlib_module_names) | {"__future__"}


def test_the_request_schema_is_a_leaf():
    """Every front door parses requests with ``schema``, and modules below the actions read its bounds: it
    imports only the error type, the log helpers and ``limits`` (the bounds and vocabularies it shares with
    the modules that act on them), never the voices, captions, audio or model code. ``limits`` itself
    imports only the error type."""
    graph = import_graph()
    assert reachable(graph, "f5_worker.schema") <= {"f5_worker", "f5_worker.errors", "f5_worker.logs",
                                                    "f5_worker.limits"}
    assert reachable(graph, "f5_worker.limits") <= {"f5_worker", "f5_worker.errors", "f5_worker.logs"}

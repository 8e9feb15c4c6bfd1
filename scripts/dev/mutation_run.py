#!/usr/bin/env python3
"""For developers: mutation testing of the modules that carry the worker's promises.

Makes small, realistic changes to one module at a time (a comparison flipped or loosened, `and` for
`or`, a number off by one, a statement removed, a value returned as None) and runs the tests of that
module's concept against each. A mutant the tests still pass is a survivor: a behaviour nothing checks.
Coverage cannot show that; this can. The whole suite is too slow to run per mutant, so each module is
paired with its concept's test modules (MODULE_TESTS below).

Mutants are drawn at random from every candidate in the module, with a fixed seed, so a run can be
repeated; `--all` takes every candidate instead. Docstrings, log calls and the text of messages are
never mutated: changing them is not a behaviour.

Changes: nothing in the checkout. Each module is mutated in a temporary copy of the repository's tracked
files (removed afterwards); prints one line per mutant and a score per module, and with --json writes
the report to the named file.

usage examples:
  uv run python scripts/dev/mutation_run.py                      # every module, 12 mutants each
  uv run python scripts/dev/mutation_run.py -m dtw -n 30         # one module, 30 mutants
  uv run python scripts/dev/mutation_run.py -m script --list     # the candidates, nothing run
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# module (relative to the repository) -> the test modules of its concept
MODULE_TESTS = {
    "script": ("f5_worker/synthesis/script.py", ["tests/test_script.py"]),
    "joining": ("f5_worker/synthesis/joining.py", ["tests/test_joining.py"]),
    "chunking": ("f5_worker/tts/chunking.py", ["tests/test_streaming.py", "tests/test_sampler.py"]),
    "model_pool": ("f5_worker/tts/model_pool.py", ["tests/test_models.py"]),
    "dtw": ("f5_worker/alignment/dtw.py", ["tests/test_alignment_dtw.py", "tests/test_alignment_onsets.py"]),
    "onsets": ("f5_worker/alignment/onsets.py", ["tests/test_alignment_onsets.py"]),
    "quality": ("f5_worker/alignment/quality.py", ["tests/test_quality_gate.py", "tests/test_alignment.py",
                                                 "tests/test_synthesize.py"]),
    "voices": ("f5_worker/voices.py", ["tests/test_voices.py"]),
    "bucket": ("f5_worker/storage/bucket.py", ["tests/test_storage.py"]),
    "fetch": ("f5_worker/fetch.py", ["tests/test_fetch.py"]),
    "rewrite_rules": ("f5_worker/text/rewrite_rules.py", ["tests/test_normalize.py", "tests/test_script.py"]),
    "rewrite_patterns": ("f5_worker/text/rewrite_patterns.py", ["tests/test_normalize.py"]),
    "rewrite_scan": ("f5_worker/text/rewrite_scan.py", ["tests/test_rewrite_scan.py", "tests/test_normalize.py"]),
    "written_timings": ("f5_worker/text/written_timings.py", ["tests/test_written_timings.py", "tests/test_script.py"]),
}
DEFAULT_MUTANTS_PER_MODULE = 8
DEFAULT_SEED = 0
# a mutant's tests may take this many times the unmutated run (plus the slack, in seconds) before the
# mutant counts as caught by a hang
TIMEOUT_FACTOR = 3.0
TIMEOUT_SLACK_S = 60.0

COMPARE_SWAPS = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}
BINOP_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
               ast.FloorDiv: ast.Mult, ast.Mod: ast.FloorDiv}
LOG_NAMES = {"log", "logger", "logging", "warnings"}


@dataclass(frozen=True)
class Mutant:
    """One change: the source span [start, end) (as (line, column) pairs) replaced by ``text``."""

    line: int
    col: int
    end_line: int
    end_col: int
    text: str
    kind: str

    def describe(self, source: str) -> str:
        before = segment(source, self).replace("\n", " ")
        return f"line {self.line}: {self.kind}: {shorten(before)} -> {shorten(self.text)}"


def shorten(text: str, limit: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def offsets(source: str) -> list[int]:
    """The character offset at which each line starts (1-based lines; ast columns are UTF-8 bytes, so
    positions are taken on the encoded source)."""
    starts, total = [0, 0], 0
    for line in source.encode().splitlines(keepends=True):
        total += len(line)
        starts.append(total)
    return starts


def segment(source: str, m: Mutant) -> str:
    data, starts = source.encode(), offsets(source)
    return data[starts[m.line] + m.col: starts[m.end_line] + m.end_col].decode()


def apply(source: str, m: Mutant) -> str:
    data, starts = source.encode(), offsets(source)
    a, b = starts[m.line] + m.col, starts[m.end_line] + m.end_col
    return (data[:a] + m.text.encode() + data[b:]).decode()


def is_log_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    while isinstance(func, ast.Attribute):
        func = func.value
    return isinstance(func, ast.Name) and func.id in LOG_NAMES


def docstring_nodes(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                ids.add(id(body[0]))
    return ids


def at(node: ast.AST, text: str, kind: str) -> Mutant:
    return Mutant(node.lineno, node.col_offset, node.end_lineno, node.end_col_offset, text, kind)


def candidates(source: str) -> list[Mutant]:
    """Every mutant of the module that changes behaviour on purpose (each still parses)."""
    tree = ast.parse(source)
    skip = docstring_nodes(tree)
    found: list[Mutant] = []
    in_log = set()
    for node in ast.walk(tree):
        if is_log_call(node) or isinstance(node, (ast.JoinedStr, ast.Raise)):
            in_log.update(id(n) for n in ast.walk(node) if n is not node)
            if isinstance(node, ast.Raise):
                in_log.discard(id(node))

    for node in ast.walk(tree):
        if id(node) in in_log or id(node) in skip:
            continue
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in COMPARE_SWAPS:
            new = ast.Compare(node.left, [COMPARE_SWAPS[type(node.ops[0])]()], node.comparators)
            found.append(at(node, ast.unparse(new), "compare"))
        elif isinstance(node, ast.BoolOp):
            new = ast.BoolOp(ast.Or() if isinstance(node.op, ast.And) else ast.And(), node.values)
            found.append(at(node, f"({ast.unparse(new)})", "boolean"))
        elif isinstance(node, ast.BinOp) and type(node.op) in BINOP_SWAPS:
            new = ast.BinOp(node.left, BINOP_SWAPS[type(node.op)](), node.right)
            found.append(at(node, f"({ast.unparse(new)})", "arithmetic"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            found.append(at(node, f"({ast.unparse(node.operand)})", "negation dropped"))
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
            value = node.value + 1 if isinstance(node.value, int) else (node.value * 1.5 or 1.0)
            found.append(at(node, repr(value), "number"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
            found.append(at(node, repr(not node.value), "boolean constant"))
        elif isinstance(node, ast.Return) and node.value is not None \
                and not (isinstance(node.value, ast.Constant) and node.value.value is None):
            found.append(at(node, "return None", "return None"))
        elif isinstance(node, (ast.AugAssign, ast.Raise)) or (isinstance(node, ast.Expr)
                                                               and isinstance(node.value, ast.Call)
                                                               and not is_log_call(node.value)):
            found.append(at(node, "pass", "statement removed"))
    valid = []
    for m in sorted(set(found), key=lambda m: (m.line, m.col, m.kind, m.text)):
        try:
            ast.parse(apply(source, m))
        except SyntaxError:
            continue
        valid.append(m)
    return valid


def copy_checkout(dest: Path) -> None:
    """The tracked files and the untracked ones git does not ignore: what the tests import."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO_ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for rel in filter(None, (p.decode() for p in listed)):
        src = REPO_ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def run_tests(workdir: Path, tests: list[str], timeout_s: float | None) -> tuple[bool, float]:
    """(passed, seconds). A run past its timeout counts as a failure: the mutant hung something."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "CI": "1"}
    begun = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                               "-m", "not container and not baked", *tests],
                              cwd=workdir, env=env, capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return False, time.monotonic() - begun
    return proc.returncode == 0, time.monotonic() - begun


def mutate_module(name: str, count: int | None, seed: int, list_only: bool) -> dict:
    rel, tests = MODULE_TESTS[name]
    source = (REPO_ROOT / rel).read_text()
    pool = candidates(source)
    chosen = pool if count is None or count >= len(pool) else \
        sorted(random.Random(f"{seed}:{name}").sample(pool, count), key=lambda m: (m.line, m.col))
    print(f"== {rel}: {len(chosen)} of {len(pool)} candidate mutants; tests: {' '.join(tests)}", flush=True)
    if list_only:
        for m in chosen:
            print("   " + m.describe(source))
        return {"module": rel, "candidates": len(pool), "mutants": len(chosen)}
    with tempfile.TemporaryDirectory(prefix="f5-mutants-") as tmp:
        work = Path(tmp)
        copy_checkout(work)
        passed, baseline_s = run_tests(work, tests, None)
        if not passed:
            print(f"   the unmutated tests fail; {name} skipped", flush=True)
            return {"module": rel, "error": "the unmutated tests fail"}
        timeout_s = baseline_s * TIMEOUT_FACTOR + TIMEOUT_SLACK_S
        survivors, caught = [], 0
        for m in chosen:
            (work / rel).write_text(apply(source, m))
            survived, took = run_tests(work, tests, timeout_s)
            (work / rel).write_text(source)
            verdict = "SURVIVED" if survived else "caught"
            print(f"   {verdict:8} {took:6.1f} s  {m.describe(source)}", flush=True)
            if survived:
                survivors.append(m.describe(source))
            else:
                caught += 1
    score = caught / len(chosen) if chosen else 1.0
    print(f"   score {caught}/{len(chosen)} ({score:.0%})", flush=True)
    return {"module": rel, "candidates": len(pool), "mutants": len(chosen), "caught": caught,
            "survivors": survivors, "baseline_s": round(baseline_s, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-m", "--module", action="append", choices=sorted(MODULE_TESTS),
                        help="a module to mutate (repeatable; default: all of them)")
    parser.add_argument("-n", "--mutants", type=int, default=DEFAULT_MUTANTS_PER_MODULE,
                        help=f"mutants drawn per module (default {DEFAULT_MUTANTS_PER_MODULE})")
    parser.add_argument("--all", action="store_true", help="every candidate mutant, not a draw")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="the draw's seed")
    parser.add_argument("--list", action="store_true", help="print the chosen mutants and run nothing")
    parser.add_argument("--json", type=Path, help="also write the report to this file")
    args = parser.parse_args()
    reports = [mutate_module(name, None if args.all else args.mutants, args.seed, args.list)
               for name in (args.module or sorted(MODULE_TESTS))]
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2) + "\n")
    if not args.list:
        mutants = sum(r.get("mutants", 0) for r in reports if "caught" in r)
        caught = sum(r.get("caught", 0) for r in reports)
        print(f"total: {caught}/{mutants} caught", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

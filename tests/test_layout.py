"""The shape of the code itself: no import cycles between botkit's modules, and the command line
starts without the heavy libraries."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import botkit

ROOT = Path(botkit.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports_at_load(path: Path, name: str) -> set[str]:
    """The botkit modules ``path`` imports when it is loaded: module level, outside ``if TYPE_CHECKING:``
    (imports inside functions run later, on use, and cannot make a cycle at load)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for child in [node] if not isinstance(node, ast.Try) else node.body:
            if isinstance(child, ast.Import):
                found |= {alias.name for alias in child.names}
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - child.level + 1] + ([base] if base else []))
                found.add(base)
                found |= {f"{base}.{alias.name}" for alias in child.names}
    return {m for m in found if m == "botkit" or m.startswith("botkit.")}


def _files() -> dict[str, Path]:
    """Every botkit module by name, the plugins in bots/ and sources/ included (botkit/bots, botkit/sources: links)."""
    paths = [Path(folder, f) for folder, _, names in os.walk(ROOT, followlinks=True) for f in names if f.endswith(".py")]
    return {_module_name(p): p for p in paths}


def _graph() -> dict[str, set[str]]:
    files = _files()
    return {name: {m for m in _imports_at_load(path, name) if m in files and m != name} for name, path in files.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()

    def visit(node: str, stack: list[str]) -> list[str] | None:
        if node in stack:
            return stack[stack.index(node) :] + [node]
        if node in done:
            return None
        for nxt in sorted(graph[node]):
            found = visit(nxt, [*stack, node])
            if found:
                return found
        done.add(node)
        return None

    for start in sorted(graph):
        found = visit(start, [])
        if found:
            return found
    return None


def test_the_sources_and_bots_are_ordinary_subpackages() -> None:
    graph = _graph()
    assert {"botkit.bots.ledger", "botkit.sources.reddit", "botkit.commands.bots", "botkit.training"} <= set(graph)
    assert "botkit.training" in graph["botkit.bots.spec"] and "botkit.bots.targets" in graph["botkit.bots.targets.reddit"]  # the edges are seen


def test_no_module_is_over_500_lines() -> None:
    """A module a newcomer reads in one sitting: one past 500 lines is two rooms (split it, as bots/ledger/ was)."""
    lengths = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in _files().items()}
    assert {name: n for name, n in lengths.items() if n > 500} == {}
    assert lengths["botkit.bots.ledger.claims"] > 100  # the walk reaches the linked folders' subpackages


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]


def test_no_module_imports_itself_back_at_load() -> None:
    # A package importing its own submodules in __init__ is how packages are made, not a cycle.
    graph = {name: {m for m in deps if not m.startswith(name + ".")} for name, deps in _graph().items()}
    assert _cycle(graph) is None


def test_the_command_line_starts_without_the_heavy_libraries() -> None:
    code = "import sys, botkit.cli; botkit.cli.build_parser(); print(sorted(m for m in ('tensorflow', 'keras', 'praw', 'pandas', 'uvicorn', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_model_folder_is_read_without_tensorflow(tmp_path: Path) -> None:
    """The console, the config checks and the filters learn what a model folder holds from its
    config.json alone (:mod:`botkit.model_folder`), without the seconds TensorFlow takes to load."""
    (tmp_path / "config.json").write_text('{"family": "transformer", "training": {"conditional": false, "corpus": ["c.txt"]}}', encoding="utf-8")
    code = (
        "import sys; from botkit import model_folder; import botkit.bots.spec; "
        f"print(model_folder.is_transformer({str(tmp_path)!r}), model_folder.training({str(tmp_path)!r})['corpus'], "
        "model_folder.resolve('base').name, 'tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "['c.txt']", "base", "False"]

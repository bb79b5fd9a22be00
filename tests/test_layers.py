"""Imports go one way: pages -> ui -> rag -> the libraries; and inside rag, each folder imports only from the
folders below it. Read from the source (every import statement, function-local ones included), so a new import that
points upwards fails here before it becomes a circle."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from tests.conftest import REPO

# From the bottom up; a module may import from its own layer and the layers before it.
RAG_LAYERS = [
    ("base", ["rag.settings", "rag.results", "rag.errors", "rag.text", "rag.files"]),
    ("encoders", ["rag.encoders"]),
    ("retrieval", ["rag.retrieval"]),
    ("documents and answers", ["rag.documents", "rag.answers"]),
    ("history and evaluation", ["rag.history", "rag.evaluation"]),
    ("entry points", ["rag.pipeline", "rag.compare", "rag.doctor", "rag.cli", "rag.cli_conversations",
                      "rag.__main__", "rag"]),
]
OURS = ("rag", "ui", "pages", "app", "ollama_standin", "tests", "bench", "scripts")


def module_name(path: Path, root: Path = REPO) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, root: Path = REPO) -> set[str]:
    """Every module `path` imports, as absolute names; `from x import y` counts as x.y as well as x."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def layer_of(module: str) -> int | None:
    """The layer of a rag module, or None where it is in none (the longest matching name wins)."""
    matches = [(len(prefix), index) for index, (_, prefixes) in enumerate(RAG_LAYERS) for prefix in prefixes
               if module == prefix or (prefix != "rag" and module.startswith(prefix + "."))]
    return max(matches)[1] if matches else None


def upward_imports(root: Path = REPO) -> list[str]:
    found = []
    for path in sorted((root / "rag").rglob("*.py")):
        own = layer_of(module_name(path, root))
        for target in sorted(imported(path, root)):
            if target.split(".")[0] == "rag" and (layer_of(target) or 0) > own:
                found.append(f"{module_name(path, root)} ({RAG_LAYERS[own][0]}) imports {target} "
                             f"({RAG_LAYERS[layer_of(target)][0]})")
    return found


def files(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def test_every_rag_module_has_a_layer():
    assert [module_name(p) for p in files("rag") if layer_of(module_name(p)) is None] == []


def test_rag_modules_import_only_from_their_layer_and_below():
    assert upward_imports() == []


def test_an_import_that_points_upwards_is_found(tmp_path):
    for name, source in (("settings.py", "from .retrieval import store\n"),
                         ("retrieval/store.py", "def later():\n    from ..pipeline import Pipeline\n"),
                         ("retrieval/__init__.py", ""), ("pipeline.py", "from .retrieval.store import Store\n")):
        (tmp_path / "rag" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "rag" / name).write_text(source)
    assert upward_imports(tmp_path) == [
        "rag.retrieval.store (retrieval) imports rag.pipeline (entry points)",
        "rag.retrieval.store (retrieval) imports rag.pipeline.Pipeline (entry points)",
        "rag.settings (base) imports rag.retrieval (retrieval)",
        "rag.settings (base) imports rag.retrieval.store (retrieval)"]


def test_rag_never_imports_streamlit_or_the_app_or_the_stand_in():
    wrong = {f"{module_name(p)} imports {t}" for p in files("rag") for t in imported(p)
             if t.split(".")[0] in {"streamlit", *OURS} - {"rag"}}
    assert wrong == set()


def test_ui_never_imports_the_pages_and_the_pages_only_ui_and_streamlit():
    assert {f"{module_name(p)} imports {t}" for p in files("ui") for t in imported(p)
            if t.split(".")[0] in {"pages", "app"}} == set()
    allowed = {"streamlit", "ui", "__future__"} | set(sys.stdlib_module_names)
    assert {f"{module_name(p)} imports {t}" for p in files("pages") for t in imported(p)
            if t.split(".")[0] not in allowed} == set()

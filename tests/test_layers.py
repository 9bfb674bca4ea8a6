"""The architecture, checked: layers import only layers below them, idgen/ and recommender/ never meet, the
algorithms stay pure (no Ray, DeepSpeed or file I/O), and nobody imports another package's private names.

    infra < catalog < seq2seq < idgen | recommender < eval < pretrain < cluster     (bench/ and tests/ on top)
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = {"infra": 0, "catalog": 1, "seq2seq": 2, "idgen": 3, "recommender": 3, "eval": 4, "pretrain": 5,
          "cluster": 6}
# the paper's algorithms, as pure functions on tensors and lists
ALGORITHMS = ["seq2seq/beam_search.py", "seq2seq/decoder.py", "idgen/algorithm1.py", "recommender/trie.py",
              "recommender/decode.py", "eval/metrics.py"]
IO_IMPORTS = {"ray", "deepspeed", "pyarrow", "webdataset", "shutil", "tempfile", "pickle"}
IO_CALLS = {"open", "read_text", "write_text", "read_bytes", "write_bytes", "mkdir", "unlink", "rmtree", "load",
            "dump", "save", "save_pretrained", "from_pretrained"}


def imports(tree: ast.AST) -> list[tuple[str, list[str], int]]:
    """(module, names imported from it, line) of every absolute import, also inside functions."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module, [a.name for a in node.names], node.lineno))
    return out


def violations(source: str, path: str) -> list[str]:
    """Every broken rule in one file (``path`` relative to the repo, e.g. ``eval/report.py``)."""
    tree, package = ast.parse(source), path.split("/")[0]
    found = []
    for module, names, line in imports(tree):
        top = module.split(".")[0]
        if top in LAYERS and package in LAYERS and top != package and LAYERS[top] >= LAYERS[package]:
            found.append(f"{path}:{line}: {package} (layer {LAYERS[package]}) imports {module} (layer {LAYERS[top]})")
        if top in LAYERS and top != package and any(n.startswith("_") for n in names):
            found.append(f"{path}:{line}: imports private {[n for n in names if n.startswith('_')]} from {module}")
        if path in ALGORITHMS and top in IO_IMPORTS:
            found.append(f"{path}:{line}: algorithm module imports {module}")
    if path in ALGORITHMS:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
                if name in IO_CALLS:
                    found.append(f"{path}:{node.lineno}: algorithm module does I/O ({name})")
    return found


def sources() -> list[Path]:
    return sorted(p for d in (*LAYERS, "bench", "tests") for p in (REPO / d).rglob("*.py"))


def test_the_tree_keeps_its_layers():
    found = [v for p in sources() for v in violations(p.read_text(), str(p.relative_to(REPO)))]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("path, source, rule", [
    ("recommender/decode.py", "from idgen.proposer import Proposer", "layer 3) imports idgen.proposer"),
    ("idgen/tags.py", "import recommender.prompts", "imports recommender.prompts"),
    ("catalog/text.py", "def f():\n    from eval.metrics import hit", "catalog (layer 1) imports eval.metrics"),
    ("infra/atomic.py", "from catalog.store import Catalog", "infra (layer 0) imports catalog.store"),
    ("eval/metrics.py", "import ray", "algorithm module imports ray"),
    ("idgen/algorithm1.py", "def f(p):\n    return open(p).read()", "algorithm module does I/O (open)"),
    ("recommender/trie.py", "def f(p):\n    p.write_text('x')", "does I/O (write_text)"),
    ("bench/gpu_run.py", "from cluster.idjob import _table", "imports private ['_table'] from cluster.idjob"),
])
def test_each_rule_catches_its_violation(path, source, rule):
    assert any(rule in v for v in violations(source, path)), violations(source, path)


def test_no_test_hooks_in_production_code():
    hooks = [str(p) for d in LAYERS for p in (REPO / d).rglob("*.py") if "IDGENREC_TEST_" in p.read_text()]
    assert not hooks

"""The import graph of ``sew_fairseq/`` and ``manifests/``: no circle, and no arrow from a lower layer to a higher one.

Every ``import`` / ``from ... import`` statement counts, those inside functions too (a lazy import is still a
dependency). The layer order is written once, in :data:`LAYERS`; a module belongs to the layer of the longest
prefix that names it.
"""
import ast
from pathlib import Path
from typing import Dict, List, Set

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("manifests", "sew_fairseq")

#: lowest first; a module may import its own layer and the layers before it
LAYERS: List[List[str]] = [
    # the light layer (no torch, no fairseq): corpus builders, audio, atomic writes, manifest checks, lexicons, ARPA
    # LMs, error rates, trn / sclite scoring, training logs
    ["manifests"],
    ["sew_fairseq.decoding"],  # log-probabilities -> text and word times (no model)
    ["sew_fairseq.hardware_probes"],  # what this machine's CPU has (torch, no fairseq)
    # checkpoint formats the models themselves read (the allow-listed loader, fairseq hubert_ctc as sew_ctc)
    ["sew_fairseq.checkpoints.safe_load", "sew_fairseq.checkpoints.hubert_ctc"],
    ["sew_fairseq.compat"],  # fairseq fixes
    ["sew_fairseq.modules"],  # paper components
    ["sew_fairseq.models"],  # registered models
    ["sew_fairseq.tasks", "sew_fairseq.criterions"],
    ["sew_fairseq"],  # the package: registers everything with fairseq
    ["sew_fairseq.checkpoints"],  # every other checkpoint read or written, conversions
    ["sew_fairseq.engines"],  # waves -> log-probabilities
    ["sew_fairseq.transcribe", "sew_fairseq.evaluate", "sew_fairseq.align"],  # the user-facing jobs
    ["sew_fairseq.bench"],  # benchmark library code
    ["sew_fairseq.cli"],  # argparse and printing
]


def module_files() -> Dict[str, Path]:
    files = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            files[name[: -len(".__init__")] if name.endswith(".__init__") else name] = path
    return files


def imports_of(name: str, path: Path, modules: Set[str]) -> Set[str]:
    """The project modules ``name`` imports (``from pkg import mod`` counts as ``pkg.mod`` when that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        for target in targets:
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in modules and target != name:
                found.add(target)
    return found


def layer_of(module: str) -> int:
    best, layer = -1, None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, layer = len(prefix), index
    assert layer is not None, f"{module} is in no layer of LAYERS: add it"
    return layer


def graph() -> Dict[str, Set[str]]:
    files = module_files()
    return {name: imports_of(name, path, set(files)) for name, path in files.items()}


def test_the_checker_sees_imports():
    g = graph()
    assert "sew_fairseq.engines.base" in g["sew_fairseq.engines.torch_engine"]  # from .base import ...
    assert "manifests.audio" in g["sew_fairseq.transcribe.transcriber"]  # from manifests.audio import ...
    assert "sew_fairseq.checkpoints.ctc" in g["sew_fairseq.engines"]  # inside load_engine
    assert layer_of("sew_fairseq.checkpoints.plugin") > layer_of("sew_fairseq") > layer_of("sew_fairseq.models.sew")
    assert layer_of("sew_fairseq.checkpoints.safe_load") < layer_of("sew_fairseq.compat.checkpoint_weights_only")


def test_no_upward_import():
    upward = [f"{a} (layer {layer_of(a)}) imports {b} (layer {layer_of(b)})"
              for a, targets in sorted(graph().items()) for b in sorted(targets) if layer_of(b) > layer_of(a)]
    assert not upward, "\n".join(upward)


def test_no_import_circle():
    g = graph()
    state: Dict[str, int] = {}  # 1 on the stack, 2 done
    circles = []

    def visit(node: str, stack: List[str]) -> None:
        state[node] = 1
        for nxt in sorted(g[node]):
            if state.get(nxt) == 1:
                path = stack[stack.index(nxt):] if nxt in stack else []
                circles.append(" -> ".join(path + [node, nxt]))
            elif nxt not in state:
                visit(nxt, stack + [node])
        state[node] = 2

    for node in sorted(g):
        if node not in state:
            visit(node, [])
    assert not circles, "\n".join(circles)


def test_modules_stay_short():
    long = [f"{path.relative_to(ROOT)}: {n} lines" for path in module_files().values()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > 500]
    assert not long, "\n".join(long)

"""The dependency rule of the README's layout table ("layers are folders and imports point down only"), read
from the code's own imports (every ``import``, also those inside functions and under ``TYPE_CHECKING``):

    cli -> commands -> training -> (loading, evaluate) -> (hf, metrics) -> data -> tokenizer -> model -> noising

``LAYERS`` below is the table the README's layout map shows. An import may point to a lower layer or inside its own
layer, never up or sideways into another layer of the same rank, and the module graph has no cycle. ``noising``
imports numpy only, the model torch only; no ``_private`` name crosses a module boundary; inference (``summarize``,
``export-hf``, loading a checkpoint) never imports Lightning.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bart_pretrain", "noising")

# (module prefix, rank, layer name); the longest prefix decides. A module may import ranks <= its own, and at an equal
# rank only its own layer. optim (OptimConfig, the schedule) is torch-only like the model: checkpoints pickle
# OptimConfig, and inference unpickles it without Lightning.
LAYERS = [
    ("noising", 0, "noising"),
    ("bart_pretrain", 0, "package"),
    ("bart_pretrain.io", 0, "utilities"),
    ("bart_pretrain.errors", 0, "utilities"),
    ("bart_pretrain.paths", 0, "utilities"),
    ("bart_pretrain.model", 1, "model"),
    ("bart_pretrain.generation", 1, "model"),
    ("bart_pretrain.optim", 1, "model"),
    ("bart_pretrain.tokenizer", 2, "tokenizer"),
    ("bart_pretrain.data", 3, "data"),
    ("bart_pretrain.hf", 4, "interop"),
    ("bart_pretrain.metrics", 4, "interop"),
    ("bart_pretrain.loading", 5, "inference"),
    ("bart_pretrain.evaluate", 5, "inference"),
    ("bart_pretrain.training", 6, "training"),
    ("bart_pretrain.corpus", 6, "corpus"),
    ("bart_pretrain.bench", 7, "commands"),
    ("bart_pretrain.commands", 7, "commands"),
    ("bart_pretrain.cli", 8, "cli"),
]
STDLIB = set(sys.stdlib_module_names)
THIRD_PARTY_ALLOWED = {  # beyond the standard library and lower layers
    "noising": {"numpy"},
    "model": {"torch"},
}
LIGHTNING = ("pytorch_lightning", "lightning")
INFERENCE = ("bart_pretrain.commands.summarize", "bart_pretrain.commands.export_hf", "bart_pretrain.loading")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


MODULES = sources()


def imports(name: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import statement of module ``name``."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.append((sub, [], node.lineno) if sub in MODULES else (base, [a.name], node.lineno))
    return out


def internal_edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for m in MODULES:
        for target, _, _ in imports(m):
            while target and target not in MODULES:  # `import bart_pretrain.data.documents` names the module
                target = target.rpartition(".")[0]
            if target and target != m:
                graph[m].add(target)
    return graph


def layer(name: str) -> tuple[int, str]:
    prefix = max((p for p, _, _ in LAYERS if name == p or name.startswith(p + ".")), key=len)
    return next((rank, layer_name) for p, rank, layer_name in LAYERS if p == prefix)


def test_every_module_has_a_layer():
    assert all(layer(m) for m in MODULES)
    assert "bart_pretrain.model" in MODULES and "noising.base" in MODULES  # the scan sees the tree


def test_imports_point_down_or_inside_their_layer():
    upward = []
    for m, targets in internal_edges().items():
        (rank, name) = layer(m)
        for t in targets:
            t_rank, t_name = layer(t)
            if t_rank > rank or (t_rank == rank and t_name != name):
                upward.append(f"{m} ({name}, {rank}) -> {t} ({t_name}, {t_rank})")
    assert not upward, "imports against the layer order:\n" + "\n".join(sorted(upward))


def test_the_module_graph_has_no_cycle():
    graph = internal_edges()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            strongconnect(v)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("layer_name", sorted(THIRD_PARTY_ALLOWED))
def test_noising_imports_numpy_only_and_the_model_torch_only(layer_name):
    rank = next(r for _, r, n in LAYERS if n == layer_name)
    bad = []
    for m in MODULES:
        if layer(m)[1] != layer_name:
            continue
        for target, _, line in imports(m):
            top = target.split(".")[0]
            if top in STDLIB or top == "__future__" or top in THIRD_PARTY_ALLOWED[layer_name]:
                continue
            if top in PACKAGES and layer(target)[0] <= rank:
                continue
            bad.append(f"{m}:{line} imports {target}")
    assert not bad, f"{layer_name} may import only {sorted(THIRD_PARTY_ALLOWED[layer_name])} and the stdlib: {bad}"


def test_no_private_name_crosses_a_module_boundary():
    crossing = []
    for m in MODULES:
        for target, names, line in imports(m):
            if target.split(".")[0] not in PACKAGES:
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            # a package's private module (noising._ops) is for that package alone
            outside = any(p.startswith("_") for p in target.split(".")[1:]) and not m.startswith(target.split(".")[0])
            if private or outside:
                crossing.append(f"{m}:{line} from {target} import {', '.join(names) or '(module)'}")
    assert not crossing, "private names imported across modules:\n" + "\n".join(crossing)


def test_inference_never_reaches_lightning_through_its_imports():
    graph = internal_edges()
    reaches_lightning = {m for m in MODULES if any(t.split(".")[0] in LIGHTNING for t, _, _ in imports(m))}
    for start in INFERENCE:
        seen, todo, parent = {start}, [start], {}
        while todo:
            v = todo.pop()
            for w in graph[v] - seen:
                seen.add(w), todo.append(w)
                parent[w] = v
        hit = sorted(seen & reaches_lightning)
        chain = []
        if hit:
            v = hit[0]
            while v != start:
                chain.append(v)
                v = parent[v]
        assert not hit, f"{start} imports Lightning through {' <- '.join(chain)} (also: {hit})"


@pytest.mark.slow
def test_inference_loads_a_checkpoint_without_importing_lightning(tmp_path):
    code = f"""
import sys, torch
import bart_pretrain.commands.export_hf, bart_pretrain.commands.summarize, bart_pretrain.evaluate
from bart_pretrain.loading import load_model
from bart_pretrain.model import Bart, BartConfig
from bart_pretrain.optim import OptimConfig
cfg = BartConfig(vocab_size=300, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                 decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=32)
model = Bart(cfg)
state = {{"model." + k: v for k, v in model.state_dict().items()}}
hp = {{"model_config": cfg.to_dict(), "optim": OptimConfig()}}
torch.save({{"state_dict": state, "hyper_parameters": hp}}, {str(tmp_path / "m.ckpt")!r})
loaded = load_model({str(tmp_path / "m.ckpt")!r})
assert loaded.model.config == cfg
print(sorted(m for m in sys.modules if m.split(".")[0] in {LIGHTNING!r}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_every_command_is_a_module_of_commands_with_a_main():
    from bart_pretrain.cli import SUBCOMMANDS

    for name, (module, _) in SUBCOMMANDS.items():
        assert module.startswith("bart_pretrain.commands."), (name, module)
        assert module in MODULES, module
        tree = ast.parse(MODULES[module].read_text())
        assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body), module

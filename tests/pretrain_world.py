"""The tests' tiny world, made inside the tests: a corpus, a tokenizer trained on it, the tiny BART shape
(:data:`TINY_SHAPE`, also what the fine-tuning and summarize tests train) and a config file for
`bart-pretrain pretrain`. No network, no data/ directory. (conftest.py holds only hooks: pytest discourages importing
it, so the factories live here.)"""

from __future__ import annotations

import json
import random
from pathlib import Path

import yaml

RECIPES = Path(__file__).resolve().parents[1] / "configs" / "noise"
"""The shipped noise recipes."""

WORDS = (
    "the a system file package kernel module python data network user library tool shell device memory "
    "driver process thread signal socket buffer queue lock mutex string list value error format parser"
).split()

# BartConfig fields of the tiny model every training test uses (the vocabulary comes from the tokenizer).
TINY_SHAPE = dict(
    d_model=32,
    encoder_layers=1,
    decoder_layers=1,
    encoder_attention_heads=2,
    decoder_attention_heads=2,
    encoder_ffn_dim=64,
    decoder_ffn_dim=64,
    max_position_embeddings=128,
)


def _text(rng: random.Random) -> str:
    sentences = []
    for _ in range(rng.randint(1, 4)):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 12))]
        sentences.append(" ".join(words).capitalize() + ".")
    return " ".join(sentences)


def summary_pairs(n: int, offset: int = 0, words=WORDS, noun: str = "package", extra: int = 9) -> list[dict]:
    """n generated (document, summary) rows whose summary is the first sentence's three words: learnable by copying."""
    rows = []
    for i in range(offset, offset + n):
        first = " ".join(words[(i + j) % len(words)] for j in range(3))
        rest = " ".join(words[(i * 3 + j) % len(words)] for j in range(4 + i % extra))
        rows.append({"id": f"p{i}", "document": f"The {first} {noun}. It has {rest}.", "summary": first})
    return rows


def make_world(root: Path, n_train: int = 60, n_val: int = 8, **overrides) -> Path:
    """Write corpus, tokenizer and a tiny model; return the path of a pretrain config using them."""
    from bart_pretrain.tokenizer import train_tokenizer

    rng = random.Random(0)
    root.mkdir(parents=True, exist_ok=True)
    texts = {"train": [_text(rng) for _ in range(n_train)], "validation": [_text(rng) for _ in range(n_val)]}
    for split, rows in texts.items():
        with open(root / f"{split}.jsonl", "w") as f:
            for i, t in enumerate(rows):
                f.write(json.dumps({"id": f"{split}-{i}", "text": t}) + "\n")
    tok = train_tokenizer(texts["train"] * 3, vocab_size=400)
    tok.save(root / "tokenizer.json")
    model = {**TINY_SHAPE, "dropout": 0.1}
    (root / "model.yaml").write_text(yaml.safe_dump(model))
    config = {
        "seed_everything": 7,
        "run_dir": str(root / "run"),
        "checkpoint_every": 2,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "max_steps": 8,
            "val_check_interval": 4,
            "check_val_every_n_epoch": None,
            "num_sanity_val_steps": 0,
            "log_every_n_steps": 1,
            "gradient_clip_val": 1.0,
            "enable_progress_bar": False,
            "enable_model_summary": False,
        },
        "model": {"model_config": str(root / "model.yaml"), "optim": {"lr": 3e-3, "warmup_steps": 2}},
        "data": {
            "train_files": str(root / "train.jsonl"),
            "val_files": str(root / "validation.jsonl"),
            "tokenizer_path": str(root / "tokenizer.json"),
            "noise": str(RECIPES / "bart_large.yaml"),  # a relative path would be relative to this config file
            "max_length": 64,
            "max_tokens": 256,
            "num_workers": 0,
            "seed": 3,
        },
    }
    for dotted, value in overrides.items():
        node = config
        *path, last = dotted.split("__")
        for key in path:
            node = node[key]
        node[last] = value
    path = root / "pretrain.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def weights(ckpt_path: Path) -> dict:
    import torch

    return torch.load(ckpt_path, map_location="cpu", weights_only=False)["state_dict"]

"""The model config of a training run, from one loader for pretraining and fine-tuning: a preset YAML of
``BartConfig`` fields (``configs/model/*.yaml``, found from any directory) or a dict, with the vocabulary size linked
from the tokenizer (never copied by hand). Lightning-free.
"""

from __future__ import annotations

import os

import yaml

from bart_pretrain.model import BartConfig


def resolve_model_config(
    model_config: str | dict, tokenizer_path: str | None, vocab_size: int | None = None
) -> BartConfig:
    """A BartConfig from a YAML path (its fields, or ``init_args`` holding them) or a dict; ``vocab_size`` comes from
    the tokenizer (``vocab_size`` when the caller has it loaded, else read from ``tokenizer_path``) when the config
    has none, and must agree with it when both exist."""
    if isinstance(model_config, (str, os.PathLike)):
        from bart_pretrain.paths import shipped, where_looked

        path = shipped(model_config)  # configs/model/tiny.yaml works from any directory
        if not path.exists():
            raise FileNotFoundError(
                f"model.model_config={str(model_config)!r}: no such file ({where_looked(model_config)}; "
                "see configs/model/)"
            )
        fields = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        fields = dict(fields.get("init_args", fields))
        where = str(path)
    else:
        fields, where = dict(model_config), "model.model_config"
    tok_vocab = vocab_size
    if tok_vocab is None and tokenizer_path and os.path.exists(tokenizer_path):
        from bart_pretrain.tokenizer import Tokenizer

        tok_vocab = Tokenizer.from_file(tokenizer_path).vocab_size
    if "vocab_size" not in fields:
        if tok_vocab is None:
            raise FileNotFoundError(
                f"tokenizer {tokenizer_path!r} not found (looked for {os.path.abspath(tokenizer_path or '')}): it sets "
                f"the vocabulary size of {where}; run `make data` in the repository or pass --data.tokenizer_path"
            )
        fields["vocab_size"] = tok_vocab
    elif tok_vocab is not None and tok_vocab != fields["vocab_size"]:
        raise ValueError(
            f"{where}: vocab_size={fields['vocab_size']} but tokenizer {tokenizer_path} has {tok_vocab} tokens"
        )
    return BartConfig.from_dict(fields)

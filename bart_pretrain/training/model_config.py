"""The model config of a training run (``--model.model_config``): :class:`ModelConfig`, ``BartConfig``'s fields as
typed init args (each in ``--help`` and ``--print_config``, each a dotted override such as
``--model.model_config.d_model 64``; a preset YAML of them, ``--model.model_config configs/model/tiny.yaml``, loads
whole), and :func:`resolve_model_config`, the one place its vocabulary size is taken from the tokenizer.
Lightning-free; the CLIs (``bart_pretrain.commands.training_cli``) read the preset files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from jsonargparse import lazy_instance

from bart_pretrain.model import BartConfig
from bart_pretrain.tokenizer import tokenizer_not_found

DEFAULT_MODEL_CONFIG = "configs/model/tiny.yaml"
"""The preset ``bart-pretrain pretrain`` and ``finetune`` start from (the CLI default of ``--model.model_config``)."""


@dataclass
class ModelConfig(BartConfig):
    """BartConfig's fields (bart_pretrain/model.py), with the vocabulary size left to the tokenizer."""

    vocab_size: int | None = None
    """null (every shipped config): the tokenizer's; a number must equal it."""

    def __post_init__(self) -> None:
        pass  # validated by BartConfig when resolve_model_config knows the vocabulary size (the token ids need it)


BART_DEFAULTS: ModelConfig = lazy_instance(ModelConfig)
"""The signature default of the training modules' ``model_config``: BartConfig's own defaults (bart-large's shape), for
Python callers; the CLIs start from :data:`DEFAULT_MODEL_CONFIG` instead. A lazy instance rather than None because
LightningCLI lists a dataclass argument field by field (``--help``, dotted overrides) only when its default is not
None; it is never mutated (:func:`resolve_model_config` builds a new config)."""


def resolve_model_config(
    model_config: BartConfig | Mapping, vocab_size: int | None, tokenizer_path: str | None = None
) -> BartConfig:
    """``model_config`` (a :class:`ModelConfig`, a ``BartConfig`` or a dict of its fields, e.g. a checkpoint's
    ``hyper_parameters``) as a validated ``BartConfig`` whose ``vocab_size`` is the tokenizer's (``vocab_size``, None
    when no tokenizer was found at ``tokenizer_path``): filled in when the config has none, checked when it has one."""
    fields = dataclasses.asdict(model_config) if dataclasses.is_dataclass(model_config) else dict(model_config)
    given = fields.get("vocab_size")
    if given is None:
        if vocab_size is None:
            raise tokenizer_not_found(tokenizer_path or "", "--data.tokenizer_path")
        fields["vocab_size"] = vocab_size
    elif vocab_size is not None and given != vocab_size:
        raise ValueError(
            f"--model.model_config.vocab_size={given} but tokenizer {tokenizer_path} has {vocab_size} tokens; leave "
            "it out (null): the vocabulary size comes from the tokenizer"
        )
    return BartConfig.from_dict(fields)

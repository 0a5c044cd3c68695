"""Interop with transformers: our `Bart` <-> a directory `BartForConditionalGeneration.from_pretrained` loads.

Names map one to one (ours drop the `model.` prefix) except our fused `qkv_proj`, which is transformers'
`q_proj`, `k_proj`, `v_proj` stacked in that order. Writing and reading need only torch and safetensors; transformers
is needed only by `to_transformers` (tests, benchmarks). `bart-pretrain export-hf <checkpoint> <out_dir>` is `main`:
weights, tokenizer and beam settings, so that transformers' `AutoTokenizer` + `AutoModelForSeq2SeqLM.generate()`
summarize as `bart-pretrain summarize` does.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from bart_pretrain.generation import GenerationConfig
from bart_pretrain.io import atomic_open, atomic_write_json, atomic_write_text
from bart_pretrain.model import Bart, BartConfig
from bart_pretrain.tokenizer import MASK, SPECIALS

TIED = ("shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight")
SPECIAL_TOKENS = dict(zip(("bos_token", "pad_token", "eos_token", "unk_token"), SPECIALS, strict=True))
"""transformers' names of the tokenizer's special tokens (their ids: the tokenizer's, 0-3, then ``<mask>``)."""


def hf_config_dict(config: BartConfig) -> dict:
    """transformers' config.json for a `BartConfig`."""
    d = config.to_dict()
    d.update(
        model_type="bart",
        architectures=["BartForConditionalGeneration"],
        is_encoder_decoder=True,
        tie_word_embeddings=True,
        encoder_layerdrop=0.0,
        decoder_layerdrop=0.0,
        use_cache=True,
    )
    return d


def to_hf_state_dict(model: Bart) -> dict[str, torch.Tensor]:
    """Our state dict under transformers' names (`model.` prefix, q/k/v split); tied weights stored once."""
    out = {}
    for name, t in model.state_dict().items():
        if ".qkv_proj." in name:
            for proj, part in zip("qkv", t.chunk(3, dim=0), strict=True):
                out["model." + name.replace("qkv_proj", f"{proj}_proj")] = part.contiguous()
        else:
            out[name if name == "final_logits_bias" else "model." + name] = t.contiguous()
    return out


def from_hf_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers' BART state dict (with or without the `model.` prefix) -> ours."""
    sd = {k.removeprefix("model."): v for k, v in sd.items() if not k.endswith(".version")}
    if "shared.weight" not in sd:  # some checkpoints keep only a tied copy
        sd["shared.weight"] = next(sd[k] for k in TIED if k in sd)
    out = {
        k: v
        for k, v in sd.items()
        if k not in TIED[1:]
        and not k.endswith(
            ("k_proj.weight", "k_proj.bias", "v_proj.weight", "v_proj.bias", "q_proj.weight", "q_proj.bias")
        )
    }
    for k in [k for k in sd if k.endswith(("q_proj.weight", "q_proj.bias"))]:
        out[k.replace("q_proj", "qkv_proj")] = torch.cat(
            [sd[k.replace("q_proj", p)] for p in ("q_proj", "k_proj", "v_proj")]
        )
    return out


def generation_config_dict(config: BartConfig, generation: GenerationConfig) -> dict:
    """transformers' generation_config.json: BART's special ids and our beam settings, so that transformers'
    ``generate()`` with no arguments searches exactly as ``bart-pretrain summarize`` does."""
    ids = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")
    forced = ("forced_bos_token_id", "forced_eos_token_id")
    d = {k: getattr(config, k) for k in (*ids, *forced)}
    # Our beam search always stops a source once it has num_beams finished hypotheses (transformers' default: False).
    return {**d, **dataclasses.asdict(generation), "early_stopping": True, "do_sample": False}


def save_hf(
    model: Bart,
    tokenizer,
    out_dir,
    generation: GenerationConfig | None = None,
    max_source_length: int | None = None,
) -> Path:
    """Write config.json, generation_config.json (``generation``, default :class:`GenerationConfig`'s),
    model.safetensors and, if ``tokenizer`` is given, tokenizer files whose ``model_max_length`` is
    ``max_source_length`` (default: ``max_position_embeddings``), so transformers truncates sources as we do."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    c = model.config
    atomic_write_json(out / "config.json", hf_config_dict(c))
    atomic_write_json(out / "generation_config.json", generation_config_dict(c, generation or GenerationConfig()))
    tensors = {k: v.detach().to("cpu", copy=True) for k, v in to_hf_state_dict(model).items()}
    with atomic_open(out / "model.safetensors", "wb") as f:
        f.write(save(tensors, metadata={"format": "pt"}))
    if tokenizer is not None:
        tokenizer.save(out)
        if hasattr(tokenizer, "backend"):  # our Tokenizer (a tokenizers.Tokenizer inside)
            import tokenizers

            # transformers' BART tokenizer wraps each text as <s> ... </s> (ours adds them outside the tokenizer,
            # which encodes without specials): without this post-processor transformers feeds unwrapped sources.
            backend = tokenizers.Tokenizer.from_str(tokenizer.backend.to_str())
            backend.post_processor = tokenizers.processors.TemplateProcessing(
                single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
            )
            atomic_write_text(out / "tokenizer.json", backend.to_str(pretty=True) + "\n")
        # The objective tokens (<mask_sentence>, [R], [S], [X], <extra_id_N>), when the tokenizer has them: special in
        # transformers too (never split, dropped by skip_special_tokens).
        extra = [tokenizer.backend.id_to_token(i) for i in getattr(tokenizer, "special_ids", ())[5:]]
        additional = {"additional_special_tokens": extra} if extra else {}
        tok_config = dict(
            SPECIAL_TOKENS,
            **additional,
            mask_token=MASK,
            tokenizer_class="PreTrainedTokenizerFast",
            clean_up_tokenization_spaces=False,  # decode as ours does (4.x's default was True)
            model_max_length=min(max_source_length or c.max_position_embeddings, c.max_position_embeddings),
        )
        atomic_write_json(out / "tokenizer_config.json", tok_config)
        atomic_write_json(out / "special_tokens_map.json", dict(SPECIAL_TOKENS, mask_token=MASK, **additional))
    return out


def recorded_settings(path) -> tuple[dict, int | None]:
    """(beam settings from generation_config.json, ``model_max_length`` from tokenizer_config.json or None) of a
    transformers directory; only the :class:`GenerationConfig` fields, and only those it sets."""
    path = Path(path)
    generation, max_source_length = {}, None
    if (path / "generation_config.json").is_file():
        saved = json.loads((path / "generation_config.json").read_text(encoding="utf-8"))
        generation = {k: saved[k] for k in GenerationConfig.fields() if saved.get(k) is not None}
    if (path / "tokenizer_config.json").is_file():
        length = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8")).get("model_max_length")
        max_source_length = length if isinstance(length, int) and length > 0 else None
    return generation, max_source_length


def load_hf(path) -> Bart:
    """A transformers BART directory (config.json + model.safetensors or pytorch_model.bin) -> our `Bart`."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ValueError(f"{path} is not a transformers model directory: no config.json")
    d = json.loads((path / "config.json").read_text())
    if d.get("model_type") != "bart":
        raise ValueError(f"{path}/config.json has model_type={d.get('model_type')!r}, expected 'bart'")
    for key in ("normalize_before", "add_final_layer_norm", "add_bias_logits"):
        if d.get(key):
            raise ValueError(f"{path}/config.json sets {key}=true: a BART variant this model does not implement")
    for key in ("eos_token_id", "forced_eos_token_id"):
        if isinstance(d.get(key), list):
            d[key] = d[key][0]
    model = Bart(BartConfig.from_dict(d, strict=False))
    if (path / "model.safetensors").is_file():
        sd = load_file(str(path / "model.safetensors"))
    elif (path / "pytorch_model.bin").is_file():
        sd = torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)
    else:
        raise ValueError(f"{path} holds no model.safetensors or pytorch_model.bin")
    sd = from_hf_state_dict(sd)
    sd.setdefault("final_logits_bias", torch.zeros(1, model.config.vocab_size))
    model.load_state_dict(sd, strict=True)
    return model


def to_transformers(model: Bart, attn_implementation: str = "sdpa"):
    """The same weights in a `transformers.BartForConditionalGeneration` (for equivalence tests and benchmarks)."""
    import transformers

    d = hf_config_dict(model.config)
    hf = transformers.BartForConditionalGeneration(
        transformers.BartConfig(**d, attn_implementation=attn_implementation)
    )
    missing, unexpected = hf.load_state_dict(to_hf_state_dict(model), strict=False)
    if unexpected or set(missing) - {f"model.{k}" for k in TIED[1:3]} - {"lm_head.weight"}:
        raise RuntimeError(f"weight names do not map: missing {missing}, unexpected {unexpected}")
    hf.tie_weights()
    return hf.to(next(model.parameters()).device).train(model.training)

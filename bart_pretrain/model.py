"""BART: a denoising sequence-to-sequence transformer (Lewis et al. 2019, arXiv:1910.13461), in one file.

Same maths as transformers' `modeling_bart.py` (post-LN, learned positions offset by 2, embedding LayerNorm, GELU, tied
embeddings + `final_logits_bias`), written in the style of nanoGPT's `model.py`. Weights map one-to-one to
transformers' `BartForConditionalGeneration` (see `bart_pretrain.hf`); q/k/v projections are stored fused.

Dimension legend: B batch, S source len, T target len, D d_model, H heads, Dh head dim (D // H), F ffn dim,
V vocab, N rows selected by `logits_mask`, L cache capacity (max target length), G beams per source.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class BartConfig:
    """Hyper-parameters of the network; field names as transformers' `BartConfig` so configs map one-to-one."""

    vocab_size: int = 50265
    """Tokens in the vocabulary (linked from the tokenizer in our configs)."""
    d_model: int = 1024
    """Width of every hidden state."""
    encoder_layers: int = 12
    """Transformer blocks in the encoder."""
    decoder_layers: int = 12
    """Transformer blocks in the decoder."""
    encoder_attention_heads: int = 16
    """Heads of encoder self-attention; must divide d_model."""
    decoder_attention_heads: int = 16
    """Heads of decoder self- and cross-attention; must divide d_model."""
    encoder_ffn_dim: int = 4096
    """Inner width of the encoder feed-forward blocks."""
    decoder_ffn_dim: int = 4096
    """Inner width of the decoder feed-forward blocks."""
    max_position_embeddings: int = 1024
    """Longest source or target sequence (learned positions)."""
    dropout: float = 0.1
    """On embeddings and on each residual branch."""
    attention_dropout: float = 0.0
    """On attention probabilities."""
    activation_dropout: float = 0.0
    """After the feed-forward activation."""
    activation_function: Literal["gelu", "relu"] = "gelu"
    """Feed-forward non-linearity (BART: exact erf GELU)."""
    init_std: float = 0.02
    """Std of the normal init of linear and embedding weights."""
    scale_embedding: bool = False
    """Multiply token embeddings by sqrt(d_model)."""
    pad_token_id: int = 1
    """<pad>: masked in attention, its embedding row gets no gradient from lookups."""
    bos_token_id: int = 0
    """<s>: first token of every source and target."""
    eos_token_id: int = 2
    """</s>: last token; generation stops on it."""
    decoder_start_token_id: int = 2
    """First decoder input (BART starts decoding with </s>)."""
    forced_bos_token_id: int | None = 0
    """Generation: token forced at the first generated step (None: not forced)."""
    forced_eos_token_id: int | None = 2
    """Generation: token forced when max_length is reached (None: not forced)."""

    def __post_init__(self) -> None:
        for name in (
            "vocab_size",
            "d_model",
            "encoder_attention_heads",
            "decoder_attention_heads",
            "encoder_ffn_dim",
            "decoder_ffn_dim",
            "max_position_embeddings",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"BartConfig.{name} must be a positive integer, got {value!r}")
        for name in ("encoder_layers", "decoder_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"BartConfig.{name} must be a non-negative integer, got {value!r}")
        for name in ("encoder_attention_heads", "decoder_attention_heads"):
            if self.d_model % getattr(self, name):
                raise ValueError(f"BartConfig.d_model={self.d_model} must be divisible by {name}={getattr(self, name)}")
        for name in ("dropout", "attention_dropout", "activation_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"BartConfig.{name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.activation_function not in ("gelu", "relu"):
            raise ValueError(
                f"BartConfig.activation_function must be 'gelu' or 'relu', got {self.activation_function!r}"
            )
        if not self.init_std > 0:
            raise ValueError(f"BartConfig.init_std must be > 0, got {self.init_std!r}")
        for name in (
            "pad_token_id",
            "bos_token_id",
            "eos_token_id",
            "decoder_start_token_id",
            "forced_bos_token_id",
            "forced_eos_token_id",
        ):
            value = getattr(self, name)
            if value is not None and not 0 <= value < self.vocab_size:
                raise ValueError(f"BartConfig.{name}={value!r} must be a token id in [0, vocab_size={self.vocab_size})")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, strict: bool = True) -> BartConfig:
        """Build from a dict; `strict=False` ignores unknown keys (e.g. a transformers config.json)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if strict and unknown:
            raise ValueError(f"unknown BartConfig fields {unknown}; valid fields: {sorted(names)}")
        return cls(**{k: v for k, v in d.items() if k in names})


class Attention(nn.Module):
    """Multi-head attention; self-attention (one fused QKV matmul) or cross-attention (Q on x, fused KV on memory)."""

    def __init__(self, d_model: int, n_head: int, dropout: float):
        super().__init__()
        self.n_head, self.head_dim, self.dropout = n_head, d_model // n_head, dropout
        self.qkv_proj = nn.Linear(d_model, 3 * d_model)  # rows: [q; k; v], each (D, D) as in transformers
        self.out_proj = nn.Linear(d_model, d_model)

    def heads(self, x: Tensor, n: int) -> Tensor:
        B, T, _ = x.shape
        return x.view(B, T, n, self.n_head, self.head_dim).permute(2, 0, 3, 1, 4)  # (n, B, H, T, Dh)

    def project_kv(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values of the encoder output for cross-attention: 2 x (B, H, S, Dh); computed once per source."""
        D = memory.size(-1)
        k, v = self.heads(F.linear(memory, self.qkv_proj.weight[D:], self.qkv_proj.bias[D:]), 2).unbind(0)
        return k, v

    def forward(
        self,
        x: Tensor,
        *,
        mask: Tensor | None = None,
        is_causal: bool = False,
        kv: tuple[Tensor, Tensor] | None = None,
        cache: KVCache | None = None,
    ) -> Tensor:
        """(B, T, D) queries -> (B, T, D). Self-attention on `x` (its keys/values appended to `cache` when decoding),
        or cross-attention on `kv`, the encoder output's keys/values from `project_kv`."""
        B, T, D = x.shape
        if kv is None:  # self-attention
            q, k, v = self.heads(self.qkv_proj(x), 3).unbind(0)  # each (B, H, T, Dh)
            if cache is not None:
                k, v = cache.update(k, v)  # (B, H, L', Dh): everything decoded so far, this step included
        else:  # cross-attention on precomputed memory keys/values
            q = self.heads(F.linear(x, self.qkv_proj.weight[:D], self.qkv_proj.bias[:D]), 1)[0]
            k, v = kv
        p = self.dropout if self.training else 0.0
        if torch.compiler.is_compiling() and q.device.type == "cpu":
            y = attention_math(q, k, v, mask, p, is_causal)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=is_causal)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, D))


class Block(nn.Module):
    """What encoder and decoder layers share: the feed-forward (fc1, fc2 as in transformers) and residual dropout."""

    def __init__(self, c: BartConfig, ffn_dim: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(c.d_model, ffn_dim), nn.Linear(ffn_dim, c.d_model)
        self.final_layer_norm = nn.LayerNorm(c.d_model)
        self.act, self.dropout, self.activation_dropout = (
            getattr(F, c.activation_function),
            c.dropout,
            c.activation_dropout,
        )

    def drop(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.dropout, self.training)

    def ffn(self, x: Tensor) -> Tensor:  # (B, T, D) -> (B, T, F) -> (B, T, D)
        return self.fc2(F.dropout(self.act(self.fc1(x)), self.activation_dropout, self.training))


class EncoderLayer(Block):
    """Post-LN: x = LN(x + drop(self_attn(x))); x = LN(x + drop(ffn(x)))."""

    def __init__(self, c: BartConfig):
        super().__init__(c, c.encoder_ffn_dim)
        self.self_attn = Attention(c.d_model, c.encoder_attention_heads, c.attention_dropout)
        self.self_attn_layer_norm = nn.LayerNorm(c.d_model)

    def forward(self, x: Tensor, *, mask: Tensor | None) -> Tensor:
        x = self.self_attn_layer_norm(x + self.drop(self.self_attn(x, mask=mask)))
        return self.final_layer_norm(x + self.drop(self.ffn(x)))


class DecoderLayer(Block):
    """Post-LN: causal self-attention, then cross-attention on the encoder output, then the feed-forward."""

    def __init__(self, c: BartConfig):
        super().__init__(c, c.decoder_ffn_dim)
        self.self_attn = Attention(c.d_model, c.decoder_attention_heads, c.attention_dropout)
        self.self_attn_layer_norm = nn.LayerNorm(c.d_model)
        self.encoder_attn = Attention(c.d_model, c.decoder_attention_heads, c.attention_dropout)
        self.encoder_attn_layer_norm = nn.LayerNorm(c.d_model)

    def forward(
        self,
        x: Tensor,
        *,
        self_mask: Tensor | None,
        is_causal: bool,
        memory_kv: tuple[Tensor, Tensor],
        memory_mask: Tensor | None,
        cache: KVCache | None = None,
    ) -> Tensor:
        attn = self.self_attn(x, mask=self_mask, is_causal=is_causal, cache=cache)
        x = self.self_attn_layer_norm(x + self.drop(attn))
        # Beam search: the G beams of a source share its memory keys (KVCache), so they attend as one source's
        # G*T queries, (B, T, D) -> (B/G, G*T, D); exact, cross-attention queries never see each other.
        B, T, D = x.shape
        G = 1 if cache is None else cache.beams
        cross = self.encoder_attn(x.view(B // G, G * T, D), mask=memory_mask, kv=memory_kv).view(B, T, D)
        x = self.encoder_attn_layer_norm(x + self.drop(cross))
        return self.final_layer_norm(x + self.drop(self.ffn(x)))


class Stack(nn.Module):
    """Learned positions (BART offsets them by 2) + embedding LayerNorm + layers; the encoder or the decoder."""

    def __init__(self, c: BartConfig, layer: type[nn.Module], n_layers: int):
        super().__init__()
        self.embed_positions = nn.Embedding(c.max_position_embeddings + 2, c.d_model)
        self.layernorm_embedding = nn.LayerNorm(c.d_model)
        self.layers = nn.ModuleList([layer(c) for _ in range(n_layers)])
        self.max_positions, self.dropout = c.max_position_embeddings, c.dropout

    def embed(self, tok_emb: Tensor, start: int = 0) -> Tensor:
        T = tok_emb.size(1)
        if start + T > self.max_positions:
            raise ValueError(f"sequence of {start + T} tokens exceeds max_position_embeddings={self.max_positions}")
        pos = self.embed_positions.weight[start + 2 : start + 2 + T]  # (T, D)
        return F.dropout(self.layernorm_embedding(tok_emb + pos), self.dropout, self.training)


class KVCache:
    """Decoder key/value cache, preallocated: self-attention keys/values grow by one slot per step in a
    (layers, 2, B, H, L, Dh) buffer; cross-attention keys/values of the encoder output are computed once per source
    (B/G rows: beams of a source share them, so reordering beams never copies them)."""

    def __init__(self, model: Bart, memory: Tensor, memory_mask: Tensor | None, batch_size: int, capacity: int):
        c, dec = model.config, model.decoder
        H, Dh = c.decoder_attention_heads, c.d_model // c.decoder_attention_heads
        self.shape, self.kv = (len(dec.layers), 2, batch_size, H, capacity, Dh), None  # allocated at first update
        self.cross = [layer.encoder_attn.project_kv(memory) for layer in dec.layers]
        self.beams = batch_size // memory.size(0)  # G: rows decoded per source row of `memory`
        self.memory_mask, self.length, self.layer = memory_mask, 0, 0

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Write this step's (B, H, T, Dh) keys/values for the current layer; return all of them so far."""
        end = self.length + k.size(2)
        if end > self.shape[4]:
            raise ValueError(f"KVCache full: {end} positions > capacity {self.shape[4]}")
        if self.kv is None:  # in the dtype the projections produce (bf16 under autocast)
            self.kv = k.new_empty(self.shape)
        self.kv[self.layer, 0, :, :, self.length : end] = k
        self.kv[self.layer, 1, :, :, self.length : end] = v
        self.layer += 1
        return self.kv[self.layer - 1, 0, :, :, :end], self.kv[self.layer - 1, 1, :, :, :end]

    def advance(self, steps: int) -> None:
        self.length, self.layer = self.length + steps, 0

    def reorder(self, index: Tensor) -> None:
        """Beam search: row i of the self-attention cache becomes old row index[i]."""
        if self.kv is not None:
            self.kv[:, :, :, :, : self.length] = self.kv[:, :, index, :, : self.length]


class Bart(nn.Module):
    """Encoder-decoder, tied embeddings and LM head. `forward` returns logits; losses live in the Lightning module."""

    def __init__(self, config: BartConfig):
        super().__init__()
        self.config = c = config
        self.shared = nn.Embedding(c.vocab_size, c.d_model, padding_idx=c.pad_token_id)
        self.encoder = Stack(c, EncoderLayer, c.encoder_layers)
        self.decoder = Stack(c, DecoderLayer, c.decoder_layers)
        self.register_buffer("final_logits_bias", torch.zeros(1, c.vocab_size))
        self.embed_scale = math.sqrt(c.d_model) if c.scale_embedding else 1.0
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:  # as transformers' BartPreTrainedModel
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=self.config.init_std)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=self.config.init_std)
            if module.padding_idx is not None:
                module.weight.data[module.padding_idx].zero_()

    def embed_tokens(self, ids: Tensor) -> Tensor:
        return self.shared(ids) * self.embed_scale if self.embed_scale != 1.0 else self.shared(ids)

    def encode(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """(B, S) ids -> encoder output (B, S, D) and the key-padding mask (B, 1, 1, S), None if nothing is padded."""
        mask = padding_mask(attention_mask)
        return self.encode_masked(input_ids, mask), mask

    def encode_masked(self, input_ids: Tensor, mask: Tensor | None) -> Tensor:
        x = self.encoder.embed(self.embed_tokens(input_ids))
        for layer in self.encoder.layers:
            x = layer(x, mask=mask)
        return x

    def decode(self, decoder_input_ids, memory, memory_mask, decoder_attention_mask=None) -> Tensor:
        """Teacher-forced decoder pass over (B, T) ids -> final decoder states (B, T, D); `lm_head` gives logits."""
        self_mask, is_causal = causal_mask(decoder_attention_mask)
        return self.decode_masked(decoder_input_ids, memory, memory_mask, self_mask, is_causal)

    def decode_masked(self, decoder_input_ids, memory, memory_mask, self_mask, is_causal: bool) -> Tensor:
        x = self.decoder.embed(self.embed_tokens(decoder_input_ids))
        for layer in self.decoder.layers:
            kv = layer.encoder_attn.project_kv(memory)
            x = layer(x, self_mask=self_mask, is_causal=is_causal, memory_kv=kv, memory_mask=memory_mask)
        return x

    def stack_states(self, input_ids, memory_mask, decoder_input_ids, self_mask, is_causal: bool) -> Tensor:
        """Encoder then teacher-forced decoder with the masks given (`padding_mask`, `causal_mask`): no branch on
        tensor values, so `torch.compile` takes it as one graph. -> final decoder states (B, T, D)."""
        memory = self.encode_masked(input_ids, memory_mask)
        return self.decode_masked(decoder_input_ids, memory, memory_mask, self_mask, is_causal)

    def forward(self, input_ids, attention_mask, decoder_input_ids, decoder_attention_mask=None, logits_mask=None):
        """Logits (B, T, V); with `logits_mask` (bool B, T) only the selected rows (N, V), e.g. non-pad labels."""
        return self.lm_head(
            self.hidden_states(input_ids, attention_mask, decoder_input_ids, decoder_attention_mask, logits_mask)
        )

    def hidden_states(self, input_ids, attention_mask, decoder_input_ids, decoder_attention_mask=None, mask=None):
        """Final decoder states (B, T, D), or (N, D) rows where `mask`: what `lm_head` (or `linear_cross_entropy`)
        turns into logits (or a loss without materialising the (N, V) logits)."""
        self_mask, is_causal = causal_mask(decoder_attention_mask)
        x = self.stack_states(input_ids, padding_mask(attention_mask), decoder_input_ids, self_mask, is_causal)
        return x if mask is None else x[mask]

    def lm_head(self, x: Tensor) -> Tensor:
        return F.linear(x, self.shared.weight, self.final_logits_bias[0])  # (..., V), bias fused into the matmul

    def new_cache(self, memory: Tensor, memory_mask: Tensor | None, batch_size: int, capacity: int) -> KVCache:
        """A cache to decode `batch_size` rows (G beams for each of B sources) up to `capacity` tokens."""
        return KVCache(self, memory, memory_mask, batch_size, capacity)

    def decode_step(self, tokens: Tensor, cache: KVCache) -> Tensor:
        """Decode the next (B, T) tokens after those in `cache` (updated in place) -> logits of the last one (B, V)."""
        T = tokens.size(1)
        x = self.decoder.embed(self.embed_tokens(tokens), start=cache.length)
        mask, is_causal = None, cache.length == 0 and T > 1
        if cache.length > 0 and T > 1:  # queries at positions length.. see every cached key and the causal prefix
            mask = torch.ones(T, cache.length + T, dtype=torch.bool, device=tokens.device).tril(cache.length)
        for layer, kv in zip(self.decoder.layers, cache.cross, strict=True):
            x = layer(x, self_mask=mask, is_causal=is_causal, memory_kv=kv, memory_mask=cache.memory_mask, cache=cache)
        cache.advance(T)
        return self.lm_head(x[:, -1])

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, generation=None, **settings) -> Tensor:
        """(B, S) sources -> (B, <= max_length) outputs by beam search (greedy if num_beams=1), lengths counting the
        decoder start token as transformers does. ``generation``: a `bart_pretrain.generation.GenerationConfig`
        (default: its defaults), any field overridden by keyword; see `bart_pretrain.generation.generate`."""
        from bart_pretrain.generation import generate

        return generate(self, input_ids, attention_mask, generation, **settings)


def attention_math(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout_p: float, is_causal: bool) -> Tensor:
    """What `F.scaled_dot_product_attention` computes, as matmuls and a softmax: under `torch.compile` on CPU,
    inductor fuses these (scale, mask, softmax, dropout) forward and backward, where the CPU flash kernel's backward
    is most of a small model's compiled step. (B, H, T, Dh) x (B, H, S, Dh) -> (B, H, T, Dh)."""
    scores = (q * q.size(-1) ** -0.5) @ k.transpose(-2, -1)  # (B, H, T, S)
    if is_causal:
        T, S = scores.shape[-2:]
        mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril()
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    attn = scores.softmax(-1)
    if dropout_p > 0:
        attn = F.dropout(attn, dropout_p)
    return attn.to(v.dtype) @ v


def padding_mask(attention_mask: Tensor | None) -> Tensor | None:
    """(B, S) 1/0 -> bool key mask (B, 1, 1, S) for SDPA; None when nothing is padded (lets SDPA take its fast path)."""
    if attention_mask is None or bool(attention_mask.all()):
        return None
    return attention_mask.bool()[:, None, None, :]


def causal_mask(decoder_attention_mask: Tensor | None) -> tuple[Tensor | None, bool]:
    """Decoder self-attention mask -> (mask, is_causal). With right padding (the normal case) a real query never
    sees a pad key under the causal mask, so plain `is_causal` is exact and fast. Otherwise: causal AND key-padding,
    with the diagonal kept so that no row is fully masked (a NaN there would poison the backward pass)."""
    m = decoder_attention_mask
    if m is None or bool((m[:, 1:] <= m[:, :-1]).all()):
        return None, True
    T = m.size(1)
    eye = torch.eye(T, dtype=torch.bool, device=m.device)
    tril = torch.ones(T, T, dtype=torch.bool, device=m.device).tril()
    return tril & (m.bool()[:, None, None, :] | eye), False

"""Greedy and beam search for `Bart`, batched, on a preallocated key/value cache.

Semantics follow transformers' `generate` (v5 vectorised beam search, `generation/utils.py`) so outputs are equal
token for token: lengths count decoder tokens with the start token included; log-prob processors run in the order
no-repeat-n-gram, min-length, forced BOS (first step), forced EOS (last step); finished hypotheses are scored
`sum_logprob / generated_len ** length_penalty`; `early_stopping=True` stops a source once it has `num_beams`
finished hypotheses. What differs is speed: the encoder output's cross-attention keys/values are computed once per
source and shared by its beams (never expanded, never reordered), and reordering copies only the self-attention cache.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

NEG = -1.0e9  # "impossible" score, as transformers uses (not -inf: sums must stay ordered)


@dataclass(frozen=True)
class GenerationConfig:
    """Beam-search settings, the one place their defaults live: `generate`, `Bart.generate`, evaluation, `summarize`
    (whose flags are these fields), fine-tuning (``--model.generation.*``) and `export-hf` (generation_config.json)
    all start from these. Lengths count decoder tokens, the decoder start token included, as transformers does."""

    num_beams: int = 4
    """Beam width (1 = greedy)."""
    max_length: int = 64
    """Longest output in tokens, the decoder start token included."""
    min_length: int = 0
    """No ``</s>`` before this many tokens."""
    length_penalty: float = 1.0
    """Scores are divided by length**length_penalty; > 1 favours longer outputs."""
    no_repeat_ngram_size: int = 3
    """Never repeat an n-gram of this size (0 = off); 3 is BART's summarization setting."""

    def __post_init__(self):
        if self.num_beams < 1:
            raise ValueError(f"generation.num_beams must be >= 1; got {self.num_beams}")
        if self.max_length < 2:
            raise ValueError(
                f"generation.max_length must be >= 2 (the start token and one generated token); got {self.max_length}"
            )
        if not 0 <= self.min_length <= self.max_length:
            raise ValueError(
                f"generation.min_length must be in [0, max_length={self.max_length}]; got {self.min_length}"
            )
        if self.no_repeat_ngram_size < 0:
            raise ValueError(f"generation.no_repeat_ngram_size must be >= 0; got {self.no_repeat_ngram_size}")

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def replace(self, **settings) -> GenerationConfig:
        """A copy with ``settings`` changed; a name that is not a field is a ``TypeError`` listing the fields."""
        unknown = sorted(set(settings) - set(self.fields()))
        if unknown:
            raise TypeError(f"unknown generation setting(s) {unknown}; the settings are: {', '.join(self.fields())}")
        return dataclasses.replace(self, **settings)


def generate(
    model,
    input_ids: Tensor,
    attention_mask: Tensor | None = None,
    generation: GenerationConfig | None = None,
    *,
    early_stopping: bool = True,
    **settings,
) -> Tensor:
    """(B, S) source ids -> (B, T') generated ids, T' <= max_length, starting with decoder_start_token_id and padded
    with pad_token_id after </s>. Settings: ``generation`` (default :class:`GenerationConfig`'s) with any of its
    fields overridden by keyword (``num_beams=1`` is greedy search)."""
    g = (generation or GenerationConfig()).replace(**settings)
    if g.max_length > model.config.max_position_embeddings:
        raise ValueError(f"max_length={g.max_length} > max_position_embeddings={model.config.max_position_embeddings}")
    memory, memory_mask = model.encode(input_ids, attention_mask)
    cache = model.new_cache(memory, memory_mask, input_ids.size(0) * g.num_beams, g.max_length)
    limits = (g.max_length, g.min_length, g.no_repeat_ngram_size)
    if g.num_beams == 1:
        return _greedy(model, cache, input_ids.size(0), limits)
    return _beam(model, cache, input_ids.size(0), g.num_beams, limits, g.length_penalty, early_stopping)


def next_token_scores(model, logits: Tensor, seqs: Tensor, cur_len: int, settings, normalize: bool = True) -> Tensor:
    """(N, V) logits of the next token after seqs[:, :cur_len] -> log-probs (or logits, for greedy search) with
    BART's constraints applied: -inf where a token is not allowed."""
    max_length, min_length, ngram = settings
    c = model.config
    lp = F.log_softmax(logits.float(), dim=-1) if normalize else logits.float()
    if ngram > 0 and cur_len >= ngram:
        lp = lp.masked_fill(banned_ngram_mask(seqs[:, :cur_len], ngram, lp.size(-1)), -float("inf"))
    if cur_len < min_length:
        lp[:, c.eos_token_id] = -float("inf")
    forced = c.forced_eos_token_id if cur_len == max_length - 1 else c.forced_bos_token_id if cur_len == 1 else None
    if forced is not None:
        lp = torch.full_like(lp, -float("inf"))
        lp[:, forced] = 0.0
    return lp


def banned_ngram_mask(seqs: Tensor, n: int, vocab_size: int) -> Tensor:
    """(N, L) tokens -> bool (N, V): tokens that would repeat an n-gram already in the sequence."""
    prefix = seqs[:, seqs.size(1) + 1 - n :]  # the last n-1 tokens
    windows = seqs.unfold(1, n, 1)  # (N, L-n+1, n)
    matches = (windows[..., :-1] == prefix[:, None]).all(-1)
    banned = torch.zeros(seqs.size(0), vocab_size + 1, dtype=torch.bool, device=seqs.device)
    banned.scatter_(1, torch.where(matches, windows[..., -1].clamp(max=vocab_size), vocab_size), True)
    return banned[:, :vocab_size]


def _greedy(model, cache, B: int, settings) -> Tensor:
    c, max_length = model.config, settings[0]
    device = model.shared.weight.device
    seqs = torch.full((B, max_length), c.pad_token_id, dtype=torch.long, device=device)
    seqs[:, 0] = c.decoder_start_token_id
    running = torch.ones(B, dtype=torch.bool, device=device)
    cur_len = 1
    while cur_len < max_length:
        logits = model.decode_step(seqs[:, cur_len - 1 : cur_len], cache)
        tok = next_token_scores(model, logits, seqs, cur_len, settings, normalize=False).argmax(-1)
        seqs[:, cur_len] = torch.where(running, tok, c.pad_token_id)
        running &= tok != c.eos_token_id
        cur_len += 1
        if not running.any():
            break
    return seqs[:, :cur_len]


def _beam(model, cache, B: int, G: int, settings, length_penalty: float, early_stopping: bool) -> Tensor:
    """Vectorised beam search over (B sources, G beams); keeps 2G candidates per step so G stay alive after </s>."""
    c, max_length = model.config, settings[0]
    device, K = model.shared.weight.device, 2 * G
    seqs = torch.full((B, G, max_length), c.pad_token_id, dtype=torch.long, device=device)
    seqs[:, :, 0] = c.decoder_start_token_id
    scores = torch.zeros(B, G, device=device)
    scores[:, 1:] = NEG  # all beams start equal: let only the first one expand at step 1
    done_seqs, done_scores = seqs.clone(), torch.full((B, G), NEG, device=device)
    done_flags = torch.zeros(B, G, dtype=torch.bool, device=device)
    done_lens = torch.ones(B, G, dtype=torch.long, device=device)
    improvable = torch.ones(B, 1, dtype=torch.bool, device=device)
    top_g = (torch.arange(K, device=device) < G)[None]
    offsets = torch.arange(B, device=device)[:, None] * G
    cur_len = 1
    while True:
        logits = model.decode_step(seqs.view(B * G, -1)[:, cur_len - 1 : cur_len], cache)  # (B*G, V)
        lp = next_token_scores(model, logits, seqs.view(B * G, -1), cur_len, settings)
        V = lp.size(-1)
        cand = (lp.view(B, G, V) + scores[:, :, None]).view(B, G * V)
        cand_scores, cand_idx = cand.topk(K)  # (B, K)
        parent, tok = cand_idx // V, cand_idx % V
        cand_seqs = seqs.gather(1, parent[:, :, None].expand(B, K, max_length)).clone()
        cand_seqs[:, :, cur_len] = tok
        ended = (tok == c.eos_token_id) | (cur_len + 1 >= max_length)
        # continue with the best G candidates that did not end
        alive_scores = cand_scores + ended.to(torch.float32) * NEG
        keep = alive_scores.topk(G).indices
        seqs, scores = cand_seqs.gather(1, keep[:, :, None].expand(B, G, max_length)), alive_scores.gather(1, keep)
        # candidates that ended among the top G join the finished pool if they beat its worst member
        fin = cand_scores / ((cur_len + 1 - 1) ** length_penalty)
        fin = fin + (done_flags.all(-1, keepdim=True) & early_stopping).to(torch.float32) * NEG
        fin = fin + (~improvable).to(torch.float32) * NEG
        fin = fin + (~(ended & top_g)) * NEG
        merged = torch.cat((done_scores, fin), 1).topk(G).indices
        done_seqs = torch.cat((done_seqs, cand_seqs), 1).gather(1, merged[:, :, None].expand(B, G, max_length))
        done_scores = torch.cat((done_scores, fin), 1).gather(1, merged)
        done_flags = torch.cat((done_flags, ended & top_g), 1).gather(1, merged)
        done_lens = torch.cat((done_lens, torch.full_like(tok, cur_len + 1)), 1).gather(1, merged)
        cur_len += 1
        # could a running beam still beat the worst finished one? (transformers' heuristic, at the current length)
        best_running = scores[:, :1] / ((cur_len - 1) ** length_penalty)
        worst_done = torch.where(done_flags, done_scores.min(1, keepdim=True).values, NEG)
        improvable = improvable & (best_running > worst_done).any(-1, keepdim=True)
        if not improvable.any() or (early_stopping and done_flags.all()) or bool(ended.all()):
            break
        cache.reorder((parent.gather(1, keep) + offsets).view(-1))
    return done_seqs[:, 0, : int(done_lens[:, 0].max())]

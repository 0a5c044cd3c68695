"""Token-level losses of the LM head: per-token losses for evaluation (:func:`token_losses`), the sum of token losses
on materialised logits (:func:`token_cross_entropy`) and the chunked LM-head + cross-entropy kernel the training
step uses (:func:`linear_cross_entropy`; the (N, V) logits never exist). Plain torch; the model never computes a loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


@torch.no_grad()
def token_losses(
    hidden: Tensor, weight: Tensor, bias: Tensor, labels: Tensor, rows: int = 2048
) -> tuple[Tensor, Tensor]:
    """Per-token cross-entropy (N,) fp32 and correctness (N,) bool of the LM head ``hidden @ weight.T + bias`` at
    ``labels``, ``rows`` rows at a time (no gradient: for evaluation, where per-token values are needed)."""
    losses, correct = [], []
    for s in range(0, hidden.size(0), rows):
        z = F.linear(hidden[s : s + rows], weight, bias).float()
        y = labels[s : s + rows]
        losses.append(F.cross_entropy(z, y, reduction="none"))
        correct.append(z.argmax(-1) == y)
    if not losses:
        return hidden.new_zeros(0, dtype=torch.float32), torch.zeros(0, dtype=torch.bool, device=hidden.device)
    return torch.cat(losses), torch.cat(correct)


def token_cross_entropy(logits: Tensor, labels: Tensor, label_smoothing: float = 0.0) -> tuple[Tensor, Tensor]:
    """(N, V) logits of the N target tokens and their (N,) labels -> (sum of token losses in fp32, correct count)."""
    loss = F.cross_entropy(logits.float(), labels, reduction="sum", label_smoothing=label_smoothing)
    correct = (logits.argmax(-1) == labels).sum()
    return loss, correct


# -- A loss kernel for the Lightning modules (the model itself never computes a loss) -------------------------------
# It lives here because it must know the LM head's layout (tied embedding + final_logits_bias). On CPU the (N, V)
# logits and the tensors F.cross_entropy derives from them (log-probs, their gradient) are most of the memory traffic
# of a small model's step; this computes the same sums chunk by chunk, gradients included, in one reused buffer.


def lm_head_chunk(h: Tensor, w: Tensor, b: Tensor, y: Tensor, label_smoothing: float, grads: bool):
    """One chunk of :func:`linear_cross_entropy`: h (n, D), w (V, D) and b (V,) in the matmul dtype, y (n,) ->
    (sum of token losses fp32, correct count, and with ``grads`` d/dh (n, D), d/dw (V, D) and d/db (V,) in fp32).
    Plain tensor code without in-place tricks, so ``torch.compile`` fuses the softmax passes into one or two loops."""
    V = w.size(0)
    z = torch.addmm(b, h, w.t()).float()  # (n, V) logits of this chunk
    m = z.amax(-1, keepdim=True)
    z_y = z.gather(1, y[:, None])
    correct = (z_y >= m).sum()  # the label's logit is the largest (argmax up to exact ties)
    p = (z - m).exp()
    total = p.sum(-1, keepdim=True)
    lse = m + total.log()
    nll = lse - z_y
    if label_smoothing:
        nll = (1 - label_smoothing) * nll + label_smoothing * (lse - z.mean(-1, keepdim=True))
    loss = nll.sum()
    if not grads:
        return loss, correct, None, None, None
    dz = p / total - label_smoothing / V  # d loss / d z = softmax - target distribution
    dz = dz.scatter_add(1, y[:, None], dz.new_full((y.size(0), 1), label_smoothing - 1))
    dzc = dz.to(h.dtype)
    return loss, correct, (dzc @ w).float(), (dzc.t() @ h).float(), dz.sum(0)


COMPILE_OPTIONS: dict = {"dynamic": True}
"""``torch.compile`` arguments of the training step's compiled parts (this kernel's chunks and the module's
encoder-decoder): shapes dynamic, so token-budget batches of any size and length share one graph."""

_compiled_chunk = None


def compiled_lm_head_chunk(*args):
    """:func:`lm_head_chunk` through ``torch.compile`` (built at the first call)."""
    global _compiled_chunk
    if _compiled_chunk is None:
        _compiled_chunk = torch.compile(lm_head_chunk, **COMPILE_OPTIONS)
    return _compiled_chunk(*args)


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, bias, labels, label_smoothing, rows, compiled):
        with torch.autocast(h.device.type, enabled=False):  # dtypes are handled explicitly below
            return _LinearCrossEntropy.chunks(ctx, h, weight, bias, labels, label_smoothing, rows, compiled)

    @staticmethod
    def chunks(ctx, h, weight, bias, labels, label_smoothing, rows, compiled):
        need = ctx.needs_input_grad[:3]
        grads = any(need)
        w, b = weight.to(h.dtype), bias.to(h.dtype)
        chunk = compiled_lm_head_chunk if compiled else lm_head_chunk
        loss = torch.zeros((), dtype=torch.float32, device=h.device)
        correct = torch.zeros((), dtype=torch.long, device=h.device)
        gh = []
        gw = torch.zeros(weight.shape, dtype=torch.float32, device=h.device)
        gb = torch.zeros(weight.size(0), dtype=torch.float32, device=h.device)
        for s in range(0, h.size(0), rows):
            y = labels[s : s + rows]
            c_loss, c_correct, c_gh, c_gw, c_gb = chunk(h[s : s + rows], w, b, y, label_smoothing, grads)
            loss, correct = loss + c_loss, correct + c_correct
            if grads:
                gh.append(c_gh)
                gw += c_gw
                gb += c_gb
        gh = torch.cat(gh).to(h.dtype) if gh else torch.empty_like(h)
        ctx.save_for_backward(*(t for t, n in zip((gh, gw, gb), need, strict=True) if n))
        ctx.need = need
        ctx.mark_non_differentiable(correct)
        return loss, correct

    @staticmethod
    def backward(ctx, g, _):
        saved = iter(ctx.saved_tensors)
        grads = [next(saved) * g if need else None for need in ctx.need]
        return grads[0], grads[1], grads[2], None, None, None, None


CHUNK_ELEMENTS = {"cpu": 1 << 23, "cuda": 1 << 26}
"""Logit elements per chunk of :func:`linear_cross_entropy` by device type (others take the CPU's). 2^23 (32 MiB of
fp32 logits) suits a CPU's caches. On a GPU, small chunks leave it waiting on launches: on an H200 (`make
gpu-check`'s bench, one run, bf16 training steps of 512/512-token batches, 50,265-entry vocabulary) 2^26 gave 1.38x
the tokens/s of 2^23 at the base shape and 1.20x at large."""


def linear_cross_entropy(
    hidden: Tensor,
    weight: Tensor,
    bias: Tensor,
    labels: Tensor,
    label_smoothing: float = 0.0,
    chunk_elements: int | None = None,
    compiled: bool = False,
) -> tuple[Tensor, Tensor]:
    """Sum over N rows of cross-entropy(hidden @ weight.T + bias, labels) in fp32 (optionally label-smoothed), and the
    number of rows whose argmax is the label; equal to `F.cross_entropy(logits, labels, reduction="sum")` but the
    (N, V) logits never exist. hidden (N, D), weight (V, D), bias (V,), labels (N,) (no ignore index: select first).
    Gradients are computed during the forward pass (so call it once per backward). ``chunk_elements``: logit elements
    a chunk holds (default :data:`CHUNK_ELEMENTS` for the device). ``compiled``: each chunk through
    ``torch.compile`` (one fused kernel for the softmax passes; compiled once, any number of rows)."""
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
    if torch.is_autocast_enabled(hidden.device.type):  # matmuls in the autocast dtype, softmax sums in fp32
        hidden = hidden.to(torch.get_autocast_dtype(hidden.device.type))
    if chunk_elements is None:
        chunk_elements = CHUNK_ELEMENTS.get(hidden.device.type, CHUNK_ELEMENTS["cpu"])
    rows = max(1, chunk_elements // weight.size(0))
    return _LinearCrossEntropy.apply(hidden, weight, bias, labels, float(label_smoothing), rows, compiled)

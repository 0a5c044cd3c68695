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


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, bias, labels, label_smoothing, rows):
        with torch.autocast(h.device.type, enabled=False):  # dtypes are handled explicitly below
            return _LinearCrossEntropy.chunks(ctx, h, weight, bias, labels, label_smoothing, rows)

    @staticmethod
    def chunks(ctx, h, weight, bias, labels, label_smoothing, rows):
        (N, _), V = h.shape, weight.size(0)
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        w, b = weight.to(h.dtype), bias.to(h.dtype)
        loss = torch.zeros((), dtype=torch.float32, device=h.device)
        correct = torch.zeros((), dtype=torch.long, device=h.device)
        gh = torch.empty_like(h) if need_h else None
        gw = torch.zeros(weight.shape, dtype=torch.float32, device=h.device) if need_w else None
        gb = torch.zeros(V, dtype=torch.float32, device=h.device) if need_b else None
        buf = torch.empty(min(rows, N), V, dtype=h.dtype, device=h.device)  # reused by every chunk
        for s in range(0, N, rows):
            hc, y = h[s : s + rows], labels[s : s + rows]
            z = torch.addmm(b, hc, w.t(), out=buf[: hc.size(0)])  # (n, V) logits of this chunk
            z = z if z.dtype == torch.float32 else z.float()
            correct += (z.argmax(-1) == y).sum()
            z_y, z_mean = z.gather(1, y[:, None]).squeeze(1), z.mean(-1) if label_smoothing else 0.0
            m = z.amax(-1, keepdim=True)
            p = z.sub_(m).exp_()  # in place: exp(z - max)
            total = p.sum(-1, keepdim=True)
            lse = (m + total.log()).squeeze(1)
            loss += ((1 - label_smoothing) * (lse - z_y) + label_smoothing * (lse - z_mean)).sum()
            if need_h or need_w or need_b:
                dz = p.div_(total)  # softmax; d loss / d z = softmax - target distribution
                dz.scatter_add_(1, y[:, None], dz.new_full((y.size(0), 1), label_smoothing - 1))
                if label_smoothing:
                    dz.sub_(label_smoothing / V)
                dzc = dz.to(h.dtype)
                if need_h:
                    torch.mm(dzc, w, out=gh[s : s + rows])
                if need_w and h.dtype == torch.float32:
                    gw.addmm_(dzc.t(), hc)
                elif need_w:
                    gw += (dzc.t() @ hc).float()
                if need_b:
                    gb += dz.sum(0)
        ctx.save_for_backward(*(t for t in (gh, gw, gb) if t is not None))
        ctx.need = (need_h, need_w, need_b)
        ctx.mark_non_differentiable(correct)
        return loss, correct

    @staticmethod
    def backward(ctx, g, _):
        saved = iter(ctx.saved_tensors)
        grads = [next(saved) * g if need else None for need in ctx.need]
        return grads[0], grads[1], grads[2], None, None, None


def linear_cross_entropy(
    hidden: Tensor,
    weight: Tensor,
    bias: Tensor,
    labels: Tensor,
    label_smoothing: float = 0.0,
    chunk_elements: int = 1 << 23,
) -> tuple[Tensor, Tensor]:
    """Sum over N rows of cross-entropy(hidden @ weight.T + bias, labels) in fp32 (optionally label-smoothed), and the
    number of rows whose argmax is the label; equal to `F.cross_entropy(logits, labels, reduction="sum")` but the
    (N, V) logits never exist. hidden (N, D), weight (V, D), bias (V,), labels (N,) (no ignore index: select first).
    Gradients are computed during the forward pass (so call it once per backward)."""
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
    if torch.is_autocast_enabled(hidden.device.type):  # matmuls in the autocast dtype, softmax sums in fp32
        hidden = hidden.to(torch.get_autocast_dtype(hidden.device.type))
    rows = max(1, chunk_elements // weight.size(0))
    return _LinearCrossEntropy.apply(hidden, weight, bias, labels, float(label_smoothing), rows)

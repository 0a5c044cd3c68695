"""Model speed: our `Bart` against transformers' `BartForConditionalGeneration` (attention 'sdpa') on the same
config, weights, batches, thread count and machine, interleaved in one run (best of N, so a noisy shared machine
hurts both alike). Training step = forward + backward + AdamW. Tokens counted = real (non-pad) source + target
tokens. GFLOP/s counts useful matmul FLOPs (real tokens only, causal attention halved) against the rate of one large
fp32 `torch.mm` on this machine.

`python -m bart_pretrain.bench model [--quick]`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import yaml

from bart_pretrain.hf import to_transformers
from bart_pretrain.model import Bart, BartConfig
from bart_pretrain.paths import shipped
from bart_pretrain.training.losses import linear_cross_entropy

PAD = 1
# name: (d_model, layers per stack, heads, ffn); "tiny" is configs/model/tiny.yaml, what `make pretrain` runs
SHAPES = {
    "small": (512, 6, 8, 2048),
    "base": (768, 6, 12, 3072),
}
TINY_VOCAB = 8192  # the default tokenizer's (data/tokenizer)


@dataclass
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    decoder_input_ids: torch.Tensor
    decoder_attention_mask: torch.Tensor
    labels: torch.Tensor  # pad where ignored

    @property
    def real_tokens(self) -> int:
        return int(self.attention_mask.sum() + self.decoder_attention_mask.sum())


def config_for(shape: str, vocab_size: int = 16384) -> BartConfig:
    if shape == "tiny":
        preset = yaml.safe_load(shipped("configs/model/tiny.yaml").read_text(encoding="utf-8"))
        return BartConfig.from_dict(preset | {"vocab_size": TINY_VOCAB})
    d, n, h, f = SHAPES[shape]
    return BartConfig(
        vocab_size=vocab_size,
        d_model=d,
        encoder_layers=n,
        decoder_layers=n,
        encoder_attention_heads=h,
        decoder_attention_heads=h,
        encoder_ffn_dim=f,
        decoder_ffn_dim=f,
        max_position_embeddings=1024,
        dropout=0.1,
        attention_dropout=0.0,
        activation_dropout=0.0,
    )


def make_batch(src_lens: list[int], tgt_lens: list[int], vocab_size: int, gen: torch.Generator) -> Batch:
    """Right-padded batch; the target is a sequence of its own length (labels = target, inputs = shifted)."""
    B, S, T = len(src_lens), max(src_lens), max(tgt_lens)
    ids = torch.randint(4, vocab_size, (B, S), generator=gen)
    am = torch.arange(S)[None] < torch.tensor(src_lens)[:, None]
    labels = torch.randint(4, vocab_size, (B, T), generator=gen)
    dm = torch.arange(T)[None] < torch.tensor(tgt_lens)[:, None]
    labels = labels.masked_fill(~dm, PAD)
    dec = torch.cat([torch.full((B, 1), 2), labels[:, :-1]], 1).masked_fill(~dm, PAD)
    return Batch(ids.masked_fill(~am, PAD), am.long(), dec, dm.long(), labels)


def flops(c: BartConfig, batch: Batch) -> float:
    """Useful forward+backward matmul FLOPs (3x forward) on the real tokens of `batch`."""
    D, Fe, Fd, V = c.d_model, c.encoder_ffn_dim, c.decoder_ffn_dim, c.vocab_size
    s, t = batch.attention_mask.sum(1).double(), batch.decoder_attention_mask.sum(1).double()
    enc = c.encoder_layers * (s * (2 * (4 * D * D + 2 * D * Fe)) + 4 * s * s * D)
    dec = c.decoder_layers * (t * 2 * (6 * D * D + 2 * D * Fd) + s * 2 * 2 * D * D + 2 * t * t * D + 4 * t * s * D)
    return float(3 * (enc + dec + t * 2 * D * V).sum())


def ours_step(model, opt, b: Batch, **loss_kw) -> None:
    """Our model + `linear_cross_entropy` (the LM-head loss without materialised logits), token-normalised;
    `loss_kw` go to `linear_cross_entropy` (e.g. chunk_elements)."""
    mask = b.labels.ne(PAD)
    h = model.hidden_states(b.input_ids, b.attention_mask, b.decoder_input_ids, b.decoder_attention_mask, mask)
    loss, _ = linear_cross_entropy(h, model.shared.weight, model.final_logits_bias[0], b.labels[mask], **loss_kw)
    (loss / mask.sum()).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def ours_logits_step(model, opt, b: Batch) -> None:
    """Our model's logits at non-pad labels + F.cross_entropy."""
    mask = b.labels.ne(PAD)
    logits = model(b.input_ids, b.attention_mask, b.decoder_input_ids, b.decoder_attention_mask, logits_mask=mask)
    F.cross_entropy(logits, b.labels[mask]).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def hf_step(model, opt, b: Batch) -> None:
    out = model(
        input_ids=b.input_ids,
        attention_mask=b.attention_mask,
        decoder_input_ids=b.decoder_input_ids,
        decoder_attention_mask=b.decoder_attention_mask,
        labels=b.labels.masked_fill(b.labels == PAD, -100),
    )
    out.loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleaved(fns: dict, repeats: int, warmup: int = 1) -> dict[str, float]:
    """Best-of-`repeats` seconds of each callable, run alternately so load spikes hit both."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            best[k] = min(best[k], timed(fn))
    return best


def pair(shape: str):
    torch.manual_seed(0)
    ours = Bart(config_for(shape)).train()
    theirs = to_transformers(ours, "sdpa").train()
    return ours, theirs, torch.optim.AdamW(ours.parameters(), lr=1e-4), torch.optim.AdamW(theirs.parameters(), lr=1e-4)


def bench_fixed(shape: str, S: int, B: int, repeats: int, peak: float, logits_variant: bool = True) -> dict:
    ours, theirs, o_opt, t_opt = pair(shape)
    b = make_batch([S] * B, [S] * B, ours.config.vocab_size, torch.Generator().manual_seed(0))
    steps = {"ours": ours_step, "logits": ours_logits_step} if logits_variant else {"ours": ours_step}
    fns = {k: (lambda f=f: f(ours, o_opt, b)) for k, f in steps.items()} | {"hf": lambda: hf_step(theirs, t_opt, b)}
    t = interleaved(fns, repeats)
    f = flops(ours.config, b)
    return row(f"train {shape} {S}/{S} x{B}", b.real_tokens, t, f, peak)


def bench_variable(shape: str, n: int, max_len: int, B: int, repeats: int, peak: float) -> dict:
    """n documents, source lengths uniform in [max_len/8, max_len], target as long as the source (denoising).
    transformers: batches of B in data order padded to the longest. Ours: length-sorted batches under a token budget
    of B * max_len padded source tokens (the project's token-budget batching)."""
    ours, theirs, o_opt, t_opt = pair(shape)
    gen = torch.Generator().manual_seed(1)
    lens = torch.randint(max_len // 8, max_len + 1, (n,), generator=gen).tolist()
    V = ours.config.vocab_size
    hf_batches = [make_batch(lens[i : i + B], lens[i : i + B], V, gen) for i in range(0, n, B)]
    our_batches, cur = [], []
    for length in sorted(lens, reverse=True):
        if cur and (len(cur) + 1) * cur[0] > B * max_len:
            our_batches.append(make_batch(cur, cur, V, gen))
            cur = []
        cur.append(length)
    our_batches.append(make_batch(cur, cur, V, gen))
    real = sum(b.real_tokens for b in hf_batches)
    t = interleaved(
        {
            "ours": lambda: [ours_step(ours, o_opt, b) for b in our_batches],
            "logits": lambda: [ours_logits_step(ours, o_opt, b) for b in our_batches],
            "hf": lambda: [hf_step(theirs, t_opt, b) for b in hf_batches],
        },
        repeats,
        warmup=0,
    )
    pad_frac = {
        k: 1 - real / sum(b.input_ids.numel() + b.labels.numel() for b in bs)
        for k, bs in (("ours", our_batches), ("hf", hf_batches))
    }
    r = row(
        f"train {shape} variable {max_len // 8}-{max_len}",
        real,
        t,
        sum(flops(ours.config, b) for b in hf_batches),
        peak,
    )
    r["note"] = f"padding ours {pad_frac['ours']:.0%} / transformers {pad_frac['hf']:.0%}"
    return r


def beam_runs(ours, theirs, b: Batch, new_tokens: int, beams: int) -> tuple[dict, dict]:
    """Callables running our beam search and transformers' `generate` on the sources of `b` with the same settings
    (exactly `new_tokens` new tokens, no-repeat 3-grams); each stores its output under its key in the returned dict."""
    kw = dict(num_beams=beams, max_length=new_tokens + 1, min_length=new_tokens + 1, no_repeat_ngram_size=3)
    res = {}

    @torch.no_grad()
    def run_ours():
        res["ours"] = ours.generate(b.input_ids, b.attention_mask, **kw)

    @torch.no_grad()
    def run_hf():
        res["hf"] = theirs.generate(
            input_ids=b.input_ids,
            attention_mask=b.attention_mask,
            do_sample=False,
            decoder_start_token_id=2,
            forced_bos_token_id=0,
            forced_eos_token_id=2,
            early_stopping=True,
            length_penalty=1.0,
            **kw,
        )

    return {"ours": run_ours, "hf": run_hf}, res


@torch.no_grad()
def bench_beam(shape: str, B: int, S: int, new_tokens: int, beams: int, repeats: int) -> dict:
    torch.manual_seed(0)
    ours = Bart(config_for(shape)).eval()
    theirs = to_transformers(ours, "sdpa").eval()
    gen = torch.Generator().manual_seed(2)
    lens = torch.randint(S // 2, S + 1, (B,), generator=gen).tolist()
    b = make_batch(lens, lens, ours.config.vocab_size, gen)
    fns, res = beam_runs(ours, theirs, b, new_tokens, beams)
    t = interleaved(fns, repeats)
    same = torch.equal(res["ours"], res["hf"])
    tokens = B * new_tokens
    return {
        "case": f"beam {shape} x{B}, {beams} beams, {new_tokens} new, src {S // 2}-{S}",
        "unit": "new tok/s",
        "ours": tokens / t["ours"],
        "hf": tokens / t["hf"],
        "note": f"outputs equal: {same}",
    }


def shipped_steps(repeats: int, peaks: dict[str, float]) -> list[str]:
    """The step `make pretrain` runs (configs/model/tiny.yaml, the 8k vocabulary, 2,048 target tokens of 64-token
    documents, sources 40-64 tokens as the noise leaves them) through the training module's own `token_loss`: eager
    fp32 (the step before `--model.compile`), eager bf16, compiled fp32, compiled bf16 (the shipped config); and
    transformers' BART on the same weights and batches, eager and compiled, fp32 and bf16. Markdown rows."""
    from bart_pretrain.training.module import Seq2SeqModule

    class Step(Seq2SeqModule):
        def __init__(self, model, compiled: bool):
            super().__init__()
            self.model, self.pad_id, self.compiled = model, PAD, compiled

    gen = torch.Generator().manual_seed(3)
    config = config_for("tiny")
    batches = []
    for _ in range(6):
        src = torch.randint(40, 65, (32,), generator=gen).tolist()
        batches.append(make_batch(src, [64] * 32, config.vocab_size, gen))
    keys = ("input_ids", "attention_mask", "decoder_input_ids", "labels")
    dicts = [{k: getattr(b, k) for k in keys} for b in batches]
    target_tokens = sum(int(b.labels.ne(PAD).sum()) for b in batches)
    work = sum(flops(config, b) for b in batches)

    def ours(compiled: bool, bf16: bool):
        torch.manual_seed(0)
        step = Step(Bart(config).train(), compiled)
        opt = torch.optim.AdamW(step.model.parameters(), lr=1e-4, fused=not bf16)

        def run():
            for d in dicts:
                with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                    loss, n, _ = step.token_loss(d)
                (loss / n).backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

        return run

    def theirs(compiled: bool, bf16: bool):
        torch.manual_seed(0)
        model = to_transformers(Bart(config), "sdpa").train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        forward = torch.compile(model, dynamic=True) if compiled else model

        def run():
            for b in batches:
                with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                    out = forward(
                        input_ids=b.input_ids,
                        attention_mask=b.attention_mask,
                        decoder_input_ids=b.decoder_input_ids,
                        labels=b.labels.masked_fill(b.labels == PAD, -100),
                    )
                out.loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

        return run

    variants = {
        "ours eager fp32 (before --model.compile)": (ours(False, False), "fp32"),
        "ours eager bf16": (ours(False, True), "bf16"),
        "ours compiled fp32": (ours(True, False), "fp32"),
        "ours compiled bf16 (shipped: configs/pretrain/tiny.yaml)": (ours(True, True), "bf16"),
        "transformers eager fp32": (theirs(False, False), "fp32"),
        "transformers eager bf16": (theirs(False, True), "bf16"),
        "transformers compiled bf16": (theirs(True, True), "bf16"),
    }
    warm = {}
    for name, (fn, _) in variants.items():  # first call: compiles
        warm[name] = timed(fn)
    t = interleaved({k: fn for k, (fn, _) in variants.items()}, repeats, warmup=0)
    speed = {k: target_tokens / v for k, v in t.items()}
    eager = speed["ours eager fp32 (before --model.compile)"]
    best_hf = max(v for k, v in speed.items() if k.startswith("transformers"))
    rows = []
    for name, (_, dtype) in variants.items():
        gflops = work / t[name] / 1e9
        rows.append(
            f"| {name} | {speed[name]:,.0f} | {speed[name] / eager:.2f}x | {speed[name] / best_hf:.2f}x | "
            f"{gflops:.0f} ({gflops * 1e9 / peaks[dtype]:.0%} of {dtype} mm) | {warm[name]:.1f} s |"
        )
    return rows


def row(case: str, tokens: int, t: dict, f: float, peak: float) -> dict:
    note = f"GFLOP/s ours {f / t['ours'] / 1e9:.0f} ({f / t['ours'] / peak:.0%} of mm), "
    note += f"transformers {f / t['hf'] / 1e9:.0f} ({f / t['hf'] / peak:.0%})"
    speeds = {k: tokens / v for k, v in t.items()}
    return {"case": case, "unit": "tok/s", **speeds, "note": note}


def matmul_peak(n: int = 2048, repeats: int = 20, dtype: torch.dtype = torch.float32) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    best = min(timed(lambda: torch.mm(a, b)) for _ in range(repeats + 1))
    return 2 * n**3 / best


def main(quick: bool = False) -> None:
    threads = int(os.environ.get("BENCH_THREADS", "2"))
    torch.set_num_threads(threads)
    peak = matmul_peak()
    peaks = {"fp32": peak, "bf16": matmul_peak(dtype=torch.bfloat16)}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"torch.mm peak: fp32 {peak / 1e9:.0f}, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s on {threads} threads (load "
        f"average {load:.1f} on {os.cpu_count()} CPUs); torch {torch.__version__}\n",
        flush=True,
    )
    print(
        "### The shipped step (`make pretrain`: configs/model/tiny.yaml, 8k vocabulary, 2,048 target tokens of 64-token"
        " documents)\n\nTarget tokens/s over 6 batches, best of the interleaved repeats, forward + backward + AdamW;"
        " ratios against our eager fp32 step and against the fastest transformers variant; first call = compile.\n"
    )
    print("| step | target tok/s | vs eager fp32 | vs transformers (best) | GFLOP/s | first call |")
    print("|---|---:|---:|---:|---:|---:|", flush=True)
    for line in shipped_steps(2 if quick else 5, peaks):
        print(line, flush=True)
    print("\n### Our model against transformers on other shapes\n", flush=True)
    if quick:
        cases = [
            lambda: bench_fixed("tiny", 64, 8, 3, peak),
            lambda: bench_variable("tiny", 16, 64, 8, 2, peak),
            lambda: bench_beam("tiny", 4, 64, 16, 4, 2),
        ]
    else:
        cases = [
            lambda: bench_fixed("tiny", 64, 32, 5, peak),
            lambda: bench_fixed("small", 512, 8, 3, peak, logits_variant=False),
            lambda: bench_fixed("base", 512, 8, 1, peak, logits_variant=False),
            lambda: bench_variable("tiny", 256, 64, 32, 2, peak),
            lambda: bench_beam("tiny", 16, 64, 64, 4, 3),
        ]
    print(
        "ours = our model + linear_cross_entropy; ours (logits) = our model's logits at non-pad labels + "
        "F.cross_entropy; transformers = BartForConditionalGeneration(labels=...), pad labels -100.\n"
    )
    print("| case | unit | ours | ours (logits) | transformers (sdpa) | ratio | ratio (logits) | notes |")
    print("|---|---|---:|---:|---:|---:|---:|---|", flush=True)
    for case in cases:
        r = case()
        logits = (f"{r['logits']:,.0f}", f"{r['logits'] / r['hf']:.2f}x") if "logits" in r else ("-", "-")
        print(
            f"| {r['case']} | {r['unit']} | {r['ours']:,.0f} | {logits[0]} | {r['hf']:,.0f} "
            f"| {r['ours'] / r['hf']:.2f}x | {logits[1]} | {r['note']} |",
            flush=True,
        )

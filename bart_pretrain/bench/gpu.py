"""GPU speed (issue 14): training tokens/s and MFU of our `Bart` against transformers' `BartForConditionalGeneration`
(attention 'sdpa') on the same weights and batch, for the shipped base and large shapes (configs/model/, BART's
50265-token vocabulary) at 512 source + 512 target tokens, in bf16 autocast over fp32 weights (what Lightning's
`bf16-mixed` does), eager and `torch.compile`; beam search against `generate`; peak memory. Writes gpu.json, gpu.md.

A training step is forward + backward + AdamW, as in `bench.model` (ours: `linear_cross_entropy` as training runs it; in
eager mode also with the CPU's 8x smaller loss chunks, and "ours (logits)": our logits + F.cross_entropy; transformers:
its `labels` loss). Tokens: real source + target tokens. FLOPs (`bench.model.flops`): 3 x (forward + backward) the
forward matmul FLOPs of the real tokens, i.e. 2 per multiply-add of every projection, feed-forward and LM-head weight (6
x matmul parameters x tokens; embedding lookups, norms and softmax count nothing) plus attention's QK^T and AV, causal
self-attention halved. MFU: those FLOP/s over the device's dense bf16 peak from NVIDIA's datasheets (PEAKS; the entry
used is printed), and beside it over a bf16 matmul measured in the same run. Times: median of interleaved, synchronised
steps after warm-up.

`python -m bart_pretrain.bench gpu [--out DIR]`: under 5 minutes on one H100/H200 (`--budget-s` stops starting new
cases). The same code on a CPU in seconds (tiny shape, 2 steps, dynamo without inductor): `... gpu --smoke`.
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import statistics
import sys
import time
import traceback
from dataclasses import fields
from pathlib import Path

import torch
import yaml

from bart_pretrain.bench.model import Batch, beam_runs, flops, hf_step, make_batch, ours_logits_step, ours_step, timed
from bart_pretrain.hf import to_transformers
from bart_pretrain.model import Bart, BartConfig
from bart_pretrain.training.losses import CHUNK_ELEMENTS

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
CPU_CHUNK = CHUNK_ELEMENTS["cpu"]  # elements per loss chunk of the variant: the CPU's, 1/8 of the default on CUDA
PEAK_SOURCE = "NVIDIA datasheets, dense BF16 Tensor Core TFLOP/s (half the 'with sparsity' figure)"
PEAKS = [  # (pattern on torch.cuda.get_device_name(), table entry, dense bf16 TFLOP/s); first match wins
    (r"H100.*PCIe", "H100 PCIe", 756.0),
    (r"H100.*NVL", "H100 NVL", 835.0),
    (r"H200.*NVL", "H200 NVL", 835.0),
    (r"GH200", "GH200", 989.0),
    (r"H100|H200|H800", "H100/H200 SXM", 989.0),  # 'NVIDIA H100 80GB HBM3', 'NVIDIA H200'
    (r"A100|A800", "A100", 312.0),
    (r"L40S", "L40S", 362.0),
    (r"L40\b", "L40", 181.0),
    (r"\bL4\b", "L4", 121.0),
    (r"\bA10\b", "A10", 125.0),
    (r"B200", "B200", 2250.0),
]
GOALS = {  # issue 14
    "train_speedup": ("ours / transformers training tokens/s, base, bf16, eager", 1.3),
    "mfu": ("ours' MFU (datasheet peak), best of eager/compile", 0.40),
    "beam_speedup": ("ours / transformers' generate, beam-search tokens/s", 2.0),
}


SMOKE = ["--device", "cpu", "--dtype", "fp32", "--shapes", "tiny", "--seq", "32", "--batch", "2", "--vocab", "512",
         "--steps", "2", "--warmup", "1", "--compile-backend", "eager", "--beam-batch", "2", "--beam-src", "32",
         "--beam-new", "4", "--beam-repeats", "1"]  # fmt: skip


def peak_for(device_name: str) -> tuple[str | None, float | None]:
    for pattern, entry, tflops in PEAKS:
        if re.search(pattern, device_name):
            return entry, tflops
    return None, None


def shipped_config(shape: str, vocab_size: int) -> BartConfig:
    """configs/model/<shape>.yaml (dropout as users train) with the given vocabulary size."""
    path = CONFIGS / "model" / f"{shape}.yaml"
    if not path.is_file():
        shipped = sorted(p.stem for p in (CONFIGS / "model").glob("*.yaml"))
        raise ValueError(f"--shapes: no model config {path}; shipped shapes: {shipped}")
    return BartConfig.from_dict(yaml.safe_load(path.read_text()) | {"vocab_size": vocab_size})


def recipe_batch(shape: str, seq: int) -> int:
    """Sequences per batch of the shipped pretrain recipe: data.max_tokens of configs/pretrain/<shape>.yaml / seq."""
    recipe = yaml.safe_load((CONFIGS / "pretrain" / f"{shape}.yaml").read_text())
    return max(1, recipe["data"]["max_tokens"] // seq)


def to_device(b: Batch, device: torch.device) -> Batch:
    return Batch(*(getattr(b, f.name).to(device) for f in fields(b)))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_under(fn, device: torch.device, dtype: str):
    """`fn` in bf16 autocast (or plain fp32), then a device synchronisation, so host timers see the device's time."""

    def run():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16"):
            fn()
        sync(device)

    return run


def medians(fns: dict, steps: int) -> dict[str, float]:
    """Median seconds of each callable over `steps` rounds, run alternately so drifts (clocks, heat) hit all alike."""
    times = {k: [] for k in fns}
    for _ in range(steps):
        for k, fn in fns.items():
            times[k].append(timed(fn))
    return {k: statistics.median(v) for k, v in times.items()}


def step_peak_bytes(fn, device: torch.device) -> int | None:
    """Device memory a call allocates at its peak beyond what was allocated before it (None off CUDA)."""
    if device.type != "cuda":
        return None
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    return torch.cuda.max_memory_allocated(device) - before


def param_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def matmul_tflops(device: torch.device, dtype: str) -> float:
    """A large square matmul's rate here in the bench's dtype: the achievable ceiling, beside the datasheet's."""
    n, reps = (8192, 10) if device.type == "cuda" else (1024, 3)
    dt = torch.bfloat16 if dtype == "bf16" else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dt), torch.randn(n, n, device=device, dtype=dt)
    for _ in range(2):
        torch.mm(a, b)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b)
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e12


def compile_layers(model: torch.nn.Module, backend: str) -> int:
    """torch.compile every encoder/decoder layer in place (ours and transformers' alike); embeddings, masks and the
    loss stay eager, so data-dependent mask checks never break a graph. Returns the number of layers compiled."""
    layers = [m for m in model.modules() if type(m).__name__.endswith(("EncoderLayer", "DecoderLayer"))]
    for layer in layers:
        layer.compile(backend=backend, dynamic=False)
    return len(layers)


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def train_case(shape: str, mode: str, args, device: torch.device, env: dict) -> dict:
    config = shipped_config(shape, args.vocab)
    S, B = args.seq, args.batch or recipe_batch(shape, args.seq)
    torch.manual_seed(0)
    with device:
        ours = Bart(config).train()
        theirs = to_transformers(ours, "sdpa").train()
    b = to_device(make_batch([S] * B, [S] * B, config.vocab_size, torch.Generator().manual_seed(0)), device)
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-4) for k, m in (("ours", ours), ("hf", theirs))}
    steps = {"ours": lambda: ours_step(ours, opts["ours"], b)}
    if mode == "eager":  # the loss kernel with the CPU's smaller chunks, and with no chunks (materialised logits)
        steps["chunks"] = lambda: ours_step(ours, opts["ours"], b, chunk_elements=CPU_CHUNK)
        steps["logits"] = lambda: ours_logits_step(ours, opts["ours"], b)
    steps["hf"] = lambda: hf_step(theirs, opts["hf"], b)
    if mode == "compile":
        torch._dynamo.reset()  # a fresh cache per case: another shape's graphs would turn these dynamic
        cfg = torch._dynamo.config  # every compiled layer's entry hangs on one code object (Module._call_impl)
        limit = "recompile_limit" if hasattr(cfg, "recompile_limit") else "cache_size_limit"  # torch < 2.7
        setattr(cfg, limit, max(getattr(cfg, limit), 64))
        n_layers = config.encoder_layers + config.decoder_layers
        counts = compile_layers(ours, args.compile_backend), compile_layers(theirs, args.compile_backend)
        if counts != (n_layers, n_layers):
            raise RuntimeError(f"compiled {counts} layers (ours, transformers), expected {n_layers} each")
    fns = {k: run_under(fn, device, args.dtype) for k, fn in steps.items()}
    first = {k: timed(fn) for k, fn in fns.items()}  # includes compilation in compile mode
    for _ in range(args.warmup - 1):
        for fn in fns.values():
            fn()
    state = 3 * param_bytes(ours)  # fp32 weights + AdamW's two moments; gradients are counted in the step
    peaks = {k: step_peak_bytes(fn, device) for k, fn in fns.items()}
    t = medians(fns, args.steps)
    f = flops(config, b)
    row = {
        "case": f"train {shape} {S}/{S} x{B}",
        "kind": "train",
        "shape": shape,
        "mode": mode if mode == "eager" else f"compile ({args.compile_backend})",
        "unit": "tok/s",
        "batch": B,
        "tokens": b.real_tokens,
        "flops": f,
        "step_s": t,
        "first_step_s": first,
        "tok_s": {k: b.real_tokens / v for k, v in t.items()},
        "tflops": {k: f / v / 1e12 for k, v in t.items()},
        "mfu": {k: f / v / 1e12 / env["peak_tflops"] for k, v in t.items()} if env["peak_tflops"] else None,
        "mfu_measured": {k: f / v / 1e12 / env["matmul_tflops"] for k, v in t.items()},
        "peak_gib": {k: (state + p) / 2**30 for k, p in peaks.items()} if device.type == "cuda" else None,
    }
    return row


def beam_case(shape: str, args, device: torch.device) -> dict:
    config = shipped_config(shape, args.vocab)
    B, S, new, G = args.beam_batch, args.beam_src, args.beam_new, args.beams
    torch.manual_seed(0)
    dt = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    with device:
        ours = Bart(config).eval()
        theirs = to_transformers(ours, "sdpa").eval()
    ours, theirs = ours.to(dt), theirs.to(dt)  # inference weights in the bench's dtype, as a summarizer runs
    gen = torch.Generator().manual_seed(2)
    lens = torch.randint(S // 2, S + 1, (B,), generator=gen).tolist()
    b = to_device(make_batch(lens, lens, config.vocab_size, gen), device)
    runs, res = beam_runs(ours, theirs, b, new, G)
    fns = {}
    for k, fn in runs.items():
        fns[k] = run_under(fn, device, "fp32")  # weights already in dtype: no autocast
    first = {k: timed(fn) for k, fn in fns.items()}
    peaks = {k: step_peak_bytes(fn, device) for k, fn in fns.items()}
    t = medians(fns, args.beam_repeats)
    tokens = B * new
    weights = param_bytes(ours)
    return {
        "case": f"beam {shape} x{B}, {G} beams, {new} new, src {S // 2}-{S}",
        "kind": "beam",
        "shape": shape,
        "mode": "eager",
        "unit": "new tok/s",
        "tokens": tokens,
        "step_s": t,
        "first_step_s": first,
        "tok_s": {k: tokens / v for k, v in t.items()},
        "peak_gib": {k: (weights + p) / 2**30 for k, p in peaks.items()} if device.type == "cuda" else None,
        "outputs_equal": bool(torch.equal(res["ours"], res["hf"])),
    }


def goals(rows: list[dict], goal_shape: str, dtype: str) -> list[dict]:
    """Each goal of issue 14 against what this run measured (None where the run did not measure it)."""
    ok = [r for r in rows if "error" not in r]
    out = []

    def add(key, shape, value, note=""):
        text, target = GOALS[key]
        if value is not None and (dtype != "bf16" or (key == "train_speedup" and shape != "base")):
            note = f"measured on {shape} in {dtype}: not the goal's setting"
        met = None if value is None else value >= target
        out.append(
            {"goal": key, "what": text, "shape": shape, "target": target, "value": value, "met": met}
            | ({"note": note} if note else {})
        )

    eager = [r for r in ok if r["kind"] == "train" and r["shape"] == goal_shape and r["mode"] == "eager"]
    add("train_speedup", goal_shape, eager[0]["tok_s"]["ours"] / eager[0]["tok_s"]["hf"] if eager else None)
    for shape in dict.fromkeys(r["shape"] for r in ok if r["kind"] == "train"):
        mfus = [r["mfu"]["ours"] for r in ok if r["kind"] == "train" and r["shape"] == shape and r["mfu"]]
        add("mfu", shape, max(mfus) if mfus else None, "" if mfus else "no datasheet peak for this device")
    beam = [r for r in ok if r["kind"] == "beam"]
    speedup = beam[0]["tok_s"]["ours"] / beam[0]["tok_s"]["hf"] if beam else None
    add("beam_speedup", beam[0]["shape"] if beam else None, speedup)
    return out


def fmt(x, spec: str = ",.0f") -> str:
    return "-" if x is None else format(x, spec)


def markdown(result: dict) -> str:
    env = result["env"]
    peak = (
        f"'{env['peak_entry']}' {env['peak_tflops']:.0f} TFLOP/s dense bf16 ({env['peak_source']})"
        if env["peak_tflops"]
        else "no datasheet entry for this device (MFU vs datasheet not computed; pass --peak-tflops)"
    )
    lines = [
        f"# GPU bench: {env['device_name']}",
        "",
        f"- peak: {peak}; measured {env['dtype']} matmul: {env['matmul_tflops']:.0f} TFLOP/s",
        f"- torch {env['torch']}, transformers {env['transformers']}, CUDA {env['cuda']}; "
        f"{'bf16 autocast over fp32 weights' if env['dtype'] == 'bf16' else 'fp32'}; median of {env['steps']} steps "
        f"after {env['warmup']} warm-up; {env['seconds']:.0f} s in all",
        "- tokens = real source + target tokens; FLOPs = 3 x forward matmul FLOPs (6 x matmul params x tokens + "
        "attention, causal halved); MFU = FLOP/s / peak; 'MFU (mm)' = FLOP/s / measured matmul",
        "",
        f"| case | mode | unit | ours | ours (loss chunks 2^{CPU_CHUNK.bit_length() - 1}) | ours (logits) "
        "| transformers (sdpa) | ratio | MFU ours / transformers | MFU (mm) ours | peak GiB ours / transformers "
        "| notes |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['case']} | {r['mode']} | | | | | | | | | | error: {r['error'][:200]} |")
            continue
        s = r["tok_s"]
        mfu = f"{r['mfu']['ours']:.1%} / {r['mfu']['hf']:.1%}" if r.get("mfu") else "-"
        mm = f"{r['mfu_measured']['ours']:.1%}" if r.get("mfu_measured") else "-"
        mem = f"{r['peak_gib']['ours']:.1f} / {r['peak_gib']['hf']:.1f}" if r.get("peak_gib") else "-"
        if r["kind"] == "beam":
            note = f"outputs equal: {r['outputs_equal']}"
        else:
            first = r["first_step_s"]
            what = "first step" if r["mode"] == "eager" else "first step (compilation)"
            note = f"{what} ours {first['ours']:.1f} s, transformers {first['hf']:.1f} s"
        lines.append(
            f"| {r['case']} | {r['mode']} | {r['unit']} | {fmt(s['ours'])} | {fmt(s.get('chunks'))} "
            f"| {fmt(s.get('logits'))} | {fmt(s['hf'])} "
            f"| {s['ours'] / s['hf']:.2f}x | {mfu} | {mm} | {mem} | {note} |"
        )
    for case in result["skipped"]:
        lines.append(f"| {case} | | | | | | | | | | | skipped: --budget-s reached |")
    lines += ["", "## Goals (issue 14)", "", "| goal | shape | target | measured | met |", "|---|---|---:|---:|---|"]
    for g in result["goals"]:
        pct = g["goal"] == "mfu"
        value = "-" if g["value"] is None else (f"{g['value']:.1%}" if pct else f"{g['value']:.2f}x")
        target = f"{g['target']:.0%}" if pct else f"{g['target']:.2f}x"
        met = {True: "yes", False: "NO", None: "not measured"}[g["met"]]
        note = f" ({g['note']})" if "note" in g else ""
        lines.append(f"| {g['what']} | {g['shape']} | {target} | {value} | {met}{note} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None):
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m bart_pretrain.bench gpu", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="torch device (cpu: a smoke run of the same code)")
    p.add_argument("--shapes", default="base,large", help="comma-separated configs/model/ shapes")
    p.add_argument("--modes", default="eager,compile", help="comma-separated: eager, compile")
    p.add_argument("--seq", type=int, default=512, help="source and target tokens per sequence")
    p.add_argument("--batch", type=int, default=None, help="sequences per batch (default: the shape's recipe)")
    p.add_argument("--vocab", type=int, default=50265, help="vocabulary size (BART's by default)")
    p.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    p.add_argument("--steps", type=int, default=10, help="timed steps per implementation (median)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    p.add_argument("--compile-backend", default="inductor", help="torch.compile backend ('eager': dynamo only)")
    p.add_argument("--beam-shape", default=None, help="shape of the beam-search case (default: the first shape)")
    p.add_argument("--beam-batch", type=int, default=32)
    p.add_argument("--beam-src", type=int, default=512, help="longest source; lengths uniform in [src/2, src]")
    p.add_argument("--beam-new", type=int, default=64, help="new tokens per output")
    p.add_argument("--beams", type=int, default=4)
    p.add_argument("--beam-repeats", type=int, default=3)
    p.add_argument("--peak-tflops", type=float, default=None, help="the device's peak, overriding the table")
    p.add_argument("--budget-s", type=float, default=270.0, help="start no new case after this many seconds")
    p.add_argument("--out", default="runs/bench-gpu", help="directory for gpu.json and gpu.md")
    p.add_argument("--smoke", action="store_true", help=f"a seconds-long CPU run of every case: {' '.join(SMOKE)}")
    args = p.parse_args(argv)
    if args.smoke:  # the preset first, then whatever the command line says
        args = p.parse_args(SMOKE + [a for a in argv if a != "--smoke"])
    args.shapes, args.modes = args.shapes.split(","), args.modes.split(",")
    shipped = sorted(path.stem for path in (CONFIGS / "model").glob("*.yaml"))
    if bad := [s for s in args.shapes + [args.beam_shape or args.shapes[0]] if s not in shipped]:
        p.error(f"--shapes/--beam-shape: unknown shape(s) {bad}; shipped (configs/model/): {shipped}")
    if bad := [m for m in args.modes if m not in ("eager", "compile")]:
        p.error(f"--modes: unknown mode(s) {bad}; choose from eager, compile")
    if args.steps < 1 or args.warmup < 1:
        p.error(f"--steps and --warmup must be >= 1, got {args.steps}, {args.warmup}")
    return args


def environment(device: torch.device, args) -> dict:
    import transformers

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    if args.peak_tflops:
        entry, peak, source = "--peak-tflops", args.peak_tflops, "given on the command line"
    elif device.type == "cuda":
        entry, peak = peak_for(name)
        source = PEAK_SOURCE if entry else None
    else:
        entry, peak, source = None, None, None
    return {
        "device_name": name,
        "device": str(device),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda,
        "dtype": args.dtype,
        "peak_entry": entry,
        "peak_tflops": peak,
        "peak_source": source,
        "matmul_tflops": matmul_tflops(device, args.dtype),
        "steps": args.steps,
        "warmup": args.warmup,
        "args": dict(vars(args)),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench gpu: no CUDA device (torch.cuda.is_available() is False); --smoke runs the same code on a CPU")
        return 2
    import transformers

    transformers.logging.set_verbosity_error()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    env = environment(device, args)
    print(
        f"device {env['device_name']}: peak {env['peak_entry']} {env['peak_tflops']} TFLOP/s ({env['peak_source']}); "
        f"measured {args.dtype} matmul {env['matmul_tflops']:.0f} TFLOP/s",
        flush=True,
    )
    beam_shape = args.beam_shape or args.shapes[0]
    # the first mode's training cases, then beam search, then the other modes: the goals' figures come first
    cases = [("train", s, args.modes[0]) for s in args.shapes] + [("beam", beam_shape, "eager")]
    cases += [("train", s, m) for m in args.modes[1:] for s in args.shapes]
    result = {"env": env, "rows": [], "skipped": [], "goals": []}
    goal_shape = "base" if "base" in args.shapes else args.shapes[0]

    def save() -> None:  # after every case, so a run cut short still leaves its figures
        env["seconds"] = time.perf_counter() - t0
        result["goals"] = goals(result["rows"], goal_shape, args.dtype)
        (out / "gpu.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / "gpu.md").write_text(markdown(result))

    failed = False
    for kind, shape, mode in cases:
        name = f"{kind} {shape} {mode}"
        if time.perf_counter() - t0 > args.budget_s:
            result["skipped"].append(name)
            print(f"{name}: skipped (--budget-s {args.budget_s:.0f} reached)", flush=True)
            continue
        c0 = time.perf_counter()
        try:
            row = train_case(shape, mode, args, device, env) if kind == "train" else beam_case(shape, args, device)
        except Exception as e:  # one failing case (OOM, a compile error) must not lose the others' figures
            traceback.print_exc()
            failed = True
            row = {"case": name, "kind": kind, "shape": shape, "mode": mode, "error": f"{type(e).__name__}: {e}"}
        free(device)
        row["seconds"] = time.perf_counter() - c0
        result["rows"].append(row)
        figures = row["error"] if "error" in row else json.dumps({k: round(v) for k, v in row["tok_s"].items()})
        print(f"{name}: {row['seconds']:.0f} s, {row['unit'] if 'unit' in row else ''} {figures}", flush=True)
        save()
    save()
    print("\n" + (out / "gpu.md").read_text(), flush=True)
    print(f"wrote {out / 'gpu.json'} and {out / 'gpu.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

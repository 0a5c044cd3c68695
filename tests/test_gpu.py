"""The GPU path (`pytest -m gpu`; skipped without CUDA, see conftest.py): a bf16-mixed training step of the base shape
against fp32, the chunked loss kernel against F.cross_entropy in bf16 and fp32, greedy and beam search against
transformers, fused SDPA kernels on padded batches, a 2-GPU DDP step. A check whose logic also means something on a
CPU runs there too (tiny shape), so CI runs the code each GPU check runs; so does the GPU bench's smoke run."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.data import DataLoader

from bart_pretrain.bench.gpu import main as bench_gpu
from bart_pretrain.bench.gpu import peak_for, shipped_config
from bart_pretrain.bench.model import make_batch
from bart_pretrain.model import Bart, BartConfig
from bart_pretrain.optim import OptimConfig
from bart_pretrain.training.losses import linear_cross_entropy
from bart_pretrain.training.module import Seq2SeqModule

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()
from bart_pretrain.hf import to_transformers  # noqa: E402

HERE = Path(__file__).resolve().parent
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
# bf16 against fp32 on the same weights and batch at init: the mean token loss within 0.1% (relative), the gradient of
# all parameters as one vector within 3% relative L2 error. Measured on CPU autocast (tiny widths, 3+3 to 12+12
# layers): loss 1e-6 to 1e-5, gradient 0.31% to 0.37%; bf16 keeps 8 significant bits (0.4% per rounding).
LOSS_RTOL, GRAD_RTOL = 1e-3, 3e-2


def shape_for(device: str) -> tuple[str, int, int, int]:
    """(shape, vocab, batch, max length): the base shape with BART's vocabulary on CUDA, tiny on CPU."""
    return ("base", 50265, 8, 512) if device == "cuda" else ("tiny", 1000, 4, 32)


def padded_batches(n: int, B: int, S: int, vocab: int, seed: int = 0) -> list[dict]:
    """`n` training batches of Seq2SeqModule's format; sources and targets right-padded to lengths in [S/2, S]."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        lens = torch.randint(S // 2, S + 1, (B,), generator=g).tolist()
        b = make_batch(lens, lens, vocab, g)
        out.append(dict(input_ids=b.input_ids, attention_mask=b.attention_mask, decoder_input_ids=b.decoder_input_ids,
                        labels=b.labels))  # fmt: skip
    return out


class Module(Seq2SeqModule):
    def __init__(self, config: BartConfig, batches: list[dict] = ()):
        super().__init__()
        self.model, self.pad_id, self.batches = Bart(config), config.pad_token_id, list(batches)
        self.optim = OptimConfig(lr=1e-4, warmup_steps=0, schedule="constant")

    def train_dataloader(self):
        return DataLoader(self.batches, batch_size=None)


def trainer(device: str, **kw):
    import pytorch_lightning as pl

    accelerator = "gpu" if device == "cuda" else "cpu"
    quiet = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    return pl.Trainer(accelerator=accelerator, devices=1, **quiet, **kw)


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_mixed_training_step_is_finite_and_its_loss_matches_fp32(device):
    shape, vocab, B, S = shape_for(device)
    config = shipped_config(shape, vocab)
    batches = padded_batches(2, B, S, vocab)
    # The same weights and batch in fp32 and under bf16 autocast (dropout off, so both see the same network); backward
    # outside autocast, as Lightning's bf16-mixed does.
    quiet = config.to_dict() | dict(dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
    torch.manual_seed(0)
    module = Module(BartConfig.from_dict(quiet)).to(device).train()
    batch = {k: v.to(device) for k, v in batches[0].items()}
    losses, grads = {}, {}
    for precision in ("fp32", "bf16"):
        with torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss, n_tokens, _ = module.token_loss(batch)
        (loss / n_tokens).backward()
        losses[precision] = (loss / n_tokens).item()
        grads[precision] = torch.cat([p.grad.flatten() for p in module.parameters() if p.grad is not None])
        module.zero_grad(set_to_none=True)
    assert math.isfinite(losses["bf16"]) and torch.isfinite(grads["bf16"]).all()
    assert abs(losses["bf16"] - losses["fp32"]) <= LOSS_RTOL * losses["fp32"], losses
    grad_error = (grads["bf16"] - grads["fp32"]).norm() / grads["fp32"].norm()
    assert grad_error <= GRAD_RTOL, f"bf16 gradient off by {grad_error:.3%} (relative L2)"
    # Two real optimizer steps through Lightning's bf16-mixed with the shipped dropout.
    torch.manual_seed(0)
    module = Module(config, batches)
    before = [p.detach().clone() for p in module.parameters()]
    trainer(device, precision="bf16-mixed", max_steps=2).fit(module)
    train_losses = [loss for _, loss in module.history["train"]]
    assert len(train_losses) == 2 and all(math.isfinite(x) for x in train_losses), train_losses
    after = [p.detach().cpu() for p in module.parameters()]
    assert all(torch.isfinite(p).all() for p in after)
    assert sum(not torch.equal(a, b.cpu()) for a, b in zip(after, before, strict=True)) > len(after) // 2


@pytest.mark.gpu
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_linear_cross_entropy_matches_cross_entropy_on_cuda(dtype, label_smoothing):
    # fp32: summation order alone (1e-5 relative); bf16: both sides round the logits and the matmul operands to bf16
    # (loss 1e-3, gradients 1e-2 relative L2; the argmax may flip on near-ties: 1% of rows).
    tol = {"fp32": (1e-5, 1e-5, 0), "bf16": (1e-3, 1e-2, 0.01)}[dtype]
    N, D, V = 1500, 768, 50265  # chunk_elements 2**22: 83 rows per chunk, 19 chunks, the last one short
    g = torch.Generator(device="cuda").manual_seed(0)
    h = torch.randn(N, D, device="cuda", generator=g)
    w = 0.05 * torch.randn(V, D, device="cuda", generator=g)
    b = 0.1 * torch.randn(V, device="cuda", generator=g)
    y = torch.randint(0, V, (N,), device="cuda", generator=g)
    y[::2] = torch.addmm(b, h[::2], w.t()).argmax(-1)  # half the rows predicted right, so `correct` is checked
    ours, ref = [[t.clone().requires_grad_() for t in (h, w, b)] for _ in range(2)]
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == "bf16"):
        loss, correct = linear_cross_entropy(*ours, y, label_smoothing, chunk_elements=1 << 22)
        logits = F.linear(*ref)
        expected = F.cross_entropy(logits.float(), y, reduction="sum", label_smoothing=label_smoothing)
    loss.backward()
    expected.backward()
    assert loss.dtype == torch.float32
    assert abs(loss.item() - expected.item()) <= tol[0] * expected.item(), (loss.item(), expected.item())
    for name, a, e in zip("hwb", ours, ref, strict=True):
        error = (a.grad - e.grad).norm() / e.grad.norm()
        assert a.grad.dtype == e.grad.dtype == torch.float32 and error <= tol[1], f"grad {name}: {error:.2e}"
    assert abs(int(correct) - int((logits.argmax(-1) == y).sum())) <= tol[2] * N


@pytest.mark.gpu
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_and_beam_search_equal_transformers_on_cuda(seed):
    from test_generation import SETTINGS, peaked_model, sources  # the CPU test's models, sources and settings

    ours = peaked_model(seed).cuda()
    theirs = to_transformers(ours).eval()
    ids, am = (t.cuda() for t in sources(seed))
    for kw in SETTINGS:
        kw = {"max_length": 16, "no_repeat_ngram_size": 0} | kw  # transformers: 0 unless given
        with torch.no_grad():
            a = ours.generate(ids, am, **kw)
            bart = dict(do_sample=False, decoder_start_token_id=2, forced_bos_token_id=0, forced_eos_token_id=2)
            b = theirs.generate(input_ids=ids, attention_mask=am, **bart, **({"early_stopping": True} | kw))
        assert a.is_cuda and torch.equal(a, b), (kw, a, b)


@pytest.mark.parametrize("device", DEVICES)
def test_sdpa_takes_a_fused_kernel_for_padded_batches(device):
    """With SDPA restricted to fused backends, a call that would need the math fallback raises 'No available kernel';
    the profiler's op names then confirm fused ops ran and the math op never did. CUDA: flash or memory-efficient, the
    shipped base shape with its attention dropout, bf16 autocast. CPU: its flash kernel, tiny shape without attention
    dropout (which that kernel does not take). Training forward + backward, then beam search on the padded sources."""
    cuda = device == "cuda"
    shape, vocab, B, S = shape_for(device)
    config = shipped_config(shape, vocab)
    if not cuda:
        config = BartConfig.from_dict(config.to_dict() | {"attention_dropout": 0.0})
    backends = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION] if cuda else [SDPBackend.FLASH_ATTENTION]
    torch.manual_seed(0)
    model = Bart(config).to(device)
    batch = {k: v.to(device) for k, v in padded_batches(1, B, min(S, 128), vocab)[0].items()}
    assert not batch["attention_mask"].all()  # padded, so the encoder and cross-attention take a key mask
    real = batch["labels"] != config.pad_token_id
    with sdpa_kernel(backends), torch.autocast(device, dtype=torch.bfloat16, enabled=cuda):
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            hidden = model.train().hidden_states(batch["input_ids"], batch["attention_mask"],
                                                 batch["decoder_input_ids"], mask=real)  # fmt: skip
            loss, _ = linear_cross_entropy(
                hidden, model.shared.weight, model.final_logits_bias[0], batch["labels"][real]
            )
            loss.backward()
            out = model.eval().generate(batch["input_ids"], batch["attention_mask"], num_beams=4, max_length=6)
    ops = {e.key for e in prof.key_averages() if "scaled_dot_product" in e.key}
    fused = {op for op in ops if op.startswith("aten::_scaled_dot_product_") and "math" not in op}
    assert fused and not {op for op in ops if "math" in op}, ops
    assert torch.isfinite(loss) and out.shape[0] == B


@pytest.mark.parametrize(
    "device",
    [
        pytest.param("cpu"),
        pytest.param(
            "cuda",
            marks=[
                pytest.mark.gpu,
                pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices"),
            ],
        ),
    ],
)
def test_ddp_step_on_two_devices_equals_one_device_accumulating_both_batches(device, tmp_path):
    """Each rank's batch has its own number of target tokens: the step must normalise by the all-reduced count, so
    the DDP update equals the single-device update accumulated over both batches (gloo on CPU, NCCL on CUDA)."""
    from gpu_ddp_step import run

    accelerator = "gpu" if device == "cuda" else "cpu"
    if device == "cuda":
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
        script = [sys.executable, str(HERE / "gpu_ddp_step.py"), accelerator, "2", str(tmp_path / "ddp.pt")]
        proc = subprocess.run(script, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    else:  # gloo; the ranks are forked from this process (not 2 fresh interpreters: ~20 s of imports on 2 cores)
        run(accelerator, 2, str(tmp_path / "ddp.pt"), strategy="ddp_fork")
    run(accelerator, 1, str(tmp_path / "one.pt"))
    ddp, one = (torch.load(tmp_path / f"{k}.pt", weights_only=True) for k in ("ddp", "one"))
    assert (ddp["world"], one["world"], ddp["step"], one["step"]) == (2, 1, 1, 1)
    assert sum(not torch.equal(one["before"][k], v) for k, v in one["after"].items()) > len(one["after"]) // 2
    for k, v in one["after"].items():
        torch.testing.assert_close(ddp["after"][k], v, rtol=1e-5, atol=1e-6, msg=k)


def test_gpu_bench_smoke_run_on_cpu_writes_every_case_and_the_goals(tmp_path):
    assert bench_gpu(["--smoke", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "gpu.json").read_text())
    rows = result["rows"]
    assert [(r["kind"], r["mode"]) for r in rows] == [
        ("train", "eager"),
        ("beam", "eager"),
        ("train", "compile (eager)"),
    ]
    assert set(rows[0]["tok_s"]) == {"ours", "chunks", "logits", "hf"} and set(rows[2]["tok_s"]) == {"ours", "hf"}
    assert all(v > 0 for r in rows for v in r["tok_s"].values())
    assert rows[0]["flops"] > 0 and rows[1]["outputs_equal"]  # fp32 on CPU: token for token
    assert [g["goal"] for g in result["goals"]] == ["train_speedup", "mfu", "beam_speedup"]
    assert result["goals"][0]["value"] > 0 and result["goals"][1]["value"] is None  # no datasheet peak for a CPU
    markdown = (tmp_path / "gpu.md").read_text()
    assert "| train tiny 32/32 x2 | eager |" in markdown and "## Goals (issue 14)" in markdown


@pytest.mark.parametrize(
    "name, entry, tflops",
    [
        ("NVIDIA H100 80GB HBM3", "H100/H200 SXM", 989),
        ("NVIDIA H200", "H100/H200 SXM", 989),
        ("NVIDIA H100 PCIe", "H100 PCIe", 756),
        ("NVIDIA A100-SXM4-80GB", "A100", 312),
        ("NVIDIA L4", "L4", 121),
        ("NVIDIA L40S", "L40S", 362),
        ("Tesla T4", None, None),
    ],
)
def test_peak_table_is_read_by_device_name(name, entry, tflops):
    assert peak_for(name) == (entry, tflops)

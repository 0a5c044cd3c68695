"""Scaling out on this machine's CPUs (README "Scale-out"): sharded training (`--trainer.strategy sharded`, FSDP over
2 gloo processes) against one process and DDP, its sharded checkpoint resumed after SIGKILL and exported; two
simulated nodes launched with Lightning's cluster variables; the memory-per-rank table; the SLURM example. The
multi-process tests are marked `multiprocess` (`.ci/run` runs them after the suite); scripts/gpu-check.sh runs them on
2 GPUs (BART_SCALEOUT_ACCELERATOR=gpu: nccl, one GPU per rank or node, looser tolerances)."""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import socket
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from forked import Forked, wait_unlocked
from pretrain_world import make_world, weights

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def one_torch_thread():
    """This process forks the runs: once it has run a torch op on several OpenMP threads, a forked child's first
    parallel op hangs (libgomp is not fork-safe; seen as both simulated nodes stuck in layer_norm). One thread here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


RECORDER = textwrap.dedent(
    """
    import hashlib, json, os, signal
    import pytorch_lightning as pl

    class Recorder(pl.Callback):
        '''Appends every batch a rank trains on to out_dir/batches-rank<r>.jsonl (flushed: the process may be killed),
        SIGKILLs its own process after optimizer step kill_after (every rank at the same step), and writes the
        weights' sha256 at the end.'''

        def __init__(self, out_dir: str, kill_after: int = -1):
            self.out_dir, self.kill_after = out_dir, kill_after

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            indices = [int(i) for i in batch["indices"]]
            row = {"step": trainer.global_step, "epoch": int(batch["epoch"]), "indices": indices}
            with open(os.path.join(self.out_dir, f"batches-rank{trainer.global_rank}.jsonl"), "a") as f:
                f.write(json.dumps(row) + "\\n")

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step == self.kill_after:
                os.kill(os.getpid(), signal.SIGKILL)

        def on_train_end(self, trainer, pl_module):
            digest = hashlib.sha256()
            for name, p in sorted(pl_module.state_dict().items()):
                digest.update(name.encode() + p.detach().cpu().numpy().tobytes())
            out = {"rank": trainer.global_rank, "world": trainer.world_size, "weights": digest.hexdigest(),
                   "step": trainer.global_step}
            with open(os.path.join(self.out_dir, f"end-rank{trainer.global_rank}.json"), "w") as f:
                json.dump(out, f)
    """
)

# No dropout: one process with 2 accumulated batches must then compute what 2 ranks compute with one batch each (the
# dropout masks are seeded per rank and batch, so they would differ between those layouts).
NO_DROPOUT = ["--model.model_config.dropout", "0", "--model.model_config.attention_dropout", "0",
              "--model.model_config.activation_dropout", "0"]  # fmt: skip
ACCELERATOR = os.environ.get("BART_SCALEOUT_ACCELERATOR", "cpu")
ON_GPU = ACCELERATOR == "gpu"
QUIET = ["--report", "false", "--torch_threads", "1", "--model.reconstruction_documents", "0",
         "--trainer.accelerator", ACCELERATOR]  # fmt: skip


def world(tmp_path: Path, name: str, kill_after: int = -1, **overrides) -> tuple[Path, dict]:
    """A tiny world in tmp_path/name whose config records batches (and kills itself after step kill_after)."""
    root = tmp_path / name
    config_path = make_world(root, **overrides)
    (root / "recorder.py").write_text(RECORDER)
    config = yaml.safe_load(config_path.read_text())
    recorder = {"class_path": "recorder.Recorder", "init_args": {"out_dir": str(root), "kill_after": kill_after}}
    config["trainer"]["callbacks"] = [recorder]
    config_path.write_text(yaml.safe_dump(config))
    env = {"PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    return config_path, env


def pretrain(config_path: Path, args: list[str], env: dict, timeout: float = 240) -> int:
    """`bart-pretrain pretrain -c config_path args` forked from this process (its rank 0); exit code."""
    with Forked.cli(["pretrain", "-c", str(config_path), *args], env=env, log=os.devnull) as rank0:
        code = rank0.wait(timeout=timeout)
        if code not in (0, -9):
            raise AssertionError(rank0.stderr()[-3000:])
        return code


def losses(run_dir: Path, metric: str = "train/loss") -> dict[int, float]:
    """step -> ``metric`` of every logged optimizer step (the CSV logger's files, all versions: resumed runs too)."""
    out = {}
    for path in sorted((run_dir / "logs").glob("version_*/metrics.csv")):
        with open(path) as f:
            for row in csv.DictReader(f):
                if row.get(metric):
                    out[int(row["step"])] = float(row[metric])
    return out


def batches(root: Path, rank: int) -> list[dict]:
    return [json.loads(line) for line in (root / f"batches-rank{rank}.jsonl").read_text().splitlines()]


# -- sharded training (FSDP) ------------------------------------------------------------------------------------
# The three layouts sum the same two batches' gradients (FSDP reduce-scatters flat shards, DDP all-reduces buckets, one
# process accumulates); measured on this machine: equal to the last bit over 8 steps. About two float32 ulps of
# tolerance; the weight decay lost under FSDP (every parameter a 1-D shard when the optimizer is built) moved the
# losses by 2.5e-6 relative, which this catches.
LOSS_RTOL = 1e-4 if ON_GPU else 2e-7  # GPUs: nccl's reduction order and atomics in the embedding backward


@pytest.mark.multiprocess
def test_sharded_training_matches_one_process_and_ddp_resumes_exactly_after_sigkill_and_exports(tmp_path):
    steps = ["--trainer.max_steps", "8", *NO_DROPOUT, *QUIET]
    two = ["--trainer.devices", "2"]
    runs, norms = {}, {}
    for name, args in {
        "single": ["--trainer.accumulate_grad_batches", "2"],
        "ddp": [*two, "--trainer.strategy", "ddp"],
        "sharded": [*two, "--trainer.strategy", "sharded"],
    }.items():
        config_path, env = world(tmp_path, name)
        assert pretrain(config_path, [*steps, *args], env) == 0
        runs[name] = losses(tmp_path / name / "run")
        norms[name] = losses(tmp_path / name / "run", "train/grad_norm")
    assert sorted(runs["sharded"]) == list(range(8))
    for name in ("single", "ddp"):
        assert runs[name].keys() == runs["sharded"].keys()
        for step, loss in runs["sharded"].items():
            assert loss == pytest.approx(runs[name][step], rel=LOSS_RTOL), (name, step)
            # the logged norm is the whole gradient's, not rank 0's shard's
            assert norms["sharded"][step] == pytest.approx(norms[name][step], rel=1e-5), (name, step)

    # The sharded checkpoint: a directory with one shard file per rank.
    last = tmp_path / "sharded" / "run" / "checkpoints" / "last.ckpt"
    assert last.is_dir() and len(list(last.glob("*.distcp"))) == 2 and (last / "meta.pt").is_file()

    # SIGKILL both ranks after step 5 (last.ckpt holds step 4), resume: the same batches and the same weights.
    config_path, env = world(tmp_path, "killed", kill_after=5)
    sharded = [*steps, *two, "--trainer.strategy", "sharded"]
    assert pretrain(config_path, sharded, env) == -9
    killed_root = tmp_path / "killed"
    assert torch.load(killed_root / "run/checkpoints/last.ckpt/meta.pt", weights_only=False)["global_step"] == 4
    config = yaml.safe_load(config_path.read_text())
    config["trainer"]["callbacks"][0]["init_args"]["kill_after"] = -1
    config_path.write_text(yaml.safe_dump(config))
    assert pretrain(config_path, [*sharded, "--ckpt_path", "last"], env) == 0
    for rank in range(2):
        whole = batches(tmp_path / "sharded", rank)
        resumed = [b for b in batches(killed_root, rank) if b["step"] >= 4]
        assert [b for b in whole if b["step"] >= 4] == resumed[-4:] and resumed[-1]["step"] == 7
    # Gathering the shards, export-hf and transformers run in a forked child, as the runs do: this process stays light.
    checks = tmp_path / "checks.pt"
    ddp_last = tmp_path / "ddp/run/checkpoints/last.ckpt"
    with Forked(lambda: gather_and_export(last, killed_root / "run/checkpoints/last.ckpt", ddp_last, checks)) as child:
        assert child.wait(timeout=240) == 0, child.stderr()[-3000:]
    found = torch.load(checks)
    a, b = found["whole"], found["resumed"]
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4 if ON_GPU else 0, atol=1e-6 if ON_GPU else 0)
    # export-hf reads the sharded directory; its logits are the unsharded (DDP) run's.
    torch.testing.assert_close(found["logits"]["sharded"], found["logits"]["ddp"], rtol=1e-4, atol=1e-4)


def gather_and_export(whole: Path, resumed: Path, ddp: Path, out: Path) -> None:
    """The two sharded checkpoints' gathered weights, and the logits transformers computes from `export-hf` of the
    sharded and the DDP checkpoint, saved to `out`."""
    from bart_pretrain.commands import export_hf
    from bart_pretrain.loading import read_sharded_checkpoint

    found = {
        name: read_sharded_checkpoint(path)["state_dict"] for name, path in (("whole", whole), ("resumed", resumed))
    }
    found["logits"] = {}
    for name, ckpt in (("sharded", whole), ("ddp", ddp)):
        hf_dir = out.parent / f"hf-{name}"
        assert export_hf.main([str(ckpt), str(hf_dir)]) == 0
        found["logits"][name] = hf_logits(hf_dir)
    torch.save(found, out)


def hf_logits(directory: Path) -> torch.Tensor:
    import transformers

    model = transformers.AutoModelForSeq2SeqLM.from_pretrained(directory).eval()
    tok = transformers.AutoTokenizer.from_pretrained(directory)
    enc = tok(["The kernel module reads a buffer.", "A thread holds the lock."], return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**enc, decoder_input_ids=enc["input_ids"]).logits


def fake_sharded(path: Path, tag: str) -> Path:
    path.mkdir(parents=True)
    for name in ("meta.pt", ".metadata", "__0_0.distcp"):
        (path / name).write_text(tag)
    return path


def test_sharded_save_swaps_directories_so_a_complete_checkpoint_exists_at_every_rename(tmp_path):
    from bart_pretrain.training.sharding import remove_partial, resumable, swap_in

    last = tmp_path / "last.ckpt"
    assert resumable(last) is None
    swap_in(fake_sharded(tmp_path / "last.ckpt.partial", "step2"), last)
    assert resumable(last) == last and (last / "meta.pt").read_text() == "step2"
    swap_in(fake_sharded(tmp_path / "last.ckpt.partial", "step4"), last)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"] and (last / "meta.pt").read_text() == "step4"
    # Killed between the two renames: only last.ckpt.previous is complete; --ckpt_path last resumes from it, and the
    # next save puts its checkpoint at last.ckpt before deleting the previous one.
    os.rename(last, tmp_path / "last.ckpt.previous")
    fake_sharded(tmp_path / "last.ckpt.partial", "half")
    assert resumable(last) == tmp_path / "last.ckpt.previous"
    # Killed mid-write: the partial directory is removed at the next start; the checkpoint stays.
    assert remove_partial(last) == tmp_path / "last.ckpt.partial" and remove_partial(last) is None
    swap_in(fake_sharded(tmp_path / "last.ckpt.partial", "step6"), last)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"] and (last / "meta.pt").read_text() == "step6"


def test_lightnings_own_fsdp_strategy_on_cpu_is_refused_in_its_words_before_any_work(tmp_path):
    from bart_pretrain.commands.pretrain import make_cli
    from bart_pretrain.errors import UserError

    config_path = make_world(tmp_path)
    with pytest.raises((UserError, ValueError), match="requires a GPU accelerator"):
        make_cli(["-c", str(config_path), "--trainer.strategy", "fsdp", "--trainer.devices", "2"])


def test_lightnings_fsdp_precision_refuses_clipping_by_norm_and_sharded_clips_the_whole_gradient():
    from lightning_fabric.utilities.exceptions import MisconfigurationException
    from pytorch_lightning.plugins.precision import FSDPPrecision

    from bart_pretrain.training.sharding import ShardedPrecision, ShardedStrategy

    with pytest.raises(MisconfigurationException, match="'norm'` is currently not supported for `FSDPPrecision`"):
        FSDPPrecision("32-true").clip_grad_by_norm(None, 1.0)
    strategy = ShardedStrategy()
    strategy.precision_plugin = FSDPPrecision("bf16-mixed")  # what Lightning's connector hands an FSDP strategy
    assert (
        isinstance(strategy.precision_plugin, ShardedPrecision) and strategy.precision_plugin.precision == "bf16-mixed"
    )
    clipped = []
    strategy.precision_plugin.sharded_module = type(
        "Root", (), {"clip_grad_norm_": lambda self, v: clipped.append(v)}
    )()
    strategy.precision_plugin.clip_grad_by_norm(None, 0.5)
    assert clipped == [0.5]


# -- two simulated nodes ----------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_nodes(config_path: Path, args: list[str], env: dict, expect: int = 0) -> None:
    """One process per "node", as a cluster starts them: Lightning's variables (MASTER_ADDR, MASTER_PORT,
    NODE_RANK, LOCAL_RANK) and `--trainer.num_nodes 2 --trainer.devices 1`; both forked from this process."""
    port = str(free_port())
    argv = ["pretrain", "-c", str(config_path), "--trainer.num_nodes", "2", "--trainer.devices", "1",
            "--trainer.strategy", "ddp", *args]  # fmt: skip
    nodes = []
    try:
        for node in range(2):
            node_env = {**env, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "NODE_RANK": str(node),
                        "LOCAL_RANK": "0"}  # fmt: skip
            if ON_GPU:  # each "node" its own GPU, as on two machines
                node_env["CUDA_VISIBLE_DEVICES"] = str(node)
            nodes.append(Forked.cli(argv, env=node_env, log=os.devnull))
        try:
            codes = [n.wait(timeout=240) for n in nodes]
        except TimeoutError as e:
            raise AssertionError([n.stderr()[-3000:] for n in nodes]) from e
        assert codes == [expect, expect], [n.stderr()[-2000:] for n in nodes]
    finally:
        for n in nodes:
            n.close()


@pytest.mark.multiprocess
def test_two_nodes_read_every_document_once_per_epoch_agree_and_resume_exactly_after_sigkill(tmp_path):
    n_train = 24
    args = ["--trainer.max_steps", "8", "--data.num_workers", "2", *QUIET]
    config_path, env = world(tmp_path, "whole", n_train=n_train)
    two_nodes(config_path, args, env)
    root = tmp_path / "whole"
    ends = [json.loads((root / f"end-rank{r}.json").read_text()) for r in range(2)]
    assert [e["world"] for e in ends] == [2, 2] and [e["step"] for e in ends] == [8, 8]
    assert ends[0]["weights"] == ends[1]["weights"]  # DDP broadcasts and all-reduces: equal to the bit, on GPUs too
    seen = [batches(root, r) for r in range(2)]
    last_epoch = max(b["epoch"] for b in seen[0])
    assert last_epoch >= 1  # at least one whole epoch
    for epoch in range(last_epoch):  # every whole epoch: each document exactly once over nodes, ranks and workers
        indices = sorted(i for rank in seen for b in rank if b["epoch"] == epoch for i in b["indices"])
        assert indices == list(range(n_train))

    # Both nodes killed after step 5 (last.ckpt: step 4), both resumed: the batches and weights of the whole run.
    config_path, env = world(tmp_path, "killed", kill_after=5, n_train=n_train)
    two_nodes(config_path, args, env, expect=-9)
    wait_unlocked(tmp_path / "killed" / "run")
    config = yaml.safe_load(config_path.read_text())
    config["trainer"]["callbacks"][0]["init_args"]["kill_after"] = -1
    config_path.write_text(yaml.safe_dump(config))
    two_nodes(config_path, [*args, "--ckpt_path", "last"], env)
    killed = tmp_path / "killed"
    for rank in range(2):
        resumed = [b for b in batches(killed, rank) if b["step"] >= 4][-4:]
        assert resumed == [b for b in seen[rank] if b["step"] >= 4]
    a, b = (weights(r / "run/checkpoints/last.ckpt") for r in (root, killed))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4 if ON_GPU else 0, atol=1e-6 if ON_GPU else 0)


# -- memory per rank --------------------------------------------------------------------------------------------
def test_memory_per_rank_counts_fp32_weights_grads_and_two_adam_moments_sharded_by_fsdp_only():
    from bart_pretrain.model import Bart, BartConfig
    from bart_pretrain.training.sharding import memory_per_rank, parameter_counts

    config = BartConfig(vocab_size=1000, **TINY)
    model = Bart(config)
    total, root, layer = parameter_counts(config)
    assert total == sum(p.numel() for p in model.parameters())
    assert layer == sum(p.numel() for p in model.encoder.layers[0].parameters())
    assert root == total - 2 * layer
    ddp = memory_per_rank(config, 8, "ddp")
    assert (ddp.weights, ddp.gradients, ddp.optimizer, ddp.peak_gathered) == (4 * total, 4 * total, 8 * total, 0)
    fsdp = memory_per_rank(config, 8, "fsdp", "bf16-mixed")
    assert (fsdp.weights, fsdp.optimizer) == (4 * total / 8, 8 * total / 8)
    assert fsdp.peak_gathered == 2 * (root + layer)
    assert memory_per_rank(config, 8, "fsdp", "32-true").peak_gathered == 4 * (root + layer)
    assert memory_per_rank(config, 1, "fsdp", "32-true").total > ddp.total  # one rank: sharding only adds
    with pytest.raises(ValueError, match="strategy='zero3'"):
        memory_per_rank(config, 8, "zero3")


TINY = dict(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
            encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=128)  # fmt: skip


def test_readme_memory_table_is_what_memory_per_rank_computes():
    from bart_pretrain.training.sharding import memory_table

    readme = (REPO / "README.md").read_text()
    assert memory_table() in readme


# -- SLURM example ----------------------------------------------------------------------------------------------
def test_slurm_example_parses_and_its_srun_line_builds_the_pretrain_run_it_names(tmp_path):
    from bart_pretrain.commands.pretrain import make_cli

    script = (REPO / "examples" / "slurm-pretrain.sh").read_text()
    directives = dict(re.findall(r"^#SBATCH --([\w-]+)=(\S+)$", script, re.M))
    nodes, tasks = int(directives["nodes"]), int(directives["ntasks-per-node"])
    assert int(directives["gpus-per-node"]) == tasks  # Lightning's SLURM environment: one task per device
    srun = script.split("\nsrun ", 1)[1].replace("\\\n", " ").splitlines()[0]
    argv = [a for a in shlex.split(srun) if a != "${RESUME[@]}"]
    assert argv[:2] == ["bart-pretrain", "pretrain"]
    flags = dict(zip(argv[2::2], argv[3::2], strict=True))
    assert int(flags["--trainer.num_nodes"]) == nodes and int(flags["--trainer.devices"]) == tasks
    assert flags["--trainer.strategy"] == "sharded"
    # The real command parses that line and builds model, data and trainer (not on GPUs here: on one CPU process,
    # with this test's tiny corpus in place of the example's), without training.
    make_world(tmp_path)
    local = {"--trainer.accelerator": "cpu", "--trainer.devices": "1", "--trainer.num_nodes": "1",
             "--data.train_files": str(tmp_path / "train.jsonl"),
             "--data.val_files": str(tmp_path / "validation.jsonl"),
             "--data.tokenizer_path": str(tmp_path / "tokenizer.json"), "--run_dir": str(tmp_path / "run")}  # fmt: skip
    cli = make_cli([x for kv in {**flags, **local}.items() for x in kv])
    assert cli.model.model.config.d_model == 768 and cli.trainer.accumulate_grad_batches == 32  # the base config
    from bart_pretrain.training.sharding import ShardedStrategy

    assert isinstance(cli.trainer.strategy, ShardedStrategy)

"""Streaming resume is exact under DDP with DataLoader workers: `bart-pretrain pretrain --data.streaming true` on 2
gloo ranks x 2 workers, killed with SIGKILL mid-epoch and resumed with ``--ckpt_path last``, trains on exactly the
sequence of (chunk, corruption) of an uninterrupted run on every rank: nothing lost, nothing repeated, nothing
reordered. (A streaming resume that restarts a shuffle buffer loses up to a buffer of documents.)

Rank 0 is the CLI forked from the test process; Lightning's launcher starts rank 1 in a fresh interpreter, which
loads :class:`Recorder` from this module (the tests folder is on its PYTHONPATH)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from forked import Forked, wait_unlocked
from pretrain_world import make_world

MAX_STEPS = 22
KILL_AFTER = 7  # both ranks have started batch 7 of the run (0-based) when they are killed
CHECKPOINT_EVERY = 4  # saved at step 4: the resume point is in buffer 1, which the second worker owns


class Recorder(pl.Callback):
    """Appends one JSON line per training batch to ``<out_dir>/rank<r>.jsonl`` (flushed): this process's pid, the
    step the batch trains, its stream position, its chunk ids and a digest of its tensors (the corruption)."""

    def __init__(self, out_dir: str):
        self.out_dir = out_dir

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        digest = hashlib.sha256()
        for key in ("input_ids", "attention_mask", "labels", "decoder_input_ids"):
            digest.update(batch[key].cpu().numpy().tobytes())
        row = {
            "pid": os.getpid(),
            "step": trainer.global_step,
            "epoch": int(batch["epoch"]),
            "position": [int(p) for p in batch["position"]],
            "indices": [int(i) for i in batch["indices"]],
            "digest": digest.hexdigest(),
        }
        with open(os.path.join(self.out_dir, f"rank{trainer.global_rank}.jsonl"), "a") as f:
            f.write(json.dumps(row) + "\n")


class HoldAt(pl.Callback):
    """After optimizer step ``step``, while the file ``flag`` exists, wait (up to two minutes) to be killed."""

    def __init__(self, step: int, flag: str):
        self.step, self.flag = step, Path(flag)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        deadline = time.monotonic() + 120
        while trainer.global_step == self.step and self.flag.exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def _world(root: Path, *callbacks: dict) -> Path:
    return make_world(
        root,
        n_train=40,
        checkpoint_every=CHECKPOINT_EVERY,
        trainer__max_steps=MAX_STEPS,
        trainer__strategy="ddp",
        trainer__devices=2,
        trainer__callbacks=[
            {"class_path": "test_stream_resume.Recorder", "init_args": {"out_dir": str(root)}},
            *callbacks,
        ],
        model__optim={"lr": 3e-3, "warmup_steps": 2, "total_steps": MAX_STEPS},
        model__reconstruction_documents=0,
        data__val_files=None,
        data__streaming=True,
        data__buffer_size=4,  # 8 rows a buffer over 2 ranks: several buffers an epoch, both workers busy
        data__num_workers=2,
    )


def _records(root: Path, rank: int) -> list[dict]:
    path = root / f"rank{rank}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _launch(config: Path, *args: str) -> Forked:
    tests = str(Path(__file__).parent)
    env = {"PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}
    argv = ["pretrain", "-c", str(config), "--report", "false", *args]
    return Forked.cli(argv, env=env, log=config.parent / f"stdout{len(args)}.log")


@pytest.mark.slow  # three 2-rank runs: about a minute on 2 cores
def test_streaming_ddp_with_workers_killed_mid_epoch_resumes_the_exact_sequence(tmp_path):
    reference = _world(tmp_path / "uninterrupted")
    with _launch(reference) as run:
        assert run.wait(timeout=300) == 0, run.stderr()[-3000:]
    expected = [_records(reference.parent, r) for r in range(2)]
    assert [len(e) for e in expected] == [MAX_STEPS, MAX_STEPS]
    epochs = sorted({row["epoch"] for row in expected[0]})
    assert epochs == [0, 1], f"the run should cross one epoch boundary: {epochs}"  # the kill is mid-epoch 0
    assert all(row["epoch"] == 0 for row in expected[0][: KILL_AFTER + 1])
    for epoch in epochs:  # within an epoch no chunk is seen twice, on any rank
        ids = [i for rows in expected for row in rows if row["epoch"] == epoch for i in row["indices"]]
        assert len(ids) == len(set(ids))

    hold = tmp_path / "hold"
    hold.touch()
    killed = _world(
        tmp_path / "killed",
        {"class_path": "test_stream_resume.HoldAt", "init_args": {"step": KILL_AFTER, "flag": str(hold)}},
    )
    root = killed.parent
    with _launch(killed) as run:
        deadline = time.monotonic() + 300
        while not all(any(r["step"] >= KILL_AFTER - 1 for r in _records(root, rank)) for rank in range(2)):
            assert os.waitpid(run.pid, os.WNOHANG)[0] == 0, f"the run ended early:\n{run.stderr()[-3000:]}"
            assert time.monotonic() < deadline, f"no step {KILL_AFTER} in 300 s:\n{run.stderr()[-3000:]}"
            time.sleep(0.1)
        for pid in {row["pid"] for rank in range(2) for row in _records(root, rank)}:
            os.kill(pid, signal.SIGKILL)
        assert run.wait(timeout=60) == -signal.SIGKILL
    ckpt = root / "run" / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"]
    assert 0 < saved < KILL_AFTER and saved % CHECKPOINT_EVERY == 0
    before = [[row for row in _records(root, r) if row["step"] < saved] for r in range(2)]
    for rank in range(2):
        (root / f"rank{rank}.jsonl").unlink()
    hold.unlink()

    wait_unlocked(root / "run")
    with _launch(killed, "--ckpt_path", "last") as run:
        assert run.wait(timeout=300) == 0, run.stderr()[-3000:]
    resumed = [before[r] + _records(root, r) for r in range(2)]
    for rank in range(2):
        fields = ("step", "epoch", "position", "indices", "digest")
        got = [{k: row[k] for k in fields} for row in resumed[rank]]
        want = [{k: row[k] for k in fields} for row in expected[rank]]
        assert got == want, f"rank {rank}: killed after step {saved}, the resumed sequence differs"

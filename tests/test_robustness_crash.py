"""Crash safety: `bart-pretrain pretrain` killed with SIGKILL at a random step and resumed with ``--ckpt_path last``
ends with exactly the weights of an uninterrupted run; a SIGKILL in the middle of writing a checkpoint (a real run)
or a data file leaves the previous file intact.

The training runs are real processes of the CLI on a d_model=32 model, forked from the test process (tests/forked.py:
killed like any process, without importing torch and Lightning again). Two Lightning callbacks defined here are loaded
by the child through ``trainer.callbacks``: one prints each finished step so the test knows when to kill, one stalls
in the middle of writing the n-th checkpoint.
"""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from forked import Forked
from pretrain_world import make_world

from bart_pretrain.loading import load_bart

MAX_STEPS = 12
CHECKPOINT_EVERY = 2


class StepPrinter(pl.Callback):
    """Prints ``step <n>`` (flushed) after every optimizer step, so a parent process can kill at a chosen step."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        print(f"step {trainer.global_step}", flush=True)


class StallMidCheckpoint(pl.Callback):
    """From setup on, the ``nth`` ``torch.save`` writes half of its bytes, prints ``mid-write``, and sleeps: the parent
    kills the process while the checkpoint file is half written."""

    def __init__(self, nth: int = 2):
        self.nth = nth

    def setup(self, trainer, pl_module, stage):
        real_save, calls = torch.save, [0]

        def stalling_save(obj, f, *args, **kwargs):
            calls[0] += 1
            if calls[0] < self.nth:
                return real_save(obj, f, *args, **kwargs)
            buf = io.BytesIO()
            real_save(obj, buf, *args, **kwargs)
            data = buf.getvalue()
            f.write(data[: len(data) // 2])
            f.flush()
            print("mid-write", flush=True)
            time.sleep(300)

        torch.save = stalling_save


def _cli(config: Path, *args: str) -> list[str]:
    return ["pretrain", "-c", str(config), "--report", "false", *args]


def _world(root: Path, *callbacks: dict) -> Path:
    return make_world(
        root,
        checkpoint_every=CHECKPOINT_EVERY,
        trainer__max_steps=MAX_STEPS,
        trainer__callbacks=[
            {"class_path": "test_robustness_crash.StepPrinter"},
            *callbacks,
        ],
        model__optim={"lr": 3e-3, "warmup_steps": 2, "total_steps": MAX_STEPS},
    )


def _kill_when(proc, stop, timeout: float) -> list[str]:
    """SIGKILL ``proc`` (a :class:`Forked` or a ``subprocess.Popen`` with a text stdout pipe) as soon as ``stop(line)``
    is true for a line of its stdout; the lines read."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if stop(lines[-1]):
            os.kill(proc.pid, signal.SIGKILL)
            break
        assert time.monotonic() < deadline, f"pid {proc.pid} did not reach the kill point in {timeout}s"
    proc.wait(timeout=60)
    return lines


def _run_until(argv: list[str], stop, timeout: float = 240) -> list[str]:
    """Run the CLI with ``argv``; SIGKILL it as soon as ``stop(line)`` is true for a stdout line. Returns the lines."""
    with Forked.cli(argv) as proc:
        lines = _kill_when(proc, stop, timeout)
        rc = proc.returncode
        assert rc == -signal.SIGKILL, f"expected a SIGKILLed run, got rc={rc}:\n{proc.stderr()[-3000:]}"
    return lines


def _run(argv: list[str]) -> None:
    with Forked.cli(argv, log=os.devnull) as proc:
        assert proc.wait(timeout=150) == 0, proc.stderr()[-3000:]


def _assert_same_weights(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{what}: weights differ from the uninterrupted run: {different[:5]}"


def test_sigkill_at_a_random_step_then_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path):
    seed = random.randrange(1 << 30)
    kill_at = random.Random(seed).randint(CHECKPOINT_EVERY + 1, MAX_STEPS - 2)  # after >= 1 checkpoint, before the end
    # The uninterrupted run of the same length, in its own directory, alongside.
    uninterrupted = Forked.cli(_cli(_world(tmp_path / "uninterrupted")), log=tmp_path / "uninterrupted.log")
    config = _world(tmp_path / "killed")
    _run_until(_cli(config), lambda line: line == f"step {kill_at}")
    ckpt = tmp_path / "killed" / "run" / "checkpoints" / "last.ckpt"
    saved_step = torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"]
    assert CHECKPOINT_EVERY <= saved_step < MAX_STEPS, f"killed at step {kill_at}: saved step {saved_step}, seed {seed}"

    _run(_cli(config, "--ckpt_path", "last"))
    final = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert final["global_step"] == MAX_STEPS
    with uninterrupted:
        assert uninterrupted.wait(timeout=150) == 0, uninterrupted.stderr()[-3000:]
    reference = torch.load(tmp_path / "uninterrupted" / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert reference["global_step"] == MAX_STEPS
    _assert_same_weights(final["state_dict"], reference["state_dict"], f"killed at step {kill_at} (seed {seed})")


def test_sigkill_mid_checkpoint_write_leaves_the_previous_checkpoint_intact(tmp_path):
    # The n-th torch.save of the run stalls half-way through the file: checkpoints are at steps 2, 4, ...
    nth = random.Random().randint(2, MAX_STEPS // CHECKPOINT_EVERY - 1)
    stall = {"class_path": "test_robustness_crash.StallMidCheckpoint", "init_args": {"nth": nth}}
    config = _world(tmp_path, stall)
    _run_until(_cli(config), lambda line: line == "mid-write")
    ckpts = tmp_path / "run" / "checkpoints"
    (half_written,) = [p for p in ckpts.iterdir() if p.name != "last.ckpt"]
    assert half_written.name.startswith(".last.ckpt.") and half_written.stat().st_size > 0  # a temporary sibling

    previous = torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=False)  # intact, loads
    assert previous["global_step"] == (nth - 1) * CHECKPOINT_EVERY
    model, tokenizer = load_bart(ckpts / "last.ckpt")
    assert model.config.d_model == 32 and tokenizer.vocab_size == model.config.vocab_size
    # (resuming from it is the random-step case above: a checkpoint older than the kill)


_WRITER = textwrap.dedent(
    """
    import sys, time
    from bart_pretrain.io import atomic_write_jsonl

    def rows():
        for i in range(1000):
            if i == 500:
                print("mid-write", flush=True)
                time.sleep(300)
            yield {"id": i, "text": "new row " * 20}

    atomic_write_jsonl(sys.argv[1], rows())
    """
)


def test_sigkill_mid_data_write_leaves_the_previous_file_intact(tmp_path):
    from bart_pretrain.io import atomic_write_jsonl

    path = tmp_path / "corpus" / "train.jsonl"
    atomic_write_jsonl(path, [{"id": 0, "text": "old"}])
    before = path.read_bytes()
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    with writer:
        _kill_when(writer, lambda line: line == "mid-write", timeout=60)
    assert writer.returncode == -signal.SIGKILL
    assert path.read_bytes() == before
    leftovers = [p for p in path.parent.iterdir() if p != path]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".train.jsonl.")  # the killed writer's temp file
    assert leftovers[0].stat().st_size > 0


def test_pretrain_writes_checkpoints_through_the_atomic_checkpoint_io(tmp_path):
    from bart_pretrain.commands.pretrain import make_cli
    from bart_pretrain.training.checkpoints import AtomicCheckpointIO

    cli = make_cli(["-c", str(make_world(tmp_path)), "--report", "false"])
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)

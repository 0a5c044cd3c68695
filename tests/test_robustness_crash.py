"""Crash safety: `bart-pretrain pretrain` killed with SIGKILL at a random step and resumed with ``--ckpt_path last``
ends with exactly the weights of an uninterrupted run; a SIGKILL in the middle of writing a checkpoint (a real run)
or a data file leaves the previous file intact.

The training runs are real subprocesses of the installed CLI on a d_model=32 model. Two Lightning callbacks defined
here are loaded by the child through ``trainer.callbacks`` (``PYTHONPATH`` holds tests/): one prints each finished
step so the test knows when to kill, one stalls in the middle of writing the n-th checkpoint.
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

import pytest
import pytorch_lightning as pl
import torch
from pretrain_world import make_world

from bart_pretrain.loading import load_bart

TESTS = Path(__file__).parent
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


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = "1"  # the same kernels in every run; 2 shared cores
    return env


def _cli(config: Path, *args: str) -> list[str]:
    exe = Path(sys.executable).with_name("bart-pretrain")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "bart_pretrain.cli"]
    return [*cmd, "pretrain", "-c", str(config), "--report", "false", *args]


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


def _run_until(cmd: list[str], stop, timeout: float = 240) -> tuple[int, list[str]]:
    """Run ``cmd``; SIGKILL it as soon as ``stop(line)`` is true for a stdout line. Returns (returncode, lines)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if stop(lines[-1]):
                os.kill(proc.pid, signal.SIGKILL)
                break
            assert time.monotonic() < deadline, f"{cmd} did not reach the kill point in {timeout}s"
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    stderr = proc.stderr.read()
    proc.stderr.close()
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, f"expected a SIGKILLed run, got rc={proc.returncode}:\n{stderr[-3000:]}"
    return proc.returncode, lines


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=150)
    assert done.returncode == 0, done.stderr[-3000:]


def _assert_same_weights(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{what}: weights differ from the uninterrupted run: {different[:5]}"


@pytest.mark.slow  # subprocesses: two full training runs
def test_sigkill_at_a_random_step_then_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path):
    seed = random.randrange(1 << 30)
    kill_at = random.Random(seed).randint(CHECKPOINT_EVERY + 1, MAX_STEPS - 2)  # after >= 1 checkpoint, before the end
    # The uninterrupted run of the same length, in its own directory, alongside.
    log = (tmp_path / "uninterrupted.log").open("w")
    uninterrupted = subprocess.Popen(_cli(_world(tmp_path / "uninterrupted")), stdout=log, stderr=log, env=_env())
    config = _world(tmp_path / "killed")
    _run_until(_cli(config), lambda line: line == f"step {kill_at}")
    ckpt = tmp_path / "killed" / "run" / "checkpoints" / "last.ckpt"
    saved_step = torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"]
    assert CHECKPOINT_EVERY <= saved_step < MAX_STEPS, f"killed at step {kill_at}: saved step {saved_step}, seed {seed}"

    _run(_cli(config, "--ckpt_path", "last"))
    final = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert final["global_step"] == MAX_STEPS
    uninterrupted.wait(timeout=150)
    log.close()
    assert uninterrupted.returncode == 0, (tmp_path / "uninterrupted.log").read_text()[-3000:]
    reference = torch.load(tmp_path / "uninterrupted" / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert reference["global_step"] == MAX_STEPS
    _assert_same_weights(final["state_dict"], reference["state_dict"], f"killed at step {kill_at} (seed {seed})")


@pytest.mark.slow  # subprocesses
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
    _run_until([sys.executable, "-c", _WRITER, str(path)], lambda line: line == "mid-write", timeout=60)
    assert path.read_bytes() == before
    leftovers = [p for p in path.parent.iterdir() if p != path]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".train.jsonl.")  # the killed writer's temp file
    assert leftovers[0].stat().st_size > 0


def test_pretrain_writes_checkpoints_through_the_atomic_checkpoint_io(tmp_path):
    from bart_pretrain.commands.pretrain import make_cli
    from bart_pretrain.training.checkpoints import AtomicCheckpointIO

    cli = make_cli(["-c", str(make_world(tmp_path)), "--report", "false"])
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)

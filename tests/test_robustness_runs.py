"""Nothing lost: SIGTERM and SIGINT stop `bart-pretrain pretrain` with a checkpoint at the current step (exit 143 and
130) from which a resume ends with exactly the weights of an uninterrupted run; a second run on a run directory in use
is refused (a lock, dropped by the kernel when its holder dies); `--overwrite true` moves a finished run aside,
deleting nothing.

Training runs are real processes of the CLI on the d_model=32 model, forked from the test process (tests/forked.py);
``StepPrinter`` (tests/test_robustness_crash.py) prints each finished step so the test knows when to signal.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from forked import Forked
from pretrain_world import TINY_SHAPE, make_world, summary_pairs

from bart_pretrain.cli import main as cli_main

MAX_STEPS = 12


class WaitAtStep(pl.Callback):
    """After optimizer step ``step``, waits (up to a minute) for the file ``gate`` to exist: the test acts while the
    run is held there."""

    def __init__(self, step: int, gate: str):
        self.step, self.gate = step, Path(gate)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        deadline = time.monotonic() + 60
        while trainer.global_step == self.step and not self.gate.exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def _world(root: Path, workers: int = 0, *callbacks: dict) -> Path:
    return make_world(
        root,
        checkpoint_every=1000,  # no periodic checkpoint: the one a signal leaves is the signal's own
        trainer__max_steps=MAX_STEPS,
        trainer__callbacks=[{"class_path": "test_robustness_crash.StepPrinter"}, *callbacks],
        model__optim={"lr": 3e-3, "warmup_steps": 2, "total_steps": MAX_STEPS},
        data__num_workers=workers,
    )


def _cli(config: Path, *args: str) -> list[str]:
    return ["pretrain", "-c", str(config), "--report", "false", *args]


def _signal_at(
    proc: Forked, step: int, signum: int | None, timeout: float = 240, during=None, group: bool = False
) -> None:
    """Once ``proc`` prints ``step <step>``: call ``during()``, if given, and send ``signum``, if given (with
    ``group``, to its whole process group: ``proc`` must have been started with ``own_group``)."""
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        if line.strip() == f"step {step}":
            if during is not None:
                during()
            if signum is not None:
                (os.killpg if group else os.kill)(proc.pid, signum)
            break
        assert time.monotonic() < deadline, f"no step {step} in {timeout} s:\n{proc.stderr()[-2000:]}"
    for _ in proc.stdout:  # drain, so that the child never blocks on a full pipe
        pass


def _last(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)


def test_sigterm_saves_the_current_step_exits_143_and_resumes_exactly(tmp_path, capsys):
    uninterrupted = Forked.cli(_cli(_world(tmp_path / "uninterrupted")), log=os.devnull)
    gate = tmp_path / "gate"
    config = _world(tmp_path / "stopped", 0, {"class_path": "test_robustness_runs.WaitAtStep",
                                              "init_args": {"step": 5, "gate": str(gate)}})  # fmt: skip
    run_dir = tmp_path / "stopped" / "run"
    refused: list[tuple[int, str]] = []

    def second_run_on_the_same_directory() -> None:  # while the first is held after step 5
        code = cli_main(_cli(config))
        refused.append((code, capsys.readouterr().err))
        os.kill(proc.pid, signal.SIGTERM)
        gate.touch()

    with Forked.cli(_cli(config)) as proc:
        _signal_at(proc, 5, None, during=second_run_on_the_same_directory)
        assert proc.wait(timeout=120) == 143, proc.stderr()[-3000:]
        lines = [line for line in proc.stderr().splitlines() if line.startswith("bart-pretrain")]
    # the run in progress held the directory: the second one was refused in one line, before any work
    ((code, err),) = refused
    assert code == 2 and err.count("\n") == 1 and "another run is using it" in err, err
    saved = _last(run_dir)["global_step"]
    assert saved == 5  # the step the signal came at, not a periodic checkpoint (every 1000)
    assert lines == [
        f"bart-pretrain pretrain: stopped by SIGTERM after step {saved}: saved {run_dir / 'checkpoints' / 'last.ckpt'}"
        "; resume it with --ckpt_path last"
    ]
    with Forked.cli(_cli(config, "--ckpt_path", "last"), log=os.devnull) as resumed:
        assert resumed.wait(timeout=150) == 0, resumed.stderr()[-3000:]
    with uninterrupted:
        assert uninterrupted.wait(timeout=150) == 0, uninterrupted.stderr()[-3000:]
    final, reference = _last(run_dir), _last(tmp_path / "uninterrupted" / "run")
    assert final["global_step"] == reference["global_step"] == MAX_STEPS
    different = [
        k for k in reference["state_dict"] if not torch.equal(final["state_dict"][k], reference["state_dict"][k])
    ]
    assert not different, f"stopped at step {saved}: weights differ from the uninterrupted run: {different[:5]}"


@pytest.mark.parametrize(
    "signum, group, code",
    [
        (signal.SIGINT, False, 130),  # a worker process, as a Ctrl+C reaches in a terminal
        # `timeout`, `kill -- -PGID` and schedulers that signal every process of a job reach the DataLoader workers
        # too: torch's workers die of a SIGTERM that is not their parent's, and the run must still stop with its
        # checkpoint
        (signal.SIGTERM, True, 143),
    ],
    ids=["sigint", "sigterm-to-the-process-group"],
)
def test_a_signal_with_dataloader_workers_saves_and_exits_with_its_code(tmp_path, signum, group, code):
    config = _world(tmp_path, workers=1)
    with Forked.cli(_cli(config), own_group=group) as proc:
        _signal_at(proc, 3, signum, group=group)
        assert proc.wait(timeout=120) == code, proc.stderr()[-3000:]
        err = proc.stderr()
    saved = _last(tmp_path / "run")["global_step"]
    assert 3 <= saved < MAX_STEPS
    name = signal.Signals(signum).name
    assert re.search(rf"bart-pretrain pretrain: stopped by {name} after step {saved}: saved .*last\.ckpt", err), err
    assert "Traceback" not in err, err[-3000:]


def test_a_killed_run_leaves_no_lock_behind(tmp_path):
    config = _world(tmp_path)
    with Forked.cli(_cli(config, "--checkpoint_every", "2")) as proc:
        _signal_at(proc, 3, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    assert (tmp_path / "run" / ".lock").exists()  # the file stays; its lock went with the process
    assert cli_main(_cli(config, "--ckpt_path", "last", "--trainer.callbacks", "[]")) == 0
    assert _last(tmp_path / "run")["global_step"] == MAX_STEPS


def test_overwrite_moves_the_previous_run_aside_and_deletes_nothing(tmp_path, capsys):
    config = make_world(tmp_path, trainer__max_steps=2)
    assert cli_main(_cli(config)) == 0
    before = (tmp_path / "run" / "checkpoints" / "last.ckpt").read_bytes()
    capsys.readouterr()
    assert cli_main(_cli(config)) == 2  # refused: the directory holds a run
    assert "resume it with --ckpt_path last, start over with --overwrite true" in capsys.readouterr().err
    assert cli_main(_cli(config, "--overwrite", "true", "--trainer.max_steps", "1")) == 0
    (moved,) = tmp_path.glob("run.old-*")
    assert f"--overwrite true: moved the previous contents of {tmp_path / 'run'} to {moved}" in capsys.readouterr().err
    assert (moved / "checkpoints" / "last.ckpt").read_bytes() == before
    assert _last(tmp_path / "run")["global_step"] == 1


def test_a_fine_tune_directory_is_not_overwritten_either(tmp_path, capsys):
    make_world(tmp_path)
    for split, offset in (("train", 0), ("validation", 100), ("test", 200)):
        rows = summary_pairs(12, offset)
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = [
        "finetune", "--trainer.default_root_dir", str(tmp_path / "ft"), "--trainer.max_steps", "1",
        "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", "--data.source", str(tmp_path),
        "--data.max_source_length", "64", "--data.max_target_length", "16", "--data.max_tokens", "256",
        "--data.metric_subset", "0", "--model.init_from", "null", "--model.model_config", json.dumps(TINY_SHAPE),
        "--model.tokenizer_path", str(tmp_path / "tokenizer.json"), "--evaluate_test", "false",
    ]  # fmt: skip
    assert cli_main(args) == 0
    capsys.readouterr()
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert re.search(r"--trainer\.default_root_dir .*ft holds a run \(from_scratch/checkpoints/", err), err
    assert cli_main([*args, "--overwrite", "true"]) == 0
    assert len(list(tmp_path.glob("ft.old-*/from_scratch/checkpoints/*.ckpt"))) >= 1

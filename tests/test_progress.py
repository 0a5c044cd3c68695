"""The progress bar of a run bounded by --trainer.max_steps counts optimizer steps out of max_steps (Lightning's own
reads `Epoch 0/-2` there)."""

from __future__ import annotations

import pytest
from pretrain_world import make_world

from bart_pretrain.commands.pretrain import make_cli
from bart_pretrain.training import progress


@pytest.mark.parametrize("rich", [True, False], ids=["rich", "tqdm"])
def test_the_progress_bar_shows_steps_out_of_max_steps(tmp_path, monkeypatch, rich):
    if rich and not progress.RICH_AVAILABLE:
        pytest.skip("rich is not installed")
    monkeypatch.setattr(progress, "RICH_AVAILABLE", rich)
    config = make_world(
        tmp_path, trainer__max_steps=5, trainer__enable_progress_bar=True, trainer__val_check_interval=3
    )
    cli = make_cli(["-c", str(config), "--report", "false"])
    bar = cli.trainer.progress_bar_callback
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.max_epochs == -1 and cli.trainer.global_step == 5
    if rich:
        task = bar.progress.tasks[bar.train_progress_bar_id]
        description, total, done = task.description, task.total, task.completed
    else:
        description, total, done = bar.train_progress_bar.desc, bar.train_progress_bar.total, bar.train_progress_bar.n
    assert "/-2" not in description and "step" in description
    assert (total, done) == (5, 5)

"""One optimizer step of a small `Seq2SeqModule` through Lightning, for tests/test_gpu.py: with DDP on 2 devices (each
rank gets one of two batches) or on 1 device accumulating both; rank 0 writes the weights before and after the step
to OUT. On CUDA the test runs `python tests/gpu_ddp_step.py gpu 2 OUT` (strategy ``ddp``: Lightning's launcher re-runs
this file for rank 1); on CPU it calls :func:`run` with ``ddp_fork`` (the same DDP strategy, its ranks forked from the
test process rather than started as fresh interpreters)."""

from __future__ import annotations

import sys

import pytorch_lightning as pl
import torch
from pretrain_world import TINY_SHAPE
from torch.utils.data import DataLoader

from bart_pretrain.model import Bart, BartConfig
from bart_pretrain.optim import OptimConfig
from bart_pretrain.training.module import Seq2SeqModule

CONFIG = BartConfig(**(TINY_SHAPE | {"vocab_size": 96, "max_position_embeddings": 32, "dropout": 0.0}))


def batches() -> list[dict]:
    """Two right-padded batches with different target-token counts (13 and 7), so per-rank means would be wrong."""
    g = torch.Generator().manual_seed(0)
    out = []
    for target_lens in ([5, 8], [3, 4]):
        ids = torch.randint(4, CONFIG.vocab_size, (2, 9), generator=g)
        labels = torch.randint(4, CONFIG.vocab_size, (2, 8), generator=g)
        real = torch.arange(8)[None] < torch.tensor(target_lens)[:, None]
        labels = labels.masked_fill(~real, 1)
        dec = torch.cat([torch.full((2, 1), 2), labels[:, :-1]], 1).masked_fill(~real, 1)
        out.append(
            {"input_ids": ids, "attention_mask": torch.ones_like(ids), "decoder_input_ids": dec, "labels": labels}
        )
    return out


class StepModule(Seq2SeqModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.model, self.pad_id, self.optim = Bart(CONFIG), CONFIG.pad_token_id, OptimConfig(warmup_steps=0)

    def configure_optimizers(self):
        # SGD: the update is the gradient itself (AdamW's first step is about lr * sign(grad), blind to its scale).
        return torch.optim.SGD(self.parameters(), lr=0.5)

    def train_dataloader(self):
        return DataLoader(batches(), batch_size=None)  # under DDP Lightning's sampler gives rank r batch r


class SaveOnRankZero(pl.Callback):
    """At the end of training, rank 0 (in whichever process the launcher ran it) writes the weights to ``out``."""

    def __init__(self, before: dict, out: str):
        self.before, self.out = before, out

    def on_train_end(self, trainer, pl_module):
        if trainer.global_rank == 0:
            after = {k: v.detach().cpu() for k, v in pl_module.state_dict().items()}
            record = {"before": self.before, "after": after, "world": trainer.world_size, "step": trainer.global_step}
            torch.save(record, self.out)


def run(accelerator: str, devices: int, out: str, strategy: str = "ddp") -> None:
    module = StepModule()
    before = {k: v.detach().clone().cpu() for k, v in module.state_dict().items()}
    trainer = pl.Trainer(
        accelerator=accelerator,
        devices=devices,
        strategy=strategy if devices > 1 else "auto",
        callbacks=[SaveOnRankZero(before, out)],
        max_steps=1,
        accumulate_grad_batches=2 // devices,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module)


if __name__ == "__main__":
    run(sys.argv[1], int(sys.argv[2]), sys.argv[3])

"""DDP with 2 CPU processes (gloo) through Lightning's own launcher, as a user runs it: `bart-pretrain pretrain ...
--trainer.strategy ddp --trainer.devices 2`. Ranks must see disjoint data and end with identical weights."""

import json
import os
import textwrap

import yaml
from forked import Forked
from pretrain_world import make_world

RECORDER = textwrap.dedent(
    """
    import hashlib, json, os
    import pytorch_lightning as pl

    class Recorder(pl.Callback):
        def __init__(self, out_dir: str):
            self.out_dir, self.indices = out_dir, []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.indices.append([int(batch["epoch"]), [int(i) for i in batch["indices"]]])

        def on_train_end(self, trainer, pl_module):
            digest = hashlib.sha256()
            for name, p in sorted(pl_module.state_dict().items()):
                digest.update(name.encode() + p.detach().cpu().numpy().tobytes())
            out = {"rank": trainer.global_rank, "world": trainer.world_size, "indices": self.indices,
                   "weights": digest.hexdigest(), "step": trainer.global_step}
            with open(os.path.join(self.out_dir, f"rank{trainer.global_rank}.json"), "w") as f:
                json.dump(out, f)
    """
)


def test_ddp_two_cpu_processes_see_disjoint_data_and_end_with_identical_weights(tmp_path):
    config_path = make_world(tmp_path, n_train=60)
    (tmp_path / "recorder.py").write_text(RECORDER)
    config = yaml.safe_load(config_path.read_text())
    config["trainer"]["callbacks"] = [{"class_path": "recorder.Recorder", "init_args": {"out_dir": str(tmp_path)}}]
    config_path.write_text(yaml.safe_dump(config))
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    args = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.max_steps", "6", "--report", "false"]
    # Rank 0 is `python -m bart_pretrain.cli pretrain ...` forked from this process; Lightning's launcher starts rank 1
    # by running that command line again, in a fresh interpreter.
    with Forked.cli(["pretrain", "-c", str(config_path), *args], env=env, log=os.devnull) as rank0:
        assert rank0.wait(timeout=240) == 0, rank0.stderr()[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world"] for r in ranks] == [2, 2] and [r["step"] for r in ranks] == [6, 6]
    epochs = {epoch for epoch, _ in ranks[0]["indices"]}
    for epoch in epochs:  # within an epoch the ranks' shards are disjoint
        seen = [{i for e, batch in r["indices"] if e == epoch for i in batch} for r in ranks]
        assert seen[0] and seen[1] and not seen[0] & seen[1]
    assert ranks[0]["weights"] == ranks[1]["weights"]

import json

import pytest
import pytorch_lightning as pl
import torch
from pretrain_world import make_world, weights

from bart_pretrain.commands.pretrain import main, make_cli
from bart_pretrain.loading import load_bart
from bart_pretrain.optim import OptimConfig, lr_factor
from bart_pretrain.training.checkpoints import AtomicCheckpointIO, NonFiniteWeightsError
from bart_pretrain.training.module import NonFiniteLossError
from bart_pretrain.training.pretrain import PretrainModule


def test_pretrain_cli_writes_checkpoint_logs_config_report_and_plot(tmp_path):
    config = make_world(tmp_path)
    assert main(["-c", str(config), "--trainer.max_steps", "4"]) == 0
    run = tmp_path / "run"
    ckpt = run / "checkpoints" / "last.ckpt"
    assert ckpt.exists() and (run / "checkpoints" / "loss_curves.png").stat().st_size > 1000
    assert list(run.glob("logs/version_0/config.yaml")) and list(run.glob("logs/version_0/metrics.csv"))
    assert list(run.glob("tensorboard/version_0/events.*"))
    report = json.loads((run / "report.json").read_text())
    assert report["steps"] == 4 and report["tokens_seen"] > 0 and len(report["reconstructions"]) == 3
    recon = report["reconstruction"]
    assert recon["step"] == 4 and recon["documents"] >= 8
    assert 0 <= recon["model"]["chrf"] <= 100 and 0 < recon["copy_baseline"]["chrf"] < 100
    assert recon["num_beams"] == 4 and recon["no_repeat_ngram_size"] == 6
    assert set(recon["without_ngram_ban"]) == {"model", "run_on"}  # the model's own decoding, beside the ban's
    beats = all(recon["model"][k] > recon["copy_baseline"][k] for k in ("chrf", "bleu"))
    assert recon["beats_copy_baseline"] == beats
    text = (run / "report.md").read_text()
    assert "copy baseline" in text and "no repeated 6-token sequence" in text and "without the n-gram ban" in text
    assert "<mask>" in "".join(r["corrupted"] for r in report["reconstructions"])
    metrics = (run / "logs" / "version_0" / "metrics.csv").read_text().splitlines()[0]
    names = ("train/loss", "train/lr", "train/token_acc", "train/tokens_per_s", "val/loss", "val/chrf", "val/copy_chrf")
    for name in (*names, "val/token_acc_corrupted", "val/token_acc_kept", "val/loss_corrupted", "val/loss_kept"):
        assert name in metrics
    model, tok = load_bart(ckpt)
    assert model.config.vocab_size == tok.vocab_size == 400
    hparams = torch.load(ckpt, weights_only=False)["hyper_parameters"]
    assert hparams["tokenizer_path"].endswith("tokenizer.json") and hparams["model_config"]["d_model"] == 32


def test_vocab_size_comes_from_the_tokenizer(tmp_path):
    config = make_world(tmp_path)
    cli = make_cli(["-c", str(config)])
    assert cli.model.model.config.vocab_size == cli.datamodule.vocab_size == 400


class _Crash(pl.Callback):
    def __init__(self, at_step):
        self.at_step = at_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.at_step:
            raise RuntimeError("simulated crash")


class _ReadsEstimatedSteppingBatches(PretrainModule):
    """Lightning issue #20550: reading estimated_stepping_batches in configure_optimizers builds the train loader
    before the checkpoint is restored. Our loader state lives in the data module, restored before that."""

    def configure_optimizers(self):
        assert self.trainer.estimated_stepping_batches > 0
        return super().configure_optimizers()


def _fit(config, *args, module_class=PretrainModule, callbacks=()):
    cli = make_cli(["-c", str(config), "--report", "false", *args], module_class)
    for cb in callbacks:
        cli.trainer.callbacks.append(cb)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config["ckpt_path"])
    return cli


@pytest.mark.parametrize("module_class", [PretrainModule, _ReadsEstimatedSteppingBatches])
def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_run(tmp_path, module_class):
    # 12 optimizer steps of 2 accumulated batches cross epoch boundaries; crash at step 7, resume from step 6.
    common = ["--trainer.max_steps", "12", "--trainer.accumulate_grad_batches", "2", "--model.optim.total_steps", "12"]
    config = make_world(tmp_path / "a")
    _fit(config, *common)
    reference = weights(tmp_path / "a" / "run" / "checkpoints" / "last.ckpt")

    config = make_world(tmp_path / "b")
    with pytest.raises(RuntimeError, match="simulated crash"):
        _fit(config, *common, module_class=module_class, callbacks=[_Crash(7)])
    ckpt = tmp_path / "b" / "run" / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=False)["global_step"] == 6
    cli = _fit(config, *common, "--ckpt_path", "last", module_class=module_class)
    assert cli.trainer.global_step == 12
    resumed = weights(ckpt)
    assert resumed.keys() == reference.keys()
    for k in reference:
        torch.testing.assert_close(resumed[k], reference[k], rtol=0, atol=0, msg=k)


def test_nonfinite_loss_stops_naming_step_and_batch_and_no_checkpoint_holds_it(tmp_path):
    class NaNAtStep3(PretrainModule):
        def token_loss(self, batch, label_smoothing=0.0):
            loss, n, correct = super().token_loss(batch, label_smoothing)
            return (loss * float("nan") if self.trainer.global_step == 3 else loss), n, correct

    config = make_world(tmp_path)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at step 3: epoch 0 batch 3 \(sample indices"):
        _fit(config, module_class=NaNAtStep3)
    state = weights(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert all(v.isfinite().all() for v in state.values() if v.is_floating_point())


def test_nonfinite_loss_skip_policy_skips_the_update_and_goes_on(tmp_path):
    class NaNAtStep1(PretrainModule):
        def token_loss(self, batch, label_smoothing=0.0):
            loss, n, correct = super().token_loss(batch, label_smoothing)
            return (loss * float("nan") if self.trainer.global_step == 1 else loss), n, correct

    config = make_world(tmp_path)
    cli = _fit(config, "--model.on_nonfinite", "skip", "--trainer.max_steps", "3", module_class=NaNAtStep1)
    assert cli.trainer.global_step == 3
    assert all(p.isfinite().all() for p in cli.model.parameters())


def test_checkpoint_io_refuses_nonfinite_weights_and_leaves_the_old_file(tmp_path):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(2)}}, path)
    with pytest.raises(NonFiniteWeightsError, match="non-finite values in \\['w'\\]"):
        io.save_checkpoint({"state_dict": {"w": torch.tensor([1.0, float("inf")])}}, path)
    assert torch.equal(torch.load(path)["state_dict"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


class _GradProbe(PretrainModule):
    def on_before_optimizer_step(self, optimizer):
        super().on_before_optimizer_step(optimizer)
        self.probed = {n: p.grad.clone() for n, p in self.named_parameters() if p.grad is not None}


def test_loss_is_normalised_by_the_target_tokens_of_the_whole_accumulated_step(tmp_path):
    config = make_world(tmp_path)
    (tmp_path / "model.yaml").write_text((tmp_path / "model.yaml").read_text().replace("dropout: 0.1", "dropout: 0.0"))
    seen = {"batches": []}

    class Keep(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            seen["init"] = {k: v.clone() for k, v in pl_module.state_dict().items()}

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen["batches"].append(batch)

    args = ["--trainer.max_steps", "1", "--trainer.accumulate_grad_batches", "3"]
    cli = _fit(config, *args, module_class=_GradProbe, callbacks=[Keep()])
    batches = seen["batches"]
    assert len(batches) == 3 and len({int((b["labels"] != 1).sum()) for b in batches}) > 1
    reference = PretrainModule(**cli.model.hparams)
    reference.load_state_dict(seen["init"])
    total = sum(reference.token_loss(b)[0] for b in batches)
    n = sum((b["labels"] != 1).sum() for b in batches)
    (total / n).backward()
    for name, p in reference.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(cli.model.probed[name], p.grad, rtol=1e-4, atol=1e-7, msg=name)


def test_lr_schedule_warms_up_then_decays_to_end_lr():
    cfg = OptimConfig(lr=1.0, warmup_steps=4, schedule="polynomial", power=2.0, end_lr=0.1)
    f = [lr_factor(s, cfg, total_steps=14) for s in range(16)]
    assert f[0] < f[1] < f[3] < f[4] == 1.0
    assert f[9] == pytest.approx(0.1 + 0.9 * 0.25) and f[14] == f[15] == pytest.approx(0.1)


def test_optim_config_names_the_flag_on_bad_values():
    with pytest.raises(ValueError, match=r"--model.optim.lr"):
        OptimConfig(lr=-1.0)

"""`bart-pretrain pretrain --model.init_from`: continue pretraining a transformers BART directory (made here from a
``BartConfig``, no hub) or our own checkpoint. Its weights, tokenizer and special ids carry over (the noise masks with
its tokenizer's ``<mask>``), and the loss logged at step 0 equals transformers' loss of that model on the same batch.
Contradicting input (another tokenizer, another model shape, no tokenizer at all) is one line, exit 2, before any
training step."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml
from pretrain_world import TINY_SHAPE, make_world

from bart_pretrain.cli import main as cli_main
from bart_pretrain.hf import to_transformers
from bart_pretrain.loading import TOKENIZER_KEY, load_bart
from bart_pretrain.tokenizer import Tokenizer

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

SEEN: dict = {}


class Capture(pl.Callback):
    """Keeps the first training batch, the loss logged for it (step 0, before any update) and the initial weights."""

    def on_train_start(self, trainer, pl_module):
        SEEN.clear()
        SEEN["weights"] = {k: v.clone() for k, v in pl_module.model.state_dict().items()}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        SEEN.setdefault("batch", {k: v.clone() if torch.is_tensor(v) else v for k, v in batch.items()})

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        SEEN.setdefault("loss", float(trainer.logged_metrics["train/loss"]))


def hf_loss(model, batch: dict) -> float:
    """transformers' mean token cross-entropy of ``model`` on our batch (pad labels ignored)."""
    labels = batch["labels"].masked_fill(batch["labels"] == 1, -100)
    with torch.no_grad():
        out = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            decoder_input_ids=batch["decoder_input_ids"],
            labels=labels,
        )
    return float(out.loss)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """The tests' world, and a config naming neither a tokenizer nor a model config (the defaults: with
    --model.init_from, those of the model)."""
    root = tmp_path_factory.mktemp("world")
    config = yaml.safe_load(make_world(root).read_text())
    del config["data"]["tokenizer_path"], config["model"]["model_config"]
    config["model"]["optim"]["total_steps"] = 8
    config["trainer"]["callbacks"] = [{"class_path": "test_pretrain_init.Capture"}]
    (root / "init.yaml").write_text(yaml.safe_dump(config))
    return root


@pytest.fixture(scope="module")
def hf_dir(world) -> Path:
    """A transformers BART of the tiny shape (random weights, no dropout, a nonzero logits bias) saved with
    save_pretrained, and the world's tokenizer saved beside it by transformers."""
    tok = Tokenizer.from_file(world / "tokenizer.json")
    config = transformers.BartConfig(
        vocab_size=tok.vocab_size, **TINY_SHAPE, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, forced_bos_token_id=0,
        forced_eos_token_id=2,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.BartForConditionalGeneration(config)
    torch.nn.init.normal_(model.final_logits_bias, std=0.1)
    out = world / "hf"
    model.save_pretrained(out)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(world / "tokenizer.json"), bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        unk_token="<unk>", mask_token="<mask>",
    )  # fmt: skip
    fast.save_pretrained(out)
    return out


def _pretrain(world: Path, run: str, *args: str) -> int:
    argv = ["pretrain", "-c", str(world / "init.yaml"), "--report", "false", "--run_dir", str(world / run)]
    return cli_main([*argv, "--trainer.max_steps", "2", *args])


def test_pretraining_from_a_transformers_directory_starts_at_its_loss_with_its_tokenizer(world, hf_dir):
    assert _pretrain(world, "from_hf", "--model.init_from", str(hf_dir)) == 0
    model = transformers.BartForConditionalGeneration.from_pretrained(hf_dir).eval()
    batch = SEEN["batch"]
    assert SEEN["loss"] == pytest.approx(hf_loss(model, batch), rel=1e-6, abs=0)
    tok = Tokenizer.from_file(hf_dir)
    assert tok.mask_id == tok.vocab_size - 1 and (batch["input_ids"] == tok.mask_id).any()  # its <mask> masks
    ckpt = torch.load(world / "from_hf" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt[TOKENIZER_KEY]["sha256"] == tok.fingerprint()
    assert ckpt["hyper_parameters"]["init_from"] == str(hf_dir)
    assert ckpt["hyper_parameters"]["model_config"]["d_model"] == TINY_SHAPE["d_model"]


def test_pretraining_from_our_checkpoint_starts_from_its_weights_and_loss(world):
    config = ["--model.model_config", str(world / "model.yaml"), "--data.tokenizer_path", str(world / "tokenizer.json")]
    assert _pretrain(world, "first", *config, "--model.model_config.dropout", "0.0") == 0
    first = world / "first" / "checkpoints" / "last.ckpt"
    # A tokenizer given explicitly is accepted when it is the checkpoint's.
    again = ["--model.init_from", str(first), "--data.tokenizer_path", str(world / "tokenizer.json")]
    assert _pretrain(world, "continued", *again) == 0
    model, tok = load_bart(first)
    assert SEEN["weights"].keys() == model.state_dict().keys()
    assert all(torch.equal(SEEN["weights"][k], v) for k, v in model.state_dict().items())
    assert SEEN["loss"] == pytest.approx(hf_loss(to_transformers(model).eval(), SEEN["batch"]), rel=1e-6, abs=0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model.init_from", "{world}/nowhere"],
         r"--model\.init_from: no checkpoint or model directory at {world}/nowhere \(looked for "),
        (["--model.init_from", "{world}/train.jsonl"],
         r"{world}/train\.jsonl: not a readable torch checkpoint: \d+ bytes that are not a zip archive"),
        (["--model.init_from", "{hf}", "--data.tokenizer_path", "{world}/other.json"],
         r"--data\.tokenizer_path {world}/other\.json is not the tokenizer of --model\.init_from {hf} \(sha256 "),
        (["--model.init_from", "{hf}", "--model.model_config.d_model", "64", "--model.model_config.dropout", "0.1"],
         r"--model\.model_config sets d_model=64 \({hf}: 32\), dropout=0\.1 \({hf}: 0\.0\), but the model comes from "
         r"--model\.init_from {hf}; leave those fields out"),
        (["--model.init_from", "{bare}"],
         r"--model\.init_from {bare}: {bare} holds no tokenizer\.json \(nor vocab\.json \+ merges\.txt\); pass "
         r"--data\.tokenizer_path"),
        (["--data.tokenizer_path", "null"],
         r"--data\.tokenizer_path null: only --model\.init_from supplies a tokenizer"),
    ],
    ids=["missing", "not_a_checkpoint", "another_tokenizer", "another_shape", "no_tokenizer",
         "null_tokenizer_without_init"],
)  # fmt: skip
def test_contradicting_or_missing_init_input_is_one_line_exit_2_before_training(
    world, hf_dir, args, message, capsys, training_steps
):
    from bart_pretrain.tokenizer import train_tokenizer

    train_tokenizer(["Another corpus, another tokenizer."] * 20, vocab_size=300).save(world / "other.json")
    bare = world / "bare"
    if not bare.exists():
        bare.mkdir()
        for name in ("config.json", "model.safetensors"):
            (bare / name).write_bytes((hf_dir / name).read_bytes())
    where = {"world": str(world), "hf": str(hf_dir), "bare": str(bare)}
    capsys.readouterr()
    assert _pretrain(world, "refused", *[a.format(**where) for a in args]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert re.search(message.format(**where), err), err
    assert training_steps == [] and not (world / "refused" / "checkpoints").exists()

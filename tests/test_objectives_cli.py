"""Each objective from the command line: a short pretrain (the tokenizer gains the objective tokens, the checkpoint
carries them, validation scores the objective's target), then a short fine-tune from its checkpoint; `export-hf`
writes the special tokens; `noise-preview` shows source and target."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from pretrain_world import make_world, summary_pairs, weights

from bart_pretrain.commands.finetune import main as finetune_main
from bart_pretrain.commands.pretrain import main as pretrain_main
from bart_pretrain.loading import load_model
from bart_pretrain.tokenizer import DEFAULT_SENTINELS, Tokenizer

RECIPES = ["t5_spans", "gap_sentences", "ul2", "prefix_lm"]


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("pairs")
    for split, n, off in (("train", 24, 0), ("validation", 4, 100), ("test", 4, 200)):
        (d / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in summary_pairs(n, off)))
    return d


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """recipe -> (world directory, checkpoint) after 2 pretraining steps with a validation at the end."""
    runs = {}
    for recipe in RECIPES:
        root = tmp_path_factory.mktemp(recipe)
        config = make_world(root, n_train=24, n_val=4, trainer__max_steps=2, trainer__val_check_interval=2)
        argv = ["-c", str(config), "--data.noise", f"configs/noise/{recipe}.yaml", "--torch_threads", "1"]
        assert pretrain_main(argv) == 0
        runs[recipe] = (root, root / "run" / "checkpoints" / "last.ckpt")
    return runs


@pytest.mark.parametrize("recipe", RECIPES)
def test_pretrain_with_an_objective_then_finetune_from_its_checkpoint(recipe, pretrained, pairs_dir, tmp_path):
    root, ckpt = pretrained[recipe]
    base = Tokenizer.from_file(root / "tokenizer.json")
    loaded = load_model(ckpt)
    tok = loaded.tokenizer
    # The checkpoint carries the tokenizer with the objective tokens after <mask>; the model's vocabulary is its.
    assert tok.vocab_size == base.vocab_size + 4 + DEFAULT_SENTINELS == loaded.model.config.vocab_size
    assert tok.mask_sentence_id == base.mask_id + 1 and len(tok.sentinel_ids) == DEFAULT_SENTINELS
    report = json.loads((root / "run" / "report.json").read_text())
    assert report["reconstruction"]["reference"] == "target"
    assert "- target:    " in (root / "run" / "report.md").read_text()
    args = [
        "--model.init_from", str(ckpt), "--trainer.default_root_dir", str(tmp_path), "--trainer.max_steps", "2",
        "--trainer.accelerator", "cpu", "--trainer.val_check_interval", "2", "--trainer.check_val_every_n_epoch",
        "null", "--trainer.num_sanity_val_steps", "0", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", "--model.generation.num_beams", "1",
        "--model.generation.max_length", "8", "--data.source", str(pairs_dir), "--data.max_tokens", "256",
        "--data.metric_subset", "2", "--data.max_source_length", "64", "--torch_threads", "1",
    ]  # fmt: skip
    assert finetune_main(args) == 0
    metrics = json.loads((tmp_path / "from_pretrained" / "metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["n"] == 4
    tuned = load_model(tmp_path / "from_pretrained" / "checkpoints" / "last.ckpt").tokenizer
    assert tuned.fingerprint() == tok.fingerprint()


def test_a_bart_recipe_leaves_the_tokenizer_and_vocabulary_as_they_are(tmp_path):
    config = make_world(tmp_path, n_train=24, n_val=4, trainer__max_steps=1, trainer__val_check_interval=1)
    assert pretrain_main(["-c", str(config), "--torch_threads", "1", "--model.reconstruction_documents", "0"]) == 0
    loaded = load_model(tmp_path / "run" / "checkpoints" / "last.ckpt")
    base = Tokenizer.from_file(tmp_path / "tokenizer.json")
    assert loaded.tokenizer.fingerprint() == base.fingerprint() and loaded.model.config.vocab_size == base.vocab_size


def test_init_from_a_model_without_objective_tokens_is_refused_in_one_line(pretrained, tmp_path, capsys):
    from bart_pretrain.cli import main as cli_main

    plain = make_world(tmp_path / "plain", n_train=24, n_val=4, trainer__max_steps=1, trainer__val_check_interval=1)
    assert pretrain_main(["-c", str(plain), "--torch_threads", "1", "--model.reconstruction_documents", "0"]) == 0
    capsys.readouterr()
    init = tmp_path / "plain" / "run" / "checkpoints" / "last.ckpt"
    argv = ["pretrain", "-c", str(plain), "--model.init_from", str(init), "--data.noise", "configs/noise/t5_spans.yaml",
            "--run_dir", str(tmp_path / "again")]  # fmt: skip
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs the objective tokens" in err[0] and "Traceback" not in err[0]


def test_export_hf_writes_the_objective_tokens_as_special_tokens(pretrained, tmp_path):
    from bart_pretrain.cli import main as cli_main

    _, ckpt = pretrained["ul2"]
    assert cli_main(["export-hf", str(ckpt), str(tmp_path / "hf")]) == 0
    tok_config = json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text())
    special = json.loads((tmp_path / "hf" / "special_tokens_map.json").read_text())
    expected = ["<mask_sentence>", "[R]", "[S]", "[X]", *(f"<extra_id_{i}>" for i in range(DEFAULT_SENTINELS))]
    assert tok_config["additional_special_tokens"] == special["additional_special_tokens"] == expected
    exported = Tokenizer.from_file(tmp_path / "hf")
    assert exported.sentinel_ids == load_model(ckpt).tokenizer.sentinel_ids


def test_noise_preview_shows_source_and_target(pretrained, capsys):
    from bart_pretrain.cli import main as cli_main

    root, _ = pretrained["t5_spans"]
    text = "The kernel module loads a driver for the device. The user runs a tool in the shell."
    argv = ["noise-preview", "--noise", "configs/noise/t5_spans.yaml", "--tokenizer_path", str(root / "tokenizer.json"),
            "--text", text, "--color", "never"]  # fmt: skip
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert "T5SpanCorruption(ratio=0.15, mean_span=3.0)" in out
    lines = {line.split(":")[0].strip(): line for line in out.splitlines() if line.startswith("  ")}
    assert lines["before"].endswith(f"<s>{text}</s>")
    assert "[[<extra_id_0>]]" in lines["source"] and "<extra_id_1>" not in lines["source"]
    assert lines["target"].startswith("  target: <s>[[<extra_id_0>]]") and lines["target"].endswith(
        "[[<extra_id_1>]]</s>"
    )


def test_shipped_objective_recipes_are_the_papers_settings():
    from bart_pretrain.data.noise_config import load_noise

    expected = {
        "t5_spans": "T5SpanCorruption(ratio=0.15, mean_span=3.0)",
        "gap_sentences": "GapSentences(ratio=0.3, target='gaps')",
        "ul2": "UL2Mixture(weights=(2.0, 1.0, 4.0), r_ratio=0.15, r_mean_span=3.0, x_ratio=0.5, x_mean_span=32.0)",
        "prefix_lm": "PrefixLM()",
    }
    for recipe, text in expected.items():
        pipe = load_noise(f"configs/noise/{recipe}.yaml")
        assert repr(pipe.objective) == text and pipe.noises == [pipe.objective]
        class_path = yaml.safe_load(open(f"configs/noise/{recipe}.yaml"))["noises"][0]["class_path"]
        assert class_path == f"noising.{type(pipe.objective).__name__}"


def test_objective_batches_are_the_same_for_any_num_workers_and_labels_are_the_targets(tmp_path):
    import noising
    from bart_pretrain.data.documents import to_document
    from bart_pretrain.data.noise_config import load_noise
    from bart_pretrain.data.pretrain_module import PretrainDataModule

    make_world(tmp_path, n_train=40, n_val=4)

    def batches(num_workers: int) -> list[dict]:
        dm = PretrainDataModule(
            train_files=str(tmp_path / "train.jsonl"), val_files=None, tokenizer_path=str(tmp_path / "tokenizer.json"),
            noise=load_noise("configs/noise/ul2.yaml"), max_length=64, max_tokens=256, num_workers=num_workers, seed=3,
        )  # fmt: skip
        dm.prepare_data()
        dm.setup("fit")
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(1)
        return dm, list(loader)

    dm, a = batches(0)
    _, b = batches(2)
    assert [x["indices"] for x in a] == [x["indices"] for x in b]
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x["input_ids"], y["input_ids"]) and torch.equal(x["labels"], y["labels"])
    # The labels are the objective's targets, sample by sample: (seed, epoch 1, index).
    first = a[0]
    for row, i in enumerate(first["indices"]):
        example = dm.corruptor.noise.example(
            to_document(dm.train_docs[i]), noising.sample_rng(3, 1, i), dm.corruptor.ctx
        )
        n = len(example.target)
        assert first["labels"][row, :n].tolist() == example.target.tolist()
        assert first["input_ids"][row, : len(example.source)].tolist() == example.source.tolist()
        assert example.source[0] in dm.corruptor.ctx.mode_ids


def test_a_run_with_an_objective_resumes_exactly(tmp_path):
    from bart_pretrain.commands.pretrain import make_cli

    common = ["--report", "false", "--torch_threads", "1", "--data.noise", "configs/noise/ul2.yaml",
              "--data.noise_schedule", '{"steps": 4, "start": 0.0, "mode": "mix"}', "--model.reconstruction_documents",
              "0", "--trainer.max_steps", "6", "--model.optim.total_steps", "6"]  # fmt: skip

    def fit(config, *args):
        cli = make_cli(["-c", str(config), *common, *args])
        cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config["ckpt_path"])
        return cli

    fit(make_world(tmp_path / "a", n_train=24, n_val=4, checkpoint_every=3))
    reference = weights(tmp_path / "a" / "run" / "checkpoints" / "last.ckpt")
    config = make_world(tmp_path / "b", n_train=24, n_val=4, checkpoint_every=3)
    fit(config, "--trainer.max_steps", "3")  # stops at step 3, as a killed run's last checkpoint would
    cli = fit(config, "--ckpt_path", "last")
    assert cli.trainer.global_step == 6
    resumed = weights(tmp_path / "b" / "run" / "checkpoints" / "last.ckpt")
    for k in reference:
        torch.testing.assert_close(resumed[k], reference[k], rtol=0, atol=0, msg=k)

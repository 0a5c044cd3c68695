"""Fine-tuning: loss masking and label smoothing by hand, init errors, and `bart-pretrain finetune` end to end on a
tiny model (summarization from scratch, then from that checkpoint with --compare_scratch; a task of other columns,
metrics and baseline)."""

import json
import math
import re

import pytest
import torch
from pretrain_world import TINY_SHAPE, summary_pairs

from bart_pretrain.commands.finetune import main as finetune_main
from bart_pretrain.data.pairs import collate_pairs
from bart_pretrain.tokenizer import train_tokenizer
from bart_pretrain.training.finetune import FinetuneModule, MissingCheckpointError
from bart_pretrain.training.losses import token_cross_entropy

TINY = TINY_SHAPE | {"dropout": 0.0}
WORDS = "alpha beta gamma delta parser library tool image audio network file system python shell data".split()


def pairs(n: int, offset: int = 0) -> list[dict]:
    return summary_pairs(n, offset, WORDS)


@pytest.fixture(scope="module")
def tok_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    train_tokenizer([r["document"] for r in pairs(60)] * 3, vocab_size=300).save(path)
    return str(path)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("pairs")
    for split, n, off in (("train", 48, 0), ("validation", 8, 100), ("test", 6, 200)):
        (d / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pairs(n, off)))
    return d


def test_label_smoothed_cross_entropy_matches_the_hand_value():
    # p = softmax([0, ln 3]) = [1/4, 3/4], target 1: nll = -ln(3/4); smoothing term = mean(-ln p) over the 2 classes.
    # loss = 0.9 * 0.287682 + 0.1 * (1.386294 + 0.287682) / 2 = 0.342613
    logits = torch.tensor([[0.0, math.log(3.0)]])
    loss, correct = token_cross_entropy(logits, torch.tensor([1]), label_smoothing=0.1)
    assert loss.item() == pytest.approx(0.9 * -math.log(0.75) + 0.1 * (math.log(4) - math.log(0.75)) / 2, abs=1e-6)
    assert loss.item() == pytest.approx(0.342613, abs=1e-6)
    assert correct.item() == 1


def test_padding_contributes_nothing_to_the_loss(tok_path):
    module = FinetuneModule(init_from=None, model_config=TINY, tokenizer_path=tok_path).eval()
    rows = [{"input_ids": [0, 10, 11, 12, 2], "labels": [0, 20, 21, 2]}, {"input_ids": [0, 13, 2], "labels": [0, 2]}]
    tight = collate_pairs(rows, pad_id=1)
    padded = {k: torch.nn.functional.pad(v, (0, 5), value=0 if k == "attention_mask" else 1) for k, v in tight.items()}
    with torch.no_grad():
        loss_a, n_a, _ = module.token_loss(tight, label_smoothing=0.1)
        loss_b, n_b, _ = module.token_loss(padded, label_smoothing=0.1)
        alone, n_alone, _ = module.token_loss(collate_pairs(rows[1:], pad_id=1), label_smoothing=0.1)
        first, n_first, _ = module.token_loss(collate_pairs(rows[:1], pad_id=1), label_smoothing=0.1)
    assert n_a.item() == n_b.item() == 6  # 4 + 2 label tokens, no pads
    torch.testing.assert_close(loss_a, loss_b)
    torch.testing.assert_close(loss_a, alone + first)  # a sum over real tokens: batch padding changes nothing


def test_module_loss_is_label_smoothed_cross_entropy_summed_over_real_tokens(tok_path):
    from bart_pretrain.data.batching import shift_tokens_right

    module = FinetuneModule(init_from=None, model_config=TINY, tokenizer_path=tok_path).eval()
    batch = collate_pairs([{"input_ids": [0, 10, 11, 2], "labels": [0, 20, 21, 22, 2]},
                           {"input_ids": [0, 13, 2], "labels": [0, 2]}], pad_id=1)  # fmt: skip
    labels = batch["labels"]
    real = labels.ne(1)
    with torch.no_grad():
        loss, n, _ = module.token_loss(batch, label_smoothing=0.1)
        logits = module.model(batch["input_ids"], batch["attention_mask"], shift_tokens_right(labels, 1, 2))
    logp = logits[real].log_softmax(-1)
    nll = -logp.gather(1, labels[real][:, None]).squeeze(1)
    expected = (0.9 * nll - 0.1 * logp.mean(-1)).sum()
    assert n.item() == 7
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)


def test_missing_default_checkpoint_says_run_make_pretrain(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MissingCheckpointError, match="Run `make pretrain` first"):
        FinetuneModule()


def test_finetune_command_reports_a_clear_error_without_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    from bart_pretrain.cli import main as cli_main

    assert cli_main(["finetune", "--model.init_from", "nowhere.ckpt"]) == 2
    assert f"no checkpoint at {tmp_path / 'nowhere.ckpt'}" in capsys.readouterr().err  # made absolute by the parser


def run_finetune(root, data_dir, tok_path, *extra):
    args = [
        "--trainer.default_root_dir", str(root), "--trainer.max_steps", "3", "--trainer.accelerator", "cpu",
        "--trainer.val_check_interval", "3", "--trainer.check_val_every_n_epoch", "null",
        "--trainer.num_sanity_val_steps", "0", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", "--seed_everything", "0",
        "--model.tokenizer_path", tok_path, "--model.optim.lr", "1e-3", "--model.optim.warmup_steps", "1",
        "--model.generation.num_beams", "2", "--model.generation.max_length", "8",
        "--data.source", str(data_dir), "--data.max_tokens", "256", "--data.metric_subset", "4",
        "--data.max_source_length", "128",  # the tiny model's positions
    ]  # fmt: skip
    return finetune_main(args + list(extra))


@pytest.fixture(scope="module")
def scratch_run(tmp_path_factory, data_dir, tok_path):
    root = tmp_path_factory.mktemp("ft")
    assert (
        run_finetune(root, data_dir, tok_path, "--model.init_from", "null", "--model.model_config", json.dumps(TINY))
        == 0
    )
    return root


def test_finetune_from_scratch_writes_checkpoint_predictions_metrics_and_table(scratch_run, data_dir):
    run = scratch_run / "from_scratch"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    predictions = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 6 and set(predictions[0]) == {"id", "prediction", "reference"}
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n"] == 6 and metrics["steps"] == 3 and {"rouge1", "rouge2", "rougeL"} <= set(metrics)
    table = (scratch_run / "results.md").read_text()
    assert "| lead-1 |" in table and "| fine-tuned from random init |" in table
    assert table.startswith(f"Task: document -> summary ({data_dir}); metrics: rouge; baseline: lead-1.\n")
    assert "| system | ROUGE-1 | ROUGE-2 | ROUGE-L |" in table
    hparams = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["hyper_parameters"]
    assert hparams["model_config"]["d_model"] == 32 and hparams["generation"]["num_beams"] == 2


def test_finetune_compare_scratch_runs_both_with_the_same_budget(tmp_path, scratch_run, data_dir, tok_path, capsys):
    ckpt = scratch_run / "from_scratch" / "checkpoints" / "last.ckpt"
    assert run_finetune(tmp_path, data_dir, tok_path, "--model.init_from", str(ckpt), "--compare_scratch", "true") == 0
    out = capsys.readouterr().out
    assert "| fine-tuned from pretrained |" in out and "| fine-tuned from random init |" in out and "| lead-1 |" in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) == {"lead-1", "from_pretrained", "from_scratch"}
    assert metrics["from_pretrained"]["steps"] == metrics["from_scratch"]["steps"] == 3
    for variant in ("from_pretrained", "from_scratch"):
        assert (tmp_path / variant / "predictions.jsonl").is_file()
    # each run records its own init: the checkpoint, then none (random weights)
    assert metrics["from_pretrained"]["init_from"] == str(ckpt) and metrics["from_scratch"]["init_from"] is None
    scratch_ckpt = torch.load(tmp_path / "from_scratch" / "checkpoints" / "last.ckpt", weights_only=False)
    assert scratch_ckpt["hyper_parameters"]["init_from"] is None


def test_a_task_of_other_columns_metrics_and_baseline_runs_end_to_end(tmp_path, tok_path):
    """The package-naming task's shape: synopsis -> name, exact match and chrF, the copy baseline."""
    names = tmp_path / "names"
    names.mkdir()
    for split, n, off in (("train", 24, 0), ("validation", 6, 100), ("test", 5, 200)):
        rows = [{"synopsis": r["summary"], "package": r["id"]} for r in pairs(n, off)]
        (names / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    root = tmp_path / "run"
    extra = ["--model.init_from", "null", "--model.model_config", json.dumps(TINY),
             "--model.metrics", "[exact_match, chrf]", "--model.baseline", "copy",
             "--data.source_column", "synopsis", "--data.target_column", "package"]  # fmt: skip
    assert run_finetune(root, names, tok_path, *extra) == 0
    metrics = json.loads((root / "metrics.json").read_text())
    assert set(metrics) == {"copy", "from_scratch"}
    test = [json.loads(line) for line in (names / "test.jsonl").read_text().splitlines()]
    from bart_pretrain.metrics import score

    copy = score(["exact_match", "chrf"], [r["synopsis"] for r in test], [r["package"] for r in test])
    assert metrics["copy"] == pytest.approx(copy) and set(copy) == {"exact_match", "chrf"}
    assert {"exact_match", "chrf"} <= set(metrics["from_scratch"]) and "rouge1" not in metrics["from_scratch"]
    table = (root / "results.md").read_text()
    assert table.startswith(f"Task: synopsis -> package ({names}); metrics: exact_match, chrf; baseline: copy.\n")
    assert "| system | exact match % | chrF |" in table and f"| copy | 0.00 | {copy['chrf']:.2f} |" in table
    predictions = [json.loads(line) for line in (root / "from_scratch" / "predictions.jsonl").read_text().splitlines()]
    assert [p["reference"] for p in predictions] == [r["package"] for r in test]
    hparams = torch.load(root / "from_scratch" / "checkpoints" / "last.ckpt", weights_only=False)["hyper_parameters"]
    assert hparams["metrics"] == ["exact_match", "chrf"] and hparams["baseline"] == "copy"


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        (
            "--model.metrics",
            "[meteor]",
            r"model\.metrics.*\['rouge', 'bleu', 'chrf', 'exact_match'\]\. Got value: meteor",
        ),
        ("--model.metrics", "[chrf, chrf]", r"--model\.metrics=\['chrf', 'chrf'\]: must be one or more of rouge, bleu"),
        ("--model.baseline", "lead-0", r"--model\.baseline='lead-0': must be lead-K"),
        ("--data.source_column", "title", r"no column 'title' \(--data\.source_column\); the columns present: "),
    ],
)
def test_a_bad_task_setting_is_one_line_and_exit_2(tmp_path, data_dir, tok_path, capsys, flag, value, message):
    from bart_pretrain.cli import main as cli_main

    args = ["finetune", "--trainer.default_root_dir", str(tmp_path), "--model.init_from", "null",
            "--model.model_config", json.dumps(TINY), "--model.tokenizer_path", tok_path,
            "--data.source", str(data_dir), "--data.max_source_length", "128", flag, value]  # fmt: skip
    try:
        rc = cli_main(args)
    except SystemExit as e:  # a value the parser refuses exits from inside it
        rc = e.code
    assert rc == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # (a Lightning warning may come before it)
    assert last.startswith("bart-pretrain finetune: error: ") and re.search(message, last), err


@pytest.mark.parametrize("config", ["debian_tiny", "debian_names", "cnn_dailymail", "xsum"])
def test_shipped_finetune_configs_parse(config, capsys):
    with pytest.raises(SystemExit) as e:
        finetune_main(["-c", f"configs/finetune/{config}.yaml", "--print_config"])
    assert e.value.code == 0
    printed = capsys.readouterr().out
    assert "generation:" in printed and "label_smoothing: 0.1" in printed


def test_paper_generation_settings_are_shipped():
    import yaml

    cnn = yaml.safe_load(open("configs/finetune/cnn_dailymail.yaml"))["model"]["generation"]
    xsum = yaml.safe_load(open("configs/finetune/xsum.yaml"))["model"]["generation"]
    assert cnn == dict(num_beams=4, length_penalty=2.0, max_length=142, min_length=56, no_repeat_ngram_size=3)
    assert xsum == dict(num_beams=6, length_penalty=1.0, max_length=62, min_length=11, no_repeat_ngram_size=3)

"""`bart-pretrain summarize` (stdin, files, JSONL) and `bart-pretrain export-hf` on a tiny fine-tuned model: the export
carries weights, tokenizer and beam settings, so transformers' default `generate()` on it, `summarize` on it and
`summarize` on the checkpoint give the same summaries; and `--model.init_from` of the export round-trips."""

import dataclasses
import io
import json
import re
import sys
from pathlib import Path

import pytest
import torch
from pretrain_world import TINY_SHAPE

from bart_pretrain.cli import main as cli_main
from bart_pretrain.commands.finetune import main as finetune_main
from bart_pretrain.commands.summarize import one_line, read_documents
from bart_pretrain.tokenizer import train_tokenizer

TINY = TINY_SHAPE | {"dropout": 0.0, "init_std": 0.3}  # large weights: outputs differ between documents after 2 steps
WORDS = "alpha beta gamma delta parser library tool image audio network file system python shell data".split()
DOCS = [
    "The alpha beta package. It provides a parser for audio files.",
    "A shell tool for network data. It is written in python and has many options for files.",
    "Image library.",
]
BEAMS = ["--generation.num_beams", "3", "--generation.max_length", "12", "--generation.min_length", "3"]
BEAMS += ["--generation.no_repeat_ngram_size", "2"]
# What the fine-tuning run records (not the defaults, so that losing any of them shows); sources cut at 16 tokens.
RECORDED = dict(num_beams=3, max_length=12, min_length=3, length_penalty=1.5, no_repeat_ngram_size=2)
MAX_SOURCE_LENGTH = 16
README = Path(__file__).parent.parent / "README.md"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("sum")
    docs = [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(5 + i % 7)) + "." for i in range(40)]
    rows = [{"document": d, "summary": " ".join(d.split()[:3])} for d in docs]
    train_tokenizer(docs * 3, vocab_size=300).save(root / "tokenizer.json")
    for split in ("train", "validation", "test"):
        (root / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = [
        "--trainer.default_root_dir", str(root / "run"), "--trainer.max_steps", "2", "--trainer.accelerator", "cpu",
        "--trainer.limit_val_batches", "1", "--trainer.num_sanity_val_steps", "0",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--model.init_from", "null", "--model.model_config", json.dumps(TINY), "--model.optim.lr", "1e-4",
        "--model.optim.warmup_steps", "1", "--model.tokenizer_path", str(root / "tokenizer.json"),
        *[a for k, v in RECORDED.items() for a in (f"--model.generation.{k}", str(v))],
        "--data.max_source_length", str(MAX_SOURCE_LENGTH), "--data.source", str(root), "--data.max_tokens", "256",
        "--data.metric_subset", "0", "--evaluate_test", "false", "--seed_everything", "0",
    ]  # fmt: skip
    assert finetune_main(args) == 0
    return root / "run" / "from_scratch" / "checkpoints" / "last.ckpt"


def summarize(argv, stdin_text, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin_text))
    rc = cli_main(["summarize", *argv])  # as a user runs it: bad input is one line and exit 2
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_read_documents_detects_lines_and_jsonl():
    # a blank line is an empty document in its place: output line N answers input line N
    assert read_documents(["a doc\n", "\n", "another\n"], "auto", "document", "-") == (["a doc", "", "another"], None)
    docs, rows = read_documents(['{"document": "x", "id": 1}', '{"document": "y", "id": 2}'], "auto", "document", "-")
    assert docs == ["x", "y"] and rows[1]["id"] == 2
    # a line that merely looks like JSON among plain lines keeps line mode
    assert read_documents(['{"document": "x"}', "plain"], "auto", "document", "-")[1] is None


def test_read_documents_names_the_missing_field():
    with pytest.raises(ValueError, match=r"in.jsonl:1: no field 'text' \(--field\); the row has: \['document'\]"):
        read_documents(['{"document": "x"}'], "jsonl", "text", "in.jsonl")


def test_summarize_reads_stdin_and_writes_one_summary_per_line(checkpoint, monkeypatch, capsys):
    rc, out, _ = summarize(["--checkpoint", str(checkpoint), *BEAMS], "\n".join(DOCS) + "\n", monkeypatch, capsys)
    assert rc == 0
    lines = out.split("\n")
    assert len(lines) == len(DOCS) + 1 and lines[-1] == "" and all(lines[:-1])


def test_summarize_keeps_line_n_for_line_n_and_invents_nothing_for_a_blank_line(checkpoint, monkeypatch, capsys):
    argv = ["--checkpoint", str(checkpoint), *BEAMS]
    _, alone, _ = summarize(argv, "\n".join(DOCS) + "\n", monkeypatch, capsys)
    rc, out, _ = summarize(argv, f"\n{DOCS[0]}\n  \n{DOCS[1]}\n\n{DOCS[2]}\n", monkeypatch, capsys)
    assert rc == 0
    a, b, c = alone.splitlines()
    assert out.splitlines() == ["", a, "", b, "", c]  # the same summaries, each on its input's line
    rows = [{"id": 0, "document": DOCS[0]}, {"id": 1, "document": ""}, {"id": 2, "document": "   "}]
    rc, out, _ = summarize(argv, "\n".join(json.dumps(r) for r in rows[:2]) + "\n\n" + json.dumps(rows[2]) + "\n",
                           monkeypatch, capsys)  # fmt: skip
    lines = out.splitlines()
    assert rc == 0 and len(lines) == 4 and lines[2] == ""
    assert [json.loads(lines[i])["summary"] for i in (0, 1, 3)] == [a, "", ""]


def test_summarize_jsonl_file_keeps_fields_and_matches_line_mode(checkpoint, tmp_path, monkeypatch, capsys):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"id": i, "document": d}) + "\n" for i, d in enumerate(DOCS)))
    argv = ["--checkpoint", str(checkpoint), "--input", str(path), "--output_field", "generated", *BEAMS]
    rc, out, _ = summarize(argv, "", monkeypatch, capsys)
    assert rc == 0
    rows = [json.loads(line) for line in out.split("\n")[:-1]]
    assert [r["id"] for r in rows] == [0, 1, 2] and rows[0]["document"] == DOCS[0]
    _, plain, _ = summarize(["--checkpoint", str(checkpoint), *BEAMS], "\n".join(DOCS), monkeypatch, capsys)
    assert [one_line(r["generated"]) for r in rows] == plain.split("\n")[:-1]


def test_summarize_missing_checkpoint_is_a_clear_error(tmp_path, monkeypatch, capsys):
    rc, _, err = summarize(["--checkpoint", str(tmp_path / "none.ckpt")], "doc\n", monkeypatch, capsys)
    assert rc == 2 and "no such file" in err


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    from bart_pretrain.commands.export_hf import main as export_main

    out_dir = tmp_path_factory.mktemp("export") / "out"
    assert export_main([str(checkpoint), str(out_dir)]) == 0
    return out_dir


def readme_export_block() -> str:
    guide = README.read_text().split("<!-- export-guide:start -->")[1].split("<!-- export-guide:end -->")[0]
    (block,) = re.findall(r"```python\n(.*?)```", guide, flags=re.DOTALL)
    return block


def test_transformers_default_generate_and_summarize_agree_on_checkpoint_and_export(
    checkpoint, exported, monkeypatch, capsys
):
    pytest.importorskip("transformers")
    saved = json.loads((exported / "generation_config.json").read_text())
    assert {k: saved[k] for k in RECORDED} == RECORDED and saved["early_stopping"] is True
    assert json.loads((exported / "tokenizer_config.json").read_text())["model_max_length"] == MAX_SOURCE_LENGTH
    docs = [*DOCS, " ".join(["python shell data network file"] * 8) + "."]  # longer than MAX_SOURCE_LENGTH
    rc, from_ckpt, _ = summarize(["--checkpoint", str(checkpoint)], "\n".join(docs), monkeypatch, capsys)
    assert rc == 0
    rc, from_export, _ = summarize(["--checkpoint", str(exported)], "\n".join(docs), monkeypatch, capsys)
    assert rc == 0 and from_export == from_ckpt
    # The README's code as written (AutoTokenizer + AutoModelForSeq2SeqLM.generate, no settings), on our documents.
    code = readme_export_block()
    assert re.search(r"^documents = \[.*\]$", code, flags=re.MULTILINE)
    code = re.sub(r"^documents = \[.*\]$", f"documents = {docs!r}", code, flags=re.MULTILINE)
    monkeypatch.chdir(exported.parent)
    namespace: dict = {}
    exec(compile(code.replace('"out"', repr(exported.name)), "README.md", "exec"), namespace)
    theirs = [one_line(t.strip()) for t in namespace["summaries"]]
    assert len(set(theirs)) > 1  # a model that says the same thing for every document would prove little
    assert theirs == from_ckpt.split("\n")[:-1]


def test_export_then_init_from_round_trips_weights_tokenizer_and_generation(checkpoint, exported):
    from bart_pretrain.evaluate import generate_texts
    from bart_pretrain.generation import GenerationConfig
    from bart_pretrain.loading import load_model
    from bart_pretrain.training.finetune import FinetuneModule

    original = load_model(checkpoint)
    assert original.generation == RECORDED
    module = FinetuneModule(init_from=str(exported), max_source_length=MAX_SOURCE_LENGTH)
    theirs = module.model.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in original.model.state_dict().items())
    assert module.tokenizer.fingerprint() == original.tokenizer.fingerprint()
    assert dataclasses.asdict(module.generation) == RECORDED
    expected = generate_texts(original.model, original.tokenizer, DOCS, GenerationConfig(**RECORDED), MAX_SOURCE_LENGTH)
    assert module.generate(DOCS) == expected
    given = FinetuneModule(init_from=str(exported), generation=GenerationConfig(num_beams=2))
    assert given.generation.num_beams == 2  # settings given win over the recorded ones

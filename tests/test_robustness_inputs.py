"""The bad-input matrix (README, "What is guaranteed"): every case goes through the public entry point a user runs
(`bart-pretrain pretrain`, in-process through the dispatcher, or `export-hf`), and asserts the exact outcome: an
error naming the file, field or value and what is allowed, raised before the first training step; or a documented,
counted skip. Lower-level tests of the same checks live beside their modules (test_documents.py,
test_noising_plugins.py, test_model.py, test_tokenizer.py); this file is the one list of every case.

Several checks live in ``bart_pretrain.training.guards`` (resume shape, config keys) and ``data.pretrain_stream``
(streamed corpus), hooked into the pretraining modules; they are also tested directly here.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from pretrain_world import make_world

from bart_pretrain.cli import main as cli_main
from bart_pretrain.data.documents import encode_document, load_text_dataset, tokenize_dataset
from bart_pretrain.data.pretrain_stream import check_stream_source
from bart_pretrain.tokenizer import Tokenizer, train_tokenizer
from bart_pretrain.training import guards

FIXTURES = Path(__file__).parent / "plugin_fixtures"  # outside_noises: one good plug-in and several broken ones


# -- the tiny world every case starts from -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("world")
    make_world(root, trainer__max_steps=2, checkpoint_every=2)
    return root


@pytest.fixture(scope="module")
def trained(world) -> Path:
    """A 2-step checkpoint of the world's d_model=32 model (vocab 400), to resume from."""
    assert cli_main(["pretrain", "-c", str(world / "pretrain.yaml"), "--report", "false"]) == 0
    return world / "run" / "checkpoints" / "last.ckpt"


@pytest.fixture
def training_steps(training_steps, monkeypatch) -> list[int]:
    """conftest's spy on the training steps, with the plug-in fixtures importable."""
    monkeypatch.syspath_prepend(str(FIXTURES))
    return training_steps


# -- builders: each writes the bad input under `d` and returns the extra CLI arguments -----------------------------
def _file(d: Path, name: str, content: bytes) -> Path:
    (d / name).write_bytes(content)
    return d / name


def _jsonl(d: Path, name: str, rows: list[dict]) -> Path:
    return _file(d, name, "".join(json.dumps(r) + "\n" for r in rows).encode())


def _train(path: Path, *more: str) -> list[str]:
    return ["--data.train_files", str(path), *more]


def _parquet_of_ints(d: Path) -> Path:
    import datasets

    datasets.Dataset.from_dict({"text": [1, 2, 3]}).to_parquet(str(d / "ints.parquet"))
    return d / "ints.parquet"


def _recipe(d: Path, spec: dict) -> list[str]:
    (d / "noise.yaml").write_text(yaml.safe_dump({"noises": [spec]}))
    return ["--data.noise", str(d / "noise.yaml")]


def _model_yaml(world: Path, d: Path, **changes) -> Path:
    fields = {**yaml.safe_load((world / "model.yaml").read_text()), **changes}
    (d / "model.yaml").write_text(yaml.safe_dump(fields))
    return d / "model.yaml"


def _tokenizer_300(d: Path) -> Path:
    train_tokenizer(["Alpha beta gamma. Delta epsilon zeta eta theta."] * 20, vocab_size=300).save(d / "tok300.json")
    return d / "tok300.json"


# (id, builder(world, d) -> CLI args, error type, regex the message must match)
MATRIX = [
    ("empty_corpus_file", lambda w, d: _train(_file(d, "empty.jsonl", b"")), ValueError,
     r"empty\.jsonl: the file is empty"),
    ("non_utf8_file", lambda w, d: _train(_file(d, "latin1.txt", "café crème.".encode("latin-1"))), ValueError,
     r"latin1\.txt: not UTF-8 text \(invalid byte 0xe9 at byte offset 3\)"),
    ("jsonl_rows_without_the_text_column", lambda w, d: _train(_jsonl(d, "body.jsonl", [{"body": "Hello."}])),
     ValueError, r"body\.jsonl: no column 'text' \(columns: \['body'\]\)"),
    ("parquet_text_column_of_ints", lambda w, d: _train(_parquet_of_ints(d)), ValueError,
     r"ints\.parquet: column 'text' holds Value\('int64'\), not strings"),
    ("every_document_empty", lambda w, d: _train(_jsonl(d, "blank.jsonl", [{"text": ""}, {"text": "  \n"}])),
     ValueError, r"blank\.jsonl: the file is empty|no document with any token"),
    ("streaming_empty_corpus_file", lambda w, d: _train(_file(d, "empty.jsonl", b""), "--data.streaming",
     "true"), ValueError, r"--data\.train_files: .*empty\.jsonl: the file is empty"),
    ("streaming_non_utf8_file", lambda w, d: _train(_file(d, "latin1.txt", "café.".encode("latin-1")),
     "--data.streaming", "true"), ValueError, r"latin1\.txt: not UTF-8 text \(invalid byte 0xe9"),
    ("streaming_jsonl_without_the_text_column", lambda w, d: _train(
     _jsonl(d, "body.jsonl", [{"body": "Hello."}]), "--data.streaming", "true"), ValueError,
     r"body\.jsonl: no column 'text' \(columns: \['body'\]\)"),
    ("noise_ratio_1.5", lambda w, d: _recipe(d, {"class_path": "TextInfilling", "init_args": {"ratio": 1.5}}),
     ValueError, r"^TextInfilling\.ratio=1\.5: must be a number in \[0, 1\]$"),
    ("noise_ratio_-0.1", lambda w, d: _recipe(d, {"class_path": "noising.TokenMasking", "init_args": {"ratio": -0.1}}),
     ValueError, r"^TokenMasking\.ratio=-0\.1: must be a number in \[0, 1\]$"),
    ("model_vocab_size_differs_from_tokenizer", lambda w, d: ["--model.model_config", str(_model_yaml(w, d,
     vocab_size=500))], ValueError, r"model_config\.vocab_size=500 but tokenizer .*tokenizer\.json has 400 tokens"),
    ("resume_checkpoint_of_another_model_size", lambda w, d: ["--ckpt_path", str(w / "run" / "checkpoints"
     / "last.ckpt"), "--model.model_config", str(_model_yaml(w, d, d_model=48))], ValueError,
     r"last\.ckpt holds a model of another shape: d_model=32 \(this run: 48\)"),
    ("resume_with_a_tokenizer_of_another_vocabulary", lambda w, d: ["--ckpt_path", str(w / "run" /
     "checkpoints" / "last.ckpt"), "--data.tokenizer_path", str(_tokenizer_300(d))], ValueError,
     r"vocab_size=400 \(this run: \d+\); the vocabulary comes from the tokenizer"),
    ("unknown_key_in_model_optim", lambda w, d: ["--model.optim.lrr", "3"], ValueError,
     r"--model\.optim: unknown key\(s\) 'lrr'; allowed: lr, betas"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "build", "error", "message"), [pytest.param(*c, id=c[0]) for c in MATRIX])
def test_bad_input_fails_before_training_with_a_clear_error(
    world, trained, tmp_path, training_steps, monkeypatch, case, build, error, message
):
    monkeypatch.setenv("BART_PRETRAIN_DEBUG", "1")  # the error itself, not its one line (tests/test_user_errors.py)
    run_dir = tmp_path / "run"
    args = ["pretrain", "-c", str(world / "pretrain.yaml"), "--report", "false", "--run_dir", str(run_dir)]
    with pytest.raises(error, match=message):
        cli_main([*args, *build(world, tmp_path)])
    assert training_steps == [], "the fault was seen only after training started"
    assert not list(run_dir.glob("checkpoints/*.ckpt"))


# A noise the parser of --data.noise refuses (a name that is no class, a class that is no noise) or one whose own check
# refuses a value: the first is a usage error (one line, exit 2), the second the noise's ValueError; both before the
# corpus is read.
NOISE_CASES = [
    ({"class_path": "text_infiling"}, r"unknown noise 'text_infiling': .*: DocumentRotation, .*TokenMasking"),
    ({"class_path": "outside_noises.NotANoise"}, r"outside_noises\.NotANoise does not correspond to a subclass of"),
    ({"class_path": "TextInfilling", "init_args": {"ratio": 1.5}}, r"TextInfilling\.ratio=1\.5: must be a number in"),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "message"), NOISE_CASES)
def test_a_bad_noise_recipe_fails_before_the_corpus_is_read(world, tmp_path, monkeypatch, capsys, spec, message):
    import bart_pretrain.data.documents as documents

    def no_reading(*args, **kwargs):
        raise AssertionError("the corpus was read before the noise recipe was checked")

    monkeypatch.setattr(documents, "load_text_dataset", no_reading)
    monkeypatch.syspath_prepend(str(FIXTURES))
    args = ["pretrain", "-c", str(world / "pretrain.yaml"), "--run_dir", str(tmp_path), *_recipe(tmp_path, spec)]
    try:
        code = cli_main(args)
    except SystemExit as e:  # a usage error leaves from inside the parser
        code = e.code
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
    assert re.search(message, line) and line.startswith("bart-pretrain pretrain: error: "), line


# A plug-in breaking the noising contract: one line on stderr naming the class and the rule, exit code 2, whether the
# start-up check (each plug-in run on a probe document) or the check on every call inside a DataLoader worker sees it.
PLUGIN_CASES = [
    ("OutOfRangeIds", 0, r"outside_noises\.OutOfRangeIds returned ids in \[0, 407\], outside \[0, 400\); the rule"),
    ("DropsEos", 0, r"outside_noises\.DropsEos dropped <s> \(id 0\) first or </s> \(id 2\) last; the rule: <s> stays"),
    ("ReturnsList", 0, r"outside_noises\.ReturnsList returned a list, not a noising\.Document"),
    ("MutatesInput", 0, r"outside_noises\.MutatesInput modified its input document"),
    ("GlobalRandomMask", 0, r"GlobalRandomMask drew from numpy's global generator .*draw randomness only from the rng"),
    ("DropsEosFromLongDocuments", 1, r"DropsEosFromLongDocuments dropped <s> \(id 0\) first or </s> \(id 2\) last"),
]  # fmt: skip


@pytest.mark.parametrize(("cls", "workers", "message"), PLUGIN_CASES, ids=[c[0] for c in PLUGIN_CASES])
def test_a_misbehaving_plug_in_stops_pretraining_with_one_line_naming_it(
    world, tmp_path, training_steps, capsys, cls, workers, message
):
    run_dir = tmp_path / "run"
    args = ["pretrain", "-c", str(world / "pretrain.yaml"), "--report", "false", "--run_dir", str(run_dir)]
    args += [*_recipe(tmp_path, {"class_path": f"outside_noises.{cls}"}), "--data.num_workers", str(workers)]
    assert cli_main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert re.search(message, err[-1]) and err[-1].startswith("bart-pretrain pretrain: error: noise plug-in")
    assert not any("Traceback" in line for line in err)
    if cls != "DropsEosFromLongDocuments":  # seen at start-up; that one only on data the probe does not look like
        assert training_steps == []


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["--trainer.max_stepz", "3"], "max_stepz"),
        (["--data.max_tokns", "3"], "max_tokns"),
        (["--model.model_config", "{d_modle: 64}"], "d_modle"),  # as a model config file with that field would
        (["--model.model_config.d_modle", "64"], "d_modle"),
    ],
    ids=["misspelled_trainer_key", "misspelled_data_key", "model_config_with_an_unknown_field", "misspelled_model_key"],
)
def test_unknown_config_key_is_a_usage_error_before_training(world, tmp_path, training_steps, capsys, args, key):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["pretrain", "-c", str(world / "pretrain.yaml"), "--run_dir", str(tmp_path / "run"), *args])
    assert exit_.value.code == 2 and key in capsys.readouterr().err
    assert training_steps == [] and not (tmp_path / "run").exists()


@pytest.mark.slow  # a subprocess through the installed console script
def test_unknown_key_in_a_config_file_exits_nonzero_from_the_installed_cli(world, tmp_path):
    config = yaml.safe_load((world / "pretrain.yaml").read_text())
    config["run_dir"] = str(tmp_path / "run")
    config["data"]["max_tokns"] = 512
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    exe = Path(sys.executable).with_name("bart-pretrain")
    done = subprocess.run([str(exe), "pretrain", "-c", str(tmp_path / "bad.yaml")], capture_output=True, text=True)
    assert done.returncode == 2
    assert "max_tokns" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_whose_tokenizer_changed_vocabulary_is_refused_by_export_hf(trained, tmp_path, capsys):
    ckpt = torch.load(trained, map_location="cpu", weights_only=True)
    del ckpt["tokenizer"]  # as written before checkpoints carried their tokenizer: a path only
    ckpt["hyper_parameters"]["tokenizer_path"] = str(_tokenizer_300(tmp_path))
    torch.save(ckpt, tmp_path / "moved.ckpt")
    assert cli_main(["export-hf", str(tmp_path / "moved.ckpt"), str(tmp_path / "hf")]) == 2
    assert re.search(r"moved\.ckpt: tokenizer .*tok300\.json has \d+ tokens, the model 400", capsys.readouterr().err)
    assert not (tmp_path / "hf").exists()


# -- the guards, tested directly ---------------------------------------------------------------
def test_guard_names_the_differing_shape_fields_of_a_resume_checkpoint(trained):
    from bart_pretrain.model import BartConfig

    ckpt = torch.load(trained, map_location="cpu", weights_only=False)
    same = BartConfig.from_dict(dict(ckpt["hyper_parameters"]["model_config"]))
    guards.check_resume_compatible(ckpt, same, str(trained))
    other = BartConfig.from_dict({**same.to_dict(), "d_model": 48, "vocab_size": 300})
    with pytest.raises(ValueError, match=r"vocab_size=400 \(this run: 300\), d_model=32 \(this run: 48\); the voc"):
        guards.check_resume_compatible(ckpt, other, str(trained))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.jsonl", b"", r"empty\.jsonl: the file is empty"),
        ("latin1.txt", "café.".encode("latin-1"), r"latin1\.txt: not UTF-8 text \(invalid byte 0xe9 at byte offset 3"),
        ("body.jsonl", b'{"body": "x"}\n', r"body\.jsonl: no column 'text' \(columns: \['body'\]\)"),
        ("ints.jsonl", b'{"text": 5}\n', r"ints\.jsonl: column 'text' holds int \(5\), not strings"),
    ],
)
def test_guard_checks_a_streamed_corpus_up_front(tmp_path, name, content, message):
    _file(tmp_path, name, content)
    with pytest.raises(ValueError, match=r"--data\.train_files: .*" + message):
        check_stream_source(str(tmp_path / name))


def test_guard_lists_the_allowed_keys():
    from bart_pretrain.optim import OptimConfig

    guards.check_keys("--model.optim", {"lr": 1.0}, OptimConfig)
    with pytest.raises(ValueError, match=r"--model\.optim: unknown key\(s\) 'lrr'; allowed: lr, betas, eps"):
        guards.check_keys("--model.optim", {"lrr": 1.0}, OptimConfig)


def test_a_stream_without_any_usable_document_is_an_error_not_an_endless_run(world):
    from bart_pretrain.data.documents import encode_documents
    from bart_pretrain.data.noise_config import load_noise
    from bart_pretrain.data.pretrain_dataset import Corruptor
    from bart_pretrain.data.pretrain_stream import StreamingDenoisingDataset, StreamingLoader

    tok = Tokenizer.from_file(world / "tokenizer.json")
    dataset = StreamingDenoisingDataset(
        lambda: iter([{"text": ""}, {"text": "  \n "}]),
        Corruptor(load_noise("configs/noise/bart_large.yaml"), tok.noise_context(64)),
        max_tokens=256,
        seed=0,
        tokenize=lambda texts: encode_documents(texts, tok, 64),
    )
    with pytest.raises(ValueError, match="no batch"):
        list(StreamingLoader(dataset))


# -- accepted inputs: the documented outcome -------------------------------------------------------------------------
def test_messy_corpus_trains_and_counts_the_documents_it_skips(world, tmp_path, caplog):
    rows = [{"text": "Install it with pip. Then run the tests."}] * 6 + [
        {"text": "a document with no sentence end at all and no capital letters"},
        {"text": ""},  # empty document
        {"text": "   \n\n  "},  # whitespace only
        {"text": None},
        {"id": "row-without-text"},  # the text column missing from one row: read as null
    ]
    corpus = _jsonl(tmp_path, "messy.jsonl", rows)
    args = ["pretrain", "-c", str(world / "pretrain.yaml"), "--report", "false", "--run_dir", str(tmp_path / "run")]
    with caplog.at_level(logging.WARNING, logger="bart_pretrain"):
        assert cli_main([*args, "--data.train_files", str(corpus), "--data.val_files", "null"]) == 0
    assert "skipped 4 of 11 documents with no text (empty, whitespace-only or no 'text' value)" in caplog.text
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 2


def test_a_document_without_a_sentence_end_is_one_sentence(world):
    tok = Tokenizer.from_file(world / "tokenizer.json")
    (chunk,) = encode_document("a document with no sentence end at all and no capital letters", tok, 64)
    assert chunk["sentence_starts"] == [1] and chunk["input_ids"][0] == 0 and chunk["input_ids"][-1] == 2


@pytest.mark.slow
def test_a_single_10mb_line_is_one_document_cut_into_chunks(world, tmp_path):
    # No whitespace at all: one 10 MB "word", the worst case for the pre-tokenizer and the sentence splitter.
    text = "systemkernel" * (10 * 2**20 // 12)
    (tmp_path / "line.txt").write_text(text + "\n")
    tok = Tokenizer.from_file(world / "tokenizer.json")
    ds = load_text_dataset(str(tmp_path / "line.txt"))
    assert len(ds) == 1
    chunks = tokenize_dataset(ds, tok, 64)
    lengths = [len(ids) for ids in chunks["input_ids"]]
    assert max(lengths) == 64 and min(lengths) >= 3
    assert tok.decode([t for ids in chunks["input_ids"] for t in ids[1:-1]]) == text  # nothing lost or added


def test_streamed_txt_files_train_whatever_text_column_is_named(world, tmp_path):
    texts = [json.loads(line)["text"] for line in (world / "train.jsonl").read_text().splitlines()]
    (tmp_path / "corpus.txt").write_text("\n\n".join(texts) + "\n")  # one document per blank-line-separated block
    args = ["pretrain", "-c", str(world / "pretrain.yaml"), "--report", "false", "--run_dir", str(tmp_path / "run")]
    args += ["--data.streaming", "true", "--data.train_files", str(tmp_path / "corpus.txt"), "--data.text_column"]
    args += ["body", "--data.val_files", "null", "--data.num_workers", "1"]  # .txt rows have no column of that name
    assert cli_main(args) == 0
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2

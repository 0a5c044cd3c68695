"""The user-mistake matrix: every case runs `bart-pretrain <command> ...` in this process through the dispatcher, as
a user's shell would (an exception escaping it is counted as Python would end the process: a traceback and exit 1),
and asserts exit status 2 and one line on stderr, `bart-pretrain <command>: error: ...`, naming the thing and the
value; for `pretrain` also that no training step ran and no checkpoint was written. Config mistakes, missing and
bad files, bad values, files that are not checkpoints, unwritable outputs, run-directory cases, resumes that change
the data. The cases README.md's "What is guaranteed" table lists.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import subprocess
import traceback
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from pretrain_world import TINY_SHAPE, make_world, summary_pairs

from bart_pretrain.cli import main as cli_main


# -- the world: a corpus, a tokenizer, a 2-step checkpoint, summarization pairs --------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("world")
    make_world(root, trainer__max_steps=2, checkpoint_every=2)
    assert cli_main(["pretrain", "-c", str(root / "pretrain.yaml"), "--report", "false"]) == 0
    pairs = root / "pairs"
    pairs.mkdir()
    for split, (n, offset) in {"train": (24, 0), "validation": (6, 100), "test": (6, 200)}.items():
        (pairs / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in summary_pairs(n, offset)))
    return root


def run(argv: list[str], capfd) -> tuple[int, list[str]]:
    """(exit status, non-empty stderr lines) of `bart-pretrain ARGV`, as a process would end."""
    capfd.readouterr()
    try:
        with warnings.catch_warnings():  # a library's deprecation warning (once per process) is not an error line
            warnings.simplefilter("ignore")
            code = cli_main(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # what the interpreter does with an exception leaving main
        traceback.print_exc()
        code = 1
    err = capfd.readouterr().err.replace("\r", "\n")
    return code, [line for line in err.splitlines() if line.strip() and not PROGRESS.search(line)]


PROGRESS = re.compile(r"\d+%\||examples/s\]|it/s\]")  # a progress bar (datasets' tokenization): not an error line


# -- builders: each returns the command line of one mistake (d: a fresh directory for the case) ---------------------
def pretrain(w: Path, d: Path, *args: str) -> list[str]:
    return ["pretrain", "-c", str(w / "pretrain.yaml"), "--report", "false", "--run_dir", str(d / "run"), *args]


def resume(w: Path, d: Path, *args: str) -> list[str]:
    """Resume a copy of the world's finished 2-step run (in d/run) with 2 more steps and ``args``."""
    shutil.copytree(w / "run", d / "run", ignore=shutil.ignore_patterns(".lock"))
    return pretrain(w, d, "--ckpt_path", "last", "--trainer.max_steps", "4", *args)


def write(d: Path, name: str, content: bytes | str) -> Path:
    path = d / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def recipe(d: Path, spec: dict) -> str:
    return str(write(d, "noise.yaml", yaml.safe_dump({"noises": [spec]})))


def config_with(w: Path, d: Path, section: str, key: str, value) -> str:
    config = yaml.safe_load((w / "pretrain.yaml").read_text())
    config[section][key] = value
    return str(write(d, "mine.yaml", yaml.safe_dump(config)))


def truncated_checkpoint(w: Path, d: Path) -> Path:
    data = (w / "run" / "checkpoints" / "last.ckpt").read_bytes()
    return write(d, "cut.ckpt", data[: len(data) // 2])


def finetune(w: Path, d: Path, *args: str) -> list[str]:
    return [
        "finetune", "--trainer.default_root_dir", str(d / "ft"), "--trainer.max_steps", "2",
        "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", "--data.source", str(w / "pairs"),
        "--data.max_source_length", "64", "--data.max_target_length", "16", "--data.max_tokens", "256",
        "--model.init_from", str(w / "run" / "checkpoints" / "last.ckpt"), "--evaluate_test", "false", *args,
    ]  # fmt: skip


def summarize(w: Path, d: Path, *args: str) -> list[str]:
    write(d, "docs.txt", "A shell tool for the network.\n")
    ckpt = str(w / "run" / "checkpoints" / "last.ckpt")
    return ["summarize", "--checkpoint", ckpt, "--input", str(d / "docs.txt"), "--num_beams", "1", *args]


def finished_fine_tune(d: Path) -> Path:
    (d / "ft" / "from_pretrained" / "checkpoints").mkdir(parents=True)
    write(d / "ft" / "from_pretrained" / "checkpoints", "last.ckpt", b"weights")
    return d / "ft"


def checkpoints(d: Path) -> dict[str, int]:
    """Every checkpoint under ``d`` and when it was last written."""
    return {str(p): p.stat().st_mtime_ns for p in d.rglob("*.ckpt")}


@contextlib.contextmanager
def locked(directory: Path):
    """Hold ``directory``'s run lock as another running process would."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield


def unwritable(directory: Path) -> Path:
    """``directory``, made unwritable for this process: mode 0555, and for root (whom modes do not stop) the
    immutable attribute; skips where neither works."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o555)
    if os.access(directory, os.W_OK) and shutil.which("chattr"):
        subprocess.run(["chattr", "+i", str(directory)], capture_output=True)
    if os.access(directory, os.W_OK):
        pytest.skip("cannot make a directory unwritable for this user here")
    return directory


def writable_again(directory: Path) -> None:
    if shutil.which("chattr"):
        subprocess.run(["chattr", "-i", str(directory)], capture_output=True)
    directory.chmod(0o755)


def full_disk(monkeypatch) -> None:
    """Every checkpoint write meets a full disk (as torch.save into a file on one does)."""

    def no_space(obj, f, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a write() says it: naming no file

    monkeypatch.setattr(torch, "save", no_space)


# (id, builder(world, d, monkeypatch) -> argv, regex the one line must match; the command is argv[0])
MATRIX = [
    # config mistakes
    ("misspelt_trainer_flag", lambda w, d, m: pretrain(w, d, "--trainer.max_stepz", "3"),
     r"unrecognized arguments: --trainer\.max_stepz 3"),
    ("misspelt_key_in_a_config_file", lambda w, d, m: ["pretrain", "-c", config_with(w, d, "data", "max_tokns", 9),
     "--run_dir", str(d / "run")], r"max_tokns"),
    ("not_an_integer", lambda w, d, m: pretrain(w, d, "--data.max_tokens", "lots"),
     r"data\.max_tokens.*Got value: lots"),
    ("unknown_optim_key", lambda w, d, m: pretrain(w, d, "--model.optim.lrr", "3"),
     r"--model\.optim: unknown key\(s\) 'lrr'; allowed: lr, betas"),
    ("unknown_model_config_field", lambda w, d, m: pretrain(w, d, "--model.model_config.d_modle", "64"),
     r"d_modle"),
    ("max_tokens_below_max_length", lambda w, d, m: pretrain(w, d, "--data.max_tokens", "32"),
     r"data\.max_tokens=32 must be >= data\.max_length=64"),
    ("max_length_beyond_the_position_table", lambda w, d, m: pretrain(w, d, "--data.max_length", "200",
     "--data.max_tokens", "400"), r"--data\.max_length=200: longer than the model's position table "
     r"\(max_position_embeddings=128\)"),
    ("negative_reconstruction_documents", lambda w, d, m: pretrain(w, d, "--model.reconstruction_documents", "-1"),
     r"--model\.reconstruction_documents=-1: must be >= 0"),
    ("unknown_on_nonfinite_choice", lambda w, d, m: pretrain(w, d, "--model.on_nonfinite", "ignore"),
     r"on_nonfinite"),
    ("accelerator_the_machine_lacks", lambda w, d, m: pretrain(w, d, "--trainer.accelerator", "tpu"),
     r"--trainer: Requirement 'torch_xla"),
    ("accelerator_unknown", lambda w, d, m: pretrain(w, d, "--trainer.accelerator", "abacus"), r"abacus"),
    ("unknown_precision", lambda w, d, m: pretrain(w, d, "--trainer.precision", "17"), r"17"),
    ("negative_checkpoint_every", lambda w, d, m: pretrain(w, d, "--checkpoint_every", "-1"),
     r"every_n_train_steps.*-1|-1.*every_n_train_steps"),
    ("zero_torch_threads", lambda w, d, m: pretrain(w, d, "--torch_threads", "0"),
     r"--torch_threads=0: must be >= 1"),
    ("config_file_missing", lambda w, d, m: ["pretrain", "-c", str(d / "nope.yaml")], r"nope\.yaml"),
    ("config_file_not_yaml", lambda w, d, m: ["pretrain", "-c", str(write(d, "bad.yaml", "data: [unclosed\n"))],
     r"bad\.yaml"),
    # noise recipes
    ("negative_noise_ratio", lambda w, d, m: pretrain(w, d, "--data.noise", recipe(d, {"class_path": "TokenMasking",
     "init_args": {"ratio": -0.1}})), r"TokenMasking\.ratio=-0\.1: must be a number in \[0, 1\]"),
    ("misspelt_noise_name", lambda w, d, m: pretrain(w, d, "--data.noise", recipe(d, {"class_path":
     "TextInfiling"})), r"noise\.yaml.*unknown noise 'TextInfiling': .*one: DocumentRotation, .*TextInfilling"),
    ("former_noise_name", lambda w, d, m: pretrain(w, d, "--data.noise", recipe(d, {"class_path":
     "text_infilling"})), r"class_path: text_infilling is the former short name of noising\.TextInfilling"),
    ("unknown_noise_parameter", lambda w, d, m: pretrain(w, d, "--data.noise", recipe(d, {"class_path":
     "TokenMasking", "init_args": {"ratoi": 0.3}})), r"Option 'ratoi' is not accepted; TokenMasking's parameters: "
     r"ratio, whole_words"),
    ("noise_recipe_missing", lambda w, d, m: pretrain(w, d, "--data.noise", str(d / "none.yaml")),
     r"--data\.noise='.*none\.yaml': no such file"),
    ("noise_recipe_not_yaml", lambda w, d, m: pretrain(w, d, "--data.noise", str(write(d, "n.yaml", "a: [b\n"))),
     r"n\.yaml"),
    # input files
    ("train_file_missing", lambda w, d, m: pretrain(w, d, "--data.train_files", str(d / "absent.jsonl")),
     r"absent\.jsonl"),
    ("tokenizer_missing", lambda w, d, m: pretrain(w, d, "--data.tokenizer_path", str(d / "tok.json")),
     r"tok\.json"),
    ("tokenizer_file_not_a_tokenizer", lambda w, d, m: pretrain(w, d, "--data.tokenizer_path",
     str(write(d, "tok.json", "hello"))), r"tok\.json"),
    ("empty_corpus_file", lambda w, d, m: pretrain(w, d, "--data.train_files", str(write(d, "e.jsonl", b""))),
     r"e\.jsonl: the file is empty"),
    ("corpus_not_utf8", lambda w, d, m: pretrain(w, d, "--data.train_files", str(write(d, "l.txt",
     "café.".encode("latin-1")))), r"l\.txt: not UTF-8 text"),
    ("corpus_rows_without_the_text_column", lambda w, d, m: pretrain(w, d, "--data.train_files",
     str(write(d, "b.jsonl", '{"body": "Hello."}\n'))), r"b\.jsonl: no column 'text'"),
    # checkpoints that are not checkpoints
    ("resume_from_a_truncated_checkpoint", lambda w, d, m: pretrain(w, d, "--ckpt_path",
     str(truncated_checkpoint(w, d))), r"cut\.ckpt: not a readable torch checkpoint"),
    ("resume_from_random_bytes", lambda w, d, m: pretrain(w, d, "--ckpt_path", str(write(d, "r.ckpt",
     os.urandom(4096)))), r"r\.ckpt: not a readable torch checkpoint"),
    ("resume_from_a_text_file", lambda w, d, m: pretrain(w, d, "--ckpt_path", str(write(d, "t.ckpt", "step 5\n"))),
     r"t\.ckpt: not a readable torch checkpoint"),
    ("resume_from_a_missing_file", lambda w, d, m: pretrain(w, d, "--ckpt_path", str(d / "gone.ckpt")),
     r"gone\.ckpt: no such file"),
    ("resume_last_without_a_checkpoint", lambda w, d, m: pretrain(w, d, "--ckpt_path", "last"),
     r"--ckpt_path last: no checkpoint to resume at .*last\.ckpt"),
    ("resume_a_checkpoint_of_another_shape", lambda w, d, m: resume(w, d, "--model.model_config.d_model", "48"),
     r"holds a model of another shape: d_model=32 \(this run: 48\)"),
    # resumes that would move the data position
    ("resume_with_other_max_tokens", lambda w, d, m: resume(w, d, "--data.max_tokens", "512"),
     r"--data\.max_tokens: 512, the checkpoint's 256"),
    ("resume_with_other_max_length", lambda w, d, m: resume(w, d, "--data.max_length", "32"),
     r"--data\.max_length: 32, the checkpoint's 64"),
    ("resume_with_other_seed", lambda w, d, m: resume(w, d, "--data.seed", "4"),
     r"--data\.seed: 4, the checkpoint's 3"),
    ("resume_with_another_noise_recipe", lambda w, d, m: resume(w, d, "--data.noise",
     "configs/noise/token_masking.yaml"), r"--data\.noise: 'Pipeline\(\[TokenMasking"),
    ("resume_with_another_corpus", lambda w, d, m: resume(w, d, "--data.train_files", str(w / "validation.jsonl")),
     r"the training corpus \(--data\.train_files"),
    ("resume_and_overwrite_at_once", lambda w, d, m: resume(w, d, "--overwrite", "true"),
     r"--overwrite true starts a new run, --ckpt_path resumes one: choose one"),
    # run directories
    ("run_dir_holds_a_finished_run", lambda w, d, m: (shutil.copytree(w / "run", d / "run"), pretrain(w, d))[1],
     r"--run_dir .*run holds a run \(checkpoints/last\.ckpt\); resume it with --ckpt_path last, start over with "
     r"--overwrite true"),
    ("run_dir_in_use_by_another_run", lambda w, d, m: pretrain(w, d), r"another run is using it"),
    ("run_dir_is_a_file", lambda w, d, m: pretrain(w, d, "--run_dir", str(write(d, "afile", "x"))),
     r"--run_dir .*afile: not a directory"),
    ("run_dir_under_a_file", lambda w, d, m: pretrain(w, d, "--run_dir", str(write(d, "afile", "x") / "run")),
     r"--run_dir .*afile/run: not a directory \(.*afile is a file\)"),
    ("run_dir_unwritable", lambda w, d, m: pretrain(w, d, "--run_dir", str(unwritable(d / "ro") / "run")),
     r"--run_dir .*ro/run: cannot write there"),
    ("disk_full_at_the_first_checkpoint", lambda w, d, m: (full_disk(m), pretrain(w, d))[1],
     r"last\.ckpt.*: No space left on device"),
    # finetune
    ("finetune_from_a_missing_checkpoint", lambda w, d, m: finetune(w, d, "--model.init_from", str(d / "no.ckpt")),
     r"--model\.init_from: no checkpoint at .*no\.ckpt"),
    ("finetune_from_random_bytes", lambda w, d, m: finetune(w, d, "--model.init_from", str(write(d, "r.ckpt",
     os.urandom(999)))), r"r\.ckpt: not a readable torch checkpoint"),
    ("finetune_compare_scratch_without_a_checkpoint", lambda w, d, m: finetune(w, d, "--model.init_from", "null",
     "--model.model_config", json.dumps(TINY_SHAPE), "--model.tokenizer_path", str(w / "tokenizer.json"),
     "--compare_scratch", "true"), r"--compare_scratch true needs --model\.init_from"),
    ("finetune_source_longer_than_the_positions", lambda w, d, m: finetune(w, d, "--data.max_source_length", "500"),
     r"--data\.max_source_length=500: longer than the model's position table"),
    ("finetune_into_a_finished_fine_tune", lambda w, d, m: finetune(w, d, "--trainer.default_root_dir",
     str(finished_fine_tune(d))), r"--trainer\.default_root_dir .*ft holds a run \(from_pretrained/checkpoints/"
     r"last\.ckpt\); start over with --overwrite true"),
    # summarize, export-hf
    ("summarize_missing_checkpoint", lambda w, d, m: summarize(w, d, "--checkpoint", str(d / "no.ckpt")),
     r"--checkpoint: no such file or directory: .*no\.ckpt"),
    ("summarize_with_a_text_file_as_checkpoint", lambda w, d, m: summarize(w, d, "--checkpoint",
     str(write(d, "t.ckpt", "weights\n"))), r"t\.ckpt: not a readable torch checkpoint"),
    ("summarize_output_under_a_file", lambda w, d, m: summarize(w, d, "--output", str(write(d, "f", "") / "o.txt")),
     r"--output .*f/o\.txt: not a directory"),
    ("summarize_output_is_a_directory", lambda w, d, m: summarize(w, d, "--output", str(d)),
     r"--output .*: is a directory"),
    ("summarize_output_unwritable", lambda w, d, m: summarize(w, d, "--output", str(unwritable(d / "ro") / "o")),
     r"--output .*ro/o: cannot write there"),
    ("summarize_missing_input", lambda w, d, m: summarize(w, d, "--input", str(d / "absent.txt")),
     r"absent\.txt: No such file or directory"),
    ("summarize_input_not_utf8", lambda w, d, m: summarize(w, d, "--input", str(write(d, "l.txt", b"caf\xe9\n"))),
     r"--input .*l\.txt: not UTF-8 text"),
    ("summarize_jsonl_without_the_field", lambda w, d, m: summarize(w, d, "--input",
     str(write(d, "in.jsonl", '{"text": "x"}\n')), "--format", "jsonl"), r"in\.jsonl:1: no field 'document'"),
    ("summarize_unknown_flag", lambda w, d, m: summarize(w, d, "--beams", "4"), r"unrecognized arguments: --beams"),
    ("summarize_zero_max_tokens", lambda w, d, m: summarize(w, d, "--max_tokens", "0"), r"--max_tokens=0: must be"),
    ("export_hf_out_dir_is_a_file", lambda w, d, m: ["export-hf", str(w / "run" / "checkpoints" / "last.ckpt"),
     str(write(d, "out", "x"))], r"out_dir .*out: not a directory"),
    ("export_hf_from_random_bytes", lambda w, d, m: ["export-hf", str(write(d, "r.ckpt", os.urandom(512))),
     str(d / "out")], r"r\.ckpt: not a readable torch checkpoint"),
    ("export_hf_missing_checkpoint", lambda w, d, m: ["export-hf", str(d / "no.ckpt"), str(d / "out")],
     r"no\.ckpt does not exist"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "build", "message"), [pytest.param(*c, id=c[0]) for c in MATRIX])
def test_a_user_mistake_ends_in_one_line_and_exit_status_2(
    world, tmp_path, monkeypatch, training_steps, capfd, case, build, message
):
    try:
        argv = build(world, tmp_path, monkeypatch)
        before = checkpoints(tmp_path)
        with locked(tmp_path / "run") if case == "run_dir_in_use_by_another_run" else contextlib.nullcontext():
            code, err = run(argv, capfd)
    finally:
        for ro in (tmp_path / "ro",):
            if ro.exists():
                writable_again(ro)
    command = argv[0]
    shown = "\n".join(err[-40:])
    assert code == 2, f"exit status {code}:\n{shown}"
    assert len(err) == 1, f"{len(err)} lines on stderr:\n{shown}"
    assert err[0].startswith(f"bart-pretrain {command}: error: "), err[0]
    assert re.search(message, err[0]), err[0]
    if case != "disk_full_at_the_first_checkpoint":
        assert training_steps == [], "the mistake was seen only after training started"
        assert checkpoints(tmp_path) == before, "a checkpoint was written or overwritten"


def test_the_matrix_covers_every_class_of_mistake():
    assert len(MATRIX) >= 40 and len({c[0] for c in MATRIX}) == len(MATRIX)


def test_a_bug_keeps_its_traceback_and_debug_shows_every_traceback(world, tmp_path, monkeypatch, capfd):
    import bart_pretrain.commands.summarize as summarize_command

    def broken(*args, **kwargs):
        raise KeyError("a bug")  # not the user's: bart-pretrain's own

    monkeypatch.setattr(summarize_command, "read_documents", broken)
    code, err = run(summarize(world, tmp_path), capfd)
    assert code == 1 and err[0] == "Traceback (most recent call last):" and err[-1] == "KeyError: 'a bug'"
    monkeypatch.undo()
    monkeypatch.setenv("BART_PRETRAIN_DEBUG", "1")
    code, err = run(summarize(world, tmp_path, "--max_tokens", "0"), capfd)
    assert code == 1 and err[0] == "Traceback (most recent call last):"
    assert err[-1] == "bart_pretrain.errors.UserError: --max_tokens=0: must be >= 1"

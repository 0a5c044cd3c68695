"""Tokenizer: BART's special ids, determinism, save/load, a user's vocab.json + merges.txt, the CLI."""

from __future__ import annotations

import json

import pytest

from bart_pretrain.cli import main as cli_main
from bart_pretrain.commands.train_tokenizer import main
from bart_pretrain.tokenizer import MIN_VOCAB_SIZE, Tokenizer, train_tokenizer

TEXTS = [
    "The quick brown fox jumps over the lazy dog. It was not amused.",
    "Byte-level BPE never needs an unknown token: every byte has a symbol. Émigrés café 東京!",
    "Sentence permutation shuffles sentences; text infilling masks spans of words.",
] * 20


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return train_tokenizer(TEXTS, 400)


def test_trained_tokenizer_has_bart_special_ids_and_mask_last(tok):
    vocab = tok.backend.get_vocab(with_added_tokens=True)
    assert [vocab[t] for t in ("<s>", "<pad>", "</s>", "<unk>")] == [0, 1, 2, 3]
    assert (tok.bos_id, tok.pad_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)
    assert tok.mask_id == vocab["<mask>"] == tok.vocab_size - 1
    assert tok.vocab_size <= 400


def test_encode_adds_no_specials_and_decode_round_trips(tok):
    text = "The lazy fox: café 東京!"
    ids = tok.encode(text)
    assert not set(ids) & {0, 1, 2, 3, tok.mask_id}
    assert tok.decode(ids) == text
    assert tok.decode([0, *ids, 2]) == text
    assert tok.encode_batch([text, "fox"]) == [ids, tok.encode("fox")]


def test_literal_special_strings_in_text_are_not_special_ids(tok):
    ids = tok.encode("a <mask> and </s> in text")
    assert tok.mask_id not in ids and 2 not in ids
    assert tok.decode(ids) == "a <mask> and </s> in text"


def test_training_is_deterministic():
    assert train_tokenizer(TEXTS, 350).backend.to_str() == train_tokenizer(TEXTS, 350).backend.to_str()


def test_vocab_size_too_small_is_rejected():
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(TEXTS, MIN_VOCAB_SIZE - 1)


def test_save_and_load_directory_and_json(tok, tmp_path):
    tok.save(tmp_path / "tok")
    assert {p.name for p in (tmp_path / "tok").iterdir()} == {"tokenizer.json", "vocab.json", "merges.txt"}
    for path in (tmp_path / "tok", tmp_path / "tok" / "tokenizer.json"):
        loaded = Tokenizer.from_file(path)
        assert loaded.fingerprint() == tok.fingerprint()
        assert loaded.encode("the quick fox") == tok.encode("the quick fox")
    tok.save(tmp_path / "single.json")
    assert Tokenizer.from_file(tmp_path / "single.json").mask_id == tok.mask_id


def test_vocab_merges_written_by_save_load_with_same_ids(tok, tmp_path):
    tok.save(tmp_path)
    (tmp_path / "tokenizer.json").unlink()  # force the vocab.json + merges.txt path
    loaded = Tokenizer.from_file(tmp_path)
    assert loaded.mask_id == tok.mask_id and loaded.vocab_size == tok.vocab_size
    for text in TEXTS[:3]:
        assert loaded.encode(text) == tok.encode(text)


def _gpt2_style_files(tmp_path, with_bart_specials: bool):
    # A miniature GPT-2 vocabulary: the 256 byte symbols, two merges, and no BART specials (or BART's layout).
    from tokenizers.pre_tokenizers import ByteLevel

    symbols = sorted(ByteLevel.alphabet())
    tokens = [*symbols, "Ġt", "Ġth", "<|endoftext|>"]
    if with_bart_specials:
        tokens = ["<s>", "<pad>", "</s>", "<unk>", *tokens, "<mask>"]
    (tmp_path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (tmp_path / "merges.txt").write_text("#version: 0.2\nĠ t\nĠt h\n")
    return tokens


def test_gpt2_vocab_without_specials_is_renumbered_with_specials_first_and_mask_last(tmp_path):
    tokens = _gpt2_style_files(tmp_path, with_bart_specials=False)
    tok = Tokenizer.from_file(tmp_path)
    assert tok.vocab_size == len(tokens) + 5 and tok.mask_id == tok.vocab_size - 1
    ids = tok.encode(" the")
    assert [tok.backend.id_to_token(i) for i in ids] == ["Ġth", "e"]
    assert tok.decode(ids) == " the"


def test_bart_vocab_keeps_its_ids_including_mask(tmp_path):
    tokens = _gpt2_style_files(tmp_path, with_bart_specials=True)
    tok = Tokenizer.from_vocab_merges(tmp_path / "vocab.json", tmp_path / "merges.txt")
    assert tok.mask_id == tokens.index("<mask>") and tok.vocab_size == len(tokens)
    assert tok.encode(" th") == [tokens.index("Ġth")]


def test_bad_tokenizer_paths_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="neither tokenizer.json"):
        Tokenizer.from_file(tmp_path)
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ValueError, match="x.json"):
        Tokenizer.from_file(tmp_path / "x.json")
    (tmp_path / "vocab.json").write_text("{}")
    (tmp_path / "merges.txt").write_text("a b c\n")
    with pytest.raises(ValueError, match="merges.txt:1"):
        Tokenizer.from_file(tmp_path)


def test_noise_context_carries_special_ids(tok):
    ctx = tok.noise_context(128)
    assert (ctx.bos_id, ctx.pad_id, ctx.eos_id, ctx.unk_id, ctx.mask_id) == (0, 1, 2, 3, tok.mask_id)
    assert ctx.vocab_size == tok.vocab_size and ctx.max_length == 128


def test_train_tokenizer_cli(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(TEXTS))
    assert main(["--files", str(corpus), "--vocab_size", "300", "--out", str(tmp_path / "tok")]) == 0
    assert Tokenizer.from_file(tmp_path / "tok").vocab_size <= 300
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert cli_main(["train-tokenizer", "--files", str(empty), "--out", str(tmp_path / "tok2")]) == 2
    assert "empty.txt: the file is empty" in capsys.readouterr().err
    assert not (tmp_path / "tok2").exists()

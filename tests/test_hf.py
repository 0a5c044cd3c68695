"""Interop with transformers: equal logits and gradients on the same weights, lossless directory round trip."""

import json

import pytest
import torch

from bart_pretrain.hf import load_hf, save_hf, to_transformers
from bart_pretrain.model import Bart, BartConfig

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

CONFIGS = [
    dict(d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=4, decoder_attention_heads=2),
    dict(
        d_model=24,
        encoder_layers=1,
        decoder_layers=3,
        encoder_attention_heads=3,
        decoder_attention_heads=6,
        scale_embedding=True,
        activation_function="relu",
        encoder_ffn_dim=20,
    ),
]


def random_model(seed: int, **kw) -> Bart:
    torch.manual_seed(seed)
    base = dict(vocab_size=77, encoder_ffn_dim=40, decoder_ffn_dim=36, max_position_embeddings=32, init_std=0.1)
    m = Bart(BartConfig(**(base | kw)))
    torch.nn.init.normal_(m.final_logits_bias)  # nonzero, so the bias mapping is checked
    return m


def padded_batch(seed: int):
    g = torch.Generator().manual_seed(seed)
    ids, dec = torch.randint(3, 77, (3, 11), generator=g), torch.randint(3, 77, (3, 9), generator=g)
    am, dm = torch.ones_like(ids), torch.ones_like(dec)
    am[1, 7:], am[2, 4:], dm[0, 5:], dm[2, 8:] = 0, 0, 0, 0
    return ids.masked_fill(am == 0, 1), am, dec.masked_fill(dm == 0, 1), dm


@pytest.mark.parametrize("seed, kw", [(0, CONFIGS[0]), (1, CONFIGS[1])])
def test_logits_and_gradients_equal_transformers_with_padding_on_both_sides(seed, kw):
    ours = random_model(seed, dropout=0.0, **kw).train()
    theirs = to_transformers(ours, "sdpa").train()
    ids, am, dec, dm = padded_batch(seed)
    a = ours(ids, am, dec, dm)
    b = theirs(input_ids=ids, attention_mask=am, decoder_input_ids=dec, decoder_attention_mask=dm).logits
    real = dm.bool()
    torch.testing.assert_close(a[real], b[real])
    a[real].square().mean().backward()
    b[real].square().mean().backward()
    theirs_grad = theirs.model.encoder.layers[0].self_attn
    ours_qkv = ours.encoder.layers[0].self_attn.qkv_proj.weight.grad
    torch.testing.assert_close(ours_qkv, torch.cat([getattr(theirs_grad, f"{p}_proj").weight.grad for p in "qkv"]))
    torch.testing.assert_close(ours.shared.weight.grad, theirs.model.shared.weight.grad)


def test_eager_transformers_agrees_too():
    ours = random_model(2, **CONFIGS[0]).eval()
    theirs = to_transformers(ours, "eager").eval()
    ids, am, dec, dm = padded_batch(2)
    with torch.no_grad():
        a = ours(ids, am, dec, dm)
        b = theirs(input_ids=ids, attention_mask=am, decoder_input_ids=dec, decoder_attention_mask=dm).logits
    torch.testing.assert_close(a[dm.bool()], b[dm.bool()])


def test_save_hf_loads_in_transformers_and_round_trips_losslessly(tmp_path):
    ours = random_model(3, **CONFIGS[1]).eval()
    save_hf(ours, None, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "bart"
    theirs = transformers.BartForConditionalGeneration.from_pretrained(tmp_path).eval()
    ids, am, dec, dm = padded_batch(3)
    with torch.no_grad():
        b = theirs(input_ids=ids, attention_mask=am, decoder_input_ids=dec, decoder_attention_mask=dm).logits
        torch.testing.assert_close(ours(ids, am, dec, dm)[dm.bool()], b[dm.bool()])
    back = load_hf(tmp_path)
    assert back.config == ours.config
    for (k, v), (k2, v2) in zip(ours.state_dict().items(), back.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2), k
    theirs.save_pretrained(tmp_path / "theirs")  # and a directory written by transformers itself
    again = load_hf(tmp_path / "theirs")
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in ours.state_dict().items())


def test_load_hf_rejects_a_directory_that_is_not_bart(tmp_path):
    with pytest.raises(ValueError, match="no config.json"):
        load_hf(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5"}))
    with pytest.raises(ValueError, match="model_type='t5', expected 'bart'"):
        load_hf(tmp_path)


def test_save_hf_writes_tokenizer_files_when_given_a_tokenizer(tmp_path):
    class FakeTokenizer:
        def save(self, path):
            (path / "tokenizer.json").write_text("{}")

    save_hf(random_model(4, **CONFIGS[0]), FakeTokenizer(), tmp_path)
    assert (tmp_path / "tokenizer.json").is_file()
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["pad_token"] == "<pad>"


def test_export_hf_refuses_a_model_without_tokenizer_in_one_line_and_takes_one_by_flag(tmp_path, capsys):
    from bart_pretrain.cli import main as cli_main
    from bart_pretrain.commands.export_hf import main
    from bart_pretrain.tokenizer import train_tokenizer

    tok = train_tokenizer(["the cat sat on the mat", "a dog ate the cat food"] * 20, vocab_size=300)
    tok.save(tmp_path / "tok.json")
    ours = random_model(5, **(CONFIGS[0] | {"vocab_size": tok.vocab_size})).eval()
    save_hf(ours, None, tmp_path / "src")  # weights only
    assert cli_main(["export-hf", str(tmp_path / "src"), str(tmp_path / "out")]) == 2  # one line, exit 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no tokenizer.json" in err and "pass --tokenizer" in err
    assert not (tmp_path / "out").exists()
    assert main([str(tmp_path / "src"), str(tmp_path / "out"), "--tokenizer", str(tmp_path / "tok.json")]) == 0
    assert "wrote" in capsys.readouterr().out
    theirs = transformers.BartForConditionalGeneration.from_pretrained(tmp_path / "out")
    assert torch.equal(theirs.model.shared.weight, ours.shared.weight)
    encoded = transformers.AutoTokenizer.from_pretrained(tmp_path / "out")("the cat sat")["input_ids"]
    assert encoded == [0, *tok.encode("the cat sat"), 2] and len(encoded) > 3
    assert cli_main(["export-hf", str(tmp_path / "missing.ckpt"), str(tmp_path / "out2")]) == 2


def test_exported_tokenizer_loads_in_transformers_and_wraps_text_like_bart(tmp_path):
    from bart_pretrain.tokenizer import train_tokenizer

    tok = train_tokenizer(["the cat sat on the mat", "a dog ate the cat food"] * 20, vocab_size=300)
    model = random_model(6, **(CONFIGS[0] | {"vocab_size": tok.vocab_size}))
    save_hf(model, tok, tmp_path)
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert theirs("the cat sat")["input_ids"] == [0, *tok.encode("the cat sat"), 2]
    assert theirs.pad_token_id == 1 and theirs.eos_token_id == 2

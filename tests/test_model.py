"""Our BART network: config validation, shapes, causality, padding invariance, KV-cache decoding, a tiny overfit."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from bart_pretrain.data.batching import shift_tokens_right
from bart_pretrain.model import Bart, BartConfig
from bart_pretrain.training.losses import linear_cross_entropy

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "model"


def tiny(**kw) -> BartConfig:
    base = dict(
        vocab_size=64,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=2,
        encoder_ffn_dim=48,
        decoder_ffn_dim=40,
        max_position_embeddings=40,
    )
    return BartConfig(**(base | kw))


def model(seed=0, **kw) -> Bart:
    torch.manual_seed(seed)
    return Bart(tiny(**kw)).eval()


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(d_model=30), "d_model=30 must be divisible by encoder_attention_heads=4"),
        (dict(decoder_attention_heads=3), "divisible by decoder_attention_heads=3"),
        (dict(dropout=1.5), "dropout must be in"),
        (dict(vocab_size=0), "vocab_size must be a positive integer"),
        (dict(pad_token_id=64), "pad_token_id=64 must be a token id"),
        (dict(activation_function="swish"), "activation_function must be"),
    ],
)
def test_config_rejects_bad_values_with_the_field_name(bad, match):
    with pytest.raises(ValueError, match=match):
        tiny(**bad)


def test_config_from_dict_rejects_unknown_fields_and_round_trips():
    c = tiny()
    assert BartConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown BartConfig fields \\['d_modle'\\]"):
        BartConfig.from_dict(c.to_dict() | {"d_modle": 3})
    assert BartConfig.from_dict(c.to_dict() | {"model_type": "bart"}, strict=False) == c


@pytest.mark.parametrize("name", ["tiny", "base", "large"])
def test_shipped_model_yaml_builds_a_config(name):
    fields = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    assert "vocab_size" not in fields  # linked from the tokenizer
    c = BartConfig(vocab_size=8192, **fields)
    expected = {"tiny": (128, 2, 512), "base": (768, 6, 3072), "large": (1024, 12, 4096)}[name]
    assert (c.d_model, c.encoder_layers, c.encoder_ffn_dim) == expected


def test_forward_shapes_and_logits_mask_selects_rows():
    m = model()
    ids, dec = torch.randint(4, 64, (3, 7)), torch.randint(4, 64, (3, 5))
    logits = m(ids, torch.ones_like(ids), dec)
    assert logits.shape == (3, 5, 64)
    sel = torch.rand(3, 5) > 0.5
    torch.testing.assert_close(m(ids, torch.ones_like(ids), dec, logits_mask=sel), logits[sel])


def test_init_zeroes_padding_row_and_logits_bias():
    m = model()
    assert m.shared.weight[1].abs().sum() == 0 and m.final_logits_bias.abs().sum() == 0
    assert 0.01 < m.decoder.layers[0].fc1.weight.std() < 0.03


def test_decoder_is_causal():
    m = model()
    ids, dec = torch.randint(4, 64, (2, 6)), torch.randint(4, 64, (2, 8))
    changed = dec.clone()
    changed[:, 5:] = torch.randint(4, 64, (2, 3))
    a, b = m(ids, None, dec), m(ids, None, changed)
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_padding_on_both_sides_does_not_change_real_logits():
    m = model()
    ids, dec = torch.randint(4, 64, (1, 5)), torch.randint(4, 64, (1, 4))
    alone = m(ids, torch.ones_like(ids), dec)
    pad_ids = torch.cat([ids, torch.full((1, 3), 1)], 1)
    pad_dec = torch.cat([dec, torch.full((1, 2), 1)], 1)
    other = torch.randint(4, 64, (1, 8)), torch.randint(4, 64, (1, 6))
    batch_ids, batch_dec = torch.cat([pad_ids, other[0]]), torch.cat([pad_dec, other[1]])
    am, dm = batch_ids.ne(1).long(), batch_dec.ne(1).long()
    batched = m(batch_ids, am, batch_dec, dm)
    torch.testing.assert_close(batched[:1, :4], alone)


def test_left_padded_decoder_uses_an_explicit_mask_without_nans():
    m = model().train()
    ids, dec = torch.randint(4, 64, (2, 6)), torch.randint(4, 64, (2, 5))
    dm = torch.ones_like(dec)
    dm[0, :2] = 0
    logits = m(ids, None, dec.masked_fill(dm == 0, 1), dm)
    logits.sum().backward()
    assert torch.isfinite(logits).all()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


@pytest.mark.parametrize("beams", [1, 3])
def test_cached_step_by_step_decoding_equals_full_forward(beams):
    m = model(1)
    ids = torch.randint(4, 64, (2, 7))
    am = torch.ones_like(ids)
    am[1, 4:] = 0
    dec = torch.randint(4, 64, (2 * beams, 9))
    memory, mask = m.encode(ids, am)
    full = m.lm_head(m.decode(dec, memory.repeat_interleave(beams, 0), mask.repeat_interleave(beams, 0)))
    cache = m.new_cache(memory, mask, 2 * beams, 9)
    steps = [m.decode_step(dec[:, :3], cache)]  # a multi-token first step (causal prefill)
    steps += [m.decode_step(dec[:, t : t + 1], cache) for t in range(3, 5)]
    steps += [m.decode_step(dec[:, 5:7], cache)]  # a multi-token step after cached ones (explicit mask)
    steps += [m.decode_step(dec[:, t : t + 1], cache) for t in range(7, 9)]
    torch.testing.assert_close(torch.stack(steps, 1), full[:, [2, 3, 4, 6, 7, 8]], atol=1e-5, rtol=1e-5)
    assert cache.cross[0][0].size(0) == 2  # cross-attention K/V: one copy per source, shared by its beams


def test_cache_reorder_moves_rows_of_the_self_attention_cache():
    m = model()
    memory, mask = m.encode(torch.randint(4, 64, (1, 5)))
    cache = m.new_cache(memory, mask, 3, 6)
    m.decode_step(torch.randint(4, 64, (3, 2)), cache)
    before = cache.kv[:, :, :, :, :2].clone()
    cache.reorder(torch.tensor([2, 2, 0]))
    torch.testing.assert_close(cache.kv[:, :, :, :, :2], before[:, :, [2, 2, 0]])


def test_too_long_input_is_a_clear_error():
    with pytest.raises(ValueError, match="exceeds max_position_embeddings=40"):
        model()(torch.randint(4, 64, (1, 41)), None, torch.randint(4, 64, (1, 3)))


def test_shift_tokens_right():
    labels = torch.tensor([[0, 5, 6, 2], [0, 7, 2, -100]])
    assert shift_tokens_right(labels, 1, 2).tolist() == [[2, 0, 5, 6], [2, 0, 7, 2]]


def test_tiny_model_overfits_one_batch():
    torch.manual_seed(0)
    m = Bart(tiny(dropout=0.0)).train()
    labels = torch.randint(4, 64, (4, 10))
    labels[2, 7:] = 1
    ids, dec = torch.randint(4, 64, (4, 12)), shift_tokens_right(labels, 1, 2)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    mask = labels.ne(1)
    losses = []
    for _ in range(60):
        loss = F.cross_entropy(m(ids, torch.ones_like(ids), dec, dec.ne(1).long(), logits_mask=mask), labels[mask])
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_linear_cross_entropy_equals_cross_entropy_on_logits(label_smoothing):
    m = model(dropout=0.0).train()
    ids, dec = torch.randint(4, 64, (3, 6)), torch.randint(4, 64, (3, 5))
    labels = torch.randint(4, 64, (3, 5))
    mask = torch.rand(3, 5) > 0.3
    logits = m(ids, None, dec, logits_mask=mask)
    ref = F.cross_entropy(logits, labels[mask], reduction="sum", label_smoothing=label_smoothing)
    (2 * ref).backward()
    expected = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.zero_grad()
    h = m.hidden_states(ids, None, dec, mask=mask)
    loss, correct = linear_cross_entropy(
        h, m.shared.weight, m.final_logits_bias[0], labels[mask], label_smoothing, 64 * 3
    )
    (2 * loss).backward()
    torch.testing.assert_close(loss, ref)
    assert correct == (logits.argmax(-1) == labels[mask]).sum()
    for n, p in m.named_parameters():
        torch.testing.assert_close(p.grad, expected[n], msg=n)


def test_bf16_autocast_training_step_and_cached_decoding_run():
    m = model(dropout=0.0).train()
    ids, dec, labels = torch.randint(4, 64, (2, 6)), torch.randint(4, 64, (2, 5)), torch.randint(4, 64, (2, 5))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = m.hidden_states(ids, None, dec)
        loss, _ = linear_cross_entropy(h.flatten(0, 1), m.shared.weight, m.final_logits_bias[0], labels.flatten())
        loss.backward()
        out = m.eval().generate(ids, None, num_beams=2, max_length=6)
    assert torch.isfinite(loss) and m.shared.weight.grad.dtype == torch.float32
    assert out.shape[0] == 2 and (out[:, 0] == 2).all()

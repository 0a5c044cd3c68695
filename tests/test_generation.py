"""Greedy and beam search: token-for-token equal to transformers' `generate`, batched with padding."""

import pytest
import torch

from bart_pretrain.generation import banned_ngram_mask
from bart_pretrain.model import Bart, BartConfig

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()
from bart_pretrain.hf import to_transformers  # noqa: E402

SETTINGS = [
    dict(num_beams=1),
    dict(num_beams=1, min_length=6, no_repeat_ngram_size=2),
    dict(num_beams=4),
    dict(num_beams=4, length_penalty=2.0, min_length=5, no_repeat_ngram_size=2),
    dict(num_beams=3, length_penalty=0.5, early_stopping=False),
    dict(num_beams=2, length_penalty=-1.0, no_repeat_ngram_size=3),
]


def peaked_model(seed: int) -> Bart:
    """A random model with large weights (clear winners, so float rounding never flips a choice) and </s> likely."""
    torch.manual_seed(seed)
    c = BartConfig(
        vocab_size=50,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=40,
        decoder_ffn_dim=48,
        max_position_embeddings=40,
        init_std=0.3,
    )
    m = Bart(c).eval()
    with torch.no_grad():
        m.final_logits_bias[0, 2] = 1.5 + 0.5 * seed
    return m


def sources(seed: int):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, 50, (4, 9), generator=g)
    am = torch.ones_like(ids)
    am[1, 6:], am[3, 3:] = 0, 0
    return ids.masked_fill(am == 0, 1), am


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_generate_equals_transformers_token_for_token(seed):
    ours = peaked_model(seed)
    theirs = to_transformers(ours).eval()
    ids, am = sources(seed)
    ended_early = 0
    for kw in SETTINGS:
        kw = {"max_length": 16, "no_repeat_ngram_size": 0} | kw  # transformers: 0 unless given
        with torch.no_grad():
            a = ours.generate(ids, am, **kw)
            b = theirs.generate(
                input_ids=ids,
                attention_mask=am,
                do_sample=False,
                decoder_start_token_id=2,
                forced_bos_token_id=0,
                forced_eos_token_id=2,
                **({"early_stopping": True} | kw),
            )
        assert torch.equal(a, b), (kw, a, b)
        ended_early += int((a[:, -1] == 1).sum()) + int(a.size(1) < 16)
    assert ended_early > 0  # some outputs end before max_length (</s> then padding)


def test_generate_follows_bart_conventions_and_length_limits():
    m = peaked_model(5)
    ids, am = sources(5)
    for beams in (1, 3):
        out = m.generate(ids, am, num_beams=beams, max_length=12, min_length=12)
        assert out.shape == (4, 12)
        assert (out[:, 0] == 2).all() and (out[:, 1] == 0).all() and (out[:, -1] == 2).all()
        assert not (out[:, 2:-1] == 2).any()  # no </s> before min_length


def test_generate_rejects_bad_settings():
    m = peaked_model(0)
    ids, am = sources(0)
    with pytest.raises(ValueError, match="num_beams must be >= 1"):
        m.generate(ids, am, num_beams=0)
    with pytest.raises(ValueError, match="max_length=41 > max_position_embeddings=40"):
        m.generate(ids, am, max_length=41)


def test_banned_ngram_mask_bans_only_completions_of_seen_ngrams():
    seqs = torch.tensor([[5, 6, 7, 5, 6], [1, 2, 3, 4, 5]])
    banned = banned_ngram_mask(seqs, 3, 10)
    assert banned[0].nonzero().flatten().tolist() == [7]
    assert not banned[1].any()


def test_generation_defaults_are_written_once_in_generation_config():
    import dataclasses
    import inspect

    from bart_pretrain import evaluate, generation
    from bart_pretrain.commands import summarize
    from bart_pretrain.generation import GenerationConfig

    assert evaluate.GenerationConfig is GenerationConfig  # evaluation, fine-tuning and summarize share it
    for fn in (generation.generate, Bart.generate):  # no second copy of a default in a signature
        assert not set(inspect.signature(fn).parameters) & set(GenerationConfig.fields()), fn
    flags = summarize.parser().parse_args(["--checkpoint", "x"])
    assert all(flags.generation[name] is None for name in GenerationConfig.fields())  # None: the recorded or default
    m = peaked_model(4)
    ids, am = sources(4)
    defaults = dataclasses.asdict(GenerationConfig())
    assert defaults["no_repeat_ngram_size"] == 3  # BART's summarization setting, everywhere
    with torch.no_grad():
        implicit = m.generate(ids, am, max_length=16)
        assert torch.equal(implicit, m.generate(ids, am, **(defaults | {"max_length": 16})))
        ban_off = m.generate(ids, am, GenerationConfig(max_length=16, no_repeat_ngram_size=0))
        assert torch.equal(ban_off, m.generate(ids, am, max_length=16, no_repeat_ngram_size=0))
    with pytest.raises(TypeError, match=r"unknown generation setting\(s\) \['beams'\]; the settings are: num_beams"):
        m.generate(ids, am, beams=2)


# --- the one batched generation loop (bart_pretrain.evaluate.generate_ids) ------------------------------------------


class _Recorder(torch.nn.Module):
    """Stands in for a model: records each batch (size, padded length, max_length, training mode) and echoes the first
    two source tokens, so every output can be traced to its source."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.config = BartConfig(vocab_size=100, max_position_embeddings=40)
        self.calls: list[tuple[int, int, int, bool]] = []

    def generate(self, ids, mask, generation):
        self.calls.append((ids.size(0), ids.size(1), generation.max_length, self.training))
        assert bool(((ids != self.config.pad_token_id) == mask.bool()).all())
        return ids[:, :2]


SOURCES = [[10 + i] * n for i, n in enumerate([5, 9, 3, 9, 7, 2])]


def test_generation_loop_batches_longest_first_within_a_token_budget_and_keeps_the_order():
    from bart_pretrain.evaluate import generate_ids
    from bart_pretrain.generation import GenerationConfig

    model = _Recorder().train()
    out = generate_ids(model, SOURCES, GenerationConfig(num_beams=2), beam_batch_tokens=40)
    # budget 40 = batch size x longest x 2 beams: [9, 9] (36), [7, 5] (28), [3, 2] (12)
    assert model.calls == [(2, 9, 64, False), (2, 7, 64, False), (2, 3, 64, False)]
    assert out == [[10 + i] * 2 for i in range(6)] and model.training  # sources' order; the mode given back


def test_generation_loop_shortest_first_in_fixed_batches_generates_past_each_batchs_longest_source():
    from bart_pretrain.evaluate import generate_ids
    from bart_pretrain.generation import GenerationConfig

    model = _Recorder().eval()
    generation = GenerationConfig(num_beams=4)
    out = generate_ids(model, SOURCES, generation, batch_size=4, longest_first=False, extra_tokens=16)
    assert model.calls == [(4, 7, 23, False), (2, 9, 25, False)]  # [2, 3, 5, 7] then [9, 9]; 16 past the longest
    assert out == [[10 + i] * 2 for i in range(6)]
    model.calls.clear()
    generate_ids(model, SOURCES, GenerationConfig(), batch_size=6, extra_tokens=35)
    assert model.calls == [(6, 9, 40, False)]  # capped at the model's positions

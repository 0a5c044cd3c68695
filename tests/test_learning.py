"""The model must learn from its source: provenance of corrupted tokens, the copy baseline, the from-scratch init,
and the identity-copy check through the real `pretrain` path (a tiny model that ignores its encoder fails it)."""

import json
import random

import numpy as np
import pytest
import torch
from pretrain_world import RECIPES, WORDS, make_world

import noising
from bart_pretrain.commands.pretrain import main
from bart_pretrain.evaluate import generate_ids
from bart_pretrain.generation import GenerationConfig
from bart_pretrain.metrics import score
from bart_pretrain.model import Bart, BartConfig
from bart_pretrain.training.initialization import InitConfig, initialize, sinusoids
from bart_pretrain.training.reconstruction import (
    ReconstructionProbe,
    repeats_itself,
    run_on_shares,
)
from noising.provenance import corrupted_positions, trace
from noising.schedule import NoiseSchedule, ScheduledPipeline

CTX = noising.NoiseContext(vocab_size=50, mask_id=49, max_length=32)


def _doc(n: int = 8) -> noising.Document:
    tokens = np.array([0, *range(10, 10 + n), 2])
    return noising.Document(tokens, np.ones(len(tokens), dtype=bool), np.array([1, 1 + n // 2]))


def test_corrupted_positions_are_exactly_the_tokens_missing_from_the_source():
    doc = _doc()
    noise = noising.TokenMasking(ratio=0.5)
    out = noise(doc, noising.sample_rng(5, 0, 1), CTX).tokens
    masked = np.flatnonzero(out == CTX.mask_id)  # token masking keeps positions: output j replaced input j
    expected = np.zeros(len(doc), dtype=bool)
    expected[masked] = True
    np.testing.assert_array_equal(corrupted_positions(noise, doc, 5, 0, 1, CTX), expected)
    assert expected.sum() == 4


def test_moved_tokens_are_kept_and_deleted_ones_are_corrupted():
    doc = _doc()
    permuted = corrupted_positions(noising.SentencePermutation(ratio=1.0), doc, 0, 0, 0, CTX)
    assert not permuted.any()  # every token is still in the source, only elsewhere
    deletion = noising.TokenDeletion(ratio=0.25)
    out = deletion(doc, noising.sample_rng(3, 0, 0), CTX).tokens
    marks = corrupted_positions(deletion, doc, 3, 0, 0, CTX)
    assert set(doc.tokens[marks]) == set(doc.tokens) - set(out) and marks.sum() == 2


def test_trace_refuses_a_noise_that_reads_token_values():
    def drop_large(doc, rng, ctx):  # depends on token values, so the stand-in rerun takes another path
        keep = (doc.tokens < 15) | (np.arange(len(doc)) == len(doc) - 1)
        return noising.Document(doc.tokens[keep], doc.word_starts[keep], np.zeros(0, dtype=np.int64))

    assert trace(drop_large, _doc(), 0, 0, 0, CTX) is None
    assert corrupted_positions(drop_large, _doc(), 0, 0, 0, CTX) is None


def test_chrf_and_bleu_are_100_for_identical_text_and_lower_for_a_gap():
    refs = ["the kernel module loads the driver", "a shell for the system"]
    assert score(("chrf", "bleu"), refs, refs) == pytest.approx({"chrf": 100.0, "bleu": 100.0})
    gap = score(("chrf", "bleu"), ["the kernel loads the driver", "a shell for the system"], refs)
    assert 50 < gap["chrf"] < 100 and gap["bleu"] < 100


class _Tok:
    def decode(self, ids, skip_special_tokens=True):
        return " ".join(f"w{i}" if i >= 10 else f"<{i}>" for i in ids if not (skip_special_tokens and i < 10))


def test_copy_baseline_is_the_source_with_masks_dropped():
    source = np.array([0, 11, 12, 9, 14, 2])  # 9 stands for <mask> here: < 10 are special for _Tok
    probe = ReconstructionProbe([source], ["w11 w12 w13 w14"], _Tok().decode, num_beams=1)
    assert probe.copy_texts == ["w11 w12 w14"]
    assert probe.baseline == score(("chrf", "bleu"), ["w11 w12 w14"], ["w11 w12 w13 w14"])


def test_run_on_counts_repeats_beyond_the_original_and_outputs_over_ten_percent_longer():
    original = "the disk is full. it stops."
    assert not repeats_itself(original, original)
    assert repeats_itself("the disk is full. it stops. the disk is full.", original)  # a sentence again
    assert repeats_itself("a b c d e f x a b c d e f", "a b c d e f x")  # a 6-word sequence again
    assert not repeats_itself("a b c d e x a b c d e", "a b c d e x")  # 5 words are allowed
    assert not repeats_itself("it runs. it runs.", "it runs. it runs.")  # no more often than the original
    shares = run_on_shares(["a b c d e f x a b c d e f", "short", "x" * 11 + "y"], ["a b c d e f x", "short", "x" * 10])
    assert shares == {"repeat_share": pytest.approx(1 / 3), "long_share": pytest.approx(2 / 3)}


def test_reconstruction_ngram_ban_holds_and_the_unbanned_decoding_is_scored_on_request():
    torch.manual_seed(0)
    sizes = dict(encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2)
    config = BartConfig(vocab_size=14, d_model=16, encoder_ffn_dim=32, decoder_ffn_dim=32, **sizes)
    model = Bart(config)  # random weights over 14 tokens: its outputs loop on one token unless banned
    sources = [np.array([0, 11, 12, 13, 12, 11, 2]), np.array([0, 13, 11, 2])]

    def bigram_twice(rows: list[list[int]]) -> bool:
        return any(len(set(zip(r, r[1:], strict=False))) < len(r) - 1 for r in rows)

    def reconstruct(ban: int) -> list[list[int]]:
        generation = GenerationConfig(num_beams=2, no_repeat_ngram_size=ban)
        return generate_ids(model, sources, generation, batch_size=16, longest_first=False, extra_tokens=16)

    assert bigram_twice(reconstruct(0))
    assert not bigram_twice(reconstruct(2))
    probe = ReconstructionProbe(sources, ["w11 w12 w13 w12 w11", "w13 w11"], _Tok().decode, 2, no_repeat_ngram_size=2)
    banned, plain = probe.evaluate(model), probe.evaluate(model, no_repeat_ngram_size=0)
    assert banned["no_repeat_ngram_size"] == 2 and plain["no_repeat_ngram_size"] == 0
    assert banned["examples"] != plain["examples"]


def test_sinusoidal_init_shares_position_tables_and_cross_attention_starts_with_q_equal_k():
    sizes = dict(encoder_layers=1, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2)
    sizes |= dict(encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=20)
    config = BartConfig(vocab_size=40, d_model=16, **sizes)
    torch.manual_seed(0)
    model = initialize(Bart(config), InitConfig(positions="sinusoidal", cross_attention="query_equals_key"))
    enc, dec = model.encoder.embed_positions.weight, model.decoder.embed_positions.weight
    torch.testing.assert_close(enc[2:], dec[2:])
    assert abs(enc[2:].std().item() - config.init_std) < 1e-6
    table = enc[2:].double()
    expected = sinusoids(20, 16)
    torch.testing.assert_close(table / table.std(), expected / expected.std())
    for layer in model.decoder.layers:
        w = layer.encoder_attn.qkv_proj.weight
        torch.testing.assert_close(w[:16], w[16:32])
        assert not torch.equal(layer.self_attn.qkv_proj.weight[:16], layer.self_attn.qkv_proj.weight[16:32])
    defaults = initialize(Bart(config), InitConfig())
    assert not torch.equal(defaults.encoder.embed_positions.weight, defaults.decoder.embed_positions.weight)


def test_init_config_rejects_unknown_schemes_naming_the_field():
    with pytest.raises(ValueError, match="init.positions='rope'"):
        InitConfig(positions="rope")


def _copy_world(tmp_path):
    """Random word sequences (nothing to guess without the source), identity recipe, a d_model=64 BART."""
    rng = random.Random(1)
    config = make_world(
        tmp_path,
        n_train=400,
        n_val=24,
        data__noise=str(RECIPES / "identity.yaml"),
        data__max_tokens=512,
        trainer__max_steps=340,
        trainer__val_check_interval=340,
        model__optim={"lr": 5e-3, "warmup_steps": 40},
        model__init={"positions": "sinusoidal", "cross_attention": "query_equals_key"},
        model__reconstruction_documents=8,
    )
    for split, n in (("train", 400), ("validation", 24)):
        with open(tmp_path / f"{split}.jsonl", "w") as f:
            for i in range(n):
                text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 20))) + "."
                f.write(json.dumps({"id": f"{split}-{i}", "text": text}) + "\n")
    sizes = dict(encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4)
    sizes |= dict(encoder_ffn_dim=128, decoder_ffn_dim=128, max_position_embeddings=128)
    model = dict(d_model=64, dropout=0.0, **sizes)
    (tmp_path / "model.yaml").write_text(json.dumps(model))
    return config


@pytest.mark.slow
def test_identity_recipe_is_learned_through_the_pretrain_command(tmp_path):
    """The copy check: with source = target, validation token accuracy must reach 95% within the step budget.
    Measured: 99.8% with this init (1 or 2 threads); 21.4% with transformers' default init (same steps), whose decoder
    ignores the encoder and only learns the word frequencies."""
    config = _copy_world(tmp_path)
    assert main(["-c", str(config), "--checkpoint_every", "1000"]) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["val_last"]["token_acc"] >= 0.95, report["val_last"]
    recon = report["reconstruction"]
    assert recon["copy_baseline"]["chrf"] == pytest.approx(100.0)  # nothing corrupted: copying is perfect
    assert recon["model"]["chrf"] >= 90.0, recon


def test_noise_schedule_ramps_linearly_from_start_to_full_strength():
    schedule = NoiseSchedule(steps=100, start=0.2)
    assert [schedule.strength(t) for t in (0, 50, 100, 1000)] == pytest.approx([0.2, 0.6, 1.0, 1.0])
    assert NoiseSchedule().strength(0) == 1.0  # steps 0: no schedule


def test_ratio_schedule_scales_every_noise_amount_and_reaches_the_recipe():
    pipe = noising.Pipeline([noising.TokenMasking(ratio=0.4), noising.DocumentRotation(probability=1.0)])
    scheduled = ScheduledPipeline(pipe, NoiseSchedule(steps=10, start=0.0))
    half = scheduled.at(0.5)
    assert half.noises[0].ratio == pytest.approx(0.2) and half.noises[1].probability == pytest.approx(0.5)
    doc = _doc()
    assert scheduled(doc, noising.sample_rng(0, 0, 0), CTX, step=0) is not None
    np.testing.assert_array_equal(  # at step 0 the strength is 0: the identity
        scheduled(doc, noising.sample_rng(0, 0, 0), CTX, step=0).tokens, doc.tokens
    )
    full = scheduled(doc, noising.sample_rng(0, 0, 7), CTX, step=10).tokens
    np.testing.assert_array_equal(full, pipe(doc, noising.sample_rng(0, 0, 7), CTX).tokens)


def test_mix_schedule_corrupts_the_scheduled_share_of_samples():
    pipe = noising.Pipeline([noising.TokenMasking(ratio=0.5)])
    scheduled = ScheduledPipeline(pipe, NoiseSchedule(steps=100, start=0.0, mode="mix"))
    doc = _doc()
    changed = [
        not np.array_equal(scheduled(doc, noising.sample_rng(1, 0, i), CTX, step=30).tokens, doc.tokens)
        for i in range(2000)
    ]
    assert 0.27 < np.mean(changed) < 0.33  # strength 0.3; binomial sd ~0.01


def test_ratio_schedule_refuses_a_noise_it_cannot_scale_naming_it():
    class Shuffle(noising.Noise):
        def __call__(self, doc, rng, ctx):
            return doc

    with pytest.raises(ValueError, match=r"noises\[0\] \(Shuffle\) has no field ratio or probability.*mode 'mix'"):
        ScheduledPipeline(noising.Pipeline([Shuffle()]), NoiseSchedule(steps=5))
    with pytest.raises(ValueError, match="NoiseSchedule.start=1.5"):
        NoiseSchedule(steps=5, start=1.5)


def test_scheduled_pretraining_starts_clean_and_validates_on_the_full_recipe(tmp_path):
    from bart_pretrain.commands.pretrain import make_cli

    config = make_world(tmp_path, data__noise_schedule={"steps": 1000, "start": 0.0})
    cli = make_cli(["-c", str(config)])
    cli.datamodule.prepare_data()
    cli.datamodule.setup("fit")
    cli.datamodule.trainer = cli.trainer
    first = next(iter(cli.datamodule.train_dataloader()))
    torch.testing.assert_close(first["input_ids"], first["labels"])  # strength 0 at step 0: source = target
    val = next(iter(cli.datamodule.val_dataloader()))
    assert (val["input_ids"] == cli.datamodule.tokenizer.mask_id).any()  # validation: the full recipe

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from bart_pretrain.data.batching import (
    BatchKey,
    KeyedBatches,
    TokenBudgetBatchSampler,
    pad,
    padding_stats,
    plan_batches,
)


def _lengths(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(4.0, 0.8, size=n).astype(np.int64), 3, 256)


def test_plan_covers_every_sample_once_within_the_token_budget():
    lengths = _lengths()
    plan = plan_batches(lengths, 2048, seed=1, epoch=3)
    flat = np.concatenate(plan)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    assert all(len(b) * lengths[b].max() <= 2048 for b in plan)


def test_plan_is_a_pure_function_of_seed_and_epoch():
    lengths = _lengths()
    a = plan_batches(lengths, 2048, seed=1, epoch=3)
    b = plan_batches(lengths, 2048, seed=1, epoch=3)
    c = plan_batches(lengths, 2048, seed=1, epoch=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert any(not np.array_equal(x, y) for x, y in zip(a, c, strict=False))


def test_length_bucketing_keeps_real_tokens_above_95_percent():
    lengths = _lengths(20000)
    stats = padding_stats(lengths, plan_batches(lengths, 4096))
    assert stats["real_token_share"] >= 0.95 and stats["min_batch_real_token_share"] >= 0.95


def test_max_sentences_caps_the_batch_size():
    plan = plan_batches(np.full(100, 4), 1000, max_sentences=7)
    assert max(len(b) for b in plan) == 7


def test_plan_rejects_a_sample_longer_than_the_budget():
    with pytest.raises(ValueError, match="max_tokens=10 is smaller than the longest sample"):
        plan_batches(np.array([3, 11]), 10)


@pytest.mark.parametrize("world", [2, 3, 8])
def test_ranks_get_disjoint_shards_of_equal_batch_count(world):
    lengths = _lengths(501)
    samplers = [TokenBudgetBatchSampler(lengths, 1024, num_replicas=world, rank=r, seed=5) for r in range(world)]
    seen = [[i for key in s for i in key.indices] for s in samplers]
    assert len({len(s) for s in samplers}) == 1
    flat = [i for shard in seen for i in shard]
    assert sorted(flat) == list(range(len(lengths)))


def test_resume_starts_at_the_given_position_once_and_keeps_the_epoch_length():
    s = TokenBudgetBatchSampler(_lengths(300), 1024, seed=2)
    s.set_epoch(1)
    full = list(s)
    s.resume(1, 5)
    assert len(s) == len(full)
    assert list(s) == full[5:]
    assert list(s) == full  # the resume point is used once


def test_loader_batches_are_identical_for_any_num_workers():
    lengths = _lengths(200)

    def collate(rows):
        return pad(rows, pad_id=1)[0]

    data = [np.arange(n) for n in lengths]

    def run(workers):
        s = TokenBudgetBatchSampler(lengths, 512, seed=3)
        s.set_epoch(2)
        loader = DataLoader(KeyedBatches(data, collate), sampler=s, batch_size=None, num_workers=workers)
        return list(loader)

    a, b = run(0), run(2)
    assert len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_pad_right_pads_and_masks():
    ids, mask = pad([np.array([5, 6, 7]), np.array([8])], pad_id=1)
    assert ids.tolist() == [[5, 6, 7], [8, 1, 1]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_batch_key_is_hashable_and_carries_its_epoch():
    key = BatchKey(epoch=1, position=0, indices=(3, 4))
    assert {key: 1}[key] == 1 and key.epoch == 1

import json

import numpy as np
import pytest
import torch
from pretrain_world import make_world

from bart_pretrain.data.batching import BatchKey
from bart_pretrain.data.documents import encode_documents
from bart_pretrain.data.pretrain_module import PretrainDataModule
from bart_pretrain.data.pretrain_stream import StreamingDenoisingDataset, StreamingLoader


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    make_world(root, n_train=80)
    return root


def _dm(world, **kw):
    args = dict(
        train_files=str(world / "train.jsonl"),
        val_files=str(world / "validation.jsonl"),
        tokenizer_path=str(world / "tokenizer.json"),
        max_length=64,
        max_tokens=256,
        num_workers=0,
        seed=3,
    )
    dm = PretrainDataModule(**{**args, **kw})
    dm.prepare_data()
    dm.setup("fit")
    return dm


def _same(a, b, skip=()):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for k in set(x) - set(skip):
            assert torch.equal(x[k], y[k]) if torch.is_tensor(x[k]) else x[k] == y[k], k


def _epoch(loader, epoch):
    loader.sampler.set_epoch(epoch)
    return list(loader)


def test_batches_are_a_pure_function_of_seed_epoch_and_indices_for_any_num_workers(world):
    a = _epoch(_dm(world).train_dataloader(), 1)
    b = _epoch(_dm(world, num_workers=2).train_dataloader(), 1)
    _same(a, b)
    c = _epoch(_dm(world).train_dataloader(), 2)
    assert [x["indices"] for x in a] != [x["indices"] for x in c]


def test_batch_is_bart_shaped_decoder_inputs_shifted_right_and_sources_corrupted(world):
    dm = _dm(world)
    batch = dm.train_dataloader().dataset[BatchKey(0, 0, (0, 1, 2))]
    labels, dec = batch["labels"], batch["decoder_input_ids"]
    assert (dec[:, 0] == 2).all() and torch.equal(dec[:, 1:][labels[:, :-1] != 1], labels[:, :-1][labels[:, :-1] != 1])
    assert (labels[:, 0] == 0).all() and (batch["input_ids"][:, 0] == 0).all()
    assert (batch["input_ids"] == dm.tokenizer.mask_id).any()  # text infilling left masks
    assert batch["real_tokens"] <= batch["padded_tokens"]


def test_every_training_document_is_in_exactly_one_batch_per_epoch(world):
    dm = _dm(world)
    seen = [i for b in _epoch(dm.train_dataloader(), 0) for i in b["indices"]]
    assert sorted(seen) == list(range(len(dm.train_docs)))


def test_validation_corruption_is_the_same_every_epoch(world):
    dm = _dm(world)
    loader = dm.val_dataloader()
    _same(_epoch(loader, 0), _epoch(loader, 5), skip=("epoch",))


def test_data_module_resumes_after_the_last_consumed_batch(world):
    dm = _dm(world)
    full = _epoch(dm.train_dataloader(), 1)
    dm._consumed = (1, 3)  # what on_before_batch_transfer records for the 4th training batch of epoch 1
    state = dm.state_dict()
    fresh = _dm(world)
    fresh.load_state_dict(state)
    loader = fresh.train_dataloader()
    _same(list(loader), full[4:])
    assert len(loader) == len(full)


def test_resuming_with_another_seed_is_refused(world):
    dm = _dm(world)
    dm._consumed = (0, 1)
    with pytest.raises(ValueError, match="--data.seed: 4, the checkpoint's 3"):
        _dm(world, seed=4).load_state_dict(dm.state_dict())


def _stream_world(world, n):
    return [json.loads(line) for line in open(world / "train.jsonl")][:n]


class _Rows:
    def __init__(self, rows):
        self.rows = rows

    def __call__(self):
        return iter(self.rows)


def _stream(world, dm, rows, **kw):
    from bart_pretrain.data.pretrain_stream import TokenizeTexts

    return StreamingDenoisingDataset(
        _Rows(rows),
        dm.corruptor,
        max_tokens=256,
        seed=3,
        tokenize=TokenizeTexts(dm.tokenizer, 64),
        **{"buffer_size": 16, **kw},
    )


def test_streaming_shards_over_ranks_without_duplicates_and_equal_batch_counts(world):
    dm = _dm(world)
    rows = _stream_world(world, 80)
    per_rank = [list(StreamingLoader(_stream(world, dm, rows, num_replicas=2, rank=r))) for r in range(2)]
    assert len(per_rank[0]) == len(per_rank[1])
    ids = [i for batches in per_rank for b in batches for i in b["indices"]]
    assert len(ids) == len(set(ids))
    assert len(ids) == sum(len(chunks) for chunks in encode_documents([r["text"] for r in rows], dm.tokenizer, 64))


def test_streaming_batches_are_identical_for_any_num_workers_and_resume_exactly(world):
    dm = _dm(world)
    rows = _stream_world(world, 80)
    a = list(StreamingLoader(_stream(world, dm, rows), num_workers=0))
    b = list(StreamingLoader(_stream(world, dm, rows), num_workers=2))
    _same(a, b)
    loader = StreamingLoader(_stream(world, dm, rows))
    loader.resume_after(0, a[2]["position"])
    _same(list(loader), a[3:])
    assert np.all([x["epoch"] == 0 for x in a])


@pytest.mark.parametrize("workers", [0, 2])
def test_data_module_streams_a_local_corpus(world, workers):
    """Every chunk of a one-file corpus once, also with 2 workers (a ``datasets`` stream iterated inside a worker gives
    each worker only some of the files: a one-file corpus would reach one worker, the other's buffers lost)."""
    dm = _dm(world, streaming=True, buffer_size=8, num_workers=workers)
    batches = list(dm.train_dataloader())
    n_chunks = len(_dm(world).train_docs)
    ids = [i for b in batches for i in b["indices"]]
    assert len(ids) == len(set(ids)) == n_chunks
    assert len({b["position"][0] for b in batches}) > 2  # several buffers, owned by both workers


@pytest.mark.parametrize("workers", [2, 3])
def test_streaming_resumes_exactly_at_any_buffer_with_workers(world, workers):
    """A resume point in a buffer another worker owns than the first (the DataLoader takes items from its workers in
    turn: a worker that skips its buffers before the resume point must still take its turn)."""
    dm = _dm(world)
    rows = _stream_world(world, 80)
    a = list(StreamingLoader(_stream(world, dm, rows, buffer_size=8), num_workers=0))
    starts = [k for k, b in enumerate(a) if b["position"][1] == 0]
    assert len(starts) >= 4
    for k in (starts[1], starts[1] + 1, starts[2] - 1, starts[3]):
        loader = StreamingLoader(_stream(world, dm, rows, buffer_size=8), num_workers=workers)
        loader.resume_after(0, a[k]["position"])
        _same(list(loader), a[k + 1 :])


def test_restoring_the_data_position_after_the_loader_started_is_refused(world):
    """Lightning issue #20550 under restore-after-setup strategies: fail loudly instead of resuming elsewhere."""
    dm = _dm(world)
    dm._consumed = (0, 1)
    late = _dm(world)
    next(iter(late.train_dataloader()))
    with pytest.raises(RuntimeError, match="20550"):
        late.load_state_dict(dm.state_dict())


def test_the_reported_padding_is_that_of_the_plan_training_follows(world):
    from bart_pretrain.data.batching import padding_stats, plan_batches

    dm = _dm(world, max_sentences=2)
    assert dm.target_padding() is None  # no training plan before the train loader exists
    dm.train_dataloader()
    stats = dm.target_padding()
    plan = plan_batches(dm.train_lengths, dm.max_tokens, seed=dm.seed, max_sentences=2)
    assert stats == padding_stats(dm.train_lengths, plan) and stats["mean_batch_samples"] <= 2

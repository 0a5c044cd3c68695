"""`--model.compile`: the compiled training step (encoder-decoder and LM-head loss through torch.compile) gives the
eager step's loss and gradients, and token-budget batches of every size and length reuse a bounded number of graphs
(dynamic shapes), so a long run never recompiles per batch."""

import pytest
import torch
from torch._dynamo.utils import counters

from bart_pretrain.model import Bart, BartConfig
from bart_pretrain.training import losses
from bart_pretrain.training.module import Seq2SeqModule

PAD = 1
# Graphs the compiled step may build over a whole run: the encoder-decoder with and without a source padding mask
# (a batch whose sources all have one length has none), and once more each for a batch of one document (torch
# specialises sizes of 1), plus the LM-head chunk; shapes otherwise dynamic.
MAX_GRAPHS = 6


class Step(Seq2SeqModule):
    def __init__(self, model: Bart, compiled: bool):
        super().__init__()
        self.model, self.pad_id, self.compiled = model, PAD, compiled


def batch(gen: torch.Generator, B: int, S: int, T: int, padded: bool = True) -> dict:
    """Right-padded random batch: source lengths in [S/2, S] (all S when not ``padded``), target lengths in [T/2, T]."""
    src = torch.randint(S // 2 + 1, S + 1, (B,), generator=gen) if padded else torch.full((B,), S)
    tgt = torch.randint(T // 2 + 1, T + 1, (B,), generator=gen)
    ids = torch.randint(4, 60, (B, S), generator=gen)
    attention = (torch.arange(S)[None] < src[:, None]).long()
    labels = torch.randint(4, 60, (B, T), generator=gen).masked_fill(torch.arange(T)[None] >= tgt[:, None], PAD)
    decoder_input_ids = torch.cat([torch.full((B, 1), 2), labels[:, :-1]], 1).masked_fill(labels == PAD, PAD)
    return {
        "input_ids": ids.masked_fill(attention == 0, PAD),
        "attention_mask": attention,
        "decoder_input_ids": decoder_input_ids,
        "labels": labels,
    }


def small_config(d_model: int, ffn: int, positions: int) -> BartConfig:
    """A 1+1-layer, 2-head model over a 64-token vocabulary, without dropout."""
    return BartConfig(
        vocab_size=64, d_model=d_model, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=ffn, decoder_ffn_dim=ffn, max_position_embeddings=positions,
        dropout=0.0,
    )  # fmt: skip


def run_and_compare(shapes: list[tuple]) -> None:
    """Each batch shape through the eager and the compiled step of one model: same token and correct counts, loss and
    gradients equal within float tolerance."""
    config = small_config(d_model=16, ffn=32, positions=32)
    torch.manual_seed(0)
    eager = Step(Bart(config).train(), compiled=False)
    compiled = Step(Bart(config).train(), compiled=True)
    compiled.model.load_state_dict(eager.model.state_dict())
    gen = torch.Generator().manual_seed(0)
    for shape in shapes:
        b = batch(gen, *shape)
        results = []
        for step in (eager, compiled):
            step.model.zero_grad(set_to_none=True)
            loss, n_tokens, correct = step.token_loss(b)
            loss.backward()
            grads = [p.grad.clone() for p in step.model.parameters()]
            results.append((loss.detach(), int(n_tokens), int(correct), grads))
        (loss_e, n_e, c_e, grads_e), (loss_c, n_c, c_c, grads_c) = results
        assert (n_c, c_c) == (n_e, c_e), shape
        torch.testing.assert_close(loss_c, loss_e, rtol=1e-5, atol=1e-4, msg=str(shape))
        for g_c, g_e in zip(grads_c, grads_e, strict=True):
            torch.testing.assert_close(g_c, g_e, rtol=1e-4, atol=1e-5, msg=str(shape))


@pytest.fixture
def fresh_compile(monkeypatch):
    """Empty torch.compile caches and counters; the LM-head chunk compiled anew with the current options."""
    monkeypatch.setattr(losses, "_compiled_chunk", None)
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def test_every_batch_shape_reuses_a_bounded_number_of_graphs_without_graph_breaks(monkeypatch, fresh_compile):
    # Which graphs are built (guards, dynamic shapes, graph breaks) is decided before the backend: "aot_eager" traces
    # forward and backward exactly as inductor's path does, without spending a minute generating C++.
    monkeypatch.setitem(losses.COMPILE_OPTIONS, "backend", "aot_eager")
    # every kind of batch a token-budget loader yields: many sizes and lengths, source longer or shorter than the
    # target or as long, no padding at all, a single document
    shapes = [(4, 12, 10), (3, 9, 9), (5, 7, 11), (2, 12, 12, False), (6, 5, 4), (1, 6, 8), (7, 16, 14), (3, 3, 3)]
    run_and_compare(shapes)
    graphs = counters["stats"]["unique_graphs"]
    assert 2 <= graphs <= MAX_GRAPHS, f"{graphs} graphs compiled over {len(shapes)} batch shapes"
    assert not counters["graph_break"], dict(counters["graph_break"])


@pytest.mark.slow
def test_inductor_compiled_step_equals_eager(fresh_compile):
    run_and_compare([(4, 12, 10), (3, 9, 9, False)])


def test_compile_unavailable_names_the_missing_compiler_in_one_line(capsys):
    import torch._inductor.config as inductor

    from bart_pretrain.training.module import compile_unavailable

    assert compile_unavailable(torch.device("cpu")) is None  # this machine has gcc
    with inductor.patch({"cpp.cxx": ("no-such-compiler-anywhere",)}):  # put back as it was (compiles below use it)
        reason = compile_unavailable(torch.device("cpu"))
    assert reason and "no C++ compiler" in reason and "\n" not in reason


def test_a_compiled_cpu_fit_gives_the_same_embedding_gradient_every_time_with_two_threads(fresh_compile):
    # inductor's CPU kernels add the embedding gradient with atomic adds across threads, in an order that changes
    # from call to call (without the fit's deterministic mode these six gradients differed); one batch full of
    # repeated tokens, six backward passes, bit-equal
    config = small_config(d_model=64, ffn=64, positions=128)
    torch.manual_seed(0)
    step = Step(Bart(config).train(), compiled=True)
    b = batch(torch.Generator().manual_seed(0), 64, 64, 64)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        step.on_fit_start()
        assert torch.are_deterministic_algorithms_enabled()
        grads = []
        for _ in range(6):
            step.model.zero_grad(set_to_none=True)
            loss, _, _ = step.token_loss(b)
            loss.backward()
            grads.append(step.model.shared.weight.grad.clone())
    finally:
        step.teardown("fit")
        torch.set_num_threads(threads)
    assert not torch.are_deterministic_algorithms_enabled()  # put back as it was
    assert all(torch.equal(grads[0], g) for g in grads[1:])

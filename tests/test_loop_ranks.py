"""What one process does in `optimise` under a launcher, against a recording stand-in for the launcher
(repro/distributed.py): rank 0's weights broadcast first; with whole micro-batches, this rank's round-robin
share, each loss divided by grad_accum, the gradients reduced without a further division; otherwise every
micro-batch's slice for this rank, its loss scaled by world x share / grad_accum, the gradients averaged.
The real two-process run is tests/test_distributed.py (slow tier)."""

from __future__ import annotations

import pytest
import torch

from repro import distributed
from repro.train.loop import optimise


class RecordingDist:
    """Rank 1 of 2. reduce_gradients records its divisor and leaves the gradients as this rank made them."""

    rank, world = 1, 2
    is_main = False  # rank 1: no progress lines of its own

    def __init__(self):
        self.divisors = []

    def split(self, batch):
        part = list(batch[len(batch) // 2:])  # rank 1's half
        return (part, len(part) / len(batch)) if part else (None, 0.0)

    def reduce_gradients(self, params, running, divide):
        self.divisors.append(divide)
        return running / divide


@pytest.fixture
def rank1(monkeypatch):
    dist = RecordingDist()
    broadcast = []
    monkeypatch.setattr(distributed, "current", lambda: dist)
    monkeypatch.setattr(torch.distributed, "broadcast", lambda tensor, src: broadcast.append((tensor, src)))
    dist.broadcast_calls = broadcast
    return dist


def run(grad_accum: int, batches: list[list[float]], steps: int):
    w = torch.nn.Parameter(torch.zeros(()))
    seen = []

    def step_loss(batch):
        seen.append(list(batch))
        return w * 0 + float(sum(batch))  # the loss's value is the batch's sum; the gradient does not matter

    losses = optimise([w], iter(batches), steps, step_loss, 0.1, grad_accum=grad_accum)
    return w, seen, losses


def test_whole_micro_batches_are_dealt_round_robin_and_summed(rank1):
    w, seen, losses = run(2, [[1.0], [2.0], [3.0], [4.0]], 2)  # grad_accum 2 over 2 ranks: whole micro-batches
    assert [(t.data_ptr() == w.data_ptr(), src) for t, src in rank1.broadcast_calls] == [(True, 0)]  # rank 0's
    assert seen == [[2.0], [4.0]]  # micro-batches 1 and 3: i % world == rank
    assert rank1.divisors == [1, 1]  # the sum over ranks is one process's accumulated gradient
    assert losses == [2.0 / 2, 4.0 / 2]  # each loss divided by grad_accum


def test_a_micro_batch_is_split_across_ranks_when_they_do_not_divide_the_accumulation(rank1):
    _, seen, losses = run(1, [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0]], 2)  # grad_accum 1 over 2 ranks: split
    assert seen == [[3.0, 4.0], [6.0, 7.0]]  # rank 1's part of each micro-batch
    assert rank1.divisors == [2, 2]  # the mean over ranks
    # loss x (share x world / grad_accum), then / world: 7 x (1/2 x 2) / 2 and 13 x (2/3 x 2) / 2
    assert losses == pytest.approx([7.0 / 2, 13.0 * 2 / 3])


def test_a_parameter_without_a_gradient_in_a_step_is_not_moved_by_momentum():
    """Gradients are cleared to None, not zero, between steps: AdamW skips a parameter no loss reached (the
    projector on a text-only batch) instead of stepping it on its momentum."""
    a, b = torch.nn.Parameter(torch.ones(())), torch.nn.Parameter(torch.ones(()))
    uses_b = iter([True, False])

    def step_loss(batch):
        return a * a + (b * b if next(uses_b) else 0)

    optimise([a, b], iter([[0], [0]]), 2, step_loss, 0.1)
    after_first = 1 - 0.1  # AdamW's first step moves each parameter by lr
    assert a.item() < after_first - 0.05 and b.item() == pytest.approx(after_first)


def test_a_steps_loss_is_the_sum_of_its_micro_batches_over_the_accumulation():
    """One process, grad_accum 3: a step every third micro-batch, its loss the mean of the three."""
    w = torch.nn.Parameter(torch.zeros(()))
    losses = optimise([w], iter([[1.0], [2.0], [3.0], [4.0], [5.0], [6.0]]), 2,
                      lambda batch: w * 0 + batch[0], 0.1, grad_accum=3)
    assert losses == pytest.approx([2.0, 5.0])


def test_split_micro_batches_accumulate_too(rank1):
    """grad_accum 3 over 2 ranks: each micro-batch split; this rank's three slices add up to the step's loss."""
    _, seen, losses = run(3, [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], 1)
    assert seen == [[2.0], [4.0], [6.0]] and rank1.divisors == [2]
    assert losses == pytest.approx([(2.0 + 4.0 + 6.0) * (0.5 * 2 / 3) / 2])


def test_the_optimiser_refuses_nothing_to_train_and_names_a_divergence():
    from repro.errors import ReproError
    from repro.train.loop import Diverged

    with pytest.raises(ReproError) as err:
        optimise([], iter([]), 1, lambda batch: batch, 0.1, desc="unlearn npo llm")
    assert str(err.value) == "unlearn npo llm: no trainable parameters"
    assert str(Diverged(7, float("nan"))) == "non-finite loss or gradient at step 7 (loss nan)"


def test_a_finite_loss_with_a_non_finite_gradient_diverges_at_its_step():
    from repro.train.loop import Diverged

    w = torch.nn.Parameter(torch.tensor(1.0))
    values = iter([1.0, 0.0])  # step 1 fine; step 2: sqrt at 0, a finite loss with an infinite gradient

    def step_loss(batch):
        return torch.sqrt(w * next(values))

    with pytest.raises(Diverged) as err:
        optimise([w], iter([[0], [0]]), 2, step_loss, 0.1)
    assert (err.value.step, err.value.loss) == (2, 0.0)


def test_an_epoch_has_as_many_batches_as_the_shuffle_makes_images_and_text_apart():
    from repro.train.loop import Example, batches_per_epoch, shuffled_batches

    examples = [Example(f"i{i}", "a", b"img") for i in range(5)] + [Example(f"t{i}", "a", None) for i in range(2)]
    for size in (1, 2, 3, 4):
        made = list(shuffled_batches(examples, size, 1, 0))
        assert batches_per_epoch(examples, size) == len(made)
    assert batches_per_epoch(examples, 2) == 3 + 1  # 5 with an image in 3 batches, 2 without in 1

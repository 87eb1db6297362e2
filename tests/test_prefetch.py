"""Preparing the next batch in a background thread (on CUDA) changes when batches are prepared, never what
is computed: the same batches in the same order, the same training and the same predictions."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from repro import prefetch
from repro.eval.scoring import predict
from repro.train.loop import optimise
from tests.test_scoring import _small_world


def test_batches_come_in_order_each_prepared_once_in_another_thread():
    calls = []

    def prepare(batch):
        calls.append((batch, threading.current_thread() is threading.main_thread()))
        return batch * 10

    with prefetch.prepared_ahead(iter(range(6)), prepare, enabled=True) as source:
        got = [(batch, get()) for batch, get in source]
    assert got == [(b, b * 10) for b in range(6)]
    assert sorted(b for b, _ in calls) == list(range(6))
    assert not any(in_main for _, in_main in calls)


def test_disabled_prepares_in_line_and_only_when_asked():
    calls = []
    with prefetch.prepared_ahead(iter(range(4)), lambda b: calls.append(b) or b, enabled=False) as source:
        got = [get() for batch, get in source if batch % 2 == 0]
    assert got == [0, 2] and calls == [0, 2]


def test_a_batch_not_wanted_is_not_prepared_ahead():
    calls = []
    with prefetch.prepared_ahead(iter(range(6)), lambda b: calls.append(b) or b, True, lambda i: i % 2 == 1) as src:
        for _ in src:
            pass
    assert sorted(calls) == [1, 3, 5]


def test_no_preparation_outlives_the_block_when_the_loop_stops_early():
    running = threading.Event()
    finished = []

    def slow(batch):
        running.set()
        time.sleep(0.2)
        finished.append(batch)
        return batch

    with prefetch.prepared_ahead(iter(range(100)), slow, enabled=True) as source:
        for batch, get in source:
            get()
            if batch == 1:
                break
    done_at_exit = list(finished)
    time.sleep(0.3)
    assert finished == done_at_exit  # nothing was still preparing after the block
    assert len(finished) <= 3  # this batch and at most one ahead (2), not the whole stream


def test_an_error_in_prepare_is_raised_where_the_batch_is_used():
    def prepare(batch):
        if batch == 2:
            raise ValueError("bad batch 2")
        return batch

    seen = []
    with pytest.raises(ValueError, match="bad batch 2"), \
            prefetch.prepared_ahead(iter(range(5)), prepare, enabled=True) as source:
        for _, get in source:
            seen.append(get())
    assert seen == [0, 1]


def _train(ahead: bool, monkeypatch) -> tuple[list[float], list[list[float]]]:
    monkeypatch.setattr(prefetch, "pays_on", lambda device: ahead)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 1))
    xs, ys = torch.randn(40, 3), torch.randn(40)
    batches = [list(range(i, i + 5)) for i in range(0, 40, 5)] * 2

    def loss(batch):
        x, y = batch
        return ((model(x).squeeze(-1) - y) ** 2).mean()

    losses = optimise(list(model.parameters()), iter(batches), 8, loss, 0.05, grad_accum=2,
                      prepare=lambda idx: (xs[idx], ys[idx]))
    return losses, [p.detach().flatten().tolist() for p in model.parameters()]


def test_training_prepared_ahead_is_training_prepared_in_line(monkeypatch):
    """Dropout draws from the global RNG in the main thread: preparing in another thread must not move it."""
    assert _train(True, monkeypatch) == _train(False, monkeypatch)


@pytest.mark.parametrize("scoring", ["letter", "option-loglik"])
def test_predictions_prepared_ahead_are_the_predictions_prepared_in_line(tmp_path, monkeypatch, scoring):
    from repro.model.factory import build_tiny_model

    profile, items, tokenizer = _small_world(tmp_path)
    model, processor = build_tiny_model(profile.model, tokenizer, seed=1)
    monkeypatch.setattr(prefetch, "pays_on", lambda device: False)
    inline = predict(model, processor, items, scoring, 8, profile.model.max_length)
    monkeypatch.setattr(prefetch, "pays_on", lambda device: True)
    ahead = predict(model, processor, items, scoring, 8, profile.model.max_length)
    assert len(inline) == len(items) and ahead == inline

"""eval.batch_size = "auto": the memory model worked by hand, the batch it picks under a given free memory,
and what a profile accepts."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from repro.errors import ConfigError
from repro.eval.batch_size import (
    CPU_BATCH,
    HEADROOM,
    MAX_BATCH,
    bytes_per_token,
    check_batch_size,
    fitting_batch,
    resolve_batch_size,
)

# LLaVA-1.5-13B's language model (llava-hf/llava-1.5-13b-hf config.json, text_config)
LLAMA_13B = SimpleNamespace(num_hidden_layers=40, hidden_size=5120, num_attention_heads=40, num_key_value_heads=40,
                            intermediate_size=13824)


class OtherRank:
    """Rank 0 of 2 under a launcher, the other rank's value being `theirs`; every gather is logged."""

    def __init__(self, theirs):
        self.theirs, self.asked = theirs, []

    def gather(self, value):
        self.asked.append(value)
        return [value, self.theirs]


def test_a_13b_token_holds_its_keys_and_values_in_every_layer_and_one_layers_activations():
    cache = 2 * 40 * 40 * 128  # keys and values, 40 layers of 40 heads of 128
    activations = 3 * 5120 + 2 * 13824
    assert bytes_per_token(LLAMA_13B, 2) == (cache + activations) * 2 == 905_216


def test_grouped_query_attention_caches_only_the_key_value_heads():
    gqa = SimpleNamespace(**{**vars(LLAMA_13B), "num_key_value_heads": 8})
    assert bytes_per_token(LLAMA_13B, 2) - bytes_per_token(gqa, 2) == 2 * 40 * (40 - 8) * 128 * 2


@pytest.mark.parametrize("free_gib, row_tokens, expected", [
    (110, 700, 128),  # an H200 after the 13B weights: 700-token rows (a face, a question, 50 new tokens)
    (50, 700, 64),
    (0.3, 700, 1),  # not even one row fits by the model: still one (the scorer halves no further)
    (1000, 100, MAX_BATCH),
])
def test_the_fitting_batch_is_the_largest_power_of_two_within_the_headroom(free_gib, row_tokens, expected):
    per_token = bytes_per_token(LLAMA_13B, 2)
    free = int(free_gib * 2**30)
    size = fitting_batch(free, row_tokens, per_token)
    assert size == expected
    if 1 < size < MAX_BATCH:
        assert size * row_tokens * per_token <= HEADROOM * free < 2 * size * row_tokens * per_token


def test_a_number_is_used_as_given_and_auto_on_a_cpu_is_the_cpu_batch():
    import torch

    model = torch.nn.Linear(2, 2)
    assert resolve_batch_size(7, model, None, [], 50) == 7
    assert resolve_batch_size("auto", model, None, ["x"], 50) == CPU_BATCH


@pytest.mark.parametrize("value", ["big", 0, -4])
def test_anything_but_a_positive_number_or_auto_is_refused(value):
    with pytest.raises(ConfigError, match="eval.batch_size must be a positive number or 'auto'"):
        check_batch_size(value)


def test_a_profile_takes_auto_or_a_number_and_names_what_it_refuses():
    from repro.choices import load_profile
    from repro.config import read_profile

    assert load_profile("tiny", ['eval.batch_size="auto"']).eval.batch_size == "auto"
    assert load_profile("tiny", ["eval.batch_size=8"]).eval.batch_size == 8
    with pytest.raises(ConfigError, match="'eval.batch_size': expected int or str, got 1.5"):
        read_profile("tiny", ["eval.batch_size=1.5"])
    with pytest.raises(ConfigError, match="got 'big'"):
        load_profile("tiny", ["eval.batch_size=big"])


def test_auto_counts_the_allocators_unused_cache_and_every_rank_takes_the_smallest_batch(monkeypatch):
    import torch

    from repro import distributed
    from repro.eval import batch_size as bs

    model = SimpleNamespace(parameters=lambda: iter([torch.zeros(1, dtype=torch.bfloat16)]),
                            config=SimpleNamespace(text_config=LLAMA_13B))
    device_free_bytes = bs.device_free_bytes
    monkeypatch.setattr(bs, "longest_row", lambda *a: 700)
    monkeypatch.setattr(bs, "device_free_bytes", lambda device: 110 * 2**30)
    assert bs.resolve_batch_size("auto", model, None, ["x"], 50) == 128  # alone: its own GPU's fit

    monkeypatch.setattr(distributed, "current", lambda: OtherRank(32))  # the other rank's GPU holds less
    assert bs.resolve_batch_size("auto", model, None, ["x"], 50) == 32
    assert bs.resolve_batch_size(64, model, None, ["x"], 50) == 64  # a number is every rank's already

    # the free memory counts what the caching allocator holds but no tensor uses
    cuda = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (10 * 2**30, 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device: 30 * 2**30)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device: 26 * 2**30)
    assert device_free_bytes(cuda) == 14 * 2**30
    assert device_free_bytes(torch.device("cpu")) is None


def test_the_fitting_batch_is_this_ranks_own_and_only_resolving_it_asks_the_other_ranks(monkeypatch):
    from repro import distributed

    ranks = OtherRank(1)
    monkeypatch.setattr(distributed, "current", lambda: ranks)
    per_token = bytes_per_token(LLAMA_13B, 2)
    assert fitting_batch(110 * 2**30, 700, per_token) == 128 and not ranks.asked  # a pure function of its arguments

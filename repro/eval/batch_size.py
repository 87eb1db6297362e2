"""`eval.batch_size`: a number, or "auto", the largest batch the GPU's free memory holds for the prompts at
hand under a memory model of the scorer's forward pass (a number still works, and is what the CPU uses).

The model: a prompt token held through a forward pass costs its keys and values in every layer (the cache
transformers fills, kept for the generation fallback) plus the widest activations of one layer at a time
(hidden states, attention output and the MLP's gate and up projections), in the weights' dtype; a row is
its longest prompt plus the tokens it may generate. A batch takes at most HEADROOM of the free memory, and
is a power of two at most MAX_BATCH. If it is still too large, the scorer halves the batch that did not fit
(repro/eval/scoring.py, halving_on_oom), so a wrong estimate costs a retry, never a run.
"""

from __future__ import annotations

import torch

from repro import distributed
from repro.errors import ConfigError
from repro.model.factory import image_token_count
from repro.model.prompts import token_counts

AUTO = "auto"
CPU_BATCH = 16  # kit choice: "auto" on a CPU, where memory is not what limits the batch
MAX_BATCH = 256  # kit choice: beyond this a batch's padding and the tail batch cost more than they save
HEADROOM = 0.8  # kit choice: what the allocator's fragmentation and the logits of the last position leave


def check_batch_size(value: int | str) -> None:
    if isinstance(value, str) and value != AUTO or isinstance(value, int) and value < 1:
        raise ConfigError(f"eval.batch_size must be a positive number or {AUTO!r}, got {value!r}")


def bytes_per_token(text_config, dtype_bytes: int) -> int:
    """Memory one prompt token takes during the forward pass (module docstring)."""
    layers, hidden = text_config.num_hidden_layers, text_config.hidden_size
    heads = text_config.num_attention_heads
    kv_heads = getattr(text_config, "num_key_value_heads", None) or heads
    head_dim = getattr(text_config, "head_dim", None) or hidden // heads
    cache = 2 * layers * kv_heads * head_dim
    activations = 3 * hidden + 2 * text_config.intermediate_size
    return (cache + activations) * dtype_bytes


def fitting_batch(free_bytes: int, row_tokens: int, per_token: int) -> int:
    """The largest power of two at most MAX_BATCH whose rows fit in HEADROOM of `free_bytes` (at least 1)."""
    rows = int(free_bytes * HEADROOM) // max(1, row_tokens * per_token)
    size = 1
    while size * 2 <= min(rows, MAX_BATCH):
        size *= 2
    return size


def longest_row(model, processor, prompts: list[str], new_tokens: int) -> int:
    """Tokens of the longest prompt, its images expanded as the processor expands them, plus `new_tokens`."""
    return max(token_counts(processor, prompts, image_token_count(model, processor)), default=0) + new_tokens


def device_free_bytes(device: torch.device) -> int | None:
    """What a batch may take on `device`: the GPU's free memory plus what PyTorch's allocator holds unused
    (cached by earlier work, such as training in the same process, and reused before any new allocation);
    None on a CPU."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)


def resolve_batch_size(value: int | str, model, processor, prompts: list[str], new_tokens: int) -> int:
    """The batch size to score `prompts` with: `value` itself when a number; for "auto", the fitting batch
    on the model's GPU (CPU_BATCH on a CPU)."""
    check_batch_size(value)
    if value != AUTO:
        return int(value)
    free = device_free_bytes(next(model.parameters()).device)
    if free is None:
        return CPU_BATCH
    row_tokens = longest_row(model, processor, prompts, new_tokens)
    config = getattr(model.config, "text_config", model.config)
    size = fitting_batch(free, row_tokens, bytes_per_token(config, next(model.parameters()).element_size()))
    # Under a launcher each rank sees its own GPU: all take the smallest, so that every rank forms the same
    # batches (the scorer deals them out by position and gathers the predictions).
    return distributed.smallest(size)

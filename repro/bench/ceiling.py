"""The most any batched scorer could gain over the baseline on this device, measured rather than argued.

Any exact first-token scorer runs the language model's decoder layers over every prompt token, except that
the last layer needs only its key and value products at the positions before the last. Those matrix products
alone cost 2 x (weights) x (tokens) FLOPs. At the rate this device reaches on the model's own layer shapes,
in its dtype, they give the scorer's floor in seconds; the floor's rate over the baseline's measured rate
bounds `eval_speedup`. Attention, norms, activations, the vision tower, the LM head and preparing the inputs
are left out, so any real scorer is slower than the floor and the bound is generous."""

from __future__ import annotations

import torch
from torch import nn

from repro.bench.clock import best_of, timed

REPEATS = 20  # the products are timed this many times and the fastest run kept, as timeit does: a
# generous bound wants the best rate the device reaches
# transformers' names in Llama-family attention; a model without them has its whole last layer counted at
# the last position only, which lowers the floor: the bound stays a bound, only looser
KEY_VALUE = ("k_proj", "v_proj")


def decoder_linears(model) -> list[dict[str, nn.Linear]]:
    """The linear layers of each decoder layer of the language model, by name within the layer."""
    return [{n: m for n, m in layer.named_modules() if isinstance(m, nn.Linear)}
            for layer in model.get_decoder().layers]


def floor_flops(model, prompt_tokens: int, items: int) -> int:
    """The decoder products no exact first-token scorer can skip, over `items` prompts of `prompt_tokens`."""
    *first, last = decoder_linears(model)
    every_token = sum(m.weight.numel() for layer in first for m in layer.values())
    every_token += sum(m.weight.numel() for n, m in last.items() if n.endswith(KEY_VALUE))
    last_token = sum(m.weight.numel() for n, m in last.items() if not n.endswith(KEY_VALUE))
    return 2 * (every_token * prompt_tokens + last_token * items)


@torch.no_grad()
def matmul_rate(model, rows: int) -> float:
    """FLOP/s of the first decoder layer's products applied to `rows` tokens, on the model's device and
    in its dtype (the fastest of REPEATS runs, after one untimed run)."""
    weights = [m.weight for m in decoder_linears(model)[0].values()]
    device, dtype = weights[0].device, weights[0].dtype
    inputs = [torch.randn(rows, w.shape[1], device=device, dtype=dtype) for w in weights]
    flops = sum(2 * rows * w.numel() for w in weights)

    def products() -> None:
        for x, w in zip(inputs, weights):
            torch.nn.functional.linear(x, w)

    timed(device, products)  # the first run pays one-off costs (allocation, kernel choice)
    return flops / best_of(REPEATS, device, products)[1]


def bound(model, prompt_tokens: int, items: int, batch_size: int, kit_seconds: float,
          baseline_qps: float) -> dict:
    """The scorer's floor on this device and the speedup ceiling it implies."""
    rows = max(1, round(prompt_tokens / items * min(batch_size, items)))  # tokens in a full batch
    rate = matmul_rate(model, rows)
    flops = floor_flops(model, prompt_tokens, items)
    floor = flops / rate
    return {
        "matmul_flops_per_s": round(rate),
        "matmul_rows": rows,
        "floor_flops": flops,
        "floor_seconds": float(f"{floor:.6g}"),
        "qps_ceiling": round(items / floor, 3),
        "speedup_ceiling": round(items / floor / baseline_qps, 3),
        "kit_matmul_share": float(f"{floor / kit_seconds:.4g}"),  # the kit's time that the floor accounts for
    }

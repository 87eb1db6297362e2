"""Model FLOPs utilisation: achieved FLOP/s (2 x params x tokens per forward, 6 x params x tokens per
training token) over the device's dense bf16 peak."""

from __future__ import annotations

# Dense bf16 tensor-core peaks (vendor datasheets, no sparsity). First match on the device name wins.
PEAK_BF16: tuple[tuple[str, float], ...] = (
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),  # SXM
    ("A100", 312e12),
)


def device_peak(name: str) -> float | None:
    return next((peak for key, peak in PEAK_BF16 if key in name), None)


def matmul_params(model) -> int:
    """Parameters that do matmul work per token: all but the input embedding table (a lookup)."""
    total = sum(p.numel() for p in model.parameters())
    return total - model.get_input_embeddings().weight.numel()


def mfu(flops: float, seconds: float, peak: float | None) -> float | None:
    if peak is None or seconds <= 0:
        return None
    return round(flops / seconds / peak, 4)


def report(model, ev: dict, train: dict, device_name: str) -> dict:
    """MFU of the kit's letter scorer and of each training stage (CUDA)."""
    n, peak = matmul_params(model), device_peak(device_name)
    return {"eval": mfu(2 * n * ev["prompt_tokens"], ev["seconds"]["letter_fast"], peak),
            "train": {s: mfu(6 * n * t["tokens"] + 2 * n * t["ref_tokens"], t["seconds"], peak)
                      for s, t in train.items()},
            "peak_flops": peak, "params": n}

"""Where the kit's work is kept, and how: the cache shared by every run (the miniature world, the pre-trained
tiny base model, the unit store), and the atomic writer of tensors (text: repro/atomic.py).

Units (fine-tuned models, unlearning adapters, predictions) are named by a content key of exactly what they
depend on (repro/experiments/keys.py) and kept in a store shared by run directories: by default
`$PULSE_CACHE/units/<numeric environment>`, or the directory `--units` names. A unit is trained once,
whatever run asks for it; a run directory keeps only its records, manifest and report.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from repro import distributed
from repro.atomic import atomic_write_text
from repro.environment import numeric_tag
from repro.experiments.disk import require_free


def cache_dir() -> Path:
    """Where work shared across runs lives (the miniature world, the pre-trained tiny base model, units)."""
    return Path(os.environ.get("PULSE_CACHE", ".pulse-cache"))


def base_model_path(base_key: str) -> Path:
    """The cached tiny base model of `base_key` pre-trained in this numeric environment: one pre-trained
    under another instruction set computes other floats, and is not reused here."""
    return cache_dir() / "models" / f"base-{base_key}-{numeric_tag()}"


def default_units_dir() -> Path:
    """The shared unit store of this numeric environment (units made under another instruction set compute
    other floats: a run must not mix the two)."""
    return cache_dir() / "units" / numeric_tag()


def atomic_save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """A safetensors file written whole or not at all; the temporary name is per process, since concurrent
    runs share the store."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_file(_unshared(tensors), str(tmp), metadata=metadata)
    os.replace(tmp, path)


def _unshared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors on the CPU, a tensor that shares its memory with an earlier one copied: safetensors refuses
    shared memory, and a model with tied weights (Gemma-3's embeddings and LM head) holds the same weights
    under two names, which `load_state_dict` then reads back into the one tied parameter."""
    seen: set[tuple[int, int]] = set()
    out = {}
    for name, tensor in tensors.items():
        t = tensor.detach()
        where = (t.untyped_storage().data_ptr(), t.storage_offset()) if t.device.type != "meta" else (id(t), 0)
        out[name] = t.contiguous().cpu().clone() if where in seen else t.contiguous().cpu()
        seen.add(where)
    return out


class UnitStore:
    """Units by name in one directory. Under a launcher rank 0 reads and writes, and the others receive what
    it read (one process touches the files, every process decides alike)."""

    def __init__(self, root: Path):
        self.root = root

    def path(self, name: str) -> Path:
        return self.root / name

    def exists(self, name: str) -> bool:
        return distributed.rank0_decides(self.path(name).exists())

    def require_free(self, needed: int, what: str) -> None:
        if distributed.is_main():
            require_free(self.root, needed, what)

    # ---- tensors ----------------------------------------------------------------------------
    def write_tensors(self, name: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
        if distributed.is_main():
            atomic_save_tensors(self.path(name), tensors, metadata)

    def read_tensors(self, name: str) -> dict[str, torch.Tensor]:
        return distributed.rank0_reads(lambda: load_file(str(self.path(name))))

    def metadata(self, name: str, required: set[str]) -> dict[str, str] | None:
        """A unit's metadata when it holds every `required` key; None for a missing, torn or foreign file
        (its work is then done again and the unit rewritten)."""
        path = self.path(name)

        def read() -> dict[str, str] | None:
            if not path.exists():
                return None
            try:
                with safe_open(str(path), "pt") as fh:
                    meta = fh.metadata() or {}
            except (SafetensorError, OSError):
                return None
            return meta if required <= set(meta) else None

        return distributed.rank0_decides(read())

    # ---- JSON -------------------------------------------------------------------------------
    def write_json(self, name: str, value: Any) -> None:
        if distributed.is_main():
            atomic_write_text(self.path(name), json.dumps(value, sort_keys=True))

    def read_json(self, name: str) -> Any | None:
        path = self.path(name)
        return distributed.rank0_reads(lambda: json.loads(path.read_text()) if path.exists() else None)

    def load_weights(self, name: str, model: torch.nn.Module) -> None:
        """A full-weights unit into `model`: rank 0 reads the file, the others receive its weights from it
        tensor by tensor (not as one pickled copy of a 13B state)."""
        dist = distributed.current()
        if dist is None or dist.is_main:
            model.load_state_dict(load_file(str(self.path(name))))
        if dist is not None:
            dist.broadcast_state(model)

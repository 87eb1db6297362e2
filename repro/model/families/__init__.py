"""The model families the kit runs, one file each, registered in FAMILIES (docs/design.md, "Model families").
Importing this package registers them all."""

from repro.model.families import gemma3, llava, llava_next, llava_processor, qwen2_5_vl  # noqa: F401  (register)
from repro.model.families.base import FAMILIES, Family, family_named, family_of_model, family_of_processor

__all__ = ["FAMILIES", "Family", "family_named", "family_of_model", "family_of_processor"]

"""A LLaVA small enough to train in milliseconds, and batches for it: the unit the loss and method tests
run on (no processor: token ids are drawn directly)."""

from __future__ import annotations

import torch
from peft import LoraConfig, get_peft_model
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

VOCAB, IMAGE_TOKEN, PAD = 60, 59, 0
TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


def tiny_llava(seed: int = 0) -> LlavaForConditionalGeneration:
    torch.manual_seed(seed)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=16,
            patch_size=8,
        ),
        text_config=LlamaConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            vocab_size=VOCAB,
            initializer_range=0.2,
        ),
        image_token_index=IMAGE_TOKEN,
    )
    return LlavaForConditionalGeneration(config).eval()


def with_lora(model, seed: int = 0):
    """LoRA on the language model plus the projector as modules_to_save: the `proj+llm` target."""
    torch.manual_seed(seed)
    cfg = LoraConfig(
        r=4,
        lora_alpha=4,
        lora_dropout=0.05,
        target_modules=TARGETS,
        modules_to_save=["multi_modal_projector"],
    )
    return get_peft_model(model, cfg)


def make_batch(seed: int, n: int = 4, length: int = 14) -> dict:
    """[bos, 4 image tokens, prompt, answer, right padding]; labels only on the answer (lengths vary)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, IMAGE_TOKEN, (n, length), generator=g)
    ids[:, 1:5] = IMAGE_TOKEN  # 16x16 image, 8x8 patches -> 4 image features
    labels = torch.full_like(ids, -100)
    mask = torch.ones_like(ids)
    for i in range(n):
        answer_start, end = 8 + i % 2, length - i % 3  # rows differ in answer length and padding
        labels[i, answer_start:end] = ids[i, answer_start:end]
        ids[i, end:], mask[i, end:] = PAD, 0
    pixels = torch.randn(n, 3, 16, 16, generator=g)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "pixel_values": pixels}


def perturb(model, scale: float, seed: int = 1, projector: bool = True) -> None:
    """Move the adapter (LoRA B, and the projector's trainable copy) away from the base model."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ("lora_B" in name) or (projector and "modules_to_save" in name):
                p.add_(scale * torch.randn(p.shape, generator=g))

"""Loss functions of the unlearning methods, as pure functions on tensors.

`logits` are (B, T, V) from a causal LM and `labels` (B, T) are aligned with input_ids
(-100 everywhere except the answer tokens), so the logits at position t predict token t+1:
every function shifts by one, exactly as Hugging Face's causal-LM loss does.
All arithmetic is in float32, whatever the logits' dtype (bf16 log-softmax loses too much).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from repro.errors import ReproError
from repro.model.prompts import IGNORE


def _answer_positions(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(N, V) float32 logits of the N answer positions, their (N,) targets and (N,) batch rows.

    Selecting the answer positions before the float32 cast keeps memory at N x V, not B x T x V
    (LLaVA's 576 image tokens make T large and the answer a small part of it).
    """
    if logits.shape[:2] != labels.shape:
        raise ReproError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} do not align")
    shifted = labels[:, 1:]
    mask = shifted != IGNORE
    rows = mask.nonzero()[:, 0]
    return logits[:, :-1][mask].float(), shifted[mask], rows


def _require_answers(targets: Tensor) -> None:
    if targets.numel() == 0:
        raise ReproError(
            "batch has no answer tokens (labels all -100): was the answer truncated by max_length?"
        )


def answer_token_nll(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean negative log-likelihood over all answer tokens of the batch (the fine-tuning loss)."""
    flat, targets, _ = _answer_positions(logits, labels)
    _require_answers(targets)
    return F.cross_entropy(flat, targets)


def sequence_logprob(logits: Tensor, labels: Tensor) -> Tensor:
    """(B,) log p(answer | prompt): the answer tokens' log-probabilities summed per sequence."""
    flat, targets, rows = _answer_positions(logits, labels)
    token_logp = flat.log_softmax(-1).gather(-1, targets[:, None]).squeeze(-1)
    out = torch.zeros(labels.shape[0], dtype=torch.float32, device=logits.device)
    return out.index_add(0, rows, token_logp)


def answer_token_kl(ref_logits: Tensor, logits: Tensor, labels: Tensor) -> Tensor:
    """KL(p_ref || p_theta) over the full vocabulary at each answer position, averaged over answer tokens."""
    if ref_logits.shape != logits.shape:
        raise ReproError(
            f"reference logits {tuple(ref_logits.shape)} and logits {tuple(logits.shape)} differ"
        )
    flat, targets, _ = _answer_positions(logits, labels)
    ref_flat, _, _ = _answer_positions(ref_logits, labels)
    _require_answers(targets)
    ref_logp, logp = ref_flat.log_softmax(-1), flat.log_softmax(-1)
    return (ref_logp.exp() * (ref_logp - logp)).sum(-1).mean()


def npo_loss(logp: Tensor, ref_logp: Tensor, beta: float) -> Tensor:
    """NPO (Zhang et al. 2024, eq. 3): -(2/beta) * mean(log sigmoid(-beta * (log p_theta - log p_ref))).

    Always >= 0; equals (2/beta) log 2 when the policy is the reference.
    """
    if beta <= 0:
        raise ReproError(f"NPO needs beta > 0, got {beta}")
    ratio = logp.float() - ref_logp.float()
    return -(2.0 / beta) * F.logsigmoid(-beta * ratio).mean()


def simnpo_loss(logits: Tensor, labels: Tensor, beta: float, gamma: float) -> Tensor:
    """SimNPO (Fan et al. 2024, eq. 4): -(2/beta) * mean(log sigmoid(-(beta/|y|) log p_theta(y|x) - gamma)),
    |y| the number of answer tokens of each sequence."""
    if beta <= 0:
        raise ReproError(f"SimNPO needs beta > 0, got {beta}")
    lengths = (labels[:, 1:] != IGNORE).sum(-1)
    if (lengths == 0).any():
        raise ReproError("a sequence has no answer tokens (labels all -100): was its answer truncated by max_length?")
    logp = sequence_logprob(logits, labels) / lengths
    return -(2.0 / beta) * F.logsigmoid(-beta * logp - gamma).mean()


def every_position_kl(ref_logits: Tensor, logits: Tensor) -> Tensor:
    """KL(p_ref || p_theta) summed over every position and the vocabulary, divided by the batch size:
    `F.kl_div(logits.log_softmax(-1), ref_logits.softmax(-1), reduction="batchmean")`, as MLLMU-Bench's
    KL_Min computes it (padding and image positions included), in float32."""
    if ref_logits.shape != logits.shape:
        raise ReproError(f"reference logits {tuple(ref_logits.shape)} and logits {tuple(logits.shape)} differ")
    return F.kl_div(logits.float().log_softmax(-1), ref_logits.float().log_softmax(-1), reduction="batchmean",
                    log_target=True)

"""A word-level tokenizer built offline from the texts the tiny model will see.

The paper profiles use their model's own tokenizer; the `tiny` profile cannot download one,
and a word-level vocabulary keeps a from-scratch model small (docs/design.md, "The miniature").
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import AddedToken, Regex, Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from repro.model.families.llava import IMAGE_TOKEN, TURN_WORDS  # the tiny model is a LLaVA

UNK, PAD, BOS, EOS, IMAGE = "<unk>", "<pad>", "<s>", "</s>", IMAGE_TOKEN
SPECIALS = (UNK, PAD, BOS, EOS)  # ids 0..3, fixed so every vocabulary agrees on them
# Always in the vocabulary, whatever the texts: the prompt skeleton and the answer letters.
BASE_WORDS = (*TURN_WORDS, "A", "B", "C", "D", ":", ".", "?", ",", "!", "'", "(", ")", "-")


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    # Whitespace split, then every punctuation character on its own ("A:" -> "A", ":"), so option
    # letters and the colon after the assistant's turn word are tokens of their own.
    return pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(r"[^\w\s]"), behavior="isolated")]
    )


def build_word_tokenizer(texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """A deterministic word-level tokenizer: same texts (in any order) -> same ids."""
    pre = _pre_tokenizer()
    words: set[str] = set(BASE_WORDS)
    for text in texts:
        # the image token and "</s>" may appear in training text: they are added tokens, not words.
        for special in (IMAGE, *SPECIALS):
            text = text.replace(special, " ")
        words.update(piece for piece, _ in pre.pre_tokenize_str(text))
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for word in sorted(words):  # sorted: ids do not depend on text order or set iteration
        vocab[word] = len(vocab)

    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre
    # No decoder: the default joins tokens with a space, which is what we want ("A" decodes to "A";
    # the scorer reads the first non-space character of the first generated token).
    # Like Llama: every sequence starts with <s>; </s> is written explicitly at the end of answers.
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, 2)]
    )
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in (*SPECIALS, IMAGE)])

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token=UNK,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        extra_special_tokens={"image_token": IMAGE},  # the processor reads tokenizer.image_token
    )

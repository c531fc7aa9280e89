"""Tiny keras-hub causal LMs built from config (no preset download), for tests.

A 10-token byte-pair vocabulary over the letters a, b, c; GPT-2 pairs of a
few thousand parameters that share (or not) one preprocessor.
"""

import keras
import keras_hub

VOCABULARY = {
    "<|endoftext|>": 0, "a": 1, "b": 2, "c": 3, "Ġ": 4,
    "Ġa": 5, "Ġb": 6, "Ġc": 7, "ab": 8, "Ġab": 9,
}
MERGES = ["a b", "Ġ a", "Ġ b", "Ġ c", "Ġa b"]
TEXTS = ["a b c", "ab c a b", "c", "b a", "a a a b c", "c c b", "ab ab", "b"]
SEQUENCE_LENGTH = 8


def tokenizer(vocabulary=VOCABULARY):
    """A `GPT2Tokenizer` over `vocabulary` (the tiny one by default)."""
    return keras_hub.models.GPT2Tokenizer(vocabulary=dict(vocabulary), merges=list(MERGES))


def preprocessor(sequence_length=SEQUENCE_LENGTH, tokens=None):
    """A `GPT2CausalLMPreprocessor` at `sequence_length`."""
    return keras_hub.models.GPT2CausalLMPreprocessor(tokens or tokenizer(), sequence_length=sequence_length)


def gpt2(layers, width, seed, preprocessor_=None, vocabulary_size=10, max_sequence_length=16):
    """A GPT-2 `CausalLM` with `layers` blocks of width `width`."""
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=vocabulary_size, num_layers=layers, num_heads=2, hidden_dim=width,
        intermediate_dim=2 * width, max_sequence_length=max_sequence_length,
    )
    return keras_hub.models.GPT2CausalLM(backbone, preprocessor_)


def pair(shared=True):
    """`(teacher, student)`: a 2-block teacher and a 1-block student, with one
    shared preprocessor or two equal ones."""
    first = preprocessor()
    return gpt2(2, 16, 0, first), gpt2(1, 8, 1, first if shared else preprocessor())

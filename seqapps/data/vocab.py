"""Vocabularies and the Keras layers that turn strings into token ids.

One convention everywhere: a vocabulary is the full id table, a list whose
item i is the token of id i, with id 0 = "" (padding, the mask value) and
id 1 = "[UNK]" (out of vocabulary). `TextVectorization.get_vocabulary()`
returns lists of this form and every builder here accepts them, so a saved
vocabulary restores the same layer.

Vocabularies are counted by us rather than with `adapt()`: `adapt()` has no
minimum count and breaks frequency ties arbitrarily; ours breaks ties by the
token itself, so a vocabulary is the same on every machine.

The standardize functions are registered with Keras, so a model holding the
layer saves to and loads from `.keras` files (with `seqapps.data` imported),
and they are pure `tf.strings` ops, so the layer traces into a SavedModel
signature that takes raw strings.
"""

import collections
import json

import keras
import tensorflow as tf

PAD = ""
OOV = "[UNK]"
SPECIAL_TOKENS = (PAD, OOV)


@keras.saving.register_keras_serializable(package="seqapps")
def lower_text(text):
    # Keras' built-in "lower" lowercases ASCII only; German and Spanish need
    # the Unicode-aware version.
    return tf.strings.lower(text, encoding="utf-8")


@keras.saving.register_keras_serializable(package="seqapps")
def split_punctuation_text(text):
    # Spaces around every character that is not a letter, digit, combining
    # mark or space, so whitespace splitting makes punctuation its own token:
    # raw "near many bushes." -> "near many bushes .", like the tokenized sets.
    return tf.strings.regex_replace(text, r"([^\pL\pN\pM\s])", r" \1 ")


@keras.saving.register_keras_serializable(package="seqapps")
def lower_and_split_punctuation_text(text):
    return split_punctuation_text(lower_text(text))


@keras.saving.register_keras_serializable(package="seqapps")
def treebank_text(text):
    # Raw text tokenized the way the Penn Treebank tokenizes (as SST is): lowercased, then
    # punctuation split off, except apostrophes, hyphens and backticks, which belong to
    # tokens ("re-imagining", "-lrb-", "``", "'s"); then the clitics split from their word:
    # "doesn't" -> "does n't", "it's" -> "it 's". Already tokenized text keeps its tokens.
    text = tf.strings.regex_replace(lower_text(text), r"([^\pL\pN\pM\s'`-])", r" \1 ")
    text = tf.strings.regex_replace(text, r"(\pL)(n't)\b", r"\1 \2")
    return tf.strings.regex_replace(text, r"(\pL)('(?:s|re|ve|ll|d|m))\b", r"\1 \2")


def resolve_standardize(standardize=None, lowercase=True):
    """Returns the standardize callable (or None) for the given options.

    `standardize=None` is the default for already tokenized text: lowercase
    when `lowercase`, else nothing. `"split_punctuation"` is for raw text:
    punctuation split off (and lowercased when `lowercase`). A callable is
    used as is. `"lower"` is accepted for Keras familiarity and means the
    Unicode-aware `lower_text`. `"treebank"`: raw English split the Penn
    Treebank way (`treebank_text`; always lowercased).
    """
    if callable(standardize):
        return standardize
    if standardize is None:
        return lower_text if lowercase else None
    if standardize == "lower":
        return lower_text
    if standardize == "split_punctuation":
        return lower_and_split_punctuation_text if lowercase else split_punctuation_text
    if standardize == "lower_and_split_punctuation":
        return lower_and_split_punctuation_text
    if standardize == "treebank":
        return treebank_text
    raise ValueError(
        "standardize must be None, 'lower', 'split_punctuation', "
        f"'lower_and_split_punctuation', 'treebank' or a callable; got {standardize!r}."
    )


def count_tokens(texts, standardize=None, batch_size=4096):
    """Counts whitespace tokens after `standardize`, with the layer's own ops."""
    texts = list(texts)
    counts = collections.Counter()
    if not texts:
        return counts

    def tokenize(batch):
        if standardize is not None:
            batch = standardize(batch)
        return tf.strings.split(batch).flat_values

    dataset = tf.data.Dataset.from_tensor_slices(texts).batch(batch_size)
    for tokens in dataset.map(tokenize):
        counts.update(tokens.numpy())
    return collections.Counter({t.decode("utf-8"): c for t, c in counts.items()})


def vocabulary_from_counts(counts, *, min_count=1, max_tokens=None):
    """Full id table from token counts: most frequent first, ties by token.

    `max_tokens` counts the two special tokens, as in Keras.
    """
    if max_tokens is not None and max_tokens < len(SPECIAL_TOKENS):
        raise ValueError(f"max_tokens must be at least 2; got {max_tokens}.")
    tokens = sorted(
        (t for t, c in counts.items() if c >= min_count and t not in SPECIAL_TOKENS),
        key=lambda t: (-counts[t], t),
    )
    if max_tokens is not None:
        tokens = tokens[: max_tokens - len(SPECIAL_TOKENS)]
    return [*SPECIAL_TOKENS, *tokens]


def build_token_vocabulary(tokens, *, min_count=1, max_tokens=None):
    """Full id table from a token list (a word-level language model corpus)."""
    return vocabulary_from_counts(
        collections.Counter(tokens), min_count=min_count, max_tokens=max_tokens
    )


def build_char_vocabulary(text):
    """Full id table of the characters in `text`, in code-point order."""
    return [*SPECIAL_TOKENS, *sorted(set(text) - set(SPECIAL_TOKENS))]


def build_word_vectorizer(
    texts,
    *,
    max_tokens=None,
    min_count=1,
    lowercase=True,
    standardize=None,
    output_sequence_length=None,
):
    """A `TextVectorization` whose vocabulary is counted from `texts`.

    Pass the training split only. Text is standardized (see
    `resolve_standardize`) then split on whitespace; tokens seen fewer than
    `min_count` times map to "[UNK]" (id 1); id 0 is padding.
    """
    counts = count_tokens(texts, resolve_standardize(standardize, lowercase))
    vocabulary = vocabulary_from_counts(counts, min_count=min_count, max_tokens=max_tokens)
    return vectorizer_from_vocabulary(
        vocabulary,
        max_tokens=max_tokens,
        lowercase=lowercase,
        standardize=standardize,
        output_sequence_length=output_sequence_length,
    )


def vectorizer_from_vocabulary(
    vocabulary,
    *,
    max_tokens=None,
    min_count=1,
    lowercase=True,
    standardize=None,
    output_sequence_length=None,
):
    """Rebuilds the `build_word_vectorizer` layer from its vocabulary.

    Takes the same options, so one saved options dict restores the layer;
    `min_count` already shaped the vocabulary and is accepted for that.
    """
    del min_count  # applied when the vocabulary was counted
    return keras.layers.TextVectorization(
        max_tokens=max_tokens,
        standardize=resolve_standardize(standardize, lowercase),
        split="whitespace",
        output_mode="int",
        output_sequence_length=output_sequence_length,
        vocabulary=list(vocabulary),
    )


def char_vectorizer_from_vocabulary(vocabulary, *, output_sequence_length=None):
    """A `TextVectorization` mapping each character of a string to its id."""
    return keras.layers.TextVectorization(
        standardize=None,
        split="character",
        output_mode="int",
        output_sequence_length=output_sequence_length,
        vocabulary=list(vocabulary),
    )


def build_token_lookup(vocabulary, *, invert=False):
    """A `StringLookup` over `vocabulary` (token -> id, or id -> token)."""
    return keras.layers.StringLookup(
        vocabulary=list(vocabulary), mask_token=PAD, oov_token=OOV, invert=invert
    )


def save_vocabulary(vocabulary, path):
    """Writes one JSON string a line, so any token round-trips exactly."""
    # JSON escapes newlines, tabs and other control characters; the file
    # stays readable UTF-8 otherwise.
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for token in vocabulary:
            f.write(json.dumps(token, ensure_ascii=False) + "\n")


def load_vocabulary(path):
    """Reads a `save_vocabulary` file."""
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    # Split on "\n" only: JSON leaves U+2028 and friends unescaped, and
    # `str.splitlines()` would split there.
    return [json.loads(line) for line in text.split("\n") if line]

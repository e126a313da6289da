"""Tokenization, vocabularies and tf.data pipelines for translation.

Strings never enter the Keras model: the vectorizers below run in tf.data (training) and in
the export wrapper (serving), and both use the very same layers, rebuilt from the
vocabularies saved in the run folder.

Tokenization follows the Multi30k files the benchmark is quoted on (lowercased,
Moses-tokenized, with Moses' HTML escapes `&apos;` `&quot;` `&amp;`). `standardize` turns
raw text into that form and leaves already tokenized text unchanged, so one vectorizer
serves the tokenized training files and raw sentences typed by a user:

    "A man's dog, \"Rex\"."  ->  "a man &apos;s dog , &quot; rex &quot; ."

`detokenize` is the way back, for people and for sacrebleu's standard (detokenized) BLEU.
All of it is `tf.strings` ops, so it traces into the SavedModel.
"""

import re

import keras
import tensorflow as tf

from apps.translation import SUBWORD_VOCAB_SIZE  # the default pieces per language (why: there)
from seqapps.data import count_tokens, padded_batches, vectorizer_from_vocabulary, vocabulary_from_counts

START_TOKEN, END_TOKEN = "[start]", "[end]"
PAD_ID, UNK_ID, START_ID, END_ID = 0, 1, 2, 3  # ids in the target vocabulary

# Moses escapes, in the order they must be undone (&amp; last: "&amp;apos;" is "&apos;").
_ESCAPES = [("&apos;", "'"), ("&quot;", '"'), ("&lt;", "<"), ("&gt;", ">"),
            ("&#91;", "["), ("&#93;", "]"), ("&#124;", "|"), ("&amp;", "&")]
# Typographic punctuation Moses' normalize-punctuation maps to ASCII (the ".norm." files).
_NORMALIZE = [("[„“”«»]", '"'), ("[‘’‚`´]", "'"), ("[–—]", " - "), ("…", "...")]


def _unescape(text):
    for escaped, char in _ESCAPES:
        text = tf.strings.regex_replace(text, escaped, char, replace_global=True)
    return text


@keras.saving.register_keras_serializable(package="seqapps_translation")
def standardize(text):
    """Raw or Moses-tokenized text -> lowercased Moses-style tokens separated by spaces."""
    text = _unescape(tf.strings.lower(text, encoding="utf-8"))
    for pattern, replacement in _NORMALIZE:
        text = tf.strings.regex_replace(text, pattern, replacement)
    # Split off every character that is not a letter, digit, mark, space, hyphen, period or
    # apostrophe; an apostrophe starts a token ("man's" -> "man 's", Moses' English rule).
    text = tf.strings.regex_replace(text, r"([^\pL\pN\pM\s\-'.])", r" \1 ")
    # Periods: Moses keeps them inside abbreviations ("st.", "bzw.", "s.c.u.b.a.") and splits
    # the sentence's final one; mid-sentence, a period after a word of 4+ letters ends it.
    text = tf.strings.regex_replace(text, r"(\pL{4,})\.(\s)", r"\1 .\2")
    text = tf.strings.regex_replace(text, r"([^.\s])(\.+)\s*$", r"\1 \2")
    text = tf.strings.regex_replace(text, "'", " '")
    # Escape as Moses does; the escapes' own "&" and ";" come after the split above.
    text = tf.strings.regex_replace(text, "&", "&amp;")
    for escaped, char in _ESCAPES[:-1]:
        text = tf.strings.regex_replace(text, re.escape(char), escaped)
    return text


def detokenize(tokens):
    """Space-separated tokens -> readable text: "a man &apos;s dog ." -> "A man's dog."."""
    text = _unescape(tokens)
    text = tf.strings.regex_replace(text, r" ([.,!?;:%)\]}'])", r"\1")
    text = tf.strings.regex_replace(text, r"([(\[{]) ", r"\1")
    text = tf.strings.regex_replace(text, r'" ([^"]*) "', r'"\1"')  # paired double quotes
    length = tf.strings.length(text, unit="UTF8_CHAR")
    one = tf.minimum(length, 1)  # 0 for an empty string
    first = tf.strings.substr(text, one * 0, one, unit="UTF8_CHAR")
    rest = tf.strings.substr(text, one, length, unit="UTF8_CHAR")
    return tf.strings.join([tf.strings.upper(first, encoding="utf-8"), rest])


def tokenize(texts):
    """Python strings -> standardized token strings (what tokenized BLEU compares)."""
    if not texts:
        return []
    out = standardize(tf.constant(list(texts)))
    return [" ".join(t.decode("utf-8").split()) for t in out.numpy()]


def detokenize_strings(token_strings):
    if not token_strings:
        return []
    return [t.decode("utf-8") for t in detokenize(tf.constant(list(token_strings))).numpy()]


# --- vocabularies ------------------------------------------------------------------------


def build_vocabularies(pairs, *, min_count=2, max_tokens=None):
    """`(source vocabulary, target vocabulary)` counted on training pairs.

    Both start with "" (padding, id 0) and "[UNK]" (id 1); the target one continues with
    "[start]" (id 2) and "[end]" (id 3), which no standardized text can contain.
    """
    sources, targets = zip(*pairs)
    source = vocabulary_from_counts(count_tokens(sources, standardize), min_count=min_count,
                                    max_tokens=max_tokens)
    counts = count_tokens(targets, standardize)
    target = vocabulary_from_counts(counts, min_count=min_count,
                                    max_tokens=None if max_tokens is None else max_tokens - 2)
    target = target[:2] + [START_TOKEN, END_TOKEN] + target[2:]
    return source, target


def make_vectorizer(vocabulary):
    """The one string -> ids layer, for training, evaluation and the export."""
    return vectorizer_from_vocabulary(vocabulary, standardize=standardize)


# --- datasets ----------------------------------------------------------------------------


def encode_pairs(pairs, source_vectorizer, target_vectorizer, *, max_length=None):
    """`tf.data` of `((source ids, target_in), target_out)`, int32, one example each.

    target_in is `[start] y_1 .. y_n`, target_out `y_1 .. y_n [end]`. With `max_length`,
    pairs whose source or target has more tokens are dropped (training only).
    """
    sources, targets = zip(*pairs)
    dataset = tf.data.Dataset.from_tensor_slices((list(sources), list(targets)))

    def encode(source, target):
        source_ids = tf.cast(source_vectorizer(source), tf.int32)
        target_ids = tf.cast(target_vectorizer(target), tf.int32)
        target_in = tf.concat([[START_ID], target_ids], axis=0)
        target_out = tf.concat([target_ids, [END_ID]], axis=0)
        return (source_ids, target_in), target_out

    dataset = dataset.map(encode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if max_length:
        dataset = dataset.filter(
            lambda inputs, target: tf.logical_and(tf.size(inputs[0]) <= max_length,
                                                  tf.size(target) <= max_length + 1))
    return dataset


BUCKETS = [8, 11, 14, 17, 21, 26, 33]  # source lengths: Multi30k's are 4..40, median 12


def _pad_to_multiple(x, multiple):
    extra = -tf.shape(x)[1] % multiple
    return tf.pad(x, [[0, 0], [0, extra]])


def batches(pairs, source_vectorizer, target_vectorizer, batch_size, *, shuffle=False,
            max_length=None, seed=0, multiple=8):
    """Length-bucketed padded batches for `model.fit` / `evaluate`.

    Lengths are padded up to a multiple of `multiple`: a handful of distinct batch shapes
    instead of one per length pair, so the XLA-compiled RNN loops (compiled once per
    shape) and Keras' traced train step are reused instead of rebuilt.
    """
    dataset = encode_pairs(pairs, source_vectorizer, target_vectorizer, max_length=max_length)
    dataset = padded_batches(dataset, batch_size, bucket_boundaries=BUCKETS if shuffle else None,
                             shuffle_buffer=len(pairs) if shuffle else None, seed=seed)
    if multiple > 1:
        dataset = dataset.map(lambda inputs, target: (
            (_pad_to_multiple(inputs[0], multiple), _pad_to_multiple(inputs[1], multiple)),
            _pad_to_multiple(target, multiple)))
    return dataset



# --- subword vocabularies (`train --vocab subword`) --------------------------------------
#
# A SentencePiece model per language, learned at `train` time on the raw cased training
# text and saved in the run folder (`subword.source.model`, `subword.target.model`); every
# later verb reads it back unchanged. Tokenizing and detokenizing are tensorflow-text's
# `SentencepieceTokenizer` ops, in tf.data and in the translator's graph (so an export made
# from such a run loads only after `import tensorflow_text`, which registers the ops).
# Byte fallback: a character the training text never had becomes its UTF-8 bytes, never
# <unk>. Ids 0-3 are padding, <unk>, <s>, </s>: PAD_ID, UNK_ID, START_ID, END_ID above.

SUBWORD_MODELS = {"source": "subword.source.model", "target": "subword.target.model"}



def subword_standardize(text):
    """What SentencePiece reads: runs of ASCII whitespace become one space, trimmed. Nothing
    else changes (no lowercasing, no Unicode normalization), so detokenizing gives back
    exactly this string (U+2581, SentencePiece's word mark, aside: it reads as a space; and
    the noncharacter pair of `train_subword_model`'s one rule)."""
    return tf.strings.strip(tf.strings.regex_replace(text, r"[ \t\n\r\f\v]+", " "))


def train_subword_model(texts, vocab_size=SUBWORD_VOCAB_SIZE, model_type="unigram"):
    """A SentencePiece model (its serialized bytes) learned on `texts` (Python strings).

    `vocab_size` is an upper bound: small training sets get fewer pieces. The 256 byte
    pieces (byte fallback) and the 4 special ids count towards it.
    """
    import io

    import sentencepiece as spm

    import os
    import tempfile

    texts = [t.decode("utf-8") for t in subword_standardize(tf.constant(list(texts))).numpy()]
    writer = io.BytesIO()
    # No normalization. Not SentencePiece's "identity" rule: a model with an empty character
    # map logs "precompiled_charsmap is empty" each time the op loads it. One rule instead
    # that real text never meets: the noncharacter pair U+10FFFD U+10FFFC -> U+E000.
    with tempfile.TemporaryDirectory() as folder:
        rules = os.path.join(folder, "rules.tsv")
        with open(rules, "w") as f:
            f.write("10FFFD 10FFFC\tE000\n")
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter([t for t in texts if t]), model_writer=writer,
            vocab_size=int(vocab_size), model_type=model_type, character_coverage=1.0,
            byte_fallback=True, normalization_rule_tsv=rules, remove_extra_whitespaces=False,
            split_digits=True, hard_vocab_limit=False, pad_id=PAD_ID, unk_id=UNK_ID,
            bos_id=START_ID, eos_id=END_ID, num_threads=1, minloglevel=2)
    return writer.getvalue()


class _ModelOpWhereUsed:
    """Stands in for `SentencepieceTokenizer`'s model resource (see `SubwordVectorizer`)."""

    def __init__(self, model_proto):
        self._model_proto = model_proto

    @property
    def resource_handle(self):
        from tensorflow_text.python.ops import sentencepiece_tokenizer

        return sentencepiece_tokenizer.gen_sentencepiece_tokenizer.sentencepiece_op(
            model=self._model_proto)


class SubwordVectorizer(tf.Module):
    """Strings -> padded SentencePiece ids (0 = padding), and ids -> strings, in the graph.

    Called like the word path's `TextVectorization`: a scalar string gives `[T]` ids, a
    `[B]` batch `[B, T]`. `get_vocabulary()` lists the pieces by id.
    """

    def __init__(self, model_proto, name=None):
        super().__init__(name=name)
        import tensorflow_text as tft

        self.model_proto = bytes(model_proto)
        self.tokenizer = tft.SentencepieceTokenizer(model=self.model_proto, out_type=tf.int32)
        # tf-text's model resource is owned by the kernel that made it, and
        # `tf.random.set_seed` (so `keras.utils.set_random_seed`, and keras-tuner's
        # `clear_session` before every trial) clears the kernel cache, destroying it: the
        # tokenizer then fails with "Resource .../SentencepieceOp does not exist". So the
        # model op is created where it is used (in each graph, or eagerly per call), from
        # the proto, which the traced graphs and the SavedModel carry.
        self.tokenizer._model_resource = _ModelOpWhereUsed(self.model_proto)
        self._pieces = None

    def __call__(self, text):
        ids = self.tokenizer.tokenize(subword_standardize(text))
        return ids.to_tensor(default_value=PAD_ID) if isinstance(ids, tf.RaggedTensor) else ids

    def tokenize(self, text):
        """Ragged ids, for tests and for counting."""
        return self.tokenizer.tokenize(subword_standardize(text))

    def detokenize(self, ids):
        """`[B, T]` ragged (or a list of lists) ids -> `[B]` strings."""
        return self.tokenizer.detokenize(ids)

    def get_vocabulary(self):
        if self._pieces is None:
            import sentencepiece as spm

            processor = spm.SentencePieceProcessor(model_proto=self.model_proto)
            self._pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
            self._pieces[PAD_ID] = ""  # as the word vocabularies: "" is padding
        return list(self._pieces)

    def vocabulary_size(self):
        return len(self.get_vocabulary())


def python_subword_tokenize(model_proto, texts):
    """The same tokenization by the `sentencepiece` Python package (the reference the
    in-graph one is tested against): ids per text, after `subword_standardize`."""
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_proto=bytes(model_proto))
    space = " \t\n\r\f\v"
    return [processor.encode(re.sub(f"[{space}]+", " ", t).strip(space)) for t in texts]

"""Subword vocabularies: SentencePiece learned in Python, applied in the graph by tensorflow-text.

A model is learned at `train` time on the training text and saved in the run folder; every
later verb reads it back unchanged. Tokenizing and detokenizing are tensorflow-text's
`SentencepieceTokenizer` ops, in tf.data and in the export's graph, so an export that holds
one loads only after `import tensorflow_text` (which registers the ops).
Byte fallback: a character the training text never had becomes its UTF-8 bytes, never
<unk>. Ids 0-3 are padding, <unk>, <s>, </s> (PAD_ID, UNK_ID, START_ID, END_ID), the same
ids as the word vocabularies' padding (0) and [UNK] (1), so the models need not know which
vocabulary they read.
"""

import re

import tensorflow as tf

PAD_ID, UNK_ID, START_ID, END_ID = 0, 1, 2, 3


def subword_standardize(text):
    """What SentencePiece reads: runs of ASCII whitespace become one space, trimmed. Nothing
    else changes (no lowercasing, no Unicode normalization), so detokenizing gives back
    exactly this string (U+2581, SentencePiece's word mark, aside: it reads as a space; and
    the noncharacter pair of `train_subword_model`'s one rule)."""
    return tf.strings.strip(tf.strings.regex_replace(text, r"[ \t\n\r\f\v]+", " "))


def train_subword_model(texts, vocab_size, model_type="unigram", standardize=None):
    """A SentencePiece model (its serialized bytes) learned on `texts` (Python strings),
    each first passed through `standardize` (a `tf.strings` function, or None).

    `vocab_size` is an upper bound: small training sets get fewer pieces. The 256 byte
    pieces (byte fallback) and the 4 special ids count towards it.
    """
    import io
    import os
    import tempfile

    import sentencepiece as spm

    strings = tf.constant(list(texts), dtype=tf.string)
    if standardize is not None:
        strings = standardize(strings)
    texts = [t.decode("utf-8") for t in subword_standardize(strings).numpy()]
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
    `[B]` batch `[B, T]`. `get_vocabulary()` lists the pieces by id. `standardize` (a
    `tf.strings` function, or None) runs first, as when the model was learned.
    """

    def __init__(self, model_proto, standardize=None, name=None):
        super().__init__(name=name)
        import tensorflow_text as tft

        self.model_proto = bytes(model_proto)
        self.standardize = standardize
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
        ids = self.tokenize(text)
        return ids.to_tensor(default_value=PAD_ID) if isinstance(ids, tf.RaggedTensor) else ids

    def tokenize(self, text):
        """Ragged ids, for tests and for counting."""
        if self.standardize is not None:
            text = self.standardize(text)
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

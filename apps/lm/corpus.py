"""Corpus -> ids, and the vocabulary conventions of the language-model app.

A vocabulary is seqapps' full id table: id 0 = "" (padding, never a real token), id 1 =
"[UNK]", then the tokens, most frequent first (words) or in code-point order (characters).

Three ids have a role:
  * unk_id: where unknown tokens go. PTB has its own "<unk>" token (the model learned it),
    so unknown words map there when the corpus has one; otherwise to "[UNK]" (id 1).
  * boundary_id: the token the text is assumed to follow, fed before a prompt or a scored
    sentence: "<eos>" for words (every line of a word corpus ends with it, so it is where
    sentences start), "\\n" for characters when the corpus has one.
  * end_id: appended when scoring a whole sentence at word level ("<eos>"); none for chars.

Corpora are converted to ids here with a Python dict (strings never enter the Keras model);
prompts and sentences are converted by the TF ops of `apps.lm.serving`, the same ops the
export runs.
"""

import collections
import dataclasses
import json
import pathlib

import numpy as np

from seqapps.data import build_char_vocabulary, build_token_vocabulary, load_language_model
from seqapps.data import load_vocabulary, save_vocabulary

VOCAB_FILE = "vocab.txt"
CODEC_FILE = "codec.json"
WORD_BOUNDARY = "<eos>"
CORPUS_UNK = "<unk>"


@dataclasses.dataclass
class Codec:
    vocabulary: list  # id -> token
    level: str  # "word" or "char"
    lowercase: bool = False  # words: lowercase prompts (the corpus was all lowercase)

    def __post_init__(self):
        self.index = {token: i for i, token in enumerate(self.vocabulary)}

    @property
    def vocab_size(self):
        return len(self.vocabulary)

    @property
    def unk_id(self):
        return self.index.get(CORPUS_UNK, 1) if self.level == "word" else 1

    @property
    def boundary_id(self):
        token = WORD_BOUNDARY if self.level == "word" else "\n"
        if token in self.index:
            return self.index[token]
        return 2 if self.vocab_size > 2 else 1  # the most frequent (word) / first (char) token

    @property
    def end_id(self):
        return self.index.get(WORD_BOUNDARY) if self.level == "word" else None

    @property
    def separator(self):
        return " " if self.level == "word" else ""

    def encode(self, tokens):
        """Token list -> int32 ids (unknown tokens -> unk_id)."""
        unk = self.unk_id
        get = self.index.get
        return np.fromiter((get(t, unk) for t in tokens), dtype=np.int32, count=len(tokens))

    def tokenize(self, text):
        """Python-side tokenization of a prompt (the export uses the same rule in TF ops)."""
        if self.level == "char":
            return list(text)
        return (text.lower() if self.lowercase else text).split()

    def decode(self, ids):
        return self.separator.join(self.vocabulary[i] for i in ids if i > 0)

    def save(self, folder):
        folder = pathlib.Path(folder)
        save_vocabulary(self.vocabulary, folder / VOCAB_FILE)
        (folder / CODEC_FILE).write_text(json.dumps({"level": self.level, "lowercase": self.lowercase}) + "\n")

    @classmethod
    def load(cls, folder):
        folder = pathlib.Path(folder)
        options = json.loads((folder / CODEC_FILE).read_text())
        return cls(load_vocabulary(folder / VOCAB_FILE), **options)


def build_codec(train_tokens, level, *, min_count=1, max_vocab=None):
    """The vocabulary of the training split (words by frequency, characters sorted)."""
    if level == "char":
        vocabulary = build_char_vocabulary("".join(train_tokens))
        return Codec(vocabulary, "char")
    vocabulary = build_token_vocabulary(train_tokens, min_count=min_count, max_tokens=max_vocab)
    counts = collections.Counter(train_tokens)
    lowercase = all(t == t.lower() for t in counts)
    return Codec(vocabulary, "word", lowercase=lowercase)


@dataclasses.dataclass
class EncodedCorpus:
    codec: Codec
    train: np.ndarray
    validation: np.ndarray
    test: object  # np.ndarray, or None: the corpus has no test split of its own
    name: str

    @property
    def has_test(self):
        return self.test is not None

    def split(self, name):
        if name == "test" and self.test is None:
            raise ValueError(no_test_message(self.name))
        return {"train": self.train, "validation": self.validation, "valid": self.validation, "test": self.test}[name]


# How much of a corpus without split files is held out (see load_corpus).
BUNDLED_ONE_FILE = {"tinyshakespeare"}
HELD_OUT = {"validation_fraction": 0.05, "test_fraction": 0.05}


def no_test_message(name):
    if str(name).lower() in BUNDLED_ONE_FILE:
        return (f"{name} has no test split: its held-out last 10 % is the validation split (nanoGPT's cut, "
                "so its figure compares with nanoGPT's), which also chooses the best epoch")
    return f"{name} has no test split of its own (no test file): its validation split chooses the best epoch"


def load_corpus(data="ptb", *, level=None, min_count=1, max_vocab=None, codec=None, encoding=None):
    """Loads a corpus (bundled name or path) and encodes its splits.

    Split files are used as they are. One text file (or a folder with only a training file)
    is cut into train (first 90 %), validation (next 5 %) and test (last 5 %), so the test
    figure is not the one that chose the model. The bundled tiny-shakespeare keeps
    nanoGPT's 90/10 cut and has no test split; nor has a folder without a test file:
    `test` is then None (`has_test` False) and the reports say so.
    A given `codec` (a trained run's) is used as is; otherwise one is built from train.
    """
    held_out = {} if str(data).lower() in BUNDLED_ONE_FILE else HELD_OUT
    raw = load_language_model(data, level=level, encoding=encoding or "utf-8", **held_out)
    if codec is None:
        codec = build_codec(raw.train, raw.level, min_count=min_count, max_vocab=max_vocab)
    elif codec.level != raw.level:
        raise ValueError(f"the run is {codec.level} level but --data {data} loads as {raw.level} level; pass --level {codec.level}")
    test = None if raw.test is raw.validation else codec.encode(raw.test)  # the same list: nothing else held out
    return EncodedCorpus(codec, codec.encode(raw.train), codec.encode(raw.validation), test, raw.name)


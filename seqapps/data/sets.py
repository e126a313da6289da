"""Named data sets (bundled with the package) and `--data PATH` resolution.

Each loader takes a bundled set's name or a path, and returns a dataclass of
plain Python lists split into train / validation / test, so the apps decide
how to tokenize and batch. Splits that a data set does not ship are carved
deterministically from `seed`, so a run is reproducible from its arguments.
"""

import dataclasses
import re
from pathlib import Path

import numpy as np
import tensorflow as tf

from seqapps.data.errors import DataError, FoldError  # noqa: F401  (FoldError: for the apps)

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"

SPLITS = ("train", "validation", "test")
# File-name words that mark a split: `stsa.binary.dev`, `ptb.valid.txt`,
# `train.tsv`, `test_2016_flickr.en.gz`.
_SPLIT_WORDS = {
    "train": "train",
    "dev": "validation",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "test": "test",

}


@dataclasses.dataclass
class TextClassificationData:
    train: list  # [(text, label)]
    validation: list
    test: list
    label_names: list  # label_names[label] names the class
    name: str

    @property
    def num_classes(self):
        return len(self.label_names)


@dataclasses.dataclass
class LanguageModelData:
    train: list  # tokens: words (with "<eos>" ending each line) or characters
    validation: list
    test: list
    level: str  # "word" or "char"
    name: str


@dataclasses.dataclass
class ParallelData:
    train: list  # [(source sentence, target sentence)]
    validation: list
    test: list
    source_lang: str
    target_lang: str
    name: str


def bundled_path(filename):
    """Path of a bundled data file (gzip-compressed, so `filename.gz`)."""
    return BUNDLED_DIR / f"{filename}.gz"


def to_dataset(examples):
    """`tf.data.Dataset` of `(text, label)` or `(source, target)` tensors."""
    if not examples:
        raise DataError("to_dataset: no examples; expected a non-empty list of pairs.")
    first, second = zip(*examples)
    return tf.data.Dataset.from_tensor_slices((list(first), list(second)))


# --- splitting ---------------------------------------------------------------


def kfold_indices(n, num_folds=10, seed=0, *, data=None):
    """`num_folds` disjoint sorted index arrays covering `range(n)`, seeded.

    Too many folds for `n` raises `FoldError` naming `data` (a file or set name), which an
    app may re-raise with its option names (`FoldError.renamed`).
    """
    _check_folds(n, num_folds, data)
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(fold) for fold in np.array_split(order, num_folds)]


def stratified_kfold_indices(labels, num_folds=10, seed=0, *, data=None):
    """Like `kfold_indices`, with each class spread evenly over the folds."""
    labels = np.asarray(labels)
    _check_folds(len(labels), num_folds, data)
    rng = np.random.default_rng(seed)
    # Shuffle within each class, then deal the classes out in turn, so every
    # fold gets its share of every class and fold sizes differ by at most 1.
    order = np.concatenate(
        [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    )
    return [np.sort(order[f::num_folds]) for f in range(num_folds)]


def _check_folds(n, num_folds, data=None):
    if not 2 <= num_folds <= n:
        raise FoldError(num_examples=n, num_folds=num_folds, data=data)


def _carve_validation(indices, labels, fraction, seed):
    """Splits `indices` into (validation, train), stratified and seeded."""
    if not 0 < fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1); got {fraction}.")
    # A stream of its own, so changing the number of folds leaves the
    # validation draw independent of the fold draw.
    rng = np.random.default_rng([seed, 1])
    validation = []
    for c in np.unique(labels[indices]):
        members = rng.permutation(indices[labels[indices] == c])
        validation.append(members[: int(round(fraction * len(members)))])
    validation = np.sort(np.concatenate(validation))
    return validation, np.setdiff1d(indices, validation)


def _cross_validation_split(examples, label_names, name, fold, num_folds, seed, fraction):
    fold = 0 if fold is None else fold
    labels = np.array([label for _, label in examples])
    folds = stratified_kfold_indices(labels, num_folds, seed, data=name)
    if not 0 <= fold < num_folds:
        raise FoldError(num_examples=len(examples), num_folds=num_folds, fold=fold, data=name)
    rest = np.sort(np.concatenate(folds[:fold] + folds[fold + 1 :]))
    validation, train = _carve_validation(rest, labels, fraction, seed)
    pick = lambda indices: [examples[i] for i in indices]  # noqa: E731
    return TextClassificationData(
        pick(train), pick(validation), pick(folds[fold]), label_names, name
    )


def _split_of(path):
    """The split a file name marks ("train", "validation", "test") or None."""
    words = re.split(r"[._\-]", path.name.lower())
    return next((_SPLIT_WORDS[w] for w in words if w in _SPLIT_WORDS), None)


def _split_files(folder):
    """`{split: [files]}` for the files in `folder` whose names mark a split."""
    found = {}
    for path in sorted(folder.iterdir()):
        split = _split_of(path)
        if path.is_file() and not path.name.startswith(".") and split:
            found.setdefault(split, []).append(path)
    return found


def find_split_files(folder, expected):
    """`{split: file}` for a folder of split files; needs a training file."""
    found = _split_files(folder)
    for split, paths in found.items():
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            raise DataError(f"{folder}: several {split} files ({names}); expected one.")
    if "train" not in found:
        raise DataError(f"{folder}: no training file; expected {expected}.")
    return {split: paths[0] for split, paths in found.items()}


def _stem(path):
    """A data set name from a file name: `reviews.tsv.gz` -> `reviews`."""
    return Path(path).name.split(".")[0] or Path(path).name

"""Sentiment sets: SST-2, SST-5, MR, the treebank's phrases (bundled) and labelled files or folders."""

from pathlib import Path

import numpy as np

from seqapps.data import readers
from seqapps.data import trees
from seqapps.data.errors import DataError
from seqapps.data.sets import SPLITS
from seqapps.data.sets import TextClassificationData
from seqapps.data.sets import _carve_validation
from seqapps.data.sets import _cross_validation_split
from seqapps.data.sets import _stem
from seqapps.data.sets import bundled_path
from seqapps.data.sets import find_split_files

_BINARY = ["negative", "positive"]
SENTIMENT_LABEL_NAMES = {
    "sst2": _BINARY,
    "sst5": ["very negative", "negative", "neutral", "positive", "very positive"],
    "mr": _BINARY,
}
_FINE = SENTIMENT_LABEL_NAMES["sst5"]
SENTIMENT_LABEL_NAMES["sst2-phrases"] = _BINARY
SENTIMENT_LABEL_NAMES["sst5-phrases"] = _FINE
_SST_PREFIXES = {"sst2": "stsa.binary", "sst5": "stsa.fine"}
TREE_FILES = {s: f"sst-trees.{s}.txt" for s in ("train", "dev", "test")}


def binary_label(label):
    """A treebank label 0-4 as SST-2's class: 0-1 negative (0), 3-4 positive (1), 2 None."""
    return None if label == 2 else int(label > 2)


def tree_examples(examples, binary):
    """(text, 0-4) pairs as the set's classes: unchanged, or binary with neutral dropped."""
    if not binary:
        return list(examples)
    return [(t, binary_label(y)) for t, y in examples if y != 2]


def load_sentiment_trees(paths, *, binary, name, phrases=True, encoding=None):
    """Train on the labelled phrases of the train trees, validate and test on whole sentences.

    `paths`: `{"train": path, "validation": path, "test": path}` of tree files. `phrases`:
    every distinct labelled phrase of the train trees (the published SST protocol), else
    only their roots (the sentences). `binary`: neutral (2) dropped, 0-1 negative, 3-4
    positive (about 77k train phrases; all five labels: about 159k).
    """
    encoding = encoding or "utf-8"
    train = (trees.read_tree_phrases(paths["train"], encoding) if phrases
             else trees.read_tree_sentences(paths["train"], encoding))
    splits = {"train": tree_examples(train, binary)}
    for split in ("validation", "test"):
        splits[split] = tree_examples(trees.read_tree_sentences(paths[split], encoding), binary)
    return TextClassificationData(
        splits["train"], splits["validation"], splits["test"], _BINARY if binary else _FINE, name
    )


def is_tree_file(path, encoding=None):
    """True when the file's first non-blank character is '(' (the treebank's format)."""
    try:
        path = readers.resolve_path(path, trees.TREES)
        head = readers._decompress(path.read_bytes(), path)[:4096]
    except DataError:
        return False
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"(")


def _tree_folder_paths(folder):
    try:
        files = find_split_files(folder, "split files")
    except DataError:
        return None  # the caller's own search names what it expected
    if not is_tree_file(files["train"]):
        return None
    missing = [s for s in ("validation", "test") if s not in files]
    if missing:
        raise DataError(f"{folder}: a tree folder needs train, dev and test files; no {' or '.join(missing)} file.")
    return files


def load_sentiment(
    name_or_path="sst2",
    *,
    fold=None,
    num_folds=10,
    seed=0,
    validation_fraction=0.1,
    encoding=None,
):
    """Loads a labelled-sentence data set.

    Args:
        name_or_path: "sst2", "sst5", "mr", "sst2-phrases", "sst5-phrases" (bundled), or a path:
            - a folder of treebank files (`train.txt` / `dev.txt` / `test.txt`, one tree a
              line, as the `*-phrases` sets): five classes, trained on every labelled phrase;
            - a folder with `rt-polarity.pos` / `rt-polarity.neg` (MR format);
            - a folder with split files (`*.train` / `*.dev` / `*.test`,
              `train.*` / `dev.*` / `test.*`, `valid` or `val` for dev),
              labels numbered together over the splits; without a dev file
              validation is carved from train, without a test file the
              files are pooled and cross-validated as below;
            - one labelled file (`LABEL sentence`, `label<TAB>text`, CSV).
        fold: for sets without a test split (MR, a single file): which of
            `num_folds` stratified seeded folds is the test set (None = 0).
            Validation is then `validation_fraction` of the rest, stratified.
        encoding: of the files; default UTF-8, Latin-1 for MR format.

    Returns:
        `TextClassificationData`. SST-2 has 6920 / 872 / 1821 examples.
    """
    key = str(name_or_path).lower()
    if key in ("sst2-phrases", "sst5-phrases"):
        _reject_fold(fold, key)
        paths = {"train": bundled_path(TREE_FILES["train"]), "validation": bundled_path(TREE_FILES["dev"]),
                 "test": bundled_path(TREE_FILES["test"])}
        data = load_sentiment_trees(paths, binary=key == "sst2-phrases", name=key, encoding=encoding)
    elif key in SENTIMENT_LABEL_NAMES:
        label_names = SENTIMENT_LABEL_NAMES[key]
        if key == "mr":
            examples = readers.read_polarity_pair(
                bundled_path("rt-polarity.pos"),
                bundled_path("rt-polarity.neg"),
                encoding or "latin-1",
            )
            data = _cross_validation_split(
                examples, label_names, key, fold, num_folds, seed, validation_fraction
            )
        else:
            _reject_fold(fold, key)
            prefix = _SST_PREFIXES[key]
            splits = [
                readers.read_labelled_sentences(bundled_path(f"{prefix}.{s}"), encoding or "utf-8")
                for s in ("train", "dev", "test")
            ]
            data = TextClassificationData(*splits, label_names, key)
    else:
        path = Path(name_or_path)
        if path.is_dir():
            data = _sentiment_folder(path, fold, num_folds, seed, validation_fraction, encoding)
        else:
            if not path.exists() and not path.with_name(path.name + ".gz").exists():
                raise DataError.missing(
                    path,
                    f"one of the bundled sets {sorted(SENTIMENT_LABEL_NAMES)}, a folder "
                    f"of split files, or a file with {readers.LABELLED_SENTENCES}",
                )
            examples, label_names = readers.read_labelled_file(path, encoding or "utf-8")
            data = _cross_validation_split(
                examples, label_names, _stem(path), fold, num_folds, seed, validation_fraction
            )
    _check_classification(data)
    return data


def polarity_pair(folder):
    """`(NAME.pos, NAME.neg)` in a folder (rt-polarity.pos/.neg or any other NAME), or None.

    A `.pos` without its `.neg` (or the reverse), or several pairs, is a clear error.
    """
    def stem(path):
        name = path.name[:-3] if path.name.endswith(".gz") else path.name
        return name.rsplit(".", 1) if "." in name else (name, "")

    found = {}
    for path in sorted(folder.iterdir()):
        base, ext = stem(path)
        if path.is_file() and ext in ("pos", "neg") and not path.name.startswith("."):
            found.setdefault(base, {})[ext] = path
    if not found:
        return None
    if len(found) > 1:
        raise DataError(f"{folder}: several NAME.pos / NAME.neg pairs ({', '.join(sorted(found))}); expected one.")
    (base, pair), = found.items()
    for ext, other in (("pos", "neg"), ("neg", "pos")):
        if ext not in pair:
            raise DataError(f"{pair[other]}: no {base}.{ext} beside it; expected a {base}.pos / {base}.neg pair.")
    return pair["pos"], pair["neg"]


def _sentiment_folder(folder, fold, num_folds, seed, fraction, encoding):
    pair = polarity_pair(folder)
    if pair:
        examples = readers.read_polarity_pair(*pair, encoding or "latin-1")
        return _cross_validation_split(
            examples, _BINARY, folder.name, fold, num_folds, seed, fraction
        )
    tree_files = _tree_folder_paths(folder)
    if tree_files:
        _reject_fold(fold, folder)
        return load_sentiment_trees(tree_files, binary=False, name=folder.name, encoding=encoding)
    expected = ("split files such as 'x.train' / 'x.dev' / 'x.test', treebank files "
                "'train.txt' / 'dev.txt' / 'test.txt', or a NAME.pos / NAME.neg pair")
    files = find_split_files(folder, expected)
    raw = {s: readers.read_raw_labelled(p, encoding or "utf-8") for s, p in files.items()}
    # Number the labels over all splits at once, so they agree between files.
    flat = [label for split in raw.values() for _, label in split]
    labels, label_names = readers.index_labels(flat)
    labels = iter(labels)
    splits = {s: [(text, next(labels)) for text, _ in ex] for s, ex in raw.items()}
    if "test" not in splits:
        pooled = [ex for s in SPLITS for ex in splits.get(s, [])]
        return _cross_validation_split(
            pooled, label_names, folder.name, fold, num_folds, seed, fraction
        )
    _reject_fold(fold, folder)
    if "validation" not in splits:
        train = splits["train"]
        labels = np.array([label for _, label in train])
        validation, rest = _carve_validation(np.arange(len(train)), labels, fraction, seed)
        splits["validation"] = [train[i] for i in validation]
        splits["train"] = [train[i] for i in rest]
    return TextClassificationData(
        splits["train"], splits["validation"], splits["test"], label_names, folder.name
    )


def _reject_fold(fold, name):
    if fold is not None:
        raise ValueError(f"{name} has a fixed test split; fold must be None, got {fold}.")


def _check_classification(data):
    for split in SPLITS:
        examples = getattr(data, split)
        if not examples:
            raise DataError(f"{data.name}: the {split} split is empty; expected examples.")
        labels = sorted({label for _, label in examples})
        if len(labels) < 2:
            raise DataError(
                f"{data.name}: every example of the {split} split has label "
                f"{labels[0]}; a classifier needs at least two classes."
            )
        if labels[0] < 0 or labels[-1] >= len(data.label_names):
            raise DataError(
                f"{data.name}: {split} labels {labels} fall outside 0..{len(data.label_names) - 1}."
            )



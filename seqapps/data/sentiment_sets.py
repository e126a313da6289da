"""Sentiment sets: SST-2, SST-5, MR (bundled) and labelled files or folders."""

from pathlib import Path

import numpy as np

from seqapps.data import readers
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
_SST_PREFIXES = {"sst2": "stsa.binary", "sst5": "stsa.fine"}


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
        name_or_path: "sst2", "sst5", "mr" (bundled), or a path:
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
    if key in SENTIMENT_LABEL_NAMES:
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


def _sentiment_folder(folder, fold, num_folds, seed, fraction, encoding):
    pos, neg = folder / "rt-polarity.pos", folder / "rt-polarity.neg"
    if any(p.exists() or p.with_name(p.name + ".gz").exists() for p in (pos, neg)):
        examples = readers.read_polarity_pair(pos, neg, encoding or "latin-1")
        return _cross_validation_split(
            examples, _BINARY, folder.name, fold, num_folds, seed, fraction
        )
    expected = "split files such as 'x.train' / 'x.dev' / 'x.test', or rt-polarity.pos/.neg"
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



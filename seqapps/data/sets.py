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

from seqapps.data import readers
from seqapps.data.errors import DataError

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

_BINARY = ["negative", "positive"]
SENTIMENT_LABEL_NAMES = {
    "sst2": _BINARY,
    "sst5": ["very negative", "negative", "neutral", "positive", "very positive"],
    "mr": _BINARY,
}
_SST_PREFIXES = {"sst2": "stsa.binary", "sst5": "stsa.fine"}
_LANGUAGE_MODEL_SETS = {"ptb", "tinyshakespeare"}
_MULTI30K_STEMS = {"train": "train", "validation": "val", "test": "test_2016_flickr"}


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


def kfold_indices(n, num_folds=10, seed=0):
    """`num_folds` disjoint sorted index arrays covering `range(n)`, seeded."""
    _check_folds(n, num_folds)
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(fold) for fold in np.array_split(order, num_folds)]


def stratified_kfold_indices(labels, num_folds=10, seed=0):
    """Like `kfold_indices`, with each class spread evenly over the folds."""
    labels = np.asarray(labels)
    _check_folds(len(labels), num_folds)
    rng = np.random.default_rng(seed)
    # Shuffle within each class, then deal the classes out in turn, so every
    # fold gets its share of every class and fold sizes differ by at most 1.
    order = np.concatenate(
        [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    )
    return [np.sort(order[f::num_folds]) for f in range(num_folds)]


def _check_folds(n, num_folds):
    if not 2 <= num_folds <= n:
        raise ValueError(f"num_folds must be in 2..{n} for {n} examples; got {num_folds}.")


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
    if not 0 <= fold < num_folds:
        raise ValueError(f"fold must be in 0..{num_folds - 1}; got {fold}.")
    labels = np.array([label for _, label in examples])
    folds = stratified_kfold_indices(labels, num_folds, seed)
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


# --- sentiment ---------------------------------------------------------------


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


# --- language models ---------------------------------------------------------


def load_language_model(
    name_or_path="ptb", *, level=None, encoding="utf-8", validation_fraction=0.1
):
    """Loads a corpus as token lists.

    Args:
        name_or_path: "ptb" (word level, its own three splits),
            "tinyshakespeare" (char level), a folder of split files
            (`*.train.txt` / `*.valid.txt` / `*.test.txt`; word level), or one
            text file (char level).
        level: "word" (whitespace tokens, "<eos>" after each line) or "char"
            (every character, newlines included); default as above.
        validation_fraction: for a corpus without a validation file, the
            last fraction of it is validation (nanoGPT's 90/10 cut); the test
            split is then the validation split, as there is nothing else held
            out.

    Returns:
        `LanguageModelData`. PTB train has 929,589 tokens.
    """
    key = str(name_or_path).lower()
    if key == "ptb":
        files = {
            s: bundled_path(f"ptb.{w}.txt") for s, w in zip(SPLITS, ("train", "valid", "test"))
        }
        return _language_model_splits(files, level or "word", encoding, validation_fraction, key)
    if key == "tinyshakespeare":
        files = {"train": bundled_path("tinyshakespeare.txt")}
        return _language_model_splits(files, level or "char", encoding, validation_fraction, key)
    path = Path(name_or_path)
    if path.is_dir():
        expected = "text files named like 'x.train.txt' / 'x.valid.txt' / 'x.test.txt'"
        files = find_split_files(path, expected)
        return _language_model_splits(
            files, level or "word", encoding, validation_fraction, path.name
        )
    if not path.exists() and not path.with_name(path.name + ".gz").exists():
        raise DataError.missing(
            path,
            f"one of the bundled sets {sorted(_LANGUAGE_MODEL_SETS)}, "
            "a folder of split files, or a text file",
        )
    files = {"train": path}
    return _language_model_splits(
        files, level or "char", encoding, validation_fraction, _stem(path)
    )


def _language_model_splits(files, level, encoding, fraction, name):
    if level not in ("word", "char"):
        raise ValueError(f"level must be 'word' or 'char'; got {level!r}.")

    def tokens(path):
        if level == "word":
            return readers.read_token_lines(path, encoding)
        return list(readers.read_text(path, encoding))

    splits = {split: tokens(path) for split, path in files.items()}
    if "validation" not in splits:
        if not 0 < fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1); got {fraction}.")
        corpus = splits["train"]
        cut = int(len(corpus) * (1 - fraction))
        splits["train"], splits["validation"] = corpus[:cut], corpus[cut:]
    splits.setdefault("test", splits["validation"])
    for split in SPLITS:
        if len(splits[split]) < 2:
            raise DataError(
                f"{files.get(split, files['train'])}: the {split} split of {name} has "
                f"{len(splits[split])} tokens; expected a corpus to model."
            )
    return LanguageModelData(splits["train"], splits["validation"], splits["test"], level, name)


# --- translation -------------------------------------------------------------


def load_translation(
    pair="en-de",
    *,
    data=None,
    tokenized=True,
    max_examples=None,
    seed=0,
    validation_fraction=0.1,
    test_fraction=0.1,
    encoding="utf-8",
    tsv_languages=None,
):
    """Loads sentence pairs for translation.

    Args:
        pair: "source-target" language codes, e.g. "en-de" or "de-en".
        data: None for the bundled Multi30k (en/de, 29000 / 1014 / 1000), or
            - a folder of Multi30k-style files `train[.*].{lang}[.gz]`,
              `val[.*].{lang}`, `test*.{lang}` (with `tok/` and `raw/`
              subfolders the one `tokenized` picks; several test sets: the
              first by name, e.g. test_2016_flickr);
            - a tab-separated pair file, plain or `.gz` or in a `.zip` (the
              Anki/Tatoeba `spa-eng.zip`);
            - "src_file,tgt_file": two line-aligned files.
            For the last two, validation and test are carved out (seeded),
            keeping all pairs that share a source sentence in one split so
            test sentences are never seen in training.
        tokenized: bundled Multi30k: the lowercased tokenized text (what
            papers report BLEU on) or the raw cased text.
        max_examples: keep at most this many pairs per split (a seeded
            subset, in file order), for quick runs.
        tsv_languages: the languages of a pair file's two columns; default
            English first and the other language of `pair` second (the Anki
            layout), or `pair`'s order when neither side is English.

    Returns:
        `ParallelData`.
    """
    source, target = _parse_pair(pair)
    if data is None:
        if {source, target} != {"en", "de"}:
            raise ValueError(
                f"the bundled Multi30k has en and de only; got pair {pair!r}. "
                "Pass `data=` (e.g. --data path/to/spa-eng.zip) for other languages."
            )
        splits = {
            split: readers.read_parallel(
                _multi30k_file(stem, source, tokenized),
                _multi30k_file(stem, target, tokenized),
                encoding,
            )
            for split, stem in _MULTI30K_STEMS.items()
        }
        name = "multi30k" if tokenized else "multi30k_raw"
    else:
        splits, name = _translation_from(data, source, target, tokenized, encoding, tsv_languages)
        if "validation" not in splits:
            splits = _carve_pairs(splits["train"], seed, validation_fraction, test_fraction)
    if max_examples is not None:
        splits = {s: _subset(pairs, max_examples, seed) for s, pairs in splits.items()}
    for split in SPLITS:
        if not splits[split]:
            raise DataError(f"{name}: the {split} split is empty; expected sentence pairs.")
    return ParallelData(splits["train"], splits["validation"], splits["test"], source, target, name)


def _parse_pair(pair):
    languages = str(pair).lower().split("-")
    if len(languages) != 2 or not all(languages) or languages[0] == languages[1]:
        raise ValueError(f"pair must look like 'en-de' (source-target); got {pair!r}.")
    return tuple(languages)


def _multi30k_file(stem, lang, tokenized):
    return bundled_path(f"{stem}.lc.norm.tok.{lang}" if tokenized else f"{stem}.{lang}")


def _translation_from(data, source, target, tokenized, encoding, tsv_languages):
    """Returns `({split: pairs}, name)` for the `data=` forms."""
    text = str(data)
    path = Path(text)
    if "," in text and not path.exists():
        src_path, tgt_path = (p.strip() for p in text.split(",", 1))
        return {"train": readers.read_parallel(src_path, tgt_path, encoding)}, _stem(Path(src_path))
    if path.is_dir():
        return _multi30k_folder(path, source, target, tokenized, encoding), path.name
    if tsv_languages is None:
        tsv_languages = (
            ("en", target if source == "en" else source)
            if "en" in (source, target)
            else (source, target)
        )
    tsv_languages = tuple(lang.lower() for lang in tsv_languages)
    if {source, target} != set(tsv_languages):
        raise ValueError(
            f"{path}: its columns hold {tsv_languages}, which do not match the pair "
            f"{source}-{target}; pass tsv_languages=."
        )
    columns = (tsv_languages.index(source), tsv_languages.index(target))
    pairs = readers.read_pair_tsv(path, encoding=encoding, columns=columns)
    return {"train": pairs}, _stem(path)


def _multi30k_folder(folder, source, target, tokenized, encoding):
    subfolder = folder / ("tok" if tokenized else "raw")
    if subfolder.is_dir():
        folder = subfolder
    found = _split_files(folder)
    splits = {}
    for split in SPLITS:
        paths = [
            _pick_language_file(found.get(split, []), lang, tokenized) for lang in (source, target)
        ]
        if None in paths:
            if split == "train":
                raise DataError(
                    f"{folder}: no training files for {source} and {target}; expected "
                    f"line-aligned files like train.{source}[.gz] and train.{target}[.gz]."
                )
            continue
        splits[split] = readers.read_parallel(*paths, encoding)
    if len(splits) == 2:  # one held-out split only: hold it out for both
        held_out = splits.get("validation") or splits.get("test")
        splits.setdefault("validation", held_out)
        splits.setdefault("test", held_out)
    return splits


def _pick_language_file(paths, lang, tokenized):
    def words(path):
        name = path.name[: -len(".gz")] if path.name.endswith(".gz") else path.name
        return name.lower().split(".")

    matches = [p for p in paths if words(p)[-1] == lang]
    preferred = [p for p in matches if ("tok" in words(p)) == tokenized]
    chosen = preferred or matches
    return chosen[0] if chosen else None


def _carve_pairs(pairs, seed, validation_fraction, test_fraction):
    """Seeded train/validation/test split that keeps each source in one split."""
    if not (
        0 < validation_fraction and 0 < test_fraction and validation_fraction + test_fraction < 1
    ):
        raise ValueError(
            "validation_fraction and test_fraction must be positive and sum below 1; "
            f"got {validation_fraction} and {test_fraction}."
        )
    # The Anki files list several translations of one English sentence; a
    # random split of pairs would put the same source in train and test.
    sources = list(dict.fromkeys(src for src, _ in pairs))
    order = np.random.default_rng(seed).permutation(len(sources))
    n_test = max(1, int(round(test_fraction * len(sources))))
    n_validation = max(1, int(round(validation_fraction * len(sources))))
    split_of = {}
    for rank, index in enumerate(order):
        split_of[sources[index]] = (
            "test" if rank < n_test else "validation" if rank < n_test + n_validation else "train"
        )
    splits = {split: [] for split in SPLITS}
    for pair in pairs:
        splits[split_of[pair[0]]].append(pair)
    return splits


def _subset(pairs, max_examples, seed):
    if len(pairs) <= max_examples:
        return pairs
    keep = np.sort(np.random.default_rng([seed, 2]).choice(len(pairs), max_examples, replace=False))
    return [pairs[i] for i in keep]


def _stem(path):
    """A data set name from a file name: `reviews.tsv.gz` -> `reviews`."""
    return Path(path).name.split(".")[0] or Path(path).name

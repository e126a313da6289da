"""Language-model corpora: PTB, tiny-shakespeare (bundled) and text files or folders."""

from pathlib import Path

from seqapps.data import readers
from seqapps.data.errors import DataError
from seqapps.data.sets import LanguageModelData
from seqapps.data.sets import SPLITS
from seqapps.data.sets import _stem
from seqapps.data.sets import bundled_path
from seqapps.data.sets import find_split_files

_LANGUAGE_MODEL_SETS = {"ptb", "tinyshakespeare"}


def load_language_model(
    name_or_path="ptb", *, level=None, encoding="utf-8", validation_fraction=0.1, test_fraction=0.0
):
    """Loads a corpus as token lists.

    Args:
        name_or_path: "ptb" (word level, its own three splits),
            "tinyshakespeare" (char level), a folder of split files
            (`*.train.txt` / `*.valid.txt` / `*.test.txt`; word level), or one
            text file (char level).
        level: "word" (whitespace tokens, "<eos>" after each line) or "char"
            (every character, newlines included); default as above.
        validation_fraction: for a corpus without a validation file, this
            fraction of it, before the test part, is validation (nanoGPT's
            90/10 cut with the default).
        test_fraction: for a corpus with neither a validation nor a test file,
            the last fraction of it is a test split of its own (e.g. 0.05 with validation_fraction
            0.05: train 90 %, validation 5 %, test 5 %). With 0 (the default)
            the test split is the validation split, as nothing else is held
            out: then there is no test figure apart from the one used for
            model selection (`seqapps.training.same_split` tells).

    Returns:
        `LanguageModelData`. PTB train has 929,589 tokens.
    """
    key = str(name_or_path).lower()
    if key == "ptb":
        files = {
            s: bundled_path(f"ptb.{w}.txt") for s, w in zip(SPLITS, ("train", "valid", "test"))
        }
        return _language_model_splits(files, level or "word", encoding, validation_fraction, test_fraction, key)
    if key == "tinyshakespeare":
        files = {"train": bundled_path("tinyshakespeare.txt")}
        return _language_model_splits(files, level or "char", encoding, validation_fraction, test_fraction, key)
    path = Path(name_or_path)
    if path.is_dir():
        expected = "text files named like 'x.train.txt' / 'x.valid.txt' / 'x.test.txt'"
        files = find_split_files(path, expected)
        return _language_model_splits(
            files, level or "word", encoding, validation_fraction, test_fraction, path.name
        )
    if not path.exists() and not path.with_name(path.name + ".gz").exists():
        raise DataError.missing(
            path,
            f"one of the bundled sets {sorted(_LANGUAGE_MODEL_SETS)}, "
            "a folder of split files, or a text file",
        )
    files = {"train": path}
    return _language_model_splits(
        files, level or "char", encoding, validation_fraction, test_fraction, _stem(path)
    )


def _language_model_splits(files, level, encoding, fraction, test_fraction, name):
    if level not in ("word", "char"):
        raise ValueError(f"level must be 'word' or 'char'; got {level!r}.")

    def tokens(path):
        if level == "word":
            return readers.read_token_lines(path, encoding)
        return list(readers.read_text(path, encoding))

    splits = {split: tokens(path) for split, path in files.items()}
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1); got {test_fraction}.")
    if "test" not in splits and "validation" not in splits and test_fraction > 0:
        corpus = splits["train"]
        cut = int(len(corpus) * (1 - test_fraction))
        splits["train"], splits["test"] = corpus[:cut], corpus[cut:]
        fraction = fraction / (1 - test_fraction)  # of what is left: a fraction of the whole
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



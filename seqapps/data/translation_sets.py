"""Parallel corpora: Multi30k (bundled), spa-eng.zip, and parallel files or folders."""

from pathlib import Path

import numpy as np

from seqapps.data import readers
from seqapps.data.errors import DataError
from seqapps.data.sets import ParallelData
from seqapps.data.sets import SPLITS
from seqapps.data.sets import _split_files
from seqapps.data.sets import _stem
from seqapps.data.sets import bundled_path

_MULTI30K_STEMS = {"train": "train", "validation": "val", "test": "test_2016_flickr"}


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

"""Parallel corpora: Multi30k (bundled), spa-eng.zip, and parallel files or folders.

Every loaded set knows its files (`TranslationData.files`): which file each split's target
side came from, whether that file is tokenized (a `tok/` folder or a `tok` word in its name,
as Multi30k's `*.lc.norm.tok.de`), and the same split's file in the other form where there
is one (`raw/` beside `tok/`, or `test.de` beside `test.lc.norm.tok.de`). Evaluation scores
against exactly those files: raw references by sacreBLEU's standard signature, tokenized
ones as tokens.
"""

import dataclasses
from pathlib import Path

import numpy as np

from seqapps.data import readers
from seqapps.data.errors import DataError
from seqapps.data.sets import ParallelData
from seqapps.data.sets import SPLITS
from seqapps.data.sets import _split_files
from seqapps.data.sets import _split_of
from seqapps.data.sets import _stem
from seqapps.data.sets import bundled_path

_MULTI30K_STEMS = {"train": "train", "validation": "val", "test": "test_2016_flickr"}


@dataclasses.dataclass
class TranslationData(ParallelData):
    """`ParallelData` with where it came from.

    `files[split]`: `{"source": path, "target": path, "tokenized": bool, "other": path or
    None}` for a split read from two files (`other`: the target file of the same split in
    the other form, raw or tokenized); `{"source": path, "target": path, "carved": True,
    "tokenized": bool}` for a split carved out of one file or pair of files.
    `bundled`: True only for the bundled Multi30k (`data=None`), whatever a folder is named.
    """

    files: dict = dataclasses.field(default_factory=dict)
    bundled: bool = False


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
        splits, files = {}, {}
        for split, stem in _MULTI30K_STEMS.items():
            paths = [_multi30k_file(stem, lang, tokenized) for lang in (source, target)]
            splits[split] = readers.read_parallel(*paths, encoding)
            files[split] = {"source": paths[0], "target": paths[1], "tokenized": tokenized,
                            "other": _multi30k_file(stem, target, not tokenized)}
        name = "multi30k" if tokenized else "multi30k_raw"
    else:
        splits, files, name = _translation_from(data, source, target, tokenized, encoding,
                                                tsv_languages)
        if "validation" not in splits:
            splits = _carve_pairs(splits["train"], seed, validation_fraction, test_fraction)
            files = {split: {**files["train"], "carved": True} for split in SPLITS}
    if max_examples is not None:
        splits = {s: _subset(pairs, max_examples, seed) for s, pairs in splits.items()}
    for split in SPLITS:
        if not splits[split]:
            raise DataError(f"{name}: the {split} split is empty; expected sentence pairs.")
    return TranslationData(splits["train"], splits["validation"], splits["test"], source, target,
                           name, files=files, bundled=data is None)


def load_test_set(pair="en-de", test=None, *, data=None, tokenized=True, encoding="utf-8"):
    """`(pairs, files)` of one test set, for `evaluate --test`.

    `test`: "SRC_FILE,TGT_FILE" (two line-aligned files), or the name of a test set in the
    data folder (`data=`; None: the bundled Multi30k), e.g. "test_2017_flickr": the files
    `test_2017_flickr[.*].{src,tgt}[.gz]` there (in its `tok/` or `raw/` subfolder, as
    `tokenized` picks, when it has them). `files` is as in `TranslationData.files`.
    """
    source, target = _parse_pair(pair)
    text = str(test)
    if "," in text and not Path(text).exists():
        src_path, tgt_path = (Path(p.strip()) for p in text.split(",", 1))
        pairs = readers.read_parallel(src_path, tgt_path, encoding)
        return pairs, {"source": src_path, "target": tgt_path,
                       "tokenized": _is_tokenized(tgt_path), "other": None}
    if data is None:
        folder = Path(bundled_path("x")).parent
    elif Path(data).is_dir():
        folder = Path(data)
    else:
        raise DataError(
            f"--test {text}: a named test set needs a data folder (the run's data is {data}); "
            "name the files instead: --test SRC_FILE,TGT_FILE.")
    order = ("tok", "raw") if tokenized else ("raw", "tok")
    folders = [folder / sub for sub in order if (folder / sub).is_dir()] + [folder]
    for where in folders:
        candidates = [p for p in sorted(where.iterdir())
                      if p.is_file() and _stem(p) == text and not p.name.startswith(".")]
        paths = [_pick_language_file(candidates, lang, tokenized) for lang in (source, target)]
        if None not in paths:
            pairs = readers.read_parallel(*paths, encoding)
            return pairs, {"source": paths[0], "target": paths[1],
                           "tokenized": _is_tokenized(paths[1]),
                           "other": _other_form(paths[1], target)}
    names = sorted({_stem(p) for where in folders for p in where.iterdir()
                    if p.is_file() and _split_of(p) == "test"})
    raise DataError(
        f"{folder}: no test set {text!r} with files for {source} and {target}; "
        f"test sets there: {', '.join(names) or 'none'} (or --test SRC_FILE,TGT_FILE).")


def _is_tokenized(path):
    """A file is tokenized if it lies in a `tok/` folder or a word of its name is `tok`."""
    path = Path(path)
    name = path.name[: -len(".gz")] if path.name.endswith(".gz") else path.name
    return path.parent.name == "tok" or "tok" in name.lower().split(".")


def _other_form(path, lang):
    """The file of the same split and language in the other form (raw <-> tokenized), or None.

    Looked for beside `path` and, for a `raw/` or `tok/` folder, in its sibling.
    """
    path = Path(path)
    tokenized = _is_tokenized(path)
    places = [path.parent]
    if path.parent.name in ("raw", "tok"):
        places.append(path.parent.parent / ("raw" if path.parent.name == "tok" else "tok"))
    for place in places:
        if not place.is_dir():
            continue
        candidates = [p for p in sorted(place.iterdir())
                      if p.is_file() and _stem(p) == _stem(path) and p != path
                      and _is_tokenized(p) != tokenized]
        chosen = _pick_language_file(candidates, lang, not tokenized)
        if chosen is not None:
            return chosen
    return None


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
        src_path, tgt_path = (Path(p.strip()) for p in text.split(",", 1))
        files = {"train": {"source": src_path, "target": tgt_path,
                           "tokenized": _is_tokenized(tgt_path)}}
        return ({"train": readers.read_parallel(src_path, tgt_path, encoding)}, files,
                _stem(src_path))
    if path.is_dir():
        splits, files = _multi30k_folder(path, source, target, tokenized, encoding)
        return splits, files, path.name
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
    return {"train": pairs}, {"train": {"source": path, "target": path, "tokenized": False}}, _stem(path)


def _multi30k_folder(folder, source, target, tokenized, encoding):
    subfolder = folder / ("tok" if tokenized else "raw")
    if subfolder.is_dir():
        folder = subfolder
    found = _split_files(folder)
    splits, files = {}, {}
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
        files[split] = {"source": paths[0], "target": paths[1],
                        "tokenized": _is_tokenized(paths[1]), "other": _other_form(paths[1], target)}
    if len(splits) == 2:  # one held-out split only: hold it out for both
        held_out = "validation" if "validation" in splits else "test"
        for split in ("validation", "test"):
            splits.setdefault(split, splits[held_out])
            files.setdefault(split, files[held_out])
    return splits, files


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

"""Named bundled sets, `--data PATH` forms, and deterministic splitting."""

import gzip
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from seqapps.data import DataError
from seqapps.data import bundled_path
from seqapps.data import kfold_indices
from seqapps.data import load_language_model
from seqapps.data import load_sentiment
from seqapps.data import load_translation
from seqapps.data import stratified_kfold_indices
from seqapps.data import to_dataset


def _sizes(data):
    return len(data.train), len(data.validation), len(data.test)


# --- bundled sets ------------------------------------------------------------


def test_sst2_sizes():
    data = load_sentiment("sst2")
    assert _sizes(data) == (6920, 872, 1821)
    assert data.label_names == ["negative", "positive"]
    assert data.train[0] == (
        "a stirring , funny and finally transporting re-imagining of beauty and the "
        "beast and 1930s horror films",
        1,
    )


def test_sst5_sizes():
    data = load_sentiment("sst5")
    assert _sizes(data) == (8544, 1101, 2210)
    assert data.num_classes == 5
    assert {label for _, label in data.train} == set(range(5))


def test_mr_folds_cover_the_corpus_once():
    tests = [load_sentiment("mr", fold=k).test for k in range(10)]
    everything = [example for fold in tests for example in fold]
    assert len(everything) == 5331 + 5331
    assert sum(label for _, label in everything) == 5331
    data = load_sentiment("mr")  # fold None = fold 0
    assert data.test == tests[0]
    assert sum(_sizes(data)) == 10662
    # Train, validation and test are disjoint (by position; MR has duplicates).
    assert len(data.validation) == 960 and len(data.test) == 1067


def test_ptb_train_token_count():
    with gzip.open(bundled_path("ptb.train.txt"), "rt", encoding="utf-8") as f:
        lines = [line for line in f if line.strip()]
    words = sum(len(line.split()) for line in lines)
    assert (words, len(lines)) == (887_521, 42_068)
    data = load_language_model("ptb")
    assert len(data.train) == words + len(lines) == 929_589
    assert (len(data.validation), len(data.test)) == (73_760, 82_430)
    assert data.level == "word" and data.train[-1] == "<eos>"


def test_tinyshakespeare_is_cut_90_10():
    data = load_language_model("tinyshakespeare")
    assert data.level == "char"
    assert len(data.train) + len(data.validation) == 1_115_394
    assert len(data.train) == int(1_115_394 * 0.9)
    assert data.test == data.validation
    assert "".join(data.train[:14]) == "First Citizen:"


@pytest.mark.parametrize("tokenized", [True, False])
def test_multi30k_sizes_and_directions(tokenized):
    en_de = load_translation("en-de", tokenized=tokenized)
    de_en = load_translation("de-en", tokenized=tokenized)
    assert _sizes(en_de) == (29000, 1014, 1000)
    assert (en_de.source_lang, en_de.target_lang) == ("en", "de")
    assert de_en.train[0] == en_de.train[0][::-1]
    first = en_de.train[0][0]
    assert (first == first.lower()) == tokenized


def test_bundled_translation_rejects_other_languages():
    with pytest.raises(ValueError, match="data="):
        load_translation("en-fr")


# --- splitting ---------------------------------------------------------------


def test_kfold_disjoint_covering_deterministic():
    folds = kfold_indices(103, num_folds=10, seed=7)
    assert sorted(np.concatenate(folds).tolist()) == list(range(103))
    assert {len(f) for f in folds} == {10, 11}
    again = kfold_indices(103, num_folds=10, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(folds, again))
    other = kfold_indices(103, num_folds=10, seed=8)
    assert not all(np.array_equal(a, b) for a, b in zip(folds, other))


def test_stratified_kfold_balances_classes():
    labels = np.array([0] * 70 + [1] * 30)
    folds = stratified_kfold_indices(labels, num_folds=10, seed=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(100))
    assert all(labels[f].sum() == 3 and len(f) == 10 for f in folds)


# --- user data ---------------------------------------------------------------


def _labelled_lines(n, classes=2):
    return "".join(f"{i % classes} sentence number {i}\n" for i in range(n))


def test_single_file_is_split_deterministically(write):
    path = write("reviews.txt.gz", _labelled_lines(200))
    data = load_sentiment(path, fold=2, seed=3)
    assert _sizes(data) == (162, 18, 20)
    assert data.name == "reviews" and data.label_names == ["0", "1"]
    texts = [t for split in (data.train, data.validation, data.test) for t, _ in split]
    assert len(set(texts)) == 200
    assert load_sentiment(path, fold=2, seed=3) == data
    assert load_sentiment(path, fold=2, seed=4).test != data.test


def test_folder_of_split_files_numbers_labels_together(write):
    write("set/x.train", "pos\tgood\nneg\tbad\npos\tfine\n")
    write("set/x.dev", "neg\tmeh\npos\tok\n")
    path = write("set/x.test", "neg\tawful\npos\tsuper\n")
    data = load_sentiment(path.parent)
    assert data.label_names == ["neg", "pos"]
    assert data.train == [("good", 1), ("bad", 0), ("fine", 1)]
    assert data.test == [("awful", 0), ("super", 1)]


def test_folder_in_mr_format(write):
    write("mr/rt-polarity.pos", "".join(f"good {i}\n" for i in range(30)), encoding="latin-1")
    path = write("mr/rt-polarity.neg", "".join(f"bad {i}\n" for i in range(30)))
    data = load_sentiment(path.parent, fold=1)
    assert sum(_sizes(data)) == 60 and data.label_names == ["negative", "positive"]


def test_single_class_split_is_an_error(write):
    path = write("one.txt", "".join(f"1 text {i}\n" for i in range(50)))
    with pytest.raises(DataError, match="at least two classes"):
        load_sentiment(path)


def test_empty_data_set_is_an_error(write):
    path = write("empty.txt", "\n\n")
    with pytest.raises(DataError, match="no examples"):
        load_sentiment(path)


def test_unknown_name_or_missing_path(tmp_path):
    with pytest.raises(DataError) as error:
        load_sentiment(tmp_path / "sst3")
    assert "sst3" in str(error.value) and "sst2" in str(error.value)


def test_language_model_from_folder_and_single_file(write):
    write("lm/corpus.train.txt", "a b c\nd e\n")
    write("lm/corpus.valid.txt", "a b\n")
    write("lm/corpus.test.txt.gz", "c\n")
    data = load_language_model(write("lm/README.md", "not a split").parent)
    assert data.level == "word"
    assert data.train == ["a", "b", "c", "<eos>", "d", "e", "<eos>"]
    assert data.test == ["c", "<eos>"]
    chars = load_language_model(write("book.txt", "abcdefghijklmnopqrst"))
    assert (chars.train, chars.validation) == (list("abcdefghijklmnopqr"), ["s", "t"])


def _pairs_zip(path, pairs):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("_about.txt", "about\n")
        archive.writestr("spa.txt", "".join(f"{en}\t{es}\tCC-BY\n" for en, es in pairs))
    return path


def test_translation_from_pair_zip_keeps_sources_in_one_split(tmp_path):
    # Every English sentence has two translations, as in the Anki files.
    pairs = [(f"sentence {i // 2}", f"frase {i}") for i in range(400)]
    path = _pairs_zip(tmp_path / "spa-eng.zip", pairs)
    data = load_translation("en-es", data=path, seed=1)
    assert (data.source_lang, data.target_lang, data.name) == ("en", "es", "spa-eng")
    assert sum(_sizes(data)) == 400 and _sizes(data) == (320, 40, 40)
    sources = [{src for src, _ in split} for split in (data.train, data.validation, data.test)]
    assert not (sources[0] & sources[1] or sources[0] & sources[2] or sources[1] & sources[2])
    reverse = load_translation("es-en", data=path, seed=1)
    assert reverse.train[0] == (pairs[0][1], pairs[0][0])
    small = load_translation("en-es", data=path, max_examples=50)
    assert _sizes(small) == (50, 40, 40)


def test_translation_from_two_files_and_folder(write):
    src = write("corpus/train.lc.norm.tok.en.gz", "".join(f"a {i}\n" for i in range(30)))
    tgt = write("corpus/train.lc.norm.tok.de.gz", "".join(f"b {i}\n" for i in range(30)))
    data = load_translation("en-de", data=f"{src},{tgt}")
    assert sum(_sizes(data)) == 30
    write("corpus/val.lc.norm.tok.en.gz", "v\n")
    write("corpus/val.lc.norm.tok.de.gz", "w\n")
    write("corpus/test_2016_flickr.lc.norm.tok.en.gz", "t\n")
    write("corpus/test_2016_flickr.lc.norm.tok.de.gz", "u\n")
    data = load_translation("de-en", data=src.parent)
    assert _sizes(data) == (30, 1, 1) and data.test == [("u", "t")]


def test_to_dataset_yields_string_and_int_tensors():
    dataset = to_dataset([("a film", 1), ("a mess", 0)])
    text, label = next(iter(dataset))
    assert text.dtype == tf.string and label.dtype == tf.int32
    assert [int(y) for _, y in dataset] == [1, 0]

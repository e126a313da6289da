"""The fold helpers' errors name the data and can be re-worded by an app."""

import pytest

from seqapps.data import DataError, kfold_indices, load_sentiment, stratified_kfold_indices
from seqapps.data.errors import FoldError


def test_too_many_folds_names_the_data_and_the_range():
    with pytest.raises(FoldError) as info:
        kfold_indices(3, num_folds=10)
    assert str(info.value) == (
        "the data: 3 examples cannot make 10 folds (each fold needs at least one); "
        "num_folds must be in 2..3; got 10."
    )
    with pytest.raises(DataError, match=r"^reviews\.tsv: 3 examples cannot make 10 folds"):
        stratified_kfold_indices([0, 1, 0], num_folds=10, data="reviews.tsv")
    with pytest.raises(FoldError, match="1 example cannot be split into folds; cross-validation needs at least 2"):
        kfold_indices(1, num_folds=2)
    assert len(kfold_indices(3, num_folds=3)) == 3


def test_an_app_renames_the_data_and_its_options():
    error = FoldError(num_examples=3, num_folds=10, data="reviews")
    renamed = error.renamed(data="/data/reviews.tsv", num_folds="--folds")
    assert isinstance(renamed, DataError) and (renamed.num_examples, renamed.num_folds) == (3, 10)
    assert str(renamed) == (
        "/data/reviews.tsv: 3 examples cannot make 10 folds (each fold needs at least one); "
        "--folds must be in 2..3; got 10."
    )
    fold = FoldError(num_examples=30, num_folds=10, fold=12).renamed(data="mr", fold="--fold")
    assert str(fold) == "mr: --fold must be in 0..9 for 10 folds; got 12."


def test_a_labelled_file_too_small_for_its_folds(write):
    path = write("tiny.txt", "1 good\n0 bad\n1 fine\n")
    with pytest.raises(FoldError, match=r"^tiny: 3 examples cannot make 10 folds.*got 10\.$"):
        load_sentiment(path)
    with pytest.raises(FoldError, match=r"^tiny: fold must be in 0\.\.2 for 3 folds; got 3\.$"):
        load_sentiment(path, fold=3, num_folds=3)

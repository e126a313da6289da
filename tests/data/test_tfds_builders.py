"""TFDS builders prepare the bundled data offline, in a temporary data_dir."""

import subprocess
import sys

import pytest

from seqapps.data import load_sentiment

tfds = pytest.importorskip("tensorflow_datasets")
import seqapps.data.tfds_builders  # noqa: E402,F401  (registers the builders)

NAMES = [
    "seqapps_sst2",
    "seqapps_sst5",
    "seqapps_mr",
    "seqapps_ptb",
    "seqapps_tinyshakespeare",
    "seqapps_multi30k",
]


def test_importing_the_data_layer_does_not_import_tfds():
    code = "import sys, seqapps.data; print('tensorflow_datasets' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_builders_are_registered_under_snake_case_names():
    for name in NAMES:
        assert tfds.builder_cls(name).name == name
    assert "de-en-raw" in tfds.builder_cls("seqapps_multi30k").builder_configs


def test_sst2_builds_and_loads_offline(tmp_path):
    splits, info = tfds.load("seqapps_sst2", data_dir=tmp_path, with_info=True)
    assert {s: info.splits[s].num_examples for s in splits} == {
        "train": 6920,
        "validation": 872,
        "test": 1821,
    }
    assert info.features["label"].names == ["negative", "positive"]
    expected = {(text, label) for text, label in load_sentiment("sst2").validation}
    loaded = {
        (example["text"].decode("utf-8"), int(example["label"]))
        for example in tfds.as_numpy(splits["validation"])
    }
    assert loaded == expected


def _sentiment_files(write, labels):
    for split in ("train", "dev", "test"):
        write(f"mine/stsa.{split}", "".join(f"{y} text {i}\n" for i, y in enumerate(labels)))


def _mr_files(write):
    write("mine/rt-polarity.pos", "".join(f"good {i}\n" for i in range(20)))
    write("mine/rt-polarity.neg", "".join(f"bad {i}\n" for i in range(20)))


def _tree_files(write):
    write("mine/train.txt", "(3 (2 not) (4 bad))\n(0 (2 so) (0 dull))\n")
    write("mine/dev.txt", "(4 (4 great) (2 fun))\n(0 (0 awful) (2 .))\n")
    write("mine/test.txt", "(1 (2 a) (1 (2 bit) (1 slow)))\n(3 (3 quite) (3 nice))\n(2 (2 so) (2 so))\n")


def _ptb_files(write):
    for split in ("train", "valid", "test"):
        write(f"mine/ptb.{split}.txt.gz", " a b \n c \n d e f \n")


def _multi30k_files(write):
    for stem in ("train", "val", "test_2016_flickr"):
        write(f"mine/{stem}.en", "a dog\na cat\na bird\n")
        write(f"mine/{stem}.de", "ein hund\neine katze\nein vogel\n")


# (builder/config, fixture, examples in the test split)
MANUAL_CASES = [
    ("seqapps_sst2", lambda write: _sentiment_files(write, [1, 0, 1]), 3),
    ("seqapps_sst5", lambda write: _sentiment_files(write, [0, 1, 2, 3, 4]), 5),
    ("seqapps_mr/fold4", _mr_files, 4),
    ("seqapps_sst2/phrases", _tree_files, 2),  # the neutral test sentence dropped
    ("seqapps_sst5/phrases", _tree_files, 3),
    ("seqapps_ptb", _ptb_files, 3),
    ("seqapps_tinyshakespeare", lambda write: write("mine/input.txt", "x" * 100), 1),
    ("seqapps_multi30k/de-en-raw", _multi30k_files, 3),
]


@pytest.mark.parametrize("name, make_files, num_test", MANUAL_CASES)
def test_manual_dir_replaces_the_bundled_files(tmp_path, write, name, make_files, num_test):
    make_files(write)
    config = tfds.download.DownloadConfig(manual_dir=str(tmp_path / "mine"))
    splits = tfds.load(
        name,
        data_dir=tmp_path / "tfds",
        download_and_prepare_kwargs={"download_config": config},
    )
    assert len(list(splits["test"])) == num_test


def test_phrase_configs_are_the_phrase_sets(tmp_path, write):
    _tree_files(write)
    config = tfds.download.DownloadConfig(manual_dir=str(tmp_path / "mine"))
    splits = tfds.load("seqapps_sst2/phrases", data_dir=tmp_path / "tfds",
                       download_and_prepare_kwargs={"download_config": config})
    train = {(e["text"].decode(), int(e["label"])) for e in tfds.as_numpy(splits["train"])}
    # every non-neutral phrase of the train trees, binary: 0-1 negative, 3-4 positive
    assert train == {("not bad", 1), ("bad", 1), ("so dull", 0), ("dull", 0)}
    assert "phrases" in tfds.builder_cls("seqapps_sst5").builder_configs

"""TensorFlow Datasets builders for the bundled data sets, offline.

Importing this module registers the builders, after which

    import seqapps.data.tfds_builders  # noqa: F401
    ds = tfds.load("seqapps_sst2", split="train", data_dir="~/tfds")

prepares the data from the files bundled with seqapps, never downloading.
Names come from the class names (`SeqappsSst2` -> `seqapps_sst2`):
seqapps_sst2 and seqapps_sst5 (configs `sentences`, the default: the
sentence-level files; `phrases`: every distinct labelled phrase of the
treebank's train trees, validation and test the whole sentences, as
`load_sentiment("sst2-phrases")`), seqapps_mr (configs fold0..fold9),
seqapps_ptb, seqapps_tinyshakespeare and seqapps_multi30k (configs en-de,
de-en, en-de-raw, de-en-raw).

Each builder reads its splits with `seqapps.data.sets`, so a TFDS split is
exactly the corresponding `load_*` split. To build from your own copy of
the files instead, point `manual_dir` at a folder: for the sentiment and
Multi30k builders, one the matching `load_*` function accepts as a path;
for PTB, `ptb.{train,valid,test}.txt`; for tiny-shakespeare, one text file.

    tfds.load("seqapps_sst2", data_dir=..., download_and_prepare_kwargs={
        "download_config": tfds.download.DownloadConfig(manual_dir=folder)})

TFDS keeps what it prepared under `data_dir`; use a fresh `data_dir` when the
source files change.
"""

import dataclasses

import tensorflow_datasets as tfds

from seqapps.data import readers
from seqapps.data import language_model_sets
from seqapps.data import sentiment_sets
from seqapps.data import sets
from seqapps.data import translation_sets
from seqapps.data.errors import DataError

_VERSION = tfds.core.Version("1.0.0")
_RELEASE_NOTES = {"1.0.0": "First release: the files bundled with seqapps."}
_MANUAL = (
    "Optional. Without a manual_dir the files bundled with seqapps are used; "
    "with one, the folder is read as the matching seqapps.data.load_* function "
    "reads a folder path."
)

_SST_CITATION = """\
@inproceedings{socher2013recursive,
  title={Recursive Deep Models for Semantic Compositionality Over a Sentiment Treebank},
  author={Socher, Richard and Perelygin, Alex and Wu, Jean and Chuang, Jason and
          Manning, Christopher D. and Ng, Andrew and Potts, Christopher},
  booktitle={EMNLP}, year={2013}}
@inproceedings{kim2014convolutional,
  title={Convolutional Neural Networks for Sentence Classification},
  author={Kim, Yoon}, booktitle={EMNLP}, year={2014}}"""
_MR_CITATION = """\
@inproceedings{pang2005seeing,
  title={Seeing stars: Exploiting class relationships for sentiment categorization
         with respect to rating scales},
  author={Pang, Bo and Lee, Lillian}, booktitle={ACL}, year={2005}}"""
_PTB_CITATION = """\
@article{marcus1993building,
  title={Building a Large Annotated Corpus of English: The Penn Treebank},
  author={Marcus, Mitchell P. and Santorini, Beatrice and Marcinkiewicz, Mary Ann},
  journal={Computational Linguistics}, year={1993}}
@phdthesis{mikolov2012statistical,
  title={Statistical Language Models Based on Neural Networks},
  author={Mikolov, Tom{\\'a}{\\v{s}}}, school={Brno University of Technology}, year={2012}}"""
_SHAKESPEARE_CITATION = """\
@misc{karpathy2015charrnn,
  author={Karpathy, Andrej}, title={char-rnn}, year={2015},
  howpublished={\\url{https://github.com/karpathy/char-rnn}}}"""
_MULTI30K_CITATION = """\
@inproceedings{elliott2016multi30k,
  title={Multi30K: Multilingual English-German Image Descriptions},
  author={Elliott, Desmond and Frank, Stella and Sima'an, Khalil and Specia, Lucia},
  booktitle={Proceedings of the 5th Workshop on Vision and Language}, year={2016}}"""


_PTB_FILES = "ptb.train.txt, ptb.valid.txt and ptb.test.txt (optionally .gz)"


def _manual_dir(dl_manager):
    """The user's `manual_dir` if they gave a non-empty one, else None."""
    try:
        return dl_manager.manual_dir
    except AssertionError:  # TFDS' way of saying "none given, or empty"
        return None


class _SeqappsBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    VERSION = _VERSION
    RELEASE_NOTES = _RELEASE_NOTES
    MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL
    # Nothing is downloaded, so there are no URL checksums to look up. Saying
    # so also skips TFDS' search for a checksums file next to this module,
    # which imports `importlib_resources`, a backport TFDS installs only on
    # Python < 3.9 (TFDS 4.9.10).
    url_infos = None

    def _dataset_info(self, description, features, supervised_keys, homepage, citation):
        return tfds.core.DatasetInfo(
            builder=self,
            description=description,
            features=features,
            supervised_keys=supervised_keys,
            homepage=homepage,
            citation=citation,
        )

    def _generate_examples(self, examples):
        for index, example in enumerate(examples):
            yield index, example


class _SentimentBuilder(_SeqappsBuilder, skip_registration=True):
    SOURCE = None  # the `load_sentiment` name
    DESCRIPTION = None
    HOMEPAGE = "https://nlp.stanford.edu/sentiment/"
    CITATION = _SST_CITATION

    def _info(self):
        label_names = sentiment_sets.SENTIMENT_LABEL_NAMES[self.SOURCE]
        features = tfds.features.FeaturesDict(
            {"text": tfds.features.Text(), "label": tfds.features.ClassLabel(names=label_names)}
        )
        return self._dataset_info(
            self.DESCRIPTION, features, ("text", "label"), self.HOMEPAGE, self.CITATION
        )

    def _load_kwargs(self):
        return {}

    def _split_generators(self, dl_manager):
        source = _manual_dir(dl_manager) or self.SOURCE
        data = sentiment_sets.load_sentiment(source, **self._load_kwargs())
        return {
            split: self._generate_examples(
                {"text": text, "label": label} for text, label in getattr(data, split)
            )
            for split in sets.SPLITS
        }


@dataclasses.dataclass(eq=False)
class SstConfig(tfds.core.BuilderConfig):
    phrases: bool = False  # train on every labelled phrase of the treebank's train trees


_SST_CONFIGS = [
    SstConfig(name="sentences", description="the sentence-level files (stsa.*)"),
    SstConfig(name="phrases", phrases=True,
              description="train: every distinct labelled phrase of the train trees; "
                          "validation, test: the whole sentences (the published protocol)"),
]


class _SstBuilder(_SentimentBuilder, skip_registration=True):
    BUILDER_CONFIGS = _SST_CONFIGS

    def _split_generators(self, dl_manager):
        if not self.builder_config.phrases:
            return super()._split_generators(dl_manager)
        folder = _manual_dir(dl_manager)
        binary = self.SOURCE == "sst2"
        if folder is None:
            data = sentiment_sets.load_sentiment(f"{self.SOURCE}-phrases")
        else:
            files = sentiment_sets._tree_folder_paths(folder)
            if files is None:
                raise DataError(f"{folder}: expected treebank files train.txt, dev.txt, test.txt "
                                f"(one parse tree a line).")
            data = sentiment_sets.load_sentiment_trees(files, binary=binary, name=folder.name)
        return {
            split: self._generate_examples(
                {"text": text, "label": label} for text, label in getattr(data, split)
            )
            for split in sets.SPLITS
        }


class SeqappsSst2(_SstBuilder):
    """SST-2: binary sentiment, Kim (2014)'s splits; config `phrases` trains on phrases."""

    SOURCE = "sst2"
    DESCRIPTION = ("Stanford Sentiment Treebank, binary labels: sentences (6920/872/1821), or "
                   "every non-neutral train phrase (77616) with the same validation and test.")


class SeqappsSst5(_SstBuilder):
    """SST-5: five-class sentiment; config `phrases` trains on phrases."""

    SOURCE = "sst5"
    DESCRIPTION = ("Stanford Sentiment Treebank, fine-grained labels: sentences (8544/1101/2210), "
                   "or every labelled train phrase (159274) with the same validation and test.")


@dataclasses.dataclass(eq=False)
class MrConfig(tfds.core.BuilderConfig):
    fold: int = 0  # the test fold of seeded stratified 10-fold cross-validation


class SeqappsMr(_SentimentBuilder):
    """MR movie-review snippets; one config per cross-validation fold."""

    SOURCE = "mr"
    DESCRIPTION = (
        "Pang & Lee (2005) sentence polarity v1.0, 5331 positive + 5331 negative "
        "snippets. Config foldK tests on fold K of seqapps' seeded stratified "
        "10-fold split; validation is 10% of the other folds."
    )
    HOMEPAGE = "https://www.cs.cornell.edu/people/pabo/movie-review-data/"
    CITATION = _MR_CITATION
    BUILDER_CONFIGS = [MrConfig(name=f"fold{k}", fold=k) for k in range(10)]

    def _load_kwargs(self):
        return {"fold": self.builder_config.fold}


class SeqappsPtb(_SeqappsBuilder):
    """Penn Treebank (Mikolov's preprocessing), one sentence an example."""

    def _info(self):
        return self._dataset_info(
            "Penn Treebank language-model corpus, 10k vocabulary, one tokenized "
            "sentence an example (append '<eos>' per sentence for the standard "
            "929k-token training stream).",
            tfds.features.FeaturesDict({"text": tfds.features.Text()}),
            None,
            "https://www.fit.vutbr.cz/~imikolov/rnnlm/",
            _PTB_CITATION,
        )

    def _split_generators(self, dl_manager):
        folder = _manual_dir(dl_manager)
        if folder is None:
            words = ("train", "valid", "test")
            files = {s: sets.bundled_path(f"ptb.{w}.txt") for s, w in zip(sets.SPLITS, words)}
        else:
            files = sets.find_split_files(folder, "ptb.{train,valid,test}.txt")
            missing = [split for split in sets.SPLITS if split not in files]
            if missing:
                raise DataError(f"{folder}: no {' or '.join(missing)} file; expected {_PTB_FILES}.")
        return {split: self._sentences(files[split]) for split in sets.SPLITS}

    def _sentences(self, path):
        lines = readers.read_text(path).split("\n")
        return self._generate_examples({"text": line.strip()} for line in lines if line.strip())


class SeqappsTinyshakespeare(_SeqappsBuilder):
    """Tiny Shakespeare; each split is a single example holding its text."""

    def _info(self):
        return self._dataset_info(
            "Karpathy's tiny-shakespeare: the first 90% of the characters are train, "
            "the last 10% validation; test is the validation text again.",
            tfds.features.FeaturesDict({"text": tfds.features.Text()}),
            None,
            "https://github.com/karpathy/char-rnn",
            _SHAKESPEARE_CITATION,
        )

    def _split_generators(self, dl_manager):
        source = "tinyshakespeare"
        folder = _manual_dir(dl_manager)
        if folder is not None:
            files = [p for p in sorted(folder.iterdir()) if p.is_file() and p.name[0] != "."]
            if len(files) != 1:
                raise DataError(f"{folder}: expected exactly one text file (input.txt).")
            source = files[0]
        data = language_model_sets.load_language_model(source, level="char")
        return {
            split: self._generate_examples([{"text": "".join(getattr(data, split))}])
            for split in sets.SPLITS
        }


@dataclasses.dataclass(eq=False)
class Multi30kConfig(tfds.core.BuilderConfig):
    pair: str = "en-de"
    tokenized: bool = True


class SeqappsMulti30k(_SeqappsBuilder):
    """Multi30k English-German; configs pick the direction and the text form."""

    BUILDER_CONFIGS = [
        Multi30kConfig(
            name=pair if tokenized else f"{pair}-raw",
            pair=pair,
            tokenized=tokenized,
            description=("lowercased, Moses-tokenized" if tokenized else "raw cased") + " text",
        )
        for tokenized in (True, False)
        for pair in ("en-de", "de-en")
    ]

    def _info(self):
        source, target = self.builder_config.pair.split("-")
        return self._dataset_info(
            "Multi30k (WMT16 multimodal task 1) image descriptions, "
            "train / val / test_2016_flickr = 29000 / 1014 / 1000 pairs.",
            tfds.features.Translation(languages=(source, target)),
            (source, target),
            "https://github.com/multi30k/dataset",
            _MULTI30K_CITATION,
        )

    def _split_generators(self, dl_manager):
        config = self.builder_config
        data = translation_sets.load_translation(
            config.pair, data=_manual_dir(dl_manager), tokenized=config.tokenized
        )
        return {
            split: self._generate_examples(
                {data.source_lang: src, data.target_lang: tgt} for src, tgt in getattr(data, split)
            )
            for split in sets.SPLITS
        }

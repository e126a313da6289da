"""The data layer: readers, bundled data sets, vocabularies and batching.

`seqapps.data.tfds_builders` is not imported here (TensorFlow Datasets is
slow to import); import it to register the `seqapps_*` TFDS builders.
"""

from seqapps.data.batching import bptt_num_windows
from seqapps.data.batching import bptt_windows
from seqapps.data.batching import first_component_length
from seqapps.data.batching import padded_batches
from seqapps.data.batching import stream_from_windows
from seqapps.data.errors import DataError
from seqapps.data.readers import index_labels
from seqapps.data.readers import read_delimited_labelled
from seqapps.data.readers import read_labelled_file
from seqapps.data.readers import read_labelled_sentences
from seqapps.data.readers import read_pair_tsv
from seqapps.data.readers import read_parallel
from seqapps.data.readers import read_polarity_pair
from seqapps.data.readers import read_raw_labelled
from seqapps.data.readers import read_text
from seqapps.data.readers import read_token_lines
from seqapps.data.sets import BUNDLED_DIR
from seqapps.data.sets import LanguageModelData
from seqapps.data.sets import ParallelData
from seqapps.data.sets import TextClassificationData
from seqapps.data.sets import bundled_path
from seqapps.data.sets import find_split_files
from seqapps.data.sets import kfold_indices
from seqapps.data.sets import stratified_kfold_indices
from seqapps.data.sets import to_dataset
from seqapps.data.sentiment_sets import SENTIMENT_LABEL_NAMES
from seqapps.data.sentiment_sets import load_sentiment
from seqapps.data.trees import read_tree_phrases, read_tree_sentences, read_trees, tree_phrases
from seqapps.data.language_model_sets import load_language_model
from seqapps.data.translation_sets import load_translation
from seqapps.data.vocab import OOV
from seqapps.data.vocab import PAD
from seqapps.data.vocab import build_char_vocabulary
from seqapps.data.vocab import build_token_lookup
from seqapps.data.vocab import build_token_vocabulary
from seqapps.data.vocab import build_word_vectorizer
from seqapps.data.vocab import char_vectorizer_from_vocabulary
from seqapps.data.vocab import count_tokens
from seqapps.data.vocab import load_vocabulary
from seqapps.data.vocab import resolve_standardize
from seqapps.data.vocab import save_vocabulary
from seqapps.data.vocab import vectorizer_from_vocabulary
from seqapps.data.vocab import vocabulary_from_counts

"""Many-to-one sentiment classification (SST-2, SST-5, MR, any `label text` file).

    model.py       the BiRNN classifier and `SentimentPipeline` (strings -> probabilities)
    bow.py         the bag-of-words baseline
    commands.py    the verbs: train, evaluate, predict, export, tune
    __main__.py    the command line (`python -m apps.sentiment --help`)

This module stays light (no TensorFlow import), so `--help` is instant.
"""

# What a run is made of; these keys go to config.json and must match when a run resumes.
DEFAULTS = dict(
    data="sst2", model="rnn", cell="lstm", units=64, layers=1, bidirectional=True,
    embedding_dim=128, dropout=0.6, pooling="max", max_vocab=None, min_count=2,
    max_length=400, fold=None, static_shapes=False, standardize="treebank",
    embedding_dropout=0.0, rnn_dropout=0.0, recurrent_dropout=0.0, weight_decay=0.0,
    label_smoothing=0.0, lr_decay=None, folds=10, encoding=None, ensemble=1,
    vocab="word", subword_vocab_size=8000,
)
# `--vocab`: what the model reads. "word": treebank words (unseen ones are [UNK]); "subword":
# SentencePiece pieces of the same standardized text (an unseen word is read as its pieces);
# "mixed": ensemble members alternate word, subword, word, ... Their mistakes differ more
# than two word models' do, so their average gains more (docs/benchmarks.md, issue #15).
VOCABS = ("word", "subword", "mixed")
BUCKETS = [8, 16, 24, 32, 48, 64]
# `train`'s own defaults on the sentence sets (SST-2, SST-5, MR, files) ...
TRAINING_DEFAULTS = dict(epochs=15, batch_size=50, learning_rate=5e-4, patience=4)
# ... and what differs on the phrase sets (sst2-phrases, sst5-phrases, a treebank folder):
# ten times more, shorter examples. Chosen by measurement (docs/benchmarks.md).
PHRASE_DEFAULTS = dict(
    dropout=0.5, embedding_dropout=0.3, batch_size=64, learning_rate=1e-3, epochs=4, patience=2,
    lr_decay=0.5, ensemble=4, vocab="mixed",
)


def run(argv=None):
    """`python -m apps.sentiment ARGV...` from Python; returns the verb's result."""
    from apps.sentiment.__main__ import run as run_cli

    return run_cli(argv)

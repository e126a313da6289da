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
)
BUCKETS = [8, 16, 24, 32, 48, 64]


def run(argv=None):
    """`python -m apps.sentiment ARGV...` from Python; returns the verb's result."""
    from apps.sentiment.__main__ import run as run_cli

    return run_cli(argv)

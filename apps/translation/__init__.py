"""Translation: an RNN encoder-decoder with optional attention (none / Bahdanau / Luong).

    model.py       the Keras model (encoder, three decoders, the inference step)
    text.py        tokenization, vocabularies, tf.data pipelines
    translator.py  strings -> strings in one graph: decoding loops, export, attention plot
    ensemble.py    several trained models decoding as one (`train --ensemble K`)
    evaluation.py  BLEU (tokenized lowercase and sacrebleu detokenized) and chrF
    commands.py    the verbs: train, evaluate, translate, export, tune
    __main__.py    the command line (`python -m apps.translation --help`)

This module stays light (no TensorFlow import), so `--help` is instant.
"""

# What a run is made of; these keys go to config.json and must match when a run resumes.
DEFAULTS = dict(
    pair="en-de", data=None, raw=False, max_train=None,
    cell="gru", units=256, embedding_dim=256, layers=1, bidirectional=True,
    attention="bahdanau", dropout=0.3, label_smoothing=0.1,
    min_count=2, max_vocab=None, max_length=50,
)
# Pieces per language of the subword path (`--subword-vocab-size`), chosen by measurement on
# Multi30k (docs/benchmarks.md): after 3 epochs, greedy validation BLEU 27.1 with 4000 pieces,
# 25.5 with 8000 and 25.2 with 2000; an epoch takes 140 s against 185 s with 8000 (the output
# softmax is half as wide).
SUBWORD_VOCAB_SIZE = 4000


def run(argv=None):
    """`python -m apps.translation ARGV...` from Python; returns the verb's result."""
    from apps.translation.__main__ import run as run_cli

    return run_cli(argv)

"""Sentiment classification: train, evaluate, predict, tune, export.

    python -m apps.sentiment train --run-dir runs/sst2              # bundled SST-2
    python -m apps.sentiment train --run-dir runs/mr --data mr --fold 3
    python -m apps.sentiment evaluate --run-dir runs/sst2
    python -m apps.sentiment predict --run-dir runs/sst2 "a gripping film" "a dull mess"
    python -m apps.sentiment export --run-dir runs/sst2 --out exports/sentiment
    python -m apps.sentiment predict --export exports/sentiment --json < sentences.txt
    python -m apps.sentiment tune --run-dir runs/tune --max-trials 10

Interrupt `train` at any time (Ctrl-C, kill) and run the same command again: it resumes
after the last finished epoch.
"""

import argparse

from apps.sentiment import DEFAULTS, VOCABS  # light: no TensorFlow import
from seqapps import cli


# --- command line ------------------------------------------------------------------------


def _default(key):
    """`(default X; phrase sets Y)` for a help text."""
    from apps.sentiment import PHRASE_DEFAULTS, TRAINING_DEFAULTS

    value = {**DEFAULTS, **TRAINING_DEFAULTS}[key]
    if key in PHRASE_DEFAULTS and PHRASE_DEFAULTS[key] != value:
        return f"(default {value}; on the phrase sets {PHRASE_DEFAULTS[key]})"
    return f"(default {value})"


def add_model_arguments(p):
    from seqapps.cli import add_data_file_arguments

    p.add_argument("--data", default=DEFAULTS["data"],
                   help="sst2, sst5, mr, sst2-phrases, sst5-phrases (bundled) or a path to a labelled "
                        "file or folder: split files, a treebank folder (train.txt/dev.txt/test.txt, one "
                        "tree a line) or a NAME.pos / NAME.neg pair (default sst2). The *-phrases sets "
                        "train on every labelled phrase of the treebank's train trees (sst2: neutral "
                        "dropped) and validate and test on the whole sentences")
    p.add_argument("--fold", type=int, default=None, help="test fold 0..FOLDS-1 for data without a test split (MR, one file); default 0")
    p.add_argument("--folds", type=int, default=None, help="cross-validation folds for data without a test split (default 10)")
    add_data_file_arguments(p)  # --encoding, --skip-bad-lines
    p.add_argument("--model", default="rnn", choices=["rnn", "bow"], help="recurrent model or the bag-of-words baseline")
    p.add_argument("--cell", default=DEFAULTS["cell"], choices=["lstm", "gru", "simple"], help="recurrent cell (default lstm)")
    p.add_argument("--units", type=int, default=None, help=f"hidden units per direction {_default('units')}")
    p.add_argument("--layers", type=int, default=None, help=f"stacked recurrent layers {_default('layers')}")
    p.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=True, help="read the sentence both ways (default on)")
    p.add_argument("--embedding-dim", type=int, default=None, help=f"word vector size {_default('embedding_dim')}")
    p.add_argument("--dropout", type=float, default=None, help=f"dropout on embeddings and pooled features {_default('dropout')}")
    p.add_argument("--embedding-dropout", type=float, default=None,
                   help=f"drop whole word vectors with this probability (word dropout) {_default('embedding_dropout')}")
    p.add_argument("--rnn-dropout", type=float, default=None,
                   help=f"input dropout of every recurrent layer, one mask for all steps (between stacked layers too) {_default('rnn_dropout')}")
    p.add_argument("--recurrent-dropout", type=float, default=None,
                   help=f"dropout on the recurrent state (runs the slower step loop) {_default('recurrent_dropout')}")
    p.add_argument("--weight-decay", type=float, default=None,
                   help=f"decoupled weight decay (AdamW; biases exempt) {_default('weight_decay')}")
    p.add_argument("--label-smoothing", type=float, default=None, help=f"label smoothing of the loss {_default('label_smoothing')}")
    p.add_argument("--lr-decay", type=float, default=None,
                   help=f"multiply the learning rate by this after an epoch without a better validation accuracy {_default('lr_decay')}")
    p.add_argument("--ensemble", type=int, default=None,
                   help=f"train this many models (seeds SEED, SEED+1, ...) and average their probabilities; "
                        f"predict and export serve the average {_default('ensemble')}")
    p.add_argument("--pooling", default=None, choices=["last", "max", "mean", "attention"], help=f"how the sequence becomes one vector {_default('pooling')}")
    p.add_argument("--vocab", default=None, choices=list(VOCABS),
                   help="what the model reads: word (treebank words; unseen ones are [UNK]), subword "
                        "(SentencePiece pieces of the same text, learned on the training split: an unseen "
                        "word is read as its pieces) or mixed (ensemble members alternate word, subword, "
                        f"...; their average gains more than same-vocabulary members') {_default('vocab')}. "
                        "An export of a subword or mixed run loads after `import tensorflow_text`")
    p.add_argument("--subword-vocab-size", type=int, default=None,
                   help=f"--vocab subword/mixed: at most N pieces, 256 byte pieces included {_default('subword_vocab_size')}")
    p.add_argument("--max-vocab", type=int, default=None, help="keep the most frequent N words (default: all)")
    p.add_argument("--standardize", default=DEFAULTS["standardize"], choices=["treebank", "lower"],
                   help="how text becomes words: treebank splits punctuation and clitics off, as SST "
                        "is tokenized (\"doesn't.\" -> does n't .), so raw sentences find their words; "
                        "lower only lowercases and splits on spaces (default treebank)")
    p.add_argument("--min-count", type=int, default=None, help=f"training tokens seen fewer times become [UNK] {_default('min_count')}")
    p.add_argument("--max-length", type=int, default=400, help="truncate inputs to N tokens (default 400)")
    p.add_argument("--static-shapes", action="store_true", help="pad every batch to --max-length and drop partial training batches (TPU/XLA: no dynamic shapes)")


def _data_dependent_training_defaults(p):
    """--epochs, --batch-size, --learning-rate, --patience: None, filled in by the data."""
    for action in p._actions:
        key = action.dest
        if key in ("epochs", "batch_size", "learning_rate", "patience"):
            action.default = None
            action.help = action.help.split(" (default")[0] + " " + _default(key)


def parser():
    from seqapps.cli import add_final_fit_argument, add_training_arguments, add_tuning_arguments
    from seqapps.cli import add_verbose_argument

    top = argparse.ArgumentParser(prog="python -m apps.sentiment", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_verbose_argument(top)
    verbs = top.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = verbs.add_parser("train", help="train a classifier into a run folder (resumable)")
    add_model_arguments(p)
    add_training_arguments(p, epochs=15, batch_size=50, learning_rate=5e-4, patience=4)
    _data_dependent_training_defaults(p)
    add_final_fit_argument(p)
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop after the last epoch that fits in this many minutes of training "
                        "(default: no limit); run the command again to continue")
    p.set_defaults(run=cli.lazy_verb("apps.sentiment.commands", "train"))

    p = verbs.add_parser("evaluate", help="accuracy, macro-F1 and confusion matrix of a trained run")
    p.add_argument("--run-dir", required=True, help="the run folder `train` wrote")
    p.add_argument("--data", help="evaluate on this data set (its --split) or on every line of this "
                                  "labelled file, instead of the run's own data")
    p.add_argument("--split", default="test", choices=["train", "validation", "test"],
                   help="split of the run's data or of --data's set (default test)")
    from seqapps.cli import add_data_file_arguments

    add_data_file_arguments(p)
    p.set_defaults(run=cli.lazy_verb("apps.sentiment.commands", "evaluate"))

    p = verbs.add_parser("predict", help="label sentences given as arguments or on stdin")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run-dir", help="predict with a trained run folder")
    source.add_argument("--export", help="predict with an exported SavedModel folder")
    p.add_argument("sentences", nargs="*", help="sentences (default: one per line on stdin)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(run=cli.lazy_verb("apps.sentiment.commands", "predict"))

    p = verbs.add_parser("tune", help="keras-tuner search; retrains and exports the best model")
    add_model_arguments(p)
    add_training_arguments(p, epochs=6, batch_size=50, learning_rate=None, patience=2, tuning=True)
    add_tuning_arguments(p, objective="val_accuracy")
    p.set_defaults(run=cli.lazy_verb("apps.sentiment.commands", "tune"))

    p = verbs.add_parser("export", help="SavedModel taking raw strings (TensorFlow Serving layout)")
    p.add_argument("--run-dir", required=True, help="the run folder `train` wrote")
    p.add_argument("--out", required=True, help="export folder; a new numbered version is written inside")
    p.set_defaults(run=cli.lazy_verb("apps.sentiment.commands", "export"))
    cli.add_verbose_argument_to_verbs(verbs)
    return top


def run(argv=None):
    """Runs one verb and returns its result (for use from Python and tests)."""
    from seqapps.cli import run_verb

    return run_verb(parser(), argv)


def main(argv=None):
    """Console-script entry point (`seqapps-sentiment`)."""
    run(argv)


if __name__ == "__main__":
    main()

"""Translation with an RNN encoder-decoder: train, evaluate, translate, tune, export.

    python -m apps.translation train --run-dir runs/mt                  # Multi30k en->de
    python -m apps.translation train --run-dir runs/mt-none --attention none
    python -m apps.translation train --run-dir runs/de-en --pair de-en
    python -m apps.translation train --run-dir runs/es --pair en-es --data spa-eng.zip
    python -m apps.translation evaluate --run-dir runs/mt --beam 5
    python -m apps.translation translate --run-dir runs/mt "A man is riding a bike."
    python -m apps.translation translate --run-dir runs/mt --plot-attention att.png "two dogs play ."
    python -m apps.translation export --run-dir runs/mt --out exports/mt
    python -m apps.translation translate --export exports/mt < sentences.txt
    python -m apps.translation tune --run-dir runs/mt-tune --max-trials 10

Interrupt `train` at any time (Ctrl-C, kill) and run the same command again: it resumes
after the last finished epoch. Run it again with a larger --epochs to train a finished run
further.
"""

import argparse

from apps.translation import DEFAULTS, SUBWORD_VOCAB_SIZE  # light: no TensorFlow import
from seqapps import cli


def add_data_arguments(p):
    p.add_argument("--pair", default=DEFAULTS["pair"],
                   help="source-target languages, e.g. en-de or de-en (default en-de)")
    p.add_argument("--data", default=None,
                   help="default: the bundled Multi30k (en, de). Else a folder of Multi30k-style "
                        "files (train.en, val.en, test.en, ...), a tab-separated pair file or .zip "
                        "(the Anki spa-eng.zip), or 'SRC_FILE,TGT_FILE' (two line-aligned files)")
    p.add_argument("--raw", action="store_true",
                   help="--vocab word on the bundled Multi30k: train on the raw cased files "
                        "instead of the tokenized lowercased ones (the word model lowercases "
                        "either way); --vocab subword always reads the raw files")
    p.add_argument("--max-train", type=int, default=None,
                   help="train on a seeded subset of N pairs (quick runs; default: all)")
    from seqapps.cli import add_data_file_arguments

    add_data_file_arguments(p)  # --encoding, --skip-bad-lines (kept in config.json for evaluate)


def add_model_arguments(p):
    p.add_argument("--attention", default=DEFAULTS["attention"], choices=["none", "bahdanau", "luong"],
                   help="none (the fixed-size bottleneck), bahdanau (additive, input feeding) or "
                        "luong (multiplicative, over all decoder steps at once) (default bahdanau)")
    p.add_argument("--cell", default=DEFAULTS["cell"], choices=["gru", "lstm"],
                   help="recurrent cell of encoder and decoder (default gru)")
    p.add_argument("--units", type=int, default=DEFAULTS["units"],
                   help="hidden units per layer (per direction in the encoder) (default 256)")
    p.add_argument("--embedding-dim", type=int, default=DEFAULTS["embedding_dim"],
                   help="word vector size, both languages (default 256)")
    p.add_argument("--layers", type=int, default=DEFAULTS["layers"],
                   help="stacked layers in the encoder and in the decoder (default 1)")
    p.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=True,
                   help="bidirectional encoder (default on)")
    p.add_argument("--dropout", type=float, default=DEFAULTS["dropout"],
                   help="dropout on embeddings, between layers and before the softmax (default 0.3)")
    p.add_argument("--label-smoothing", type=float, default=DEFAULTS["label_smoothing"],
                   help="label smoothing of the training loss (default 0.1)")
    p.add_argument("--vocab", default="subword", choices=["subword", "word"],
                   help="subword (default): a SentencePiece model per language learned on the "
                        "raw cased training text (byte fallback: no character is ever unknown), "
                        "tokenized in the graph by tensorflow-text; translations come out cased "
                        "and detokenized; reads the raw files (--raw implied). word: Moses-style "
                        "lowercased words, rare ones [UNK] (the default before; the bundled "
                        "Multi30k's tokenized lowercased files unless --raw)")
    p.add_argument("--subword-vocab-size", type=int, default=SUBWORD_VOCAB_SIZE,
                   help="--vocab subword: at most N pieces per language, the 256 byte pieces "
                        f"included (default {SUBWORD_VOCAB_SIZE})")
    p.add_argument("--min-count", type=int, default=DEFAULTS["min_count"],
                   help="words seen fewer times in training become [UNK] (default 2)")
    p.add_argument("--max-vocab", type=int, default=None,
                   help="keep at most N words per language (default: all above --min-count)")
    p.add_argument("--max-length", type=int, default=DEFAULTS["max_length"],
                   help="skip training pairs with a side longer than N tokens (default 50)")


def add_decoding_arguments(p, beam=5):
    p.add_argument("--beam", type=int, default=beam,
                   help=f"beam width; 1 = greedy (default {beam})")
    p.add_argument("--length-penalty", type=float, default=0.6,
                   help="GNMT length penalty alpha for beam search; 0 = none (default 0.6)")
    p.add_argument("--max-source-length", type=int, default=None,
                   help="cut longer inputs to N tokens (default 200)")
    p.add_argument("--max-output-length", type=int, default=None,
                   help="never emit more than N tokens (default 200; each sentence is also "
                        "bounded by 2 x its length + 10)")


def add_training_options(p):
    p.add_argument("--monitor", default="val_loss", choices=["val_loss", "val_bleu"],
                   help="early stopping and best checkpoint on validation loss or BLEU (greedy). "
                        "BLEU stays near 0 for the first epochs, so early stopping on it starts "
                        "after epoch 5 (default val_loss)")
    p.add_argument("--lr-decay", type=float, default=0.5,
                   help="multiply the learning rate by this after each epoch whose --monitor did "
                        "not improve; 1 = off (default 0.5)")
    p.add_argument("--lr-decay-min-delta", type=float, default=0.01,
                   help="with --monitor val_loss, a gain smaller than this (nats) counts as no "
                        "improvement for --lr-decay, so a slowly creeping loss still halves the "
                        "rate; 0 = only a loss that does not fall (default 0.01)")
    p.add_argument("--stop-min-lr", type=float, default=1e-5,
                   help="stop training once --lr-decay has brought the learning rate below this: "
                        "the epochs after it gain nothing (measured on Multi30k, see "
                        "docs/benchmarks.md); 0 = train on (default 1e-5)")
    p.add_argument("--val-bleu-sentences", type=int, default=1014,
                   help="validation sentences translated with greedy decoding after each epoch "
                        "for val_bleu (logged in history.csv); 0 = do not compute it "
                        "(default 1014: all of Multi30k's)")


def parser():
    from seqapps.cli import add_final_fit_argument, add_training_arguments
    from seqapps.cli import add_tuning_arguments, add_verbose_argument

    top = argparse.ArgumentParser(prog="python -m apps.translation", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    add_verbose_argument(top)
    verbs = top.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = verbs.add_parser("train", help="train a translator into a run folder (resumable)")
    add_data_arguments(p)
    add_model_arguments(p)
    add_training_arguments(p, epochs=15, batch_size=64, learning_rate=1e-3, patience=3)
    add_final_fit_argument(p)
    add_training_options(p)
    add_decoding_arguments(p)
    p.add_argument("--evaluate", action=argparse.BooleanOptionalAction, default=True,
                   help="score the best checkpoint on the test split at the end (default on)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop after the last epoch that fits in this many minutes of training "
                        "(default: no limit; each ensemble member gets an equal share of the time "
                        "left, so what one did not use goes to the next); run the "
                        "command again to continue")
    p.add_argument("--ensemble", type=int, default=1,
                   help="train this many models, one after the other (seeds SEED, SEED+1, ...; "
                        "members/1, members/2, ... in the run folder), and decode with the "
                        "average of their probabilities at every step: evaluate, translate and "
                        "export use them all (default 1)")
    p.set_defaults(run=cli.lazy_verb("apps.translation.commands", "train"))

    p = verbs.add_parser("evaluate", help="BLEU and chrF of a trained run, greedy vs beam")
    p.add_argument("--run-dir", required=True, help="the run folder `train` wrote")
    p.add_argument("--split", default="test", choices=["train", "validation", "test"],
                   help="which split to translate (default test)")
    p.add_argument("--test", metavar="SRC_FILE,TGT_FILE|NAME", default=None,
                   help="score this test set instead of --split: two line-aligned files, or the "
                        "name of a test set in the run's data folder (e.g. test_2017_flickr: the "
                        "files test_2017_flickr*.{src,tgt}[.gz] there). A target file in a tok/ "
                        "folder or with 'tok' in its name is scored as tokens; any other as raw "
                        "text, by sacreBLEU. The files scored are printed")
    p.add_argument("--max-eval", type=int, default=None, help="only the first N sentences")
    p.add_argument("--batch-size", type=int, default=64, help="sentences per decoding batch (default 64)")
    add_decoding_arguments(p)
    p.set_defaults(run=cli.lazy_verb("apps.translation.commands", "evaluate"))

    p = verbs.add_parser("translate", help="translate sentences given as arguments or on stdin")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--run-dir", help="translate with a trained run folder")
    where.add_argument("--export", help="translate with an exported SavedModel folder")
    p.add_argument("sentences", nargs="*", help="sentences (default: one per line on stdin)")
    add_decoding_arguments(p)
    p.add_argument("--plot-attention", metavar="PNG",
                   help="draw the attention matrix of the first sentence into this image")
    p.add_argument("--tokens", action="store_true", help="print tokenized lowercase output")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(run=cli.lazy_verb("apps.translation.commands", "translate"))

    p = verbs.add_parser("tune", help="keras-tuner search; retrains and exports the best model")
    add_data_arguments(p)
    add_model_arguments(p)
    add_training_arguments(p, epochs=5, batch_size=64, learning_rate=None, patience=2, tuning=True)
    add_tuning_arguments(p, objective="val_loss")
    add_training_options(p)
    add_decoding_arguments(p)
    p.add_argument("--evaluate", action=argparse.BooleanOptionalAction, default=True,
                   help="score the retrained best model on the test split (default on)")
    p.set_defaults(run=cli.lazy_verb("apps.translation.commands", "tune"))

    p = verbs.add_parser("export", help="SavedModel mapping raw source strings to translations")
    p.add_argument("--run-dir", required=True, help="the run folder `train` wrote")
    p.add_argument("--out", required=True, help="export folder; a new numbered version is written inside")
    add_decoding_arguments(p)
    p.set_defaults(run=cli.lazy_verb("apps.translation.commands", "export"))
    cli.add_verbose_argument_to_verbs(verbs)
    return top


def run(argv=None):
    """Runs one verb and returns its result (for use from Python and tests)."""
    from seqapps.cli import run_verb

    return run_verb(parser(), argv)


def main(argv=None):
    """Console-script entry point (`seqapps-translation`)."""
    run(argv)


if __name__ == "__main__":
    main()

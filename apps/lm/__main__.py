"""Command line of the language-model app: `python -m apps.lm <verb> ...` (or `seqapps-lm`).

    python -m apps.lm train --run-dir runs/ptb                          # word-level PTB, 2x200 tied LSTM
    python -m apps.lm train --run-dir runs/shakespeare --data tinyshakespeare   # character level
    python -m apps.lm train --run-dir runs/kn5 --model ngram --order 5  # Kneser-Ney baseline
    python -m apps.lm evaluate --run-dir runs/ptb
    python -m apps.lm generate --run-dir runs/ptb --temperature 0.8 "the company said"
    python -m apps.lm complete --run-dir runs/ptb "the stock market"
    python -m apps.lm score --run-dir runs/ptb "colorless green ideas sleep furiously" \\
                                               "furiously sleep ideas green colorless"
    python -m apps.lm export --run-dir runs/ptb --out exports/lm
    python -m apps.lm generate --export exports/lm "the company said"
    python -m apps.lm tune --run-dir runs/tune --max-trials 8
    python -m apps.lm gradient-flow --out gradient_flow.png             # vanishing gradients, measured
    python -m apps.lm cells --run-dir runs/shakespeare --out cells.html  # one hidden unit over a passage
    python -m apps.lm embeddings --run-dir runs/ptb --out emb/ --words money stock
"""

import argparse
import json
import math
import sys

from seqapps.cli import add_data_file_arguments, add_verbose_argument

DATA_HELP = ("bundled corpus (ptb: word level; tinyshakespeare: char level, the last 10%% is validation, "
             "no test split), a folder of x.train.txt / x.valid.txt / x.test.txt files (word level), or "
             "one text file (char level: first 90%% train, next 5%% validation, last 5%% test)")
MAX_INPUT_HELP = ("read at most this many tokens of each text (the first of a scored sentence, the last of "
                  "a prompt; a warning says so) for in-memory runs; an export has its own (default 1000)")


def _level_default(name):
    from apps.lm.config import LEVEL_DEFAULTS

    word, char = LEVEL_DEFAULTS["word"][name], LEVEL_DEFAULTS["char"][name]
    return f"default {word} for words, {char} for characters"


def _patch_help(parser, dest, text):
    for action in parser._actions:
        if action.dest == dest:
            action.help = text


def add_data_arguments(parser, default=None, *, level=True):
    parser.add_argument("--data", default=default, help=DATA_HELP + (f" (default {default})" if default else " (default: the run's)"))
    if level:  # a trained run's level is fixed by its vocabulary
        parser.add_argument("--level", choices=["word", "char"], help="tokens are words or characters (default: by --data)")
    add_data_file_arguments(parser)


def add_model_arguments(parser):
    from seqapps.cli import add_training_arguments

    parser.add_argument("--model", choices=["rnn", "ngram"], help="recurrent network or interpolated Kneser-Ney n-gram (default rnn)")
    parser.add_argument("--order", type=int, help="n-gram order for --model ngram (default 5)")
    parser.add_argument("--cell", choices=["lstm", "gru", "simple"], help="recurrent cell (default lstm)")
    parser.add_argument("--units", type=int, help=f"units per recurrent layer ({_level_default('units')})")
    parser.add_argument("--layers", type=int, help=f"stacked recurrent layers ({_level_default('layers')})")
    parser.add_argument("--embedding-dim", type=int, help="embedding size (default: --units when tied; 64 for characters)")
    parser.add_argument("--dropout", type=float, help=f"dropout on the embedding, between layers and before the softmax ({_level_default('dropout')})")
    parser.add_argument("--tie-weights", action=argparse.BooleanOptionalAction, default=None,
                        help=f"share the input embedding and the output softmax weights ({_level_default('tie_weights')})")
    parser.add_argument("--bptt", type=int, help=f"truncated BPTT window in steps ({_level_default('bptt')})")
    parser.add_argument("--optimizer", choices=["sgd", "adam"], help=f"optimizer ({_level_default('optimizer')})")
    parser.add_argument("--lr-decay", type=float, help=f"multiply the learning rate by this when validation loss stops improving; 1 = off ({_level_default('lr_decay')})")
    parser.add_argument("--lr-decay-min-delta", type=float,
                        help="a validation-loss gain below this many nats counts as no gain for --lr-decay "
                             "(0.01 = 1%% perplexity; default 0: only a loss that does not fall)")
    parser.add_argument("--min-count", type=int, help="words seen fewer times in training become unknown (default 1)")
    parser.add_argument("--max-vocab", type=int, help="keep at most this many words, specials included (default: all)")
    add_training_arguments(parser, epochs=None, batch_size=None, learning_rate=None)
    parser.set_defaults(clipnorm=None, seed=None)
    _patch_help(parser, "epochs", f"maximum epochs ({_level_default('epochs')})")
    _patch_help(parser, "batch_size", f"parallel streams of the corpus = batch size ({_level_default('batch_size')})")
    _patch_help(parser, "learning_rate", f"learning rate ({_level_default('learning_rate')})")
    _patch_help(parser, "clipnorm", f"clip the gradient to this global norm, 0 = off ({_level_default('clipnorm')})")
    _patch_help(parser, "seed", "random seed for weights and dropout (default 0)")


def add_source_arguments(parser):
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run-dir", help="a trained run folder (RNN or n-gram)")
    source.add_argument("--export", dest="export_dir", help="an exported SavedModel folder (answers without the run)")


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m apps.lm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_verbose_argument(parser)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = verbs.add_parser("train", help="train an RNN (or fit an n-gram) language model; resumes a run")
    add_data_arguments(p)
    _patch_help(p, "data", DATA_HELP + " (default: the run's when resuming, else ptb, or tinyshakespeare with --level char)")
    add_model_arguments(p)
    p.add_argument("--eval-batch-size", type=int, default=1, help="parallel streams for the final exact evaluation (default 1: one pass)")
    p.add_argument("--max-minutes", type=float, help="stop training after this many minutes (the epoch is then validated)")
    p.add_argument("--steps-per-epoch", type=int, help="cap the windows per epoch (quick runs)")
    p.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard logs")
    from seqapps.cli import add_final_fit_argument

    add_final_fit_argument(p)

    p = verbs.add_parser("evaluate", help="exact perplexity (and bits per character) of a trained run")
    p.add_argument("--run-dir", required=True, help="the trained run folder")
    add_data_arguments(p, level=False)
    p.add_argument("--split", nargs="+", default=["validation", "test"], choices=["train", "validation", "test"], help="splits to evaluate (default validation test)")
    p.add_argument("--batch-size", type=int, default=1, help="parallel streams (default 1: one pass over the stream)")

    p = verbs.add_parser("generate", help="continue prompts: greedy, or sampled at a temperature with top-k / nucleus")
    add_source_arguments(p)
    p.add_argument("prompts", nargs="*", default=[""], help="prompts to continue (default: one empty prompt); invalid UTF-8 bytes read as U+FFFD")
    p.add_argument("--max-tokens", type=int, default=100,
                   help="tokens to generate per prompt, >= 0 (default 100; above --max-tokens-cap, or an export's cap, "
                        "the cap, with a message; 0 = empty text; negative = an error)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="T: sample from softmax(logits / T), alpha = 1/T; 0 = greedy; above 10000 = 10000 (uniform "
                        "in practice); negative, NaN or inf = an error (default 1)")
    p.add_argument("--greedy", action="store_true", help="same as --temperature 0")
    p.add_argument("--top-k", type=int, default=0, help="sample among the k most likely tokens only (default 0 = off; negative = an error)")
    p.add_argument("--top-p", type=float, default=1.0,
                   help="nucleus sampling: the most likely tokens up to this probability, in (0, 1] (default 1 = off; "
                        "0, negative, above 1 or NaN = an error)")
    p.add_argument("--seed", type=int, help="sampling seed; the same seed gives the same text (default: random, printed)")
    p.add_argument("--max-tokens-cap", type=int, default=1000, help="upper bound on --max-tokens for in-memory runs (default 1000)")
    p.add_argument("--max-input-tokens", type=int, default=1000, help=MAX_INPUT_HELP)
    p.add_argument("--json", action="store_true", help="print JSON")

    p = verbs.add_parser("complete", help="sentence completion: the most likely next tokens, step by step")
    add_source_arguments(p)
    p.add_argument("prompt", help="the incomplete sentence")
    p.add_argument("--steps", type=int, default=5, help="tokens to add, >= 0 (default 5)")
    p.add_argument("--top-k", type=int, default=5, help="candidates shown per step, >= 1 (default 5)")
    p.add_argument("--max-input-tokens", type=int, default=1000, help=MAX_INPUT_HELP)
    p.add_argument("--json", action="store_true", help="print JSON")

    p = verbs.add_parser("score", help="log-probability, per-token log-probs and perplexity of sentences, ranked")
    add_source_arguments(p)
    p.add_argument("sentences", nargs="+", help="sentences (hypotheses) to score and rank; invalid UTF-8 bytes read as U+FFFD")
    p.add_argument("--per-token", action="store_true", help="also print each token's log-probability")
    p.add_argument("--max-input-tokens", type=int, default=1000, help=MAX_INPUT_HELP)
    p.add_argument("--json", action="store_true", help="print JSON")

    p = verbs.add_parser("export", help="write a SavedModel with generate / score / next_tokens signatures")
    p.add_argument("--run-dir", required=True, help="the trained run folder")
    p.add_argument("--out", required=True, help="export folder; versions are numbered folders inside")
    p.add_argument("--max-tokens-cap", type=int, default=1000, help="the most tokens one generate call returns (default 1000)")
    p.add_argument("--max-input-tokens", type=int, default=1000,
                   help="the most tokens of a text the signatures read: score the first, generate/next_tokens the "
                        "last of the prompt, with `truncated` true (default 1000)")
    p.add_argument("--top-k", type=int, default=0, help="top-k of the plain generate signature (default 0 = off)")
    p.add_argument("--top-p", type=float, default=1.0, help="top-p of the plain generate signature (default 1 = off)")

    p = verbs.add_parser("tune", help="keras-tuner search over cell, units, layers, dropout, BPTT length, learning rate")
    from seqapps.cli import add_tuning_arguments

    add_data_arguments(p)
    p.add_argument("--run-dir", required=True, help="folder for the search and the retrained best model")
    p.add_argument("--epochs", type=int, default=2, help="epochs per trial (default 2)")
    p.add_argument("--steps-per-epoch", type=int, help="cap the windows per trial epoch (quick searches)")
    p.add_argument("--retrain-epochs", type=int, help="epochs to retrain the best configuration on train+validation (default: the best trial's)")
    p.add_argument("--overwrite", action="store_true", help="start the search afresh")
    p.add_argument("--seed", type=int, default=0, help="search seed (default 0)")
    add_tuning_arguments(p, objective="val_loss")
    _patch_help(p, "oracle_ip", "address of the keras-tuner chief (oracle) for --distributed (default 127.0.0.1)")
    _patch_help(p, "oracle_port", "port of the keras-tuner chief (oracle) for --distributed (default 8000)")

    p = verbs.add_parser("gradient-flow", help="measured norm of d loss_t / d h_k against t - k for SimpleRNN, LSTM and GRU")
    p.add_argument("--data", help=DATA_HELP + " (default: the first --run-dir's data, else tinyshakespeare)")
    p.add_argument("--level", choices=["word", "char"], help="tokens are words or characters, without --run-dir (default: by --data)")
    p.add_argument("--run-dir", dest="run_dirs", action="append", help="use this trained run (repeat for several); default: train each cell briefly")
    p.add_argument("--cells", nargs="+", default=["simple", "lstm", "gru"], choices=["simple", "lstm", "gru"], help="cells to train and compare, without --run-dir (default all three)")
    p.add_argument("--units", type=int, default=128, help="units of the briefly trained models, without --run-dir (default 128)")
    p.add_argument("--train-steps", type=int, default=300, help="training windows per cell before measuring, without --run-dir (default 300)")
    p.add_argument("--span", type=int, default=60, help="largest t - k measured (default 60)")
    p.add_argument("--samples", type=int, default=32, help="passages averaged (default 32)")
    p.add_argument("--out", default="gradient_flow.png", help="PNG to write (a .json with the numbers beside it)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")

    p = verbs.add_parser("cells", help="one hidden unit's activation over a passage, as coloured HTML and PNG")
    p.add_argument("--run-dir", required=True, help="a trained RNN run (character level shows it best)")
    p.add_argument("--text", help="the passage (default: the start of the validation split)")
    p.add_argument("--text-file", help="read the passage from this file")
    p.add_argument("--chars", type=int, default=1500, help="at most this many tokens of the passage (default 1500)")
    p.add_argument("--layer", type=int, help="recurrent layer, 1 = lowest (default: the last)")
    p.add_argument("--unit", type=int, help="unit to show (default: found automatically for --feature)")
    p.add_argument("--feature", default="auto", choices=["auto", "quotes", "line-position", "capitals", "word-position", "variance"],
                   help="what the automatically found unit should track best (default auto: the best of all)")
    p.add_argument("--out", default="cells.html", help="HTML file to write (a .png beside it)")

    p = verbs.add_parser("embeddings", help="export embeddings for the TensorBoard projector; nearest neighbours")
    p.add_argument("--run-dir", required=True, help="a trained RNN run")
    p.add_argument("--out", help="folder for vectors.tsv, metadata.tsv and the projector checkpoint (default: <run-dir>/projector)")
    p.add_argument("--words", nargs="*", default=[], help="print the nearest neighbours of these tokens")
    p.add_argument("--k", type=int, default=10, help="neighbours per word (default 10)")
    for sub in verbs.choices.values():  # `--verbose` before or after the verb
        add_verbose_argument(sub)
    return parser


def _print_json(value):
    print(json.dumps(value, indent=2, ensure_ascii=False, default=float))


def main(argv=None):
    """Runs one command; returns its exit status: 0, `seqapps.cli.DATA_ERROR_STATUS` for an
    expected failure (bad data or options, one `error:` line), INTERRUPTED_STATUS for Ctrl-C
    (argparse's usage errors exit with 2). TensorFlow starts quietly after parsing
    (`--verbose` or SEQAPPS_VERBOSE=1 shows its start-up lines)."""
    from seqapps.cli import CommandFailed, run_verb

    parser = build_parser()
    parser.set_defaults(run=_run)
    try:
        run_verb(parser, argv)
    except CommandFailed as failed:
        return failed.code
    return 0


def _run(args):
    import tensorflow as tf

    from apps.lm import commands

    try:
        return _dispatch(args, commands)
    except tf.errors.InvalidArgumentError as error:  # a graph's argument check: its own line only
        lines = [line for line in error.message.splitlines() if "assertion failed" in line]
        raise ValueError(lines[0].strip() if lines else error.message.splitlines()[0]) from None


def _dispatch(args, commands):
    verb = args.verb
    if verb == "train":
        metrics = commands.train(
            args.run_dir, args.data, level=args.level, model=args.model, order=args.order, cell=args.cell,
            units=args.units, layers=args.layers, embedding_dim=args.embedding_dim, dropout=args.dropout,
            tie_weights=args.tie_weights, bptt=args.bptt, batch_size=args.batch_size, epochs=args.epochs,
            optimizer=args.optimizer, learning_rate=args.learning_rate, clipnorm=args.clipnorm,
            lr_decay=args.lr_decay, lr_decay_min_delta=args.lr_decay_min_delta, patience=args.patience,
            min_count=args.min_count, max_vocab=args.max_vocab,
            seed=args.seed, eval_batch_size=args.eval_batch_size, max_minutes=args.max_minutes,
            steps_per_epoch=args.steps_per_epoch, strategy=args.strategy, mixed_precision=args.mixed_precision,
            jit=args.jit, overwrite=args.overwrite, quiet=args.quiet, tensorboard=not args.no_tensorboard,
            include_validation=args.include_validation, encoding=args.encoding,
        )
        _print_json({k: metrics[k] for k in ("validation", "test") if k in metrics})
    elif verb == "evaluate":
        _print_json(commands.evaluate(args.run_dir, data=args.data, splits=args.split, batch_size=args.batch_size,
                                      encoding=args.encoding))
    elif verb == "generate":
        results = commands.generate(
            args.prompts, run_dir=args.run_dir, export_dir=args.export_dir, max_tokens=args.max_tokens,
            temperature=0.0 if args.greedy else args.temperature, top_k=args.top_k, top_p=args.top_p,
            seed=args.seed, max_tokens_cap=args.max_tokens_cap, max_input_tokens=args.max_input_tokens,
        )
        if args.json:
            _print_json(results)
        for r in results if not args.json else []:
            note = f" ({r['num_unknown']} unknown token(s) in the prompt)" if r["num_unknown"] else ""
            print(r["full_text"])
            print(f"-- {r['num_tokens']} tokens, seed {r['seed']}{note}")
    elif verb == "complete":
        steps = commands.complete(args.prompt, run_dir=args.run_dir, export_dir=args.export_dir, steps=args.steps, k=args.top_k,
                                  max_input_tokens=args.max_input_tokens)
        if args.json:
            return _print_json(steps)
        for i, s in enumerate(steps, 1):
            shown = ", ".join(f"{t!r} {p:.3f}" for t, p in s["candidates"])
            print(f"step {i}: {shown}")
        print(f"=> {steps[-1]['text'] if steps else commands._text(commands.as_bytes(args.prompt)[0])}")
    elif verb == "score":
        results = commands.score(args.sentences, run_dir=args.run_dir, export_dir=args.export_dir,
                                 max_input_tokens=args.max_input_tokens)
        if args.json:
            return _print_json(results)
        print(f"{'rank':>4}  {'log p':>10}  {'log2 p':>9}  {'ppl':>9}  {'tokens':>6}  sentence")
        for rank, r in enumerate(results, 1):
            note = f"  ({r['num_unknown']} unknown)" if r["num_unknown"] else ""
            note += "  (truncated)" if r.get("truncated") else ""
            print(f"{rank:>4}  {r['log_prob']:>10.3f}  {r['log_prob'] / math.log(2):>9.2f}  {r['perplexity']:>9.2f}  {r['num_tokens']:>6}  {r['sentence']}{note}")
            if args.per_token:
                print("      " + "  ".join(f"{t!r}:{lp:.2f}" for t, lp in zip(r["tokens"], r["token_log_probs"])))
    elif verb == "export":
        path = commands.export(args.run_dir, args.out, max_tokens_cap=args.max_tokens_cap,
                               max_input_tokens=args.max_input_tokens, top_k=args.top_k, top_p=args.top_p)
        print(path)
    elif verb == "tune":
        from apps.lm import tuning

        tuning.tune_from_args(args)
    elif verb == "gradient-flow":
        from apps.lm import diagnostics

        result = diagnostics.gradient_flow(
            run_dirs=args.run_dirs, data=args.data, level=args.level, cells=args.cells, units=args.units,
            train_steps=args.train_steps, span=args.span, samples=args.samples, out=args.out, seed=args.seed,
        )
        print(diagnostics.format_gradient_flow(result))
    elif verb == "cells":
        from apps.lm import diagnostics

        text = args.text
        if args.text_file:
            with open(args.text_file, encoding="utf-8") as f:
                text = f.read()
        result = diagnostics.cells(args.run_dir, text=text, max_tokens=args.chars, layer=args.layer, unit=args.unit,
                                   feature=args.feature, out=args.out)
        print(f"layer {result['layer']} unit {result['unit']} ({result['feature']}: correlation {result['correlation']:+.2f}) "
              f"-> {result['html']}, {result['png']}")
    elif verb == "embeddings":
        from apps.lm import diagnostics

        result = diagnostics.embeddings(args.run_dir, out=args.out, words=args.words, k=args.k)
        print(f"projector files in {result['out']} (tensorboard --logdir {result['out']})")
        for word, neighbours in result["neighbours"].items():
            print(f"{word}: " + ", ".join(f"{w} {s:.2f}" for w, s in neighbours))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Command-line options every app shares. Kept free of TensorFlow imports so that
`python -m apps.<app> VERB --help` answers at once."""

PRECISIONS = ("off", "auto", "float16", "bfloat16")  # see seqapps.training.configure_precision


def add_training_arguments(parser, *, epochs, batch_size, learning_rate, patience=3, clipnorm=5.0,
                           tuning=False):
    """The options every app's `train` accepts; `tuning=True`: those `tune` accepts (the
    search picks the learning rate, and keras-tuner distributes with --distributed instead
    of a tf.distribute strategy)."""
    parser.add_argument("--run-dir", required=True, help="folder for config, checkpoints, logs, metrics")
    parser.add_argument("--epochs", type=int, default=epochs, help=f"maximum epochs (default {epochs})")
    parser.add_argument("--batch-size", type=int, default=batch_size, help=f"global batch size (default {batch_size})")
    if not tuning:
        parser.add_argument("--learning-rate", type=float, default=learning_rate, help=f"learning rate (default {learning_rate})")
    parser.add_argument("--clipnorm", type=float, default=clipnorm, help=f"clip the gradients to this global norm (default {clipnorm}; 0 = off)")
    parser.add_argument("--patience", type=int, default=patience, help=f"early-stopping patience in epochs (default {patience}; 0 = off)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for weights, shuffling and dropout (default 0)")
    if not tuning:
        parser.add_argument("--strategy", default="default", choices=["default", "mirrored", "multiworker", "tpu"], help="tf.distribute strategy (default: one device)")
    parser.add_argument(
        "--mixed-precision", nargs="?", const="auto", default="off", choices=PRECISIONS,
        help="compute in 16 bits with float32 weights: float16, bfloat16, or auto (the flag "
             "alone) = float16 on a GPU, bfloat16 on a TPU or on a CPU with bfloat16 "
             "instructions (AVX512-BF16, AMX), float32 on other CPUs, which only emulate it "
             "(default off)",
    )
    parser.add_argument("--jit", action="store_true", help="compile the training step with XLA")
    parser.add_argument("--overwrite", action="store_true", help="discard an existing run in --run-dir instead of resuming it")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def add_final_fit_argument(parser):
    """`train --include-validation`: the last step once hyperparameters are chosen."""
    parser.add_argument(
        "--include-validation", action="store_true",
        help="train on train+validation for exactly --epochs epochs, with no early stopping and "
             "no validation metrics; best.keras is the last epoch (what `tune` does to retrain "
             "the best configuration, with the best trial's epoch count)",
    )


def metric_direction(metric):
    """"max" for metrics that grow as the model improves (accuracy, AUC, F1, BLEU), else "min"."""
    return "max" if any(k in metric for k in ("acc", "auc", "f1", "bleu")) else "min"


def add_tuning_arguments(parser, *, objective):
    parser.add_argument("--tuner", default="random", choices=["random", "bayesian", "hyperband"], help="search algorithm (default random)")
    parser.add_argument("--max-trials", type=int, default=10, help="trials for random/bayesian (default 10)")
    parser.add_argument("--objective", default=objective, help=f"metric to optimize (default {objective})")
    parser.add_argument("--direction", choices=["min", "max"],
                        help="minimize or maximize --objective (default: max for accuracy, AUC, F1 "
                             "and BLEU, min otherwise)")
    parser.add_argument(
        "--distributed", choices=["chief", "worker"],
        help="keras-tuner chief/worker mode; the oracle address comes from --oracle-ip/--oracle-port",
    )
    parser.add_argument("--oracle-ip", default="127.0.0.1", help="address of the chief's oracle (the chief listens on it; default 127.0.0.1)")
    parser.add_argument("--oracle-port", type=int, default=8000, help="port of the chief's oracle (default 8000)")
    parser.add_argument("--worker-index", type=int, default=0, help="this worker's number (tuner0, tuner1, ...)")
    parser.add_argument("--no-retrain", action="store_true", help="skip retraining and exporting the best configuration")


def run_verb(parser, argv=None):
    """Parses `argv`, runs the chosen verb (`set_defaults(run=...)`), returns its result.

    Expected failures (bad data, missing files, wrong options) end with one clear line
    instead of a traceback; Ctrl-C says how to resume.
    """
    args = parser.parse_args(argv)
    if getattr(args, "objective", None) and getattr(args, "direction", "") is None:
        args.direction = metric_direction(args.objective)  # `tune` without --direction
    from seqapps.data import DataError  # imports TensorFlow: only once the options are valid

    try:
        return args.run(args)
    except (DataError, FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from error
    except KeyboardInterrupt:
        raise SystemExit("interrupted: run the same command again to resume from the last finished epoch")

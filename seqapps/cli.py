"""Command-line options every app shares. Kept free of TensorFlow imports so that
`python -m apps.<app> VERB --help` answers at once.

Exit statuses of every app command: 0 done; `DATA_ERROR_STATUS` (1) an expected failure
reported in one `error: ...` line on stderr (a malformed, missing or mis-encoded data file, a
run folder with other settings, an invalid option value); 2 the command line itself is wrong
(argparse's usage errors); `INTERRUPTED_STATUS` (130) Ctrl-C, with a line saying how to resume.
"""

import argparse
import contextlib
import importlib
import os
import sys

DATA_ERROR_STATUS = 1
INTERRUPTED_STATUS = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C
VERBOSE_ENV = "SEQAPPS_VERBOSE"

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


def add_data_file_arguments(parser):
    """Adds `--encoding ENC` (default None: each reader's own default, UTF-8 except the MR
    polarity files' Latin-1) and `--skip-bad-lines` (malformed lines are skipped and counted
    on stderr instead of ending the command; run_verb applies it around the verb through
    `seqapps.data.readers.skipping_bad_lines`)."""
    parser.add_argument(
        "--encoding", default=None, metavar="ENC",
        help="text encoding of the data files, e.g. latin-1 or cp1252 (default: UTF-8; "
             "Latin-1 for the MR polarity files)",
    )
    parser.add_argument(
        "--skip-bad-lines", action="store_true",
        help="skip malformed lines of the data files instead of stopping at the first; "
             "each file's skipped lines are counted on stderr",
    )


def add_verbose_argument_to_verbs(verbs):
    """`--verbose` on every verb of an `add_subparsers()` object, so it may follow the verb."""
    for parser in verbs.choices.values():
        add_verbose_argument(parser)


def lazy_verb(module, verb):
    """A `set_defaults(run=...)` function that imports `module` (which imports TensorFlow)
    only when the verb runs, so `--help` stays instant."""

    def run(args):
        return getattr(importlib.import_module(module), verb)(args)

    return run


def add_verbose_argument(parser):
    """Adds `--verbose`: TensorFlow's start-up log lines back on stderr.

    The option is only set when given (`default=SUPPRESS`), so it may be added to the top
    parser and to each verb's parser alike; read it with `is_verbose(args)`.
    """
    parser.add_argument(
        "--verbose", action="store_true", default=argparse.SUPPRESS,
        help=f"show TensorFlow's start-up log lines (oneDNN, CUDA, absl) on stderr, which are "
             f"hidden by default; the environment variable {VERBOSE_ENV}=1 does the same",
    )


def is_verbose(args=None):
    """True when `args` has `--verbose` or the environment sets SEQAPPS_VERBOSE (not 0/empty)."""
    if args is not None and getattr(args, "verbose", False):
        return True
    return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


class CommandFailed(SystemExit):
    """Ends a command with `status`; `str()` is the one-line message (printed by `fail`)."""

    def __init__(self, message, status):
        super().__init__(status)
        self.message = message

    def __str__(self):
        return self.message


def fail(message, status=DATA_ERROR_STATUS):
    """Prints `message` on stderr and returns the `CommandFailed` to raise (exit `status`)."""
    print(message, file=sys.stderr, flush=True)
    return CommandFailed(message, status)


_tensorflow = None  # the module, once start_tensorflow has imported it


def start_tensorflow(verbose=False):
    """Imports TensorFlow and Keras and initialises the devices; returns `tensorflow`.

    Quiet unless `verbose` (or SEQAPPS_VERBOSE=1): TF 2.21 prints its start-up lines from
    C++ before absl logging is initialised ("All log messages before absl::InitializeLog()",
    the oneDNN notice, "Could not find cuda drivers"), which TF_CPP_MIN_LOG_LEVEL does not
    reach. So, in quiet mode, TF_CPP_MIN_LOG_LEVEL is 3 (unless set to 0 or 1: then kept) and
    file descriptor 2 goes to /dev/null only while TensorFlow and Keras are imported and the
    physical devices are listed (which runs cuInit), and is restored at once. Python's own stderr keeps writing to the terminal
    during that window, so Python warnings issued then still show; everything after it
    (our warnings, Python warnings, C++ errors) prints as usual.

    Call it after parsing the options and before anything imports TensorFlow (run_verb does);
    the first call does the work, later calls return the module.
    """
    global _tensorflow
    if _tensorflow is not None:
        return _tensorflow
    verbose = verbose or is_verbose()
    if not verbose and os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2") in ("", "2"):
        # 3: no C++ INFO, WARNING or ERROR lines. The ERROR lines TF logs by itself are
        # notices (oneDNN's "supports DT_BOOL only on platforms with AVX-512", cuInit on a
        # machine without a GPU); a real failure raises a Python exception with the message.
        # A lower level (0, 1) set by the user is kept.
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    with (contextlib.nullcontext() if verbose else _native_stderr_silenced()):
        import tensorflow as tf
        import keras  # noqa: F401  (imported here so its start-up is quiet too)

        tf.config.list_physical_devices()  # device discovery: cuInit and its error line
    _tensorflow = tf
    return tf


@contextlib.contextmanager
def _native_stderr_silenced():
    """Points file descriptor 2 at /dev/null (what C++ writes is dropped) while Python's
    `sys.stderr` writes to a copy of the original descriptor."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield  # no usable descriptor 2 (closed, or an embedding): nothing to silence
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    original = sys.stderr
    proxy = _StartupStderr(original, saved) if _writes_to_fd2(original) else None
    try:
        if proxy is not None:
            sys.stderr = proxy
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        if proxy is not None:
            proxy.end_of_start_up()
            if sys.stderr is proxy:
                sys.stderr = original
        os.close(saved)
        os.close(devnull)


class _StartupStderr:
    """`sys.stderr` while descriptor 2 is silenced: writes go to a copy of the original
    descriptor, and, after start-up, to the original stream. Logging handlers created during
    the imports (TensorFlow's own) keep this object as their stream, so it must keep
    working after the window closes."""

    def __init__(self, original, fd):
        self._original = original
        self._during = open(os.dup(fd), "w", buffering=1, errors="backslashreplace",
                            encoding=getattr(original, "encoding", None) or "utf-8")

    def end_of_start_up(self):
        during, self._during = self._during, None
        during.close()

    def _stream(self):
        return self._during if self._during is not None else self._original

    def write(self, text):
        return self._stream().write(text)

    def writelines(self, lines):
        return self._stream().writelines(lines)

    def flush(self):
        return self._stream().flush()

    def __getattr__(self, name):  # encoding, errors, fileno, isatty, ...: the original's
        return getattr(self._original, name)


def _writes_to_fd2(stream):
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return False


def run_verb(parser, argv=None):
    """Parses `argv`, runs the chosen verb (`set_defaults(run=...)`), returns its result.

    TensorFlow starts quietly after parsing (`start_tensorflow`; `--verbose` or
    SEQAPPS_VERBOSE=1 shows its start-up lines), so `--help` and usage errors never import it.
    With `--skip-bad-lines` (add_data_file_arguments) the verb runs inside
    `skipping_bad_lines()`: files read anywhere in it skip malformed lines, and the counts not
    already reported by an inner `skipping_bad_lines()` (an app's, around its loading, to
    report them before training) are printed when the verb ends.
    Expected failures (bad data, missing files, wrong options) end with one clear line on
    stderr instead of a traceback and exit with DATA_ERROR_STATUS; Ctrl-C says how to resume
    and exits with INTERRUPTED_STATUS.
    """
    args = parser.parse_args(argv)
    if getattr(args, "objective", None) and getattr(args, "direction", "") is None:
        args.direction = metric_direction(args.objective)  # `tune` without --direction
    start_tensorflow(verbose=is_verbose(args))
    from seqapps.data import DataError  # imports TensorFlow: only once the options are valid
    from seqapps.data.readers import skipping_bad_lines

    try:
        with skipping_bad_lines(getattr(args, "skip_bad_lines", False)):
            return args.run(args)
    except (DataError, FileNotFoundError, ValueError) as error:
        raise fail(f"error: {error}") from error
    except KeyboardInterrupt:
        raise fail("interrupted: run the same command again to resume from the last finished epoch",
                   INTERRUPTED_STATUS) from None

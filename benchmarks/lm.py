"""Language models: ours vs the published anchors, in one run, on this machine.

    python benchmarks/lm.py                          # everything, 60-minute budget per RNN
    python benchmarks/lm.py --minutes 20 --only word ngram
    python benchmarks/lm.py --smoke                  # seconds: checks the pipeline, numbers meaningless
    python benchmarks/lm.py --only long              # the longer PTB configuration (hours on a CPU)

Rows (issue #7 targets, 2 CPU cores):
  * PTB word level, the 2x200 tied LSTM default (PyTorch word_language_model, 6 epochs:
    test perplexity 110.4)          target <= 110 within 60 minutes
  * PTB Kneser-Ney 5-gram (published ~141)
  * PTB, the longer configuration (only with --only long): 2x650 tied LSTM, dropout 0.5,
    the learning rate divided by 4 whenever validation loss gains less than 0.005 nats,
    up to 40 epochs, bfloat16/float16 where the device computes it natively (PyTorch's
    example 75.96; Zaremba et al. 2014 medium 82.7, large 78.4)      target <= 80
  * tiny-shakespeare char level, first 90% train, last 10% validation, no test split: validation loss in
    nats/char (nanoGPT's small character transformer: 1.47)   target <= 1.55 within 60 minutes
Each RNN row also reports training tokens/s and generation tokens/s (sampled, batch 1 and
batch 16, after a warm-up call), and the exact evaluation's own speed. The perplexities are
the app's exact stream evaluation (one pass, every token once).
"""

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

ANCHORS = {
    "word": "PyTorch 2x200 tied LSTM, 6 epochs: test ppl 110.4 (target <= 110 in 60 min)",
    "ngram": "KN5 published: test ppl ~141",
    "long": "PyTorch 2x650 tied: 75.96; Zaremba medium 82.7, large 78.4 (target <= 80)",
    "char": "nanoGPT char transformer: val 1.47 nats/char (target <= 1.55 in 60 min)",
}


def generation_speed(run_dir, tokens):
    from apps.lm import commands

    server = commands.server_for(run_dir, max_tokens_cap=max(tokens, 1))
    speeds = {}
    for batch in (1, 16):
        prompts = ["the"] * batch
        commands.generate(prompts, max_tokens=tokens, temperature=1.0, seed=0, server=server)  # trace
        start = time.perf_counter()
        commands.generate(prompts, max_tokens=tokens, temperature=1.0, seed=1, server=server)
        speeds[f"batch_{batch}"] = batch * tokens / (time.perf_counter() - start)
    sample = commands.generate(["the"], max_tokens=min(tokens, 60), temperature=0.8, seed=0, server=server)[0]["text"]
    return speeds, sample


# The longer PTB configuration (apps/lm/README.md). Decaying once the gain per epoch falls
# under 0.5 % of perplexity, rather than only when it stops, fits it into one CPU sitting.
LONG = dict(units=650, dropout=0.5, epochs=40, lr_decay_min_delta=0.005, mixed_precision="auto")


def run_rnn(name, run_dir, data, args, smoke, **config):
    from apps.lm import commands

    options = dict(max_minutes=args.minutes, epochs=args.epochs, quiet=not args.verbose, overwrite=True)
    if config:  # the long row has its own epoch count and no time budget unless given one
        options.update(config, max_minutes=args.long_minutes, epochs=args.epochs or config["epochs"])
    if smoke:
        options.update(epochs=1, steps_per_epoch=args.smoke_steps, max_minutes=None)
    start = time.perf_counter()
    metrics = commands.train(run_dir, data, **options)
    wall = time.perf_counter() - start
    speeds, sample = generation_speed(run_dir, 20 if smoke else 200)
    return {
        "validation": metrics["validation"], "test": metrics.get("test"), "wall_seconds": wall,
        "train_seconds": metrics["train_seconds"], "epochs": metrics.get("epochs_finished"),
        "train_tokens_per_sec": metrics.get("train_tokens_per_sec"),
        "eval_tokens_per_sec": metrics["validation"]["tokens"] / max(metrics["validation"]["seconds"], 1e-9),
        "generate_tokens_per_sec": speeds, "sample": sample,
    }


def run_ngram(run_dir, order):
    from apps.lm import commands

    start = time.perf_counter()
    metrics = commands.train(run_dir, "ptb", model="ngram", order=order, overwrite=True)
    return {"validation": metrics["validation"], "test": metrics["test"], "wall_seconds": time.perf_counter() - start,
            "train_seconds": metrics["train_seconds"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=["word", "ngram", "char", "long"], default=["word", "ngram", "char"],
                        help="rows to run (default word ngram char; long = the longer PTB configuration, hours)")
    parser.add_argument("--minutes", type=float, default=60.0, help="training time budget per RNN row (default 60)")
    parser.add_argument("--long-minutes", type=float, help="training time budget of the long row (default none)")
    parser.add_argument("--epochs", type=int, help="epochs per RNN row (default: the app's, 6 word / 10 char; 40 long)")
    parser.add_argument("--order", type=int, default=5, help="n-gram order (default 5)")
    parser.add_argument("--smoke", action="store_true", help="1 epoch of --smoke-steps windows per RNN row")
    parser.add_argument("--smoke-steps", type=int, default=30, help="windows per smoke epoch (default 30)")
    parser.add_argument("--runs", help="folder for the run folders (default: a temporary one)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--verbose", action="store_true", help="Keras progress output")
    args = parser.parse_args(argv)

    runs = pathlib.Path(args.runs or tempfile.mkdtemp(prefix="lm-bench-"))
    results = {}
    if "word" in args.only:
        results["word"] = run_rnn("word", runs / "ptb", "ptb", args, args.smoke)
    if "ngram" in args.only:
        results["ngram"] = run_ngram(runs / f"kn{args.order}", args.order)
    if "char" in args.only:
        results["char"] = run_rnn("char", runs / "shakespeare", "tinyshakespeare", args, args.smoke)
    if "long" in args.only:
        results["long"] = run_rnn("long", runs / "ptb650", "ptb", args, args.smoke, **LONG)

    print(f"\n{'model':<34}{'val':>9}{'test':>9}{'wall s':>9}{'train tok/s':>13}{'gen tok/s (1 / 16)':>22}  anchor")
    labels = {"word": "PTB 2x200 tied LSTM (ppl)", "ngram": f"PTB KN {args.order}-gram (ppl)",
              "char": "tiny-shakespeare (nats/char)", "long": "PTB 2x650 tied LSTM (ppl)"}
    for key, r in results.items():
        metric = "nll" if key == "char" else "perplexity"
        gen = r.get("generate_tokens_per_sec")
        gen_text = f"{gen['batch_1']:,.0f} / {gen['batch_16']:,.0f}" if gen else "-"
        train = f"{r['train_tokens_per_sec']:,.0f}" if r.get("train_tokens_per_sec") else "-"
        test = f"{r['test'][metric]:>9.3f}" if r.get("test") else f"{'none':>9}"  # tiny-shakespeare: no test split
        print(f"{labels[key]:<34}{r['validation'][metric]:>9.3f}{test}{r['wall_seconds']:>9.0f}"
              f"{train:>13}{gen_text:>22}  {ANCHORS[key]}")
    for key in ("word", "char", "long"):
        if key in results:
            print(f"{key}: exact evaluation {results[key]['eval_tokens_per_sec']:,.0f} tokens/s; "
                  f"sample: {results[key]['sample']!r}")
    if args.smoke:
        print("(smoke run: the numbers only show that the pipeline runs)")
    print(f"run folders: {runs}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=2, default=float) + "\n")
    return results


if __name__ == "__main__":
    main()

"""Sentiment quality, training time and serving speed, measured in one run.

    python benchmarks/sentiment.py                       # SST-2 rnn + bow, export latency
    python benchmarks/sentiment.py --sets sst2 sst5 mr   # everything (MR = 10 trainings)
    python benchmarks/sentiment.py --mr-folds 3          # fewer MR folds

Trains the default configuration (`python -m apps.sentiment train` with no options) from
scratch — no pretrained vectors, sentence-level labels only — and the bag-of-words baseline
beside it, then exports the SST-2 model and times the SavedModel on CPU: single-sentence
latency (p50, p99) and batch-of-256 throughput.

Targets (issue #5): SST-2 test accuracy >= 85%, MR 10-fold CV >= 78%, SST-5 >= 45%,
default SST-2 training <= 15 minutes on 2 CPU cores.
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TARGETS = {"sst2": 0.85, "mr": 0.78, "sst5": 0.45}


def train(data, model, run_dir, extra=(), fold=None):
    from apps.sentiment.__main__ import run

    argv = ["train", "--data", data, "--model", model, "--run-dir", run_dir, "--quiet", *extra]
    if fold is not None:
        argv += ["--fold", str(fold)]
    start = time.time()
    report = run(argv)
    return report["test"]["accuracy"], time.time() - start


def serving_speed(run_dir, export_dir, sentences):
    import numpy as np
    import tensorflow as tf

    from apps.sentiment.__main__ import run

    out = run(["export", "--run-dir", run_dir, "--out", export_dir])
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    for s in sentences[:20]:  # warm up
        serve(text=tf.constant([s]))
    latencies = []
    for s in sentences[:500]:
        start = time.perf_counter()
        serve(text=tf.constant([s]))["probabilities"].numpy()
        latencies.append(time.perf_counter() - start)
    batch = tf.constant((sentences * 2)[:256])
    serve(text=batch)
    start, reps = time.perf_counter(), 10
    for _ in range(reps):
        serve(text=batch)["probabilities"].numpy()
    throughput = 256 * reps / (time.perf_counter() - start)
    return 1000 * np.percentile(latencies, 50), 1000 * np.percentile(latencies, 99), throughput


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=["sst2"], choices=list(TARGETS))
    parser.add_argument("--mr-folds", type=int, default=10, help="MR cross-validation folds to run (of 10)")
    parser.add_argument("--work-dir", default=None, help="where run folders go (default: a temporary folder)")
    args = parser.parse_args(argv)
    work = args.work_dir or tempfile.mkdtemp(prefix="seqapps-bench-")
    rows = []
    for name in args.sets:
        for model in ("rnn", "bow"):
            if name == "mr":
                folds = [train("mr", model, f"{work}/mr-{model}-{k}", fold=k) for k in range(args.mr_folds)]
                acc = statistics.mean(a for a, _ in folds)
                seconds = sum(s for _, s in folds)
                label = f"mr ({args.mr_folds}-fold CV)"
            else:
                acc, seconds = train(name, model, f"{work}/{name}-{model}")
                label = name
            rows.append((label, model, acc, seconds, TARGETS[name] if model == "rnn" else None))
            print(f"{label:<18}{model:<5} test accuracy {acc:.4f}  train {seconds / 60:.1f} min", flush=True)

    print(f"\n{'data':<18}{'model':<6}{'accuracy':>9}{'target':>8}{'minutes':>9}")
    for label, model, acc, seconds, target in rows:
        t = f"{target:.2f}" if target else "-"
        print(f"{label:<18}{model:<6}{acc:>9.4f}{t:>8}{seconds / 60:>9.1f}")

    if "sst2" in args.sets:
        from seqapps.data import load_sentiment

        sentences = [t for t, _ in load_sentiment("sst2").test]
        p50, p99, throughput = serving_speed(f"{work}/sst2-rnn", f"{work}/export", sentences)
        print(f"\nexported SST-2 model on CPU: single sentence p50 {p50:.1f} ms, p99 {p99:.1f} ms; "
              f"batch of 256: {throughput:.0f} sentences/s")


if __name__ == "__main__":
    main()

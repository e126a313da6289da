"""Serving speed of exported SavedModels on CPU: p50/p99 latency and throughput per batch size.

    python benchmarks/serving.py exports/sentiment exports/translation exports/lm
    python benchmarks/serving.py exports/lm --signature generate --batch-sizes 1 32

For every export folder (its newest version) and signature, requests of 1, 32 and 256 raw
strings are sent through `tf.saved_model.load` — the same graph TensorFlow Serving runs. String
inputs get sentences from the bundled test data; other scalar inputs get the defaults below.
"""

import argparse
import os
import pathlib
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SCALAR_DEFAULTS = {"max_tokens": 20, "temperature": 1.0, "seed": 0, "k": 5, "beam": 1}


def sample_sentences():
    from seqapps.data import load_sentiment

    return [text for text, _ in load_sentiment("sst2").test]


def make_inputs(fn, sentences, batch):
    import tensorflow as tf

    inputs = {}
    for name, spec in fn.structured_input_signature[1].items():
        if spec.dtype == tf.string:
            inputs[name] = tf.constant((sentences * (batch // len(sentences) + 1))[:batch])
        elif spec.shape.rank == 0:
            inputs[name] = tf.constant(SCALAR_DEFAULTS.get(name, 1), dtype=spec.dtype)
        else:
            inputs[name] = tf.fill([batch], tf.constant(SCALAR_DEFAULTS.get(name, 1), dtype=spec.dtype))
    return inputs


def measure(fn, inputs, seconds):
    import numpy as np

    fn(**inputs)  # warm up
    latencies, deadline = [], time.time() + seconds
    while time.time() < deadline or len(latencies) < 5:
        start = time.perf_counter()
        out = fn(**inputs)
        [v.numpy() for v in out.values()]
        latencies.append(time.perf_counter() - start)
    return 1000 * np.percentile(latencies, 50), 1000 * np.percentile(latencies, 99)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exports", nargs="+", help="export folders written by the apps' `export`")
    parser.add_argument("--signature", action="append", help="only these signatures (default: all)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32, 256])
    parser.add_argument("--seconds", type=float, default=3.0, help="time spent per measurement")
    args = parser.parse_args(argv)

    import tensorflow as tf
    import tensorflow_text  # noqa: F401 (registers the SentencePiece ops of a subword export)

    from seqapps.export import latest_version_dir

    sentences = sample_sentences()
    print(f"{'export':<28}{'signature':<18}{'batch':>6}{'p50 ms':>10}{'p99 ms':>10}{'items/s':>10}")
    for export in args.exports:
        folder = latest_version_dir(export)
        loaded = tf.saved_model.load(str(folder))
        for name, fn in sorted(loaded.signatures.items()):
            if args.signature and name not in args.signature:
                continue
            for batch in args.batch_sizes:
                p50, p99 = measure(fn, make_inputs(fn, sentences, batch), args.seconds)
                label = pathlib.Path(export).name
                print(f"{label:<28}{name:<18}{batch:>6}{p50:>10.1f}{p99:>10.1f}{batch / (p50 / 1000):>10.0f}", flush=True)


if __name__ == "__main__":
    main()

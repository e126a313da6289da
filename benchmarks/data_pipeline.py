"""Input-pipeline throughput for every bundled set vs the model step it feeds.

    python benchmarks/data_pipeline.py
    python benchmarks/data_pipeline.py --sets sst2 ptb --batch-size 128 --no-anchor

Each set goes through the pipeline the apps use, over its whole training split:
  * sentiment (sst2, sst5, mr): TextVectorization -> length buckets -> padded batches
  * translation (multi30k): source and target TextVectorization -> buckets -> batches
  * language models (ptb, tinyshakespeare): StringLookup over the corpus -> BPTT windows
"epoch 1" includes tokenization, "epoch 2" reads the in-memory cache. The anchor
is one training step of a small Keras LSTM model (embedding 128, LSTM 256) on
batches of the same shape; the claim is pipeline rate >> anchor rate, so the
input pipeline is not the bottleneck. One line per set.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import seqapps.data as data  # noqa: E402

SENTIMENT = ("sst2", "sst5", "mr")
LANGUAGE_MODELS = {"ptb": (20, 35), "tinyshakespeare": (64, 256)}  # (batch, window)
BOUNDARIES = [8, 16, 24, 32, 48]
ANCHOR_STEPS = 10


def timed_epoch(dataset, count):
    """Iterates `dataset` once; returns (seconds, total of count(element))."""
    start, total = time.perf_counter(), 0
    for element in dataset:
        total += count(element)
    return time.perf_counter() - start, total


def anchor_rate(batches, num_tokens, num_outputs, per_token_outputs, count):
    """Examples (or tokens) per second of a small LSTM model's training step."""
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = keras.layers.Embedding(num_tokens, 128)(inputs)
    x = keras.layers.LSTM(256, return_sequences=per_token_outputs)(x)
    model = keras.Model(inputs, keras.layers.Dense(num_outputs)(x))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    batches = list(batches.take(ANCHOR_STEPS))
    for x, y in batches:  # trace every batch shape outside the timing
        model.train_on_batch(x, y)
    start, total = time.perf_counter(), 0
    for x, y in batches:
        model.train_on_batch(x, y)
        total += count((x, y))
    return total / (time.perf_counter() - start)


def report(name, unit, size, first, second, anchor):
    line = (
        f"{name:<22} {size:>9,} {unit:<6} epoch 1 {size / first:>11,.0f} {unit}/s   "
        f"epoch 2 {size / second:>11,.0f} {unit}/s"
    )
    if anchor:
        line += f"   | LSTM step {anchor:>9,.0f} {unit}/s ({size / first / anchor:,.0f}x)"
    print(line, flush=True)


def sentiment(name, batch_size, with_anchor):
    sets = data.load_sentiment(name)
    vectorizer = data.build_word_vectorizer([text for text, _ in sets.train])
    examples = data.to_dataset(sets.train).map(
        lambda text, label: (vectorizer(text), label), num_parallel_calls=tf.data.AUTOTUNE
    )
    batches = data.padded_batches(
        examples, batch_size, bucket_boundaries=BOUNDARIES, shuffle_buffer=len(sets.train), seed=0
    )
    count = lambda batch: int(tf.shape(batch[1])[0])  # noqa: E731
    first, size = timed_epoch(batches, count)
    second, _ = timed_epoch(batches, count)
    anchor = with_anchor and anchor_rate(
        batches, vectorizer.vocabulary_size(), sets.num_classes, False, count
    )
    report(name, "ex", size, first, second, anchor)


def translation(batch_size, with_anchor):
    sets = data.load_translation("en-de")
    source = data.build_word_vectorizer([s for s, _ in sets.train])
    target = data.build_word_vectorizer([t for _, t in sets.train])
    examples = data.to_dataset(sets.train).map(
        lambda s, t: (source(s), target(t)), num_parallel_calls=tf.data.AUTOTUNE
    )
    longest = lambda s, t: tf.maximum(tf.shape(s)[0], tf.shape(t)[0])  # noqa: E731
    batches = data.padded_batches(
        examples,
        batch_size,
        bucket_boundaries=BOUNDARIES,
        length_fn=longest,
        shuffle_buffer=len(sets.train),
        seed=0,
    )
    count = lambda batch: int(tf.shape(batch[0])[0])  # noqa: E731
    first, size = timed_epoch(batches, count)
    second, _ = timed_epoch(batches, count)
    # Anchor: the encoder half only (source -> per-step outputs over the source
    # vocabulary), a lower bound on any encoder-decoder step.
    pairs = batches.map(lambda s, t: (s, s))
    anchor = with_anchor and anchor_rate(
        pairs, source.vocabulary_size(), source.vocabulary_size(), True, count
    )
    report("multi30k en-de", "ex", size, first, second, anchor)


def language_model(name, with_anchor):
    batch_size, window = LANGUAGE_MODELS[name]
    corpus = data.load_language_model(name)
    if corpus.level == "char":
        vocab = data.build_char_vocabulary(corpus.train)
    else:
        vocab = data.build_token_vocabulary(corpus.train)
    lookup = data.build_token_lookup(vocab)
    start = time.perf_counter()
    ids = lookup(tf.constant(corpus.train)).numpy()
    lookup_seconds = time.perf_counter() - start
    windows = data.bptt_windows(ids, batch_size, window)
    count = lambda batch: int(tf.size(batch[0]))  # noqa: E731
    first, size = timed_epoch(windows, count)
    second, _ = timed_epoch(windows, count)
    # Epoch 1 pays for the id lookup too; the windows are rebuilt every epoch.
    anchor = with_anchor and anchor_rate(windows, len(vocab), len(vocab), True, count)
    report(f"{name} ({corpus.level})", "tok", size, first + lookup_seconds, second, anchor)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sets",
        nargs="+",
        default=[*SENTIMENT, "multi30k", *LANGUAGE_MODELS],
        choices=[*SENTIMENT, "multi30k", *LANGUAGE_MODELS],
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--no-anchor", action="store_true", help="skip the LSTM step timing")
    args = parser.parse_args()
    windows = ", ".join(f"{name} {b}x{w}" for name, (b, w) in LANGUAGE_MODELS.items())
    print(
        f"tf {tf.__version__}, {os.cpu_count()} CPU cores; batch {args.batch_size} "
        f"(language models, batch x window: {windows})"
    )
    for name in args.sets:
        if name in SENTIMENT:
            sentiment(name, args.batch_size, not args.no_anchor)
        elif name == "multi30k":
            translation(args.batch_size, not args.no_anchor)
        else:
            language_model(name, not args.no_anchor)


if __name__ == "__main__":
    main()

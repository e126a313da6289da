"""Batching: padded (optionally length-bucketed) batches and BPTT streams."""

import math

import numpy as np
import tensorflow as tf

from seqapps.data.errors import DataError


def first_component_length(*components):
    """Length of the first sequence in an element, the default bucketing key."""
    return tf.shape(tf.nest.flatten(components)[0])[0]


def padded_batches(
    dataset,
    batch_size,
    *,
    bucket_boundaries=None,
    length_fn=None,
    shuffle_buffer=None,
    seed=None,
    drop_remainder=False,
    cache=True,
):
    """Batches variable-length examples, padding with 0 (the mask id).

    Args:
        dataset: elements like `(token_ids, label)` or any nest of int
            sequences and scalars, unbatched.
        bucket_boundaries: sorted lengths; examples of length in
            `[b[i-1], b[i])` are batched together, so a batch is padded only
            to its own longest example rather than the data set's. `None`
            batches in order of arrival.
        length_fn: called like a `map` function with the element's
            components, returns the length to bucket on; default: the length
            of the first sequence (the source, for translation pairs).
        shuffle_buffer: shuffle examples (reshuffled every epoch) before
            batching; `None` keeps the order (evaluation).
        cache: cache the examples in memory first, so tokenization runs once.

    The result knows its number of batches (`cardinality`), so Keras' progress bar shows
    "n/N" from the first epoch on instead of "n/Unknown" and a warning that the input "ran
    out of data". Counting costs one pass over the examples' lengths (it also fills the
    cache); the count does not depend on the shuffle order, since each bucket yields
    ceil(examples in it / batch_size) batches (floor with `drop_remainder`).
    """
    boundaries = list(bucket_boundaries or [])
    length_fn = length_fn or first_component_length
    if boundaries and (boundaries != sorted(set(boundaries)) or boundaries[0] < 1):
        raise ValueError(f"bucket_boundaries must be increasing positive lengths; got {boundaries}.")
    if cache:
        dataset = dataset.cache()
    num_batches = _count_batches(dataset, batch_size, boundaries, length_fn, drop_remainder)
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if boundaries:
        dataset = dataset.bucket_by_sequence_length(
            element_length_func=length_fn,
            bucket_boundaries=boundaries,
            bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
            drop_remainder=drop_remainder,
        )
    else:
        dataset = dataset.padded_batch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(num_batches))
    return dataset.prefetch(tf.data.AUTOTUNE)


def _count_batches(dataset, batch_size, bucket_boundaries, length_fn, drop_remainder):
    if bucket_boundaries:
        lengths = dataset.map(length_fn).as_numpy_iterator()
        # bucket i holds the lengths in [b[i-1], b[i]), as in `bucket_by_sequence_length`
        bucket = np.searchsorted(np.asarray(bucket_boundaries), np.fromiter(lengths, np.int64), side="right")
        sizes = np.bincount(bucket)
    else:  # one pass only when tf.data does not know the number of examples already
        known = int(dataset.cardinality())
        sizes = np.array([known if known >= 0 else int(dataset.reduce(np.int64(0), lambda n, *_: n + 1))])
    per_bucket = sizes // batch_size if drop_remainder else -(-sizes // batch_size)
    return int(per_bucket.sum())


def _stream_length(num_tokens, batch_size):
    # One token is held back so the last input still has a next-token target.
    return (num_tokens - 1) // batch_size


def bptt_num_windows(num_tokens, batch_size, window, *, drop_remainder=False):
    """Number of `(x, y)` windows `bptt_windows` yields for a corpus."""
    steps = _stream_length(num_tokens, batch_size)
    return steps // window if drop_remainder else math.ceil(steps / window)


def bptt_windows(token_ids, batch_size, window, *, drop_remainder=False):
    """Cuts one token stream into windows for truncated BPTT.

    The corpus is split into `batch_size` contiguous streams of
    `L = (n - 1) // batch_size` tokens (stream b = ids[b*L:(b+1)*L]), then
    walked `window` steps at a time. Row b of window i+1 continues row b of
    window i, so a stateful RNN can carry its state across windows; y is x
    shifted one token ahead. The last window is shorter unless
    `drop_remainder`.

    Returns:
        A `tf.data.Dataset` of int32 `(x, y)`, each `[batch_size, window]`.
    """
    ids = np.asarray(token_ids, dtype=np.int32).reshape(-1)
    steps = _stream_length(len(ids), batch_size)
    if steps < 1 or (drop_remainder and steps < window):
        raise DataError(
            f"a corpus of {len(ids)} tokens is too short for batch_size="
            f"{batch_size} and window={window}."
        )
    x = ids[: batch_size * steps].reshape(batch_size, steps)
    y = ids[1 : batch_size * steps + 1].reshape(batch_size, steps)
    # Slice time steps, batch `window` of them, and transpose back: tf.data
    # does the windowing and the last short window falls out of `batch`.
    dataset = tf.data.Dataset.from_tensor_slices((x.T, y.T))
    dataset = dataset.batch(window, drop_remainder=drop_remainder)
    dataset = dataset.map(lambda xt, yt: (tf.transpose(xt), tf.transpose(yt)))
    return dataset.prefetch(tf.data.AUTOTUNE)


def stream_from_windows(windows):
    """Reassembles the token stream `bptt_windows` cut; inverse for tests.

    Returns the first `batch_size * L + 1` ids of the corpus.
    """
    xs, ys = zip(*((np.asarray(x), np.asarray(y)) for x, y in windows))
    x, y = np.concatenate(xs, axis=1), np.concatenate(ys, axis=1)
    return np.concatenate([x.reshape(-1), y[-1, -1:]])

"""Bucketed padding and BPTT windows: nothing lost, nothing mixed up."""

import numpy as np
import pytest
import tensorflow as tf

from seqapps.data import DataError
from seqapps.data import bptt_num_windows
from seqapps.data import bptt_windows
from seqapps.data import padded_batches
from seqapps.data import stream_from_windows


def _examples(n=300, max_length=60, seed=0):
    """Sequences of ids >= 1 (0 is padding), each labelled with its index."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, max_length + 1, size=n)
    sequences = [rng.integers(1, 100, size=length).astype(np.int32) for length in lengths]
    dataset = tf.data.Dataset.from_generator(
        lambda: zip(sequences, range(n)),
        output_signature=(tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32)),
    )
    return sequences, dataset


def test_buckets_hold_their_lengths_and_lose_nothing():
    boundaries = [10, 20, 40]
    edges = [0, *boundaries, np.inf]
    sequences, dataset = _examples()
    batches = padded_batches(dataset, 16, bucket_boundaries=boundaries, shuffle_buffer=100, seed=0)
    seen = []
    for x, label in batches.as_numpy_iterator():
        lengths = (x != 0).sum(axis=1)
        bucket = np.searchsorted(boundaries, lengths, side="right")
        assert len(set(bucket)) == 1, f"lengths {lengths} span buckets"
        low, high = edges[bucket[0]], edges[bucket[0] + 1]
        assert low <= lengths.min() and lengths.max() < high
        assert x.shape[1] == lengths.max()  # padded to its own longest only
        for row, index in zip(x, label):
            np.testing.assert_array_equal(row[: len(sequences[index])], sequences[index])
        seen.extend(label.tolist())
    assert sorted(seen) == list(range(len(sequences)))


def test_plain_padded_batches_keep_order():
    sequences, dataset = _examples(n=50)
    batches = list(padded_batches(dataset, 8).as_numpy_iterator())
    assert [len(y) for _, y in batches] == [8] * 6 + [2]
    assert np.concatenate([y for _, y in batches]).tolist() == list(range(50))
    dropped = list(padded_batches(dataset, 8, drop_remainder=True, cache=False))
    assert len(dropped) == 6


def test_nested_elements_bucket_on_length_fn():
    pairs = [
        (np.arange(1, s + 1), np.arange(1, t + 1)) for s, t in [(2, 9), (9, 2), (3, 8), (8, 3)]
    ]
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(pairs),
        output_signature=(tf.TensorSpec([None], tf.int64), tf.TensorSpec([None], tf.int64)),
    )
    target_length = lambda source, target: tf.shape(target)[0]  # noqa: E731
    batches = padded_batches(dataset, 4, bucket_boundaries=[5], length_fn=target_length)
    widths = sorted((s.shape[1], t.shape[1]) for s, t in batches)
    # Long targets (9, 8) go together whatever their sources, and short ones.
    assert widths == [(3, 9), (9, 3)]


@pytest.mark.parametrize("boundaries, drop_remainder", [([10, 20, 40], False), ([10, 20, 40], True),
                                                       (None, False), (None, True)])
def test_batches_know_their_number_every_epoch(boundaries, drop_remainder):
    # Keras' progress bar and `fit` read the cardinality; a wrong one fails the iteration
    sequences, dataset = _examples(n=203)
    batches = padded_batches(dataset, 16, bucket_boundaries=boundaries, shuffle_buffer=203, seed=1,
                             drop_remainder=drop_remainder)
    counts = [sum(1 for _ in batches) for _epoch in range(3)]  # reshuffled each time
    assert counts[0] == counts[1] == counts[2] == batches.cardinality().numpy()
    if boundaries is None:
        assert counts[0] == (203 // 16 if drop_remainder else 13)


def test_bad_boundaries():
    _, dataset = _examples(n=4)
    with pytest.raises(ValueError, match="increasing"):
        padded_batches(dataset, 2, bucket_boundaries=[20, 10])


@pytest.mark.parametrize("n, batch_size, window", [(1000, 4, 7), (101, 5, 10), (64, 3, 100)])
def test_bptt_windows_round_trip_and_row_continuity(n, batch_size, window):
    ids = np.arange(n, dtype=np.int32) * 3 + 1
    windows = list(bptt_windows(ids, batch_size, window).as_numpy_iterator())
    assert len(windows) == bptt_num_windows(n, batch_size, window)
    steps = (n - 1) // batch_size
    np.testing.assert_array_equal(stream_from_windows(windows), ids[: batch_size * steps + 1])
    for x, y in windows:
        assert x.dtype == np.int32 and x.shape == y.shape and x.shape[0] == batch_size
        np.testing.assert_array_equal(x[:, 1:], y[:, :-1])  # y is x one token ahead
    for (_, y0), (x1, _) in zip(windows, windows[1:]):
        np.testing.assert_array_equal(x1[:, 0], y0[:, -1])  # row b goes on in row b
    rows = np.concatenate([x for x, _ in windows], axis=1)
    for b in range(batch_size):
        np.testing.assert_array_equal(rows[b], ids[b * steps : (b + 1) * steps])


def test_bptt_drop_remainder_gives_static_shapes():
    dataset = bptt_windows(np.arange(1, 1001), 4, 7, drop_remainder=True)
    assert dataset.element_spec[0].shape == (4, 7)
    assert len(list(dataset)) == bptt_num_windows(1000, 4, 7, drop_remainder=True) == 35


def test_bptt_too_short_corpus():
    with pytest.raises(DataError, match="too short"):
        bptt_windows([1, 2, 3], 4, 2)

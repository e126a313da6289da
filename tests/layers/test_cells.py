"""Cells and layers vs the NumPy implementation of the seeds' equations (no Keras built-in)."""

import numpy as np
import pytest

from . import numpy_reference as npref
from .common import (
    CELLS, IMPLS, KIND_NAMES, KINDS, as_list, assert_close, make_ours, num_states,
    numpy_run, random_weights, reset_after,
)

SHAPES = [(1, 1, 1), (3, 4, 5), (2, 6, 3)]  # (batch, input dim, units)


def _numpy_step(kind, x, states, weights):
    kernel, rec = weights[0], weights[1]
    bias = weights[2] if len(weights) > 2 else None
    np_kind = KINDS[kind][3]
    extra = {"reset_after": reset_after(kind)} if np_kind == "gru" else {}
    return npref.STEPS[np_kind](x, states, kernel, rec, bias, **extra)


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_cell_single_step(kind, shape, use_bias):
    batch, dim, units = shape
    rng = np.random.default_rng(0)
    cls, _, extra = CELLS[kind]
    cell = cls(units, use_bias=use_bias, **extra)
    cell.build((batch, dim))
    weights = random_weights(cell, rng)
    if use_bias:
        assert np.abs(weights[-1]).min() > 0
    x = rng.normal(size=(batch, dim)).astype("float32")
    states = [rng.normal(size=(batch, units)).astype("float32") for _ in range(num_states(kind))]

    out, new_states = cell(x, states)
    ref_out, ref_states = _numpy_step(kind, x, states, weights)
    assert_close(out, ref_out)
    assert len(new_states) == len(ref_states)
    for got, want in zip(new_states, ref_states):
        assert_close(got, want)


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_cell_state_size_and_bias_shape(kind):
    cls, keras_cls, extra = CELLS[kind]
    cell, kcell = cls(4, **extra), keras_cls(4, **extra)
    cell.build((None, 3))
    kcell.build((None, 3))
    assert cell.state_size == kcell.state_size
    assert [tuple(w.shape) for w in cell.weights] == [tuple(w.shape) for w in kcell.weights]
    if kind == "gru":
        assert tuple(cell.bias.shape) == (2, 12)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", SHAPES[:2], ids=str)
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_layer_sequence_with_initial_state(kind, shape, impl):
    batch, dim, units = shape
    steps = 5
    rng = np.random.default_rng(1)
    layer = make_ours(kind, units, impl, return_sequences=True, return_state=True)
    x = rng.normal(size=(batch, steps, dim)).astype("float32")
    init = [rng.normal(size=(batch, units)).astype("float32") for _ in range(num_states(kind))]
    layer(x)
    weights = random_weights(layer, rng)

    seq, *states = layer(x, initial_state=init)
    ref_seq, _, ref_states = numpy_run(kind, x, weights, initial_state=init)
    assert_close(seq, ref_seq)
    assert len(states) == num_states(kind)
    for got, want in zip(states, ref_states):
        assert_close(got, want)


@pytest.mark.parametrize(
    "go_backwards,zero_output_for_mask", [(False, False), (True, True)],
    ids=["forward", "backwards_zero_output"],
)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_layer_masked_sequence(kind, impl, go_backwards, zero_output_for_mask):
    batch, steps, dim, units = 5, 6, 3, 4
    rng = np.random.default_rng(2)
    layer = make_ours(
        kind, units, impl, return_sequences=True, return_state=True,
        go_backwards=go_backwards, zero_output_for_mask=zero_output_for_mask,
    )
    x = rng.normal(size=(batch, steps, dim)).astype("float32")
    mask = np.array(
        [
            [1, 1, 1, 1, 1, 1],  # full
            [1, 1, 1, 0, 0, 0],  # post-padded
            [0, 0, 1, 1, 1, 1],  # pre-padded
            [1, 0, 1, 1, 0, 1],  # holes
            [0, 0, 0, 0, 0, 0],  # empty
        ],
        dtype=bool,
    )
    init = [rng.normal(size=(batch, units)).astype("float32") for _ in range(num_states(kind))]
    layer(x)
    weights = random_weights(layer, rng)

    seq, *states = layer(x, mask=mask, initial_state=init)
    ref_seq, _, ref_states = numpy_run(
        kind, x, weights, initial_state=init, mask=mask, go_backwards=go_backwards,
        zero_output_for_mask=zero_output_for_mask,
    )
    assert_close(seq, ref_seq)
    for got, want in zip(states, ref_states):
        assert_close(got, want)
    # The empty row keeps its initial state.
    for got, s0 in zip(states, init):
        assert_close(np.asarray(got)[4], s0[4])


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_layer_last_output_matches_numpy(kind, impl):
    rng = np.random.default_rng(3)
    layer = make_ours(kind, 3, impl)
    x = rng.normal(size=(2, 4, 2)).astype("float32")
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=bool)
    layer(x)
    weights = random_weights(layer, rng)
    out = layer(x, mask=mask)
    _, ref_last, _ = numpy_run(kind, x, weights, mask=mask)
    assert out.shape == (2, 3)
    assert_close(out, ref_last)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_layer_float64_is_exact(kind, impl):
    """In float64 the layer must agree with NumPy to ~1e-12: nothing may drop to float32."""
    rng = np.random.default_rng(4)
    layer = make_ours(kind, 3, impl, return_sequences=True, return_state=True, dtype="float64")
    x = rng.normal(size=(2, 5, 2))
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=bool)
    layer(x)
    weights = random_weights(layer, rng)
    outs = as_list(layer(x, mask=mask))
    assert all(o.dtype == "float64" for o in outs)
    ref_seq, _, ref_states = numpy_run(kind, x, weights, mask=mask)
    assert_close(outs[0], ref_seq, atol=1e-12, rtol=1e-12)
    for got, want in zip(outs[1:], ref_states):
        assert_close(got, want, atol=1e-12, rtol=1e-12)

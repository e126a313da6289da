import keras
import numpy as np
import pytest

from seqapps.attention import BahdanauAttention, LuongAttention

B, TQ, TS, H, HV = 3, 4, 6, 5, 5

# Row 0: 2 padded positions; row 1: none; row 2: only one real token.
SOURCE_MASK = np.array(
    [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0]], dtype=bool
)

LAYERS = {
    "bahdanau": lambda: BahdanauAttention(7),
    "luong_general": lambda: LuongAttention("general"),
    "luong_dot": lambda: LuongAttention("dot"),
    "luong_general_scaled": lambda: LuongAttention("general", scale_scores=True),
}


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    query = rng.normal(size=(B, TQ, H)).astype("float32")
    values = rng.normal(size=(B, TS, HV)).astype("float32")
    return query, values


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _reference(layer, query, values, mask):
    """The layers' formulas in NumPy, with the layers' own weights."""
    if isinstance(layer, BahdanauAttention):
        w1 = layer.key_dense.kernel.numpy()
        w2 = layer.query_dense.kernel.numpy()
        b = layer.query_dense.bias.numpy()
        v = layer.score_dense.kernel.numpy()[:, 0]
        # scores[b, i, j] = v . tanh(W1 h_j + W2 s_i + b)
        hidden = np.tanh(
            (values @ w1)[:, None, :, :] + (query @ w2 + b)[:, :, None, :]
        )
        scores = hidden @ v
    else:
        w = (
            layer.kernel.numpy()
            if layer.score == "general"
            else np.eye(H, dtype="float32")
        )
        scores = np.einsum("bih,hv,bjv->bij", query, w, values)
        if layer.scale_scores:
            scores = scores / np.sqrt(values.shape[-1])
    scores = np.where(mask[:, None, :], scores, -np.inf)
    weights = _softmax(scores)
    return weights @ values, weights


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_weights_normalised_and_zero_on_padding(name, data):
    query, values = data
    layer = LAYERS[name]()
    for q in (query, query[:, 0]):  # both query ranks
        _, weights = layer(q, values, mask=SOURCE_MASK)
        weights = keras.ops.convert_to_numpy(weights)
        mask = SOURCE_MASK if q.ndim == 2 else SOURCE_MASK[:, None, :]
        mask = np.broadcast_to(mask, weights.shape)
        assert np.all(weights[~mask] == 0.0)  # exactly, not approximately
        np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-6)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_all_padding_row_gives_zero_context(name, data):
    query, values = data
    mask = SOURCE_MASK.copy()
    mask[2] = False
    context, weights = LAYERS[name]()(query, values, mask=mask)
    assert np.all(keras.ops.convert_to_numpy(weights)[2] == 0.0)
    assert np.all(keras.ops.convert_to_numpy(context)[2] == 0.0)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_parallel_query_equals_stepwise(name, data):
    query, values = data
    layer = LAYERS[name]()
    context, weights = layer(query, values, mask=SOURCE_MASK)
    assert tuple(context.shape) == (B, TQ, HV)
    assert tuple(weights.shape) == (B, TQ, TS)
    for i in range(TQ):
        step_context, step_weights = layer(query[:, i], values, mask=SOURCE_MASK)
        assert tuple(step_context.shape) == (B, HV)
        assert tuple(step_weights.shape) == (B, TS)
        np.testing.assert_allclose(step_context, context[:, i], atol=1e-6)
        np.testing.assert_allclose(step_weights, weights[:, i], atol=1e-6)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_matches_numpy_reference(name, data):
    query, values = data
    layer = LAYERS[name]()
    context, weights = layer(query, values, mask=SOURCE_MASK)
    ref_context, ref_weights = _reference(layer, query, values, SOURCE_MASK)
    np.testing.assert_allclose(weights, ref_weights, atol=1e-5)
    np.testing.assert_allclose(context, ref_context, atol=1e-5)
    # No mask: plain softmax over every position.
    context, _ = layer(query, values)
    ref_context, _ = _reference(layer, query, values, np.ones((B, TS), bool))
    np.testing.assert_allclose(context, ref_context, atol=1e-5)


def test_bahdanau_precomputed_keys(data):
    query, values = data
    layer = BahdanauAttention(7)
    keys = layer.precompute_keys(values)  # before the layer is built
    assert tuple(keys.shape) == (B, TS, 7)
    with_keys = layer(query[:, 0], values, mask=SOURCE_MASK, keys=keys)
    without = layer(query[:, 0], values, mask=SOURCE_MASK)
    for a, b in zip(with_keys, without):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_return_attention_scores_false(data):
    query, values = data
    context = LuongAttention()(query, values, return_attention_scores=False)
    assert tuple(context.shape) == (B, TQ, HV)


def test_invalid_arguments(data):
    query, values = data
    with pytest.raises(ValueError, match="score"):
        LuongAttention("concat")
    with pytest.raises(ValueError, match="same size"):
        LuongAttention("dot")(query[..., :3], values)
    with pytest.raises(ValueError, match="query"):
        LuongAttention()(query[0, 0], values)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_functional_model_save_load(name, data, tmp_path):
    query, values = data
    q_in = keras.Input((None, H))
    v_in = keras.Input((None, HV))
    m_in = keras.Input((None,), dtype="bool")
    layer = LAYERS[name]()
    context, weights = layer(q_in, v_in, mask=m_in)
    step_context, _ = layer(q_in[:, 0], v_in, mask=m_in)  # shared weights
    model = keras.Model([q_in, v_in, m_in], [context, weights, step_context])
    expected = model([query, values, SOURCE_MASK])

    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert sum(type(l) is type(layer) for l in restored.layers) == 1
    for a, b in zip(expected, restored([query, values, SOURCE_MASK])):
        np.testing.assert_allclose(a, b, atol=1e-6)

    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()

"""What SimpleRNNCell, LSTMCell and GRUCell share: arguments, weights, dropout, config.

Each cell keeps Keras' weight names and layout (`kernel [D, G*H]`, `recurrent_kernel
[H, G*H]`, `bias`), so `ours.set_weights(keras_layer.get_weights())` is exact.
"""

import keras
from keras import activations, constraints, initializers, ops, regularizers

# The dropout-mask cache Keras' RNN layer knows how to pre-populate and reset, so that one
# mask is reused at every time step (variational dropout). Reusing it keeps our layers'
# dropout semantics identical to the built-ins'.
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell


class RecurrentCell(keras.layers.Layer, DropoutRNNCell):
    """Common constructor arguments and weights; subclasses define `gates` and the equations."""

    gates = 1

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        **kwargs,
    ):
        if not isinstance(units, int) or units <= 0:
            raise ValueError(f"units must be a positive integer, got {units!r}")
        kwargs.pop("implementation", None)  # accepted for Keras compatibility; see FusedRNN
        super().__init__(**kwargs)
        self.units = units
        self.activation = activations.get(activation)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.dropout = min(1.0, max(0.0, dropout))
        self.recurrent_dropout = min(1.0, max(0.0, recurrent_dropout))
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed=seed)
        self.state_size = units
        self.output_size = units

    def build(self, input_shape):
        input_dim = input_shape[-1]
        self.kernel = self.add_weight(
            shape=(input_dim, self.gates * self.units),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.gates * self.units),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                shape=self.bias_shape(),
                name="bias",
                initializer=self.make_bias_initializer(),
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )

    def bias_shape(self):
        return (self.gates * self.units,)

    def make_bias_initializer(self):
        return self.bias_initializer

    # --- shared pieces of the step functions -------------------------------------------

    def dropped_inputs(self, inputs, states, training):
        """Applies the cached per-sequence dropout masks to x_t and h_{t-1}."""
        h_tm1 = states[0]
        if training and 0.0 < self.dropout < 1.0:
            inputs = inputs * self.get_dropout_mask(inputs)
        if training and 0.0 < self.recurrent_dropout < 1.0:
            h_tm1 = h_tm1 * self.get_recurrent_dropout_mask(h_tm1)
        return inputs, h_tm1

    def input_projection(self, sequences):
        """X W + b for every time step at once: [..., D] -> [..., G*H]."""
        xw = ops.matmul(sequences, self.kernel)
        if self.use_bias:
            xw = xw + self.input_bias()
        return xw

    def input_bias(self):
        return self.bias

    def fused_supported(self):
        from seqapps.layers.rnn import is_default_activation

        return is_default_activation(self.activation, "tanh") and is_default_activation(
            self.recurrent_activation, "sigmoid"
        )

    def cudnn_recurrence(self, sequences, initial_state, mask, go_backwards, return_sequences):
        """Returns Keras' (last_output, outputs, states) from cuDNN, or None if unavailable."""
        return None

    def get_initial_state(self, batch_size=None):
        sizes = self.state_size if isinstance(self.state_size, list) else [self.state_size]
        return [ops.zeros((batch_size, d), dtype=self.compute_dtype) for d in sizes]

    def get_config(self):
        config = {
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}


# Arguments a layer reads through to its cell (Keras exposes them as layer properties).
CELL_ARGS = (
    "units",
    "activation",
    "recurrent_activation",
    "use_bias",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
    "kernel_constraint",
    "recurrent_constraint",
    "bias_constraint",
    "dropout",
    "recurrent_dropout",
)


def _read(variable):
    """A plain tensor copy of a weight: `tf.custom_gradient` must not see variables inside."""
    import tensorflow as tf

    return tf.identity(variable)

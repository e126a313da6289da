"""LSTM: the cell from the seeds' equations and the thin layer around it."""

import keras
from keras import initializers, ops

from seqapps.layers import fused
from seqapps.layers.cell import CELL_ARGS, RecurrentCell, _read
from seqapps.layers.rnn import FusedRNN


@keras.saving.register_keras_serializable(package="seqapps")
class LSTMCell(RecurrentCell):
    """One LSTM step (gate order i, f, c, o as in Keras):

        i = σ(x W_i + h U_i + b_i)      f = σ(x W_f + h U_f + b_f)
        g = tanh(x W_c + h U_c + b_c)   o = σ(x W_o + h U_o + b_o)
        c' = f * c + i * g              h' = o * tanh(c')

    `unit_forget_bias=True` starts b_f at 1 (Jozefowicz et al. 2015), as Keras does.
    """

    gates = 4

    def __init__(self, units, unit_forget_bias=True, **kwargs):
        super().__init__(units, **kwargs)
        self.unit_forget_bias = unit_forget_bias
        self.state_size = [units, units]

    def make_bias_initializer(self):
        if not self.unit_forget_bias:
            return self.bias_initializer

        def bias_initializer(_, *args, **kwargs):
            u = self.units
            return ops.concatenate(
                [
                    self.bias_initializer((u,), *args, **kwargs),
                    initializers.get("ones")((u,), *args, **kwargs),
                    self.bias_initializer((2 * u,), *args, **kwargs),
                ]
            )

        return bias_initializer

    def call(self, inputs, states, training=False):
        c_tm1 = states[1]
        x, h_tm1 = self.dropped_inputs(inputs, states, training)
        z = ops.matmul(x, self.kernel) + ops.matmul(h_tm1, self.recurrent_kernel)
        if self.use_bias:
            z = z + self.bias
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
        i = self.recurrent_activation(z_i)
        f = self.recurrent_activation(z_f)
        g = self.activation(z_c)
        o = self.recurrent_activation(z_o)
        c = f * c_tm1 + i * g
        h = o * self.activation(c)
        return h, [h, c]

    def fused_recurrence(self, x, states, mask, checkpoint_every=None):
        hs, c_last = fused.lstm_recurrence(
            x, _read(self.recurrent_kernel), states[0], states[1], mask,
            kernel=_read(self.kernel), bias=_read(self.bias) if self.use_bias else None,
            checkpoint_every=checkpoint_every, time_major=False,
        )
        return hs, [hs[:, -1], c_last]

    def cudnn_recurrence(self, sequences, initial_state, mask, go_backwards, return_sequences):
        from keras.src import backend as tf_rnn  # Keras' cuDNN entry points

        try:
            return tf_rnn.lstm(
                sequences, initial_state[0], initial_state[1], mask,
                kernel=self.kernel, recurrent_kernel=self.recurrent_kernel, bias=self.bias,
                activation=self.activation, recurrent_activation=self.recurrent_activation,
                return_sequences=return_sequences, go_backwards=go_backwards,
            )
        except NotImplementedError:
            return None

    def get_config(self):
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}


@keras.saving.register_keras_serializable(package="seqapps")
class LSTM(FusedRNN):
    """Long Short-Term Memory layer; drop-in for `keras.layers.LSTM` (same arguments and
    weights). `implementation="reference"` runs the step-by-step cell; the default uses the
    fused fast path (or cuDNN on a GPU) when the configuration allows."""

    cell_args = CELL_ARGS + ("unit_forget_bias",)

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        implementation="auto",
        use_cudnn="auto",
        **kwargs,
    ):
        cell = LSTMCell(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="lstm_cell",
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            implementation=implementation,
            use_cudnn=use_cudnn,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )

"""GRU: the cell from the seeds' equations (h = z*h_prev + (1-z)*h~) and the thin layer."""

import keras
from keras import ops

from seqapps.layers import fused
from seqapps.layers.cell import CELL_ARGS, RecurrentCell, _read
from seqapps.layers.rnn import FusedRNN


@keras.saving.register_keras_serializable(package="seqapps")
class GRUCell(RecurrentCell):
    """One GRU step (gate order z, r, h as in Keras):

        z = σ(x W_z + h U_z + b_z)       r = σ(x W_r + h U_r + b_r)
        reset_after=False (seeds):  h~ = tanh(x W_h + (r * h) U_h + b_h)
        reset_after=True (Keras/cuDNN default): h~ = tanh(x W_h + b_h + r * (h U_h + b'_h))
        h' = z * h + (1 - z) * h~

    With reset_after=True the bias is [2, 3H]: row 0 for the input, row 1 for the
    recurrent projection.
    """

    gates = 3

    def __init__(self, units, reset_after=True, **kwargs):
        super().__init__(units, **kwargs)
        self.reset_after = reset_after

    def bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def input_bias(self):
        return self.bias[0] if self.reset_after else self.bias

    def call(self, inputs, states, training=False):
        h_tm1_raw = states[0]
        x, h_tm1 = self.dropped_inputs(inputs, states, training)
        u = self.units
        x_proj = ops.matmul(x, self.kernel)
        if self.use_bias:
            x_proj = x_proj + self.input_bias()
        x_z, x_r, x_h = ops.split(x_proj, 3, axis=-1)
        if self.reset_after:
            rec = ops.matmul(h_tm1, self.recurrent_kernel)
            if self.use_bias:
                rec = rec + self.bias[1]
            r_z, r_r, r_h = ops.split(rec, 3, axis=-1)
            z = self.recurrent_activation(x_z + r_z)
            r = self.recurrent_activation(x_r + r_r)
            h_tilde = self.activation(x_h + r * r_h)
        else:
            r_zr = ops.matmul(h_tm1, self.recurrent_kernel[:, : 2 * u])
            r_z, r_r = ops.split(r_zr, 2, axis=-1)
            z = self.recurrent_activation(x_z + r_z)
            r = self.recurrent_activation(x_r + r_r)
            h_tilde = self.activation(x_h + ops.matmul(r * h_tm1, self.recurrent_kernel[:, 2 * u :]))
        h = z * h_tm1_raw + (1.0 - z) * h_tilde
        return h, [h]

    def fused_recurrence(self, x, states, mask, checkpoint_every=None):
        bias = _read(self.bias) if self.use_bias else None
        in_bias = rec_bias = None
        if bias is not None:
            in_bias, rec_bias = (bias[0], bias[1]) if self.reset_after else (bias, None)
        hs = fused.gru_recurrence(
            x, _read(self.recurrent_kernel), rec_bias, states[0], mask, self.reset_after,
            kernel=_read(self.kernel), bias=in_bias, checkpoint_every=checkpoint_every, time_major=False,
        )
        return hs, [hs[:, -1]]

    def cudnn_recurrence(self, sequences, initial_state, mask, go_backwards, return_sequences):
        from keras.src import backend as tf_rnn  # Keras' cuDNN entry points

        try:
            return tf_rnn.gru(
                sequences, initial_state[0], mask,
                kernel=self.kernel, recurrent_kernel=self.recurrent_kernel, bias=self.bias,
                activation=self.activation, recurrent_activation=self.recurrent_activation,
                return_sequences=return_sequences, go_backwards=go_backwards,
                reset_after=self.reset_after,
            )
        except NotImplementedError:
            return None

    def get_config(self):
        return {**super().get_config(), "reset_after": self.reset_after}


@keras.saving.register_keras_serializable(package="seqapps")
class GRU(FusedRNN):
    """Gated Recurrent Unit layer; drop-in for `keras.layers.GRU` (both reset_after modes)."""

    cell_args = CELL_ARGS + ("reset_after",)

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
        reset_after=True,
        implementation="auto",
        use_cudnn="auto",
        **kwargs,
    ):
        cell = GRUCell(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            reset_after=reset_after,
            seed=seed,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="gru_cell",
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

"""SimpleRNN (Elman): the cell from the seeds' equations and the thin layer around it."""

import keras
from keras import ops

from seqapps.layers import fused
from seqapps.layers.cell import CELL_ARGS, RecurrentCell, _read
from seqapps.layers.rnn import FusedRNN, is_default_activation


@keras.saving.register_keras_serializable(package="seqapps")
class SimpleRNNCell(RecurrentCell):
    """One Elman step: h' = tanh(x W + h U + b)   (seeds: h_t = tanh(W h_{t-1} + U x_t + b))."""

    gates = 1

    def __init__(self, units, **kwargs):
        kwargs.pop("recurrent_activation", None)  # SimpleRNN has no gates
        super().__init__(units, **kwargs)

    def call(self, inputs, states, training=False):
        x, h_tm1 = self.dropped_inputs(inputs, states, training)
        a = ops.matmul(x, self.kernel) + ops.matmul(h_tm1, self.recurrent_kernel)
        if self.use_bias:
            a = a + self.bias
        h = self.activation(a)
        return h, [h]

    def fused_supported(self):
        return is_default_activation(self.activation, "tanh")

    def fused_recurrence(self, x, states, mask, checkpoint_every=None):
        hs = fused.simple_rnn_recurrence(
            x, _read(self.recurrent_kernel), states[0], mask,
            kernel=_read(self.kernel), bias=_read(self.bias) if self.use_bias else None,
            checkpoint_every=checkpoint_every, time_major=False,
        )
        return hs, [hs[:, -1]]

    def get_config(self):
        config = super().get_config()
        config.pop("recurrent_activation")
        return config


@keras.saving.register_keras_serializable(package="seqapps")
class SimpleRNN(FusedRNN):
    """Fully-connected RNN; drop-in for `keras.layers.SimpleRNN`."""

    cell_args = tuple(a for a in CELL_ARGS if a != "recurrent_activation")

    def __init__(
        self,
        units,
        activation="tanh",
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
        implementation="auto",
        **kwargs,
    ):
        kwargs.pop("use_cudnn", None)  # there is no cuDNN SimpleRNN kernel
        cell = SimpleRNNCell(
            units,
            activation=activation,
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
            seed=seed,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="simple_rnn_cell",
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            implementation=implementation,
            use_cudnn=False,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )

    def get_config(self):
        config = super().get_config()
        config.pop("use_cudnn", None)
        return config

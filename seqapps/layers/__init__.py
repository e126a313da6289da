"""Recurrent cells and layers written from the equations; drop-in for Keras' built-ins."""

from seqapps.layers.gru import GRU, GRUCell
from seqapps.layers.lstm import LSTM, LSTMCell
from seqapps.layers.fused import compiled_loops, forward_only
from seqapps.layers.rnn import FusedRNN, cudnn_allowed
from seqapps.layers.simple_rnn import SimpleRNN, SimpleRNNCell

__all__ = [
    "GRU", "GRUCell", "LSTM", "LSTMCell", "SimpleRNN", "SimpleRNNCell", "FusedRNN",
    "cudnn_allowed", "compiled_loops", "forward_only",
]

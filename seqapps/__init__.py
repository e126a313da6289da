"""seqapps: recurrent sequence models (SimpleRNN, LSTM, GRU) written from the equations."""

__version__ = "0.1.0"

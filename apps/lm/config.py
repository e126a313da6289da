"""Default hyperparameters per level (TensorFlow-free, so `--help` answers at once).

Every option of `train` left unset takes its level's default here.
Word level: PyTorch's word_language_model recipe, the issue's anchor (2x200 tied LSTM,
dropout 0.2, BPTT 35, batch 20, SGD lr 20 with the gradient clipped to norm 0.25 and the
learning rate divided by 4 whenever validation loss stops improving, 6 epochs: test
perplexity 110.4). Character level: a 2x512 LSTM in the spirit of char-rnn, with Adam.
"""

LEVEL_DEFAULTS = {
    "word": dict(cell="lstm", units=200, layers=2, embedding_dim=None, dropout=0.2, tie_weights=True,
                 bptt=35, batch_size=20, epochs=6, optimizer="sgd", learning_rate=20.0, clipnorm=0.25,
                 lr_decay=0.25),
    "char": dict(cell="lstm", units=512, layers=2, embedding_dim=64, dropout=0.2, tie_weights=False,
                 bptt=100, batch_size=32, epochs=10, optimizer="adam", learning_rate=2e-3, clipnorm=5.0,
                 lr_decay=0.5),
}

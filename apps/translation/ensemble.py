"""Several trained `Seq2Seq` models decoding as one (`train --ensemble K`).

At every decoding step each member reads the same previous token with its own state, and
the ensemble's next-token distribution is the average of the members' probabilities,

    log p(y_t | y_<t, x) = log( 1/K * sum_k p_k(y_t | y_<t, x) ),

computed as a logsumexp of the members' log-softmaxes (as fairseq and Marian do). Greedy
and beam search see one model with `initial_decoder_state` and `decode_step`, so the
translator, its bounds and the export are the same for one model or K.
"""

import math

import tensorflow as tf


class Ensemble:
    """`Seq2Seq`'s decoding interface over `models`; the attention weights are the mean."""

    def __init__(self, models):
        self.models = list(models)
        if not self.models:
            raise ValueError("an ensemble needs at least one model")
        kinds = {m.attention_type for m in self.models}
        if len(kinds) > 1:
            raise ValueError(f"the members of an ensemble must share one attention; got {sorted(kinds)}")
        self.attention_type = self.models[0].attention_type

    def initial_decoder_state(self, source):
        return {"members": [model.initial_decoder_state(source) for model in self.models]}

    def decode_step(self, tokens, state):
        """`(log mean probabilities [N, V], new state, mean attention weights [N, S])`."""
        log_probs, states, weights = [], [], []
        for model, member_state in zip(self.models, state["members"]):
            logits, member_state, member_weights = model.decode_step(tokens, member_state)
            log_probs.append(tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1))
            states.append(member_state)
            weights.append(tf.cast(member_weights, tf.float32))
        mean = tf.reduce_logsumexp(tf.stack(log_probs), axis=0) - math.log(len(self.models))
        return mean, {**state, "members": states}, tf.reduce_mean(tf.stack(weights), axis=0)

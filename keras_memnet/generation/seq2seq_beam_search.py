"""Compiled greedy and beam-search decoding for encoder-decoder models.

Used by `keras_memnet.models.Seq2SeqTranslator.translate`. The loops are
written with `keras.ops.while_loop`, so they run on every backend; the
translator calls them inside `SearchModel.call` and runs that with
`predict_on_batch`, which compiles it (`tf.function` / `jax.jit`).

Why not `keras_hub.samplers.BeamSampler`: it ranks beams by their summed
log-probability only (no length normalisation), keeps extending a beam after
its end token, and expects a prompt-filling `next(prompt, cache, index)`
interface over a fixed-length token buffer. Sutskever et al. (2014) decode
each beam only until it emits its end token, and comparing finished
hypotheses of different lengths needs length-normalised scores, so the
small loop below does that instead.
"""

import keras
from keras import ops

# A large finite negative instead of -inf keeps sums and divisions NaN-free.
_NEG = -1e9


def _set_position(buffer, position, values):
    """Writes `values` (buffer.shape[:-1]) at `position` of the last axis."""
    length = ops.shape(buffer)[-1]
    hit = ops.equal(ops.arange(length, dtype="int32"), position)
    return ops.where(hit, ops.expand_dims(values, -1), buffer)


def _forbid(log_probs, token_ids):
    """Sets the given vocabulary columns of `log_probs` to a huge negative."""
    vocabulary_size = ops.shape(log_probs)[-1]
    columns = ops.arange(vocabulary_size, dtype="int32")
    forbidden = ops.zeros((vocabulary_size,), dtype="bool")
    for token_id in token_ids:
        forbidden = ops.logical_or(forbidden, ops.equal(columns, token_id))
    return ops.where(forbidden, ops.cast(_NEG, log_probs.dtype), log_probs)


def greedy_search(
    step_fn,
    states,
    batch_size,
    start_id,
    end_id,
    max_length,
    forbidden_ids=(0,),
):
    """Picks the most likely token at each step until `end_id`.

    Args:
        step_fn: `step_fn(token_ids (n,), states) -> (logits (n, vocab),
            states)`.
        states: the decoder's initial state structure for `batch_size` rows.
        batch_size: int or scalar tensor.
        start_id, end_id: ints. Start and end tokens.
        max_length: int. Most tokens to generate (the end token included).
        forbidden_ids: token ids never generated (padding, start).

    Returns:
        `(batch_size, max_length)` int32 ids: each row's tokens up to and
        including its end token, then 0.
    """
    tokens = ops.zeros((batch_size, max_length), dtype="int32")
    previous = ops.full((batch_size,), start_id, dtype="int32")
    finished = ops.zeros((batch_size,), dtype="bool")

    def cond(step, previous, states, tokens, finished):
        return ops.logical_and(
            step < max_length, ops.logical_not(ops.all(finished))
        )

    def body(step, previous, states, tokens, finished):
        logits, states = step_fn(previous, states)
        logits = _forbid(ops.cast(logits, "float32"), forbidden_ids)
        chosen = ops.cast(ops.argmax(logits, axis=-1), "int32")
        chosen = ops.where(finished, 0, chosen)
        tokens = _set_position(tokens, step, chosen)
        finished = ops.logical_or(finished, ops.equal(chosen, end_id))
        return step + 1, chosen, states, tokens, finished

    _, _, _, tokens, _ = ops.while_loop(
        cond,
        body,
        (ops.convert_to_tensor(0, "int32"), previous, states, tokens, finished),
    )
    return tokens


def beam_search(
    step_fn,
    states,
    batch_size,
    start_id,
    end_id,
    max_length,
    num_beams,
    length_penalty=1.0,
    forbidden_ids=(0,),
):
    """Beam search with per-beam end tokens and length-normalised scores.

    Each row keeps `num_beams` hypotheses. A hypothesis's score is its
    summed log-probability divided by `length ** length_penalty` (length
    counts its tokens, end token included); beams are ranked by this score
    at every step and at the end. A beam that emits `end_id` is finished:
    its score and length freeze and it only competes for its slot from then
    on. A row stops once no unfinished beam can still beat its best finished
    one (the summed log-probability only falls, so `logp / max_length **
    length_penalty` bounds an unfinished beam's final score); the loop stops
    when every row has stopped or after `max_length` tokens. With
    `num_beams=1` this is exactly greedy decoding.

    Args:
        step_fn: `step_fn(token_ids (n,), states) -> (logits (n, vocab),
            states)`; every state tensor has `n` rows (any rank, e.g. an
            attention memory `(n, source_length, units)`).
        states: the decoder's initial states for `batch_size` rows; they
            are repeated for each beam (row `b * num_beams + k`).
        batch_size: int or scalar tensor.
        start_id, end_id: ints.
        max_length: int. Most tokens to generate.
        num_beams: int >= 1.
        length_penalty: float >= 0. 0 ranks by summed log-probability,
            1 by mean log-probability per token.
        forbidden_ids: token ids never generated (padding, start).

    Returns:
        `(tokens, scores)`: the best hypothesis per row, `(batch_size,
        max_length)` int32 (0 after the end token), and its normalised
        score, `(batch_size,)` float32.
    """
    k = num_beams
    # Repeat every state row once per beam: row b*k + j is beam j of row b.
    states = keras.tree.map_structure(
        lambda state: ops.repeat(state, k, axis=0), states
    )
    tokens = ops.zeros((batch_size, k, max_length), dtype="int32")
    previous = ops.full((batch_size * k,), start_id, dtype="int32")
    # Only beam 0 is live at first, so the first step does not pick the
    # same token k times.
    first_beam = ops.equal(ops.arange(k, dtype="int32"), 0)
    log_probs = ops.where(
        ops.expand_dims(first_beam, 0),
        ops.zeros((batch_size, k), "float32"),
        ops.full((batch_size, k), _NEG, "float32"),
    )
    lengths = ops.zeros((batch_size, k), dtype="float32")
    finished = ops.zeros((batch_size, k), dtype="bool")
    max_penalty = float(max_length) ** length_penalty

    def normalise(log_probs, lengths):
        return log_probs / ops.power(ops.maximum(lengths, 1.0), length_penalty)

    def reorder(values, beam_index):
        # values: (batch, k, ...) gathered along the beam axis.
        index = beam_index
        for _ in range(len(values.shape) - 2):
            index = ops.expand_dims(index, -1)
        index = ops.broadcast_to(index, ops.shape(values))
        return ops.take_along_axis(values, index, axis=1)

    def reorder_state(state, beam_index):
        # Any rank: (batch * k, ...) -> (batch, k, ...), gathered, back.
        # Constant per-row states (an attention memory) stay unchanged.
        inner_shape = tuple(ops.shape(state)[1:])
        state = ops.reshape(state, (batch_size, k) + inner_shape)
        state = reorder(state, beam_index)
        return ops.reshape(state, (batch_size * k,) + inner_shape)

    def cond(step, previous, states, tokens, log_probs, lengths, finished):
        return ops.logical_and(
            step < max_length, ops.logical_not(ops.all(finished))
        )

    def body(step, previous, states, tokens, log_probs, lengths, finished):
        logits, states = step_fn(previous, states)
        vocabulary_size = ops.shape(logits)[-1]
        step_log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
        step_log_probs = _forbid(step_log_probs, forbidden_ids)
        step_log_probs = ops.reshape(
            step_log_probs, (batch_size, k, vocabulary_size)
        )
        # A finished beam may only "emit" padding, at no cost, so it keeps
        # its score and length and takes part in the ranking unchanged.
        pad_only = ops.where(
            ops.equal(ops.arange(vocabulary_size, dtype="int32"), 0),
            0.0,
            _NEG,
        )
        step_log_probs = ops.where(
            ops.expand_dims(finished, -1), pad_only, step_log_probs
        )
        candidate_log_probs = ops.expand_dims(log_probs, -1) + step_log_probs
        candidate_lengths = lengths + ops.where(finished, 0.0, 1.0)
        candidate_scores = normalise(
            candidate_log_probs, ops.expand_dims(candidate_lengths, -1)
        )
        flat_scores = ops.reshape(candidate_scores, (batch_size, -1))
        _, flat_index = ops.top_k(flat_scores, k=k)
        flat_index = ops.cast(flat_index, "int32")
        beam_index = flat_index // vocabulary_size
        chosen = flat_index % vocabulary_size
        log_probs = ops.take_along_axis(
            ops.reshape(candidate_log_probs, (batch_size, -1)),
            flat_index,
            axis=1,
        )
        parent_finished = ops.take_along_axis(finished, beam_index, axis=1)
        lengths = ops.take_along_axis(candidate_lengths, beam_index, axis=1)
        finished = ops.logical_or(parent_finished, ops.equal(chosen, end_id))
        tokens = _set_position(reorder(tokens, beam_index), step, chosen)
        states = keras.tree.map_structure(
            lambda state: reorder_state(state, beam_index), states
        )

        # Stop rows whose best finished beam no unfinished beam can beat;
        # their unfinished beams are dropped so that the final ranking
        # never picks a cut-off hypothesis.
        scores = normalise(log_probs, lengths)
        best_finished = ops.max(ops.where(finished, scores, _NEG), axis=1)
        best_open_bound = ops.max(
            ops.where(finished, _NEG, log_probs / max_penalty), axis=1
        )
        row_done = ops.logical_and(
            ops.any(finished, axis=1), best_open_bound <= best_finished
        )
        dropped = ops.logical_and(
            ops.expand_dims(row_done, -1), ops.logical_not(finished)
        )
        log_probs = ops.where(dropped, _NEG, log_probs)
        finished = ops.logical_or(finished, ops.expand_dims(row_done, -1))
        previous = ops.reshape(chosen, (batch_size * k,))
        return step + 1, previous, states, tokens, log_probs, lengths, finished

    _, _, _, tokens, log_probs, lengths, _ = ops.while_loop(
        cond,
        body,
        (
            ops.convert_to_tensor(0, "int32"),
            previous,
            states,
            tokens,
            log_probs,
            lengths,
            finished,
        ),
    )
    scores = normalise(log_probs, lengths)
    best = ops.cast(ops.argmax(scores, axis=1), "int32")
    best_tokens = ops.take_along_axis(
        tokens,
        ops.broadcast_to(
            ops.reshape(best, (batch_size, 1, 1)), (batch_size, 1, max_length)
        ),
        axis=1,
    )[:, 0, :]
    best_scores = ops.take_along_axis(
        scores, ops.expand_dims(best, -1), axis=1
    )[:, 0]
    return best_tokens, best_scores


class SearchModel(keras.Model):
    """Internal: wraps an encoder-decoder model for compiled decoding.

    `model` must provide `encode_source_ids(source_ids) -> states` and
    `decode_step_ids(token_ids, states) -> (logits, states)`. The model is
    tracked, so its variables are passed into the compiled function rather
    than baked into it. Run `call(source_ids)` with `predict_on_batch`. Not
    meant to be saved.
    """

    def __init__(
        self,
        model,
        start_id,
        end_id,
        max_length,
        num_beams=None,
        length_penalty=1.0,
        forbidden_ids=(0,),
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.model = model
        self.start_id = int(start_id)
        self.end_id = int(end_id)
        self.max_length = int(max_length)
        self.num_beams = num_beams
        self.length_penalty = float(length_penalty)
        self.forbidden_ids = tuple(int(i) for i in forbidden_ids)
        self.built = True

    def call(self, source_ids):
        source_ids = ops.cast(source_ids, "int32")
        batch_size = ops.shape(source_ids)[0]
        states = self.model.encode_source_ids(source_ids)
        step_fn = self.model.decode_step_ids
        if self.num_beams is None:
            return greedy_search(
                step_fn,
                states,
                batch_size,
                self.start_id,
                self.end_id,
                self.max_length,
                self.forbidden_ids,
            )
        tokens, _ = beam_search(
            step_fn,
            states,
            batch_size,
            self.start_id,
            self.end_id,
            self.max_length,
            self.num_beams,
            self.length_penalty,
            self.forbidden_ids,
        )
        return tokens

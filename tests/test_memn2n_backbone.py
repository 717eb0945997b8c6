"""`MemN2NBackbone`: token ids to the final controller state.

Runs on every backend (`KERAS_BACKEND=jax` / `torch` too).
"""

import json

import keras
import keras_hub
import numpy as np
import pytest

from keras_memnet.models import MemN2NBackbone
from keras_memnet.models import MemN2NLM
from tests.test_memn2n_lm import numpy_final_state

VOCAB, MEMORY, DIM, STEPS = 30, 6, 8, 5


def small_backbone(**kwargs):
    config = dict(
        vocabulary_size=VOCAB, hops=3, memory_size=MEMORY, embedding_dim=DIM
    )
    config.update(kwargs)
    return MemN2NBackbone(**config)


def sequence_ids(batch=4, steps=STEPS, seed=0):
    ids = np.random.default_rng(seed).integers(
        1, VOCAB, (batch, MEMORY + steps - 1)
    )
    ids[0, :3] = 0  # Left padding: the first windows are partly empty.
    ids[1, :MEMORY] = 0  # Left padding: window 0 is all padding.
    return ids.astype("int32")


def stacked_windows(ids):
    """`(batch, M + T - 1)` -> the T windows of each row, `(batch * T, M)`."""
    steps = ids.shape[1] - MEMORY + 1
    windows = np.stack([ids[:, t : t + MEMORY] for t in range(steps)], 1)
    return windows.reshape(-1, MEMORY)


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def test_is_built_on_construction_with_the_papers_layer_names():
    backbone = small_backbone()
    assert backbone.built
    assert sorted(w.path.split("/", 1)[1] for w in backbone.weights) == [
        "memory_embedding_0/embeddings",
        "memory_embedding_1/embeddings",
        "memory_hop/query_kernel",
        "temporal_encoding_0/embeddings",
        "temporal_encoding_1/embeddings",
    ]
    assert backbone.memory_dropout.name == "dropout"
    assert backbone.token_embedding is backbone.memory_embeddings[-1]
    # Layer-wise tying: no transposed use, so a plain embedding.
    assert not isinstance(
        backbone.token_embedding, keras_hub.layers.ReversibleEmbedding
    )


def test_adjacent_tying_has_an_embedding_per_hop_plus_one():
    backbone = small_backbone(weight_tying="adjacent", hops=4)
    names = sorted(w.path.split("/", 1)[1] for w in backbone.weights)
    assert names == sorted(
        [f"memory_embedding_{i}/embeddings" for i in range(5)]
        + [f"temporal_encoding_{i}/embeddings" for i in range(5)]
    )
    assert [hop.name for hop in backbone.memory_hops] == [
        f"memory_hop_{i}" for i in range(4)
    ]
    assert isinstance(
        backbone.token_embedding, keras_hub.layers.ReversibleEmbedding
    )
    assert backbone.token_embedding.name == "memory_embedding_4"


@pytest.mark.parametrize("weight_tying", ["layerwise", "adjacent"])
def test_window_and_sequence_forms_agree(weight_tying):
    backbone = small_backbone(weight_tying=weight_tying)
    ids = sequence_ids()
    windows = numpy(backbone(stacked_windows(ids)))
    assert windows.shape == (len(ids) * STEPS, DIM)
    sequence = numpy(backbone(ids))
    assert sequence.shape == (len(ids), STEPS, DIM)
    np.testing.assert_allclose(
        sequence, windows.reshape(len(ids), STEPS, DIM), rtol=1e-5, atol=1e-5
    )
    # The states are not trivially equal across windows or rows.
    assert np.abs(sequence[:, 1:] - sequence[:, :-1]).max() > 1e-4
    assert backbone.compute_output_shape((None, MEMORY)) == (None, DIM)
    assert backbone.compute_output_shape((None, MEMORY + STEPS - 1)) == (
        None,
        STEPS,
        DIM,
    )


def test_window_form_matches_numpy_reference():
    backbone = small_backbone(init_stddev=0.3, query_value=0.2)
    ids = np.random.default_rng(1).integers(1, VOCAB, (5, MEMORY))
    ids[0, :2] = 0
    np.testing.assert_allclose(
        numpy(backbone(ids)),
        numpy_final_state(backbone, ids),
        rtol=1e-4,
        atol=1e-5,
    )


@pytest.mark.parametrize(
    "weight_tying, output",
    [
        ("layerwise", "softmax"),
        ("adjacent", "softmax"),
        ("layerwise", "adaptive"),
    ],
)
def test_task_logits_are_its_head_on_the_backbone_state(weight_tying, output):
    model = MemN2NLM(
        vocabulary_size=VOCAB,
        hops=2,
        memory_size=MEMORY,
        embedding_dim=DIM,
        weight_tying=weight_tying,
        output=output,
        init_stddev=0.3,
    )
    model.build((None, MEMORY))
    assert isinstance(model.backbone, MemN2NBackbone)
    assert model.backbone.get_config()["weight_tying"] == weight_tying
    ids = sequence_ids(seed=2)
    for inputs in (stacked_windows(ids), ids):
        state = numpy(model.backbone(inputs))
        if output == "adaptive":
            expected = numpy(model.output_projection(state))
        elif weight_tying == "adjacent":
            table = numpy(model.backbone.token_embedding.embeddings)
            expected = state @ table.T
        else:
            expected = state @ numpy(model.output_projection.kernel)
        np.testing.assert_allclose(
            numpy(model(inputs)), expected, rtol=1e-5, atol=1e-5
        )
        np.testing.assert_allclose(
            numpy(model._final_state(inputs)), state, rtol=1e-6, atol=1e-6
        )
    # The task's weights are the backbone's plus its head's.
    backbone_paths = {w.path for w in model.backbone.weights}
    head_paths = {w.path for w in model.weights} - backbone_paths
    assert backbone_paths <= {w.path for w in model.weights}
    assert len(head_paths) == (
        0
        if (weight_tying, output) == ("adjacent", "softmax")
        else len(model.output_projection.weights)
    )


def test_padding_is_masked():
    backbone = small_backbone(weight_tying="adjacent")
    ids = sequence_ids(seed=3)
    before = numpy(backbone(ids))
    for embedding in backbone.memory_embeddings:
        table = numpy(embedding.embeddings).copy()
        table[0] = 5.0
        embedding.embeddings.assign(table)
    np.testing.assert_allclose(numpy(backbone(ids)), before, atol=1e-6)


def test_dropout_only_in_training():
    keras.utils.set_random_seed(0)
    backbone = small_backbone(dropout=0.5)
    ids = sequence_ids(seed=4)
    inference = numpy(backbone(ids))
    np.testing.assert_array_equal(
        numpy(backbone(ids, training=False)), inference
    )
    trained = numpy(backbone(ids, training=True))
    assert np.abs(trained - inference).max() > 1e-4


@pytest.mark.parametrize("weight_tying", ["layerwise", "adjacent"])
def test_keras_round_trip_is_exact(tmp_path, weight_tying):
    backbone = small_backbone(
        weight_tying=weight_tying,
        linear_units=3,
        dropout=0.25,
        query_value=0.2,
        init_stddev=0.3,
    )
    path = tmp_path / "backbone.keras"
    backbone.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    assert type(restored) is MemN2NBackbone
    assert restored.get_config() == backbone.get_config()
    ids = sequence_ids(seed=5)
    for inputs in (ids, stacked_windows(ids)):
        np.testing.assert_array_equal(
            numpy(restored(inputs)), numpy(backbone(inputs))
        )


def test_get_config_is_complete():
    backbone = small_backbone(
        weight_tying="adjacent",
        dropout=0.1,
        linear_units=2,
        query_value=0.3,
        init_stddev=0.2,
        name="core",
    )
    config = backbone.get_config()
    json.dumps(config)
    clone = MemN2NBackbone.from_config(config)
    assert clone.get_config() == config
    assert {
        k: config[k]
        for k in (
            "vocabulary_size",
            "hops",
            "memory_size",
            "embedding_dim",
            "linear_units",
        )
    } == {
        "vocabulary_size": VOCAB,
        "hops": 3,
        "memory_size": MEMORY,
        "embedding_dim": DIM,
        "linear_units": 2,
    }
    assert keras.saving.get_registered_name(MemN2NBackbone) == (
        "keras_memnet>MemN2NBackbone"
    )
    # `linear_units=None` means half the width.
    assert small_backbone().linear_units == DIM // 2


@pytest.mark.parametrize(
    "argument, value",
    [
        ("vocabulary_size", 1),
        ("hops", 0),
        ("hops", 2.0),
        ("memory_size", 0),
        ("embedding_dim", 0),
        ("linear_units", DIM + 1),
        ("linear_units", -1),
        ("weight_tying", "none"),
        ("dropout", 1.0),
        ("dropout", -0.1),
        ("query_value", "0.1"),
        ("init_stddev", 0.0),
    ],
)
def test_rejects_bad_arguments(argument, value):
    with pytest.raises(ValueError, match=f"`{argument}` must be"):
        small_backbone(**{argument: value})


def test_rejects_token_ids_of_the_wrong_shape():
    backbone = small_backbone()
    for shape in ((2, MEMORY - 1), (2, MEMORY, 1), (MEMORY,)):
        with pytest.raises(ValueError, match="memory_size=6"):
            backbone(np.ones(shape, dtype="int32"))
    with pytest.raises(ValueError, match="length of its input"):
        backbone.compute_output_shape((None, None))

"""keras-memnet: End-To-End Memory Networks and deep LSTM encoder-decoders
for Keras 3.

The subpackages mirror keras-hub's layout:

- `keras_memnet.layers`: `TemporalEncoding`, `MemoryHop`, `Seq2SeqLSTM`,
  `AdaptiveSoftmax`.
- `keras_memnet.models`: `MemN2NLM`, `CharMemN2N`, `Seq2SeqTranslator`.
- `keras_memnet.metrics`: `Perplexity`, `BitsPerCharacter`, `corpus_bleu`.
- `keras_memnet.callbacks`: the paper's clipping and annealing schedule,
  and a wall-clock `TimeLimit`.
- `keras_memnet.recipes`: the paper's training settings, scaled for Keras,
  and `train_memn2n_lm`.
- `keras_memnet.datasets`: text8, Penn Treebank and sentence pairs as
  `tf.data` pipelines.
- `keras_memnet.tokenizers`: word and character vocabularies, and the
  tokenisation of sentence pairs.
- `keras_memnet.presets`: `save_to_preset`, `load_preset` and
  `list_presets`, in keras-hub's preset layout, and the shipped presets.
- `keras_memnet.distribution`: training on several devices and machines
  through Keras's own engines (`distribution_scope`,
  `data_parallel_engine`, `model_parallel_engine`).
- `keras_memnet.visualization`: heatmaps of what each memory hop reads
  (`plot_memory_attention`) and of a translator's attention
  (`plot_translation_attention`); needs the `plots` extra (matplotlib).
"""

from keras_memnet import callbacks
from keras_memnet import datasets
from keras_memnet import distribution
from keras_memnet import layers
from keras_memnet import metrics
from keras_memnet import models
from keras_memnet import presets
from keras_memnet import recipes
from keras_memnet import saving
from keras_memnet import tokenizers
from keras_memnet import visualization
from keras_memnet.version import __version__

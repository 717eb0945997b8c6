
from keras_memnet.datasets.corpus import Corpus
from keras_memnet.datasets.text8 import TEXT8_12M_SPLIT
from keras_memnet.datasets.text8 import text8
from keras_memnet.datasets.text8 import text8_sample
from keras_memnet.datasets.windows import make_sequences
from keras_memnet.datasets.windows import make_windows
from keras_memnet.datasets.windows import sequence_arrays
from keras_memnet.datasets.sentence_pairs import build_vocabularies
from keras_memnet.datasets.sentence_pairs import load_sentence_pairs
from keras_memnet.datasets.sentence_pairs import sentence_pair_dataset
from keras_memnet.datasets.sentence_pairs import split_sentence_pairs
from keras_memnet.datasets.ptb import ptb
from keras_memnet.datasets.word_vectors import assign_word_vectors
from keras_memnet.datasets.word_vectors import load_word_vectors

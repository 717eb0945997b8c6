from keras_memnet.metrics.bits_per_character import BitsPerCharacter
from keras_memnet.metrics.bleu import corpus_bleu
from keras_memnet.metrics.perplexity import Perplexity

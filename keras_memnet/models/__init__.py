from keras_memnet.models.memn2n_lm import MemN2NLM
from keras_memnet.models.seq2seq_translator import Seq2SeqTranslator
from keras_memnet.models.char_memn2n import CharMemN2N

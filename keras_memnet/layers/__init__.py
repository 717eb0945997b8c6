from keras_memnet.layers.memory_hop import MemoryHop
from keras_memnet.layers.temporal_encoding import TemporalEncoding
from keras_memnet.layers.seq2seq_lstm import Seq2SeqLSTM

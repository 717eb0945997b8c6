from keras_memnet.tokenizers.char_vocabulary import CharVocabulary
from keras_memnet.tokenizers.sentence_pair_tokenization import END_TOKEN
from keras_memnet.tokenizers.sentence_pair_tokenization import START_TOKEN
from keras_memnet.tokenizers.sentence_pair_tokenization import (
    build_vocabularies,
)
from keras_memnet.tokenizers.sentence_pair_tokenization import (
    encode_sentence_pairs,
)
from keras_memnet.tokenizers.sentence_pair_tokenization import normalize_text
from keras_memnet.tokenizers.sentence_pair_tokenization import tokenize_sentence
from keras_memnet.tokenizers.word_vocabulary import WordVocabulary

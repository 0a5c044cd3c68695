"""Data: reading local files (``files``, the one reader), the sentence splitter (``sentences``), tokenization into
noising documents (``documents``), token-budget batching (``batching``), noise recipes (``noise_config``), the
pretraining data (map-style ``pretrain_dataset``, ``pretrain_stream``, the ``pretrain_module`` DataModule) and the
fine-tuning (source, target) pairs (``pairs``) and their DataModule (``pairs_module``)."""

from bart_pretrain.data.documents import encode_document, to_document, tokenize_dataset
from bart_pretrain.data.files import load_text_dataset, read_dataset
from bart_pretrain.data.sentences import split_sentences

__all__ = [
    "encode_document",
    "load_text_dataset",
    "read_dataset",
    "split_sentences",
    "to_document",
    "tokenize_dataset",
]

"""Data: loading text, sentence splitting and tokenization into noising documents (``documents``), token-budget
batching (``batching``), noise recipes (``noise_config``), the pretraining data (map-style ``pretrain_dataset``,
``pretrain_stream``, the ``pretrain_module`` DataModule) and the summarization pairs and their DataModule."""

from bart_pretrain.data.documents import (
    encode_document,
    load_text_dataset,
    split_sentences,
    to_document,
    tokenize_dataset,
)

__all__ = ["encode_document", "load_text_dataset", "split_sentences", "to_document", "tokenize_dataset"]

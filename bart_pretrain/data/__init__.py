"""Data: loading text, sentence splitting and tokenization into noising documents (``documents``), and the
builder of the default offline corpus and summarization pairs (``build``, ``bart-pretrain build-data``)."""

from bart_pretrain.data.documents import (
    encode_document,
    load_text_dataset,
    split_sentences,
    to_document,
    tokenize_dataset,
)

__all__ = ["encode_document", "load_text_dataset", "split_sentences", "to_document", "tokenize_dataset"]

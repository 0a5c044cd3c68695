"""One module per ``bart-pretrain`` command, each exposing ``main(argv) -> int`` (see ``bart_pretrain.cli``)."""

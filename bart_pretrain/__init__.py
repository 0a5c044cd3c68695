"""bart-pretrain: BART denoising pretraining and summarization fine-tuning on PyTorch Lightning."""

__version__ = "0.1.0"

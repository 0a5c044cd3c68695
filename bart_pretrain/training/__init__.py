"""Training: the shared Lightning module base (``module``), losses (``losses``, the chunked LM-head kernel), the one
typed model config (``model_config``), checkpoint writing (``checkpoints``), start-up guards, the end-of-run report,
and the pretraining and fine-tuning modules. The optimizer config is ``bart_pretrain.optim`` (checkpoints pickle it,
and inference reads them without Lightning)."""

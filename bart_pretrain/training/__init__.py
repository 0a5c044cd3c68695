"""Training: the shared Lightning module base (``module``), optimizer and schedule (``optim``), losses (``losses``),
checkpoint writing (``checkpoints``), start-up guards, the end-of-run report, and the pretraining and fine-tuning
modules. Import the submodules; this package imports nothing, so ``training.optim`` stays Lightning-free."""

"""Pretraining loop, checkpoints, collapse watchdog, DDP."""

"""Pretraining: the loop (pretrain), its batches, validation, logging, checkpoints and
resume, collapse watchdog, DDP. Imports model/ and data/, never evaluate/ or tune/."""

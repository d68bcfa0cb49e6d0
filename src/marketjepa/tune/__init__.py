"""Tuning on top of pretraining and evaluation: lever comparisons and the Optuna sweep.

Kept out of ``train/`` so that training never depends on evaluation (issue #14).
"""

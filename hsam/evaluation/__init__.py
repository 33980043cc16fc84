"""Accuracy of label maps against reference labels: per-case, per-organ Dice and HD95."""

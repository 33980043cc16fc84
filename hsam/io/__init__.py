"""Volumes in and out: reading, canonical orientation, intensity normalisation."""

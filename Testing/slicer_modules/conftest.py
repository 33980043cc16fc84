"""Fixtures of the Slicer modules' tests: a registry folder, the scene's training cases and HSAM Train's logic."""
from slicer_train_fixtures import home, logic, scene_cases  # noqa: F401 (pytest finds fixtures here)

"""Everything that would stop a fine-tuning run, found before it starts and reported all at once."""
import re
from typing import Iterable, List, Sequence

from .case_list import TRAIN, VALIDATION, TrainingCase
from .segment_mapping import BACKGROUND, CLASSES, SegmentMapping

# The engine's rule for model ids (they become folder names).
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")


def inputProblems(cases: Sequence[TrainingCase], mapping: SegmentMapping, outputName: str,
                  existingModels: Iterable[str] = ()) -> List[str]:
    problems = []
    if not MODEL_NAME.fullmatch(outputName or "") or ".." in outputName:
        problems.append(f"Output model name {outputName!r}: use letters, digits, '.', '_', '+' and '-'.")
    elif outputName in set(existingModels):
        problems.append(f"A model named {outputName!r} exists already: choose another output model name.")
    if not any(c.role == TRAIN for c in cases):
        problems.append("No training case: add a case and set its role to training.")
    if not any(c.role == VALIDATION for c in cases):
        problems.append("No validation case: set the role of at least one case to validation (it picks the best "
                        "epoch and gives the Dice before and after).")
    learnt = set()
    for case in cases:
        unmapped, mapped = [], []
        for name, voxels in case.summary.segmentVoxels.items():
            target = mapping.targetOf(name)
            if target is None:
                unmapped.append(name)
            elif target != BACKGROUND and voxels:
                mapped.append(target)
        if unmapped:
            problems.append(f"Case {case.name}: segment(s) {', '.join(repr(n) for n in unmapped)} are not mapped to "
                            f"a model class: map them to a class, a new class, or '{BACKGROUND}' to leave them out.")
        elif not mapped:
            problems.append(f"Case {case.name}: none of its non-empty segments is mapped to a class, so there is "
                            "nothing to learn from it.")
        if case.role == TRAIN:
            learnt.update(CLASSES.name_key(t) for t in mapped)
    for newClass in mapping.newClasses:
        if CLASSES.name_key(newClass["name"]) not in learnt:
            problems.append(f"New class {newClass['name']!r} is not shown in any training case.")
    return problems


def startBlockers(missingPackages: Sequence[object], problems: Sequence[str]) -> List[str]:
    """What keeps Start fine-tuning disabled. With the engine's packages missing nothing does: the models (and so
    the base model, the mapping and the checks) can only be listed once Start has installed them, so the first
    click installs, lists and then trains or says what is still needed."""
    return [] if missingPackages else list(problems)

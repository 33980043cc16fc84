"""Do the reference's label values mean the model's classes? A check on where each labelled organ lies.

Label files number organs in many ways (BTCV/Synapse files: 1 aorta ... 8 stomach; the model: 1 spleen ... 8
pancreas). Scored with the wrong numbering, a good prediction looks bad (BTCV: mean Dice 0.24 instead of 0.81) and
nothing says why. The overlap of each reference value with each predicted class shows it: on BTCV crops segmented
by the default model, 5 to 6 of 8 raw values overlapped another class best (Dice 0.75-0.97, their own class
0.00-0.01), while after the label map every value overlapped its own class best. A value is reported when another
class covers it with Dice >= 0.5 and at least twice its own class's Dice: a left/right swap or a single-organ file
numbered differently (liver = 1) are caught, a prediction that is merely poor is not.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

STRONG_OVERLAP = 0.5


def overlap_counts(reference: np.ndarray, prediction: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[v, c]: voxels with reference value v and predicted class c (classes >= num_classes count as 0)."""
    top = int(reference.max()) + 1
    counts = np.zeros((top, num_classes), np.int64)
    for k in range(reference.shape[0]):  # slice by slice: a joint index of a whole CT would take GBs
        pred = prediction[k].astype(np.int64).ravel()
        pred[(pred < 0) | (pred >= num_classes)] = 0
        joint = reference[k].astype(np.int64).ravel() * num_classes + pred
        counts += np.bincount(joint, minlength=top * num_classes).reshape(top, num_classes)
    return counts


def label_disagreements(reference: np.ndarray, prediction: np.ndarray, names: Dict[int, str]) -> List[str]:
    """One phrase per reference value that lies where the model finds another organ; empty when they agree."""
    if reference.size == 0 or reference.max() <= 0:
        return []
    num_classes = max(names) + 1
    counts = overlap_counts(reference, prediction, num_classes)
    ref_sizes, pred_sizes = counts.sum(1), counts.sum(0)
    found = []
    for value in range(1, counts.shape[0]):
        if ref_sizes[value] == 0:
            continue
        dice = 2.0 * counts[value] / np.maximum(ref_sizes[value] + pred_sizes, 1)
        dice[0] = 0.0
        best = int(np.argmax(dice))
        own = float(dice[value]) if value < num_classes else 0.0
        if best != value and dice[best] >= STRONG_OVERLAP and own * 2 <= dice[best]:
            own_text = f", as {names[value]!r} {own:.2f}" if value in names else ""
            found.append(f"label {value} lies where the model finds {names[best]!r} (Dice {dice[best]:.2f}"
                         f"{own_text})")
    return found


def labelling_warning(reference: np.ndarray, prediction: np.ndarray, names: Dict[int, str], source: str,
                      mapped: bool) -> Optional[str]:
    """A warning for the log when the reference's numbering does not look like the model's, else None."""
    problems = label_disagreements(reference, prediction, names)
    foreign = [] if mapped else sorted(int(v) for v in np.unique(reference) if v != 0 and int(v) not in names)
    if not problems and not foreign:
        return None
    parts = []
    if problems:
        parts.append("; ".join(problems))
    if foreign:
        shown = ", ".join(map(str, foreign[:12])) + (", ..." if len(foreign) > 12 else "")
        parts.append(f"label values {shown} are not classes of the model and count as background")
    classes = ", ".join(f"{v} {n}" for v, n in sorted(names.items()))
    advice = ("check the label map given with --label-map" if mapped else
              "give --label-map MAP.json from the file's values to the model's classes (BTCV/Synapse files: "
              "docs/examples/btcv_synapse_labels.json)")
    return (f"warning: {source}: the reference seems to number organs differently from the model ({classes}): "
            f"{'; '.join(parts)}. The scores below compare different organs; {advice}")

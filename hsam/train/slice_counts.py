"""How many slices ``pick_slices`` takes from a training case: the one rule, for the engine and for HSAM Train's
run-time estimate.

Plain Python that imports nothing (no torch, numpy or other engine module): HSAM Train loads this file into
Slicer's own process, where the engine's packages may not be installed yet and torch must not be imported
(``HSAMSharedLib.engine.loadEngineFile``)."""
from __future__ import annotations

from typing import Tuple


def picked_slice_counts(depth: int, foreground: int, fraction: float, empty_fraction: float) -> Tuple[int, int]:
    """(slices that show an organ, background-only slices) picked from a case of ``depth`` slices of which
    ``foreground`` show an organ: ``fraction`` of the slices (at least one), background-only ones at most
    ``empty_fraction`` of them, the rest foreground as far as the case has them."""
    wanted = max(1, int(round(fraction * depth)))
    background = min(depth - foreground, int(empty_fraction * wanted))
    return min(foreground, wanted - background), background

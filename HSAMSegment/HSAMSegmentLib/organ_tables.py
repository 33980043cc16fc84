"""The organ tables that ship with the extension (generated from the engine's label set by
Resources/generate_organ_tables.py): a color table with terminology and a terminology context."""
from pathlib import Path
from typing import Optional

MODULE_DIR = Path(__file__).resolve().parent.parent
COLOR_TABLE = "HSAM-BTCV8.csv"
TERMINOLOGY = "SegmentationCategoryTypeModifier-HSAM.term.json"


def organTablePath(name: str, moduleDir: Path = MODULE_DIR) -> Optional[Path]:
    """Packaged extension: <module dir>/Resources/Organs; source checkout: <repository>/Resources."""
    for path in (moduleDir / "Resources" / "Organs" / name, moduleDir.parent / "Resources" / name):
        if path.is_file():
            return path
    return None


def loadOrganTerminology(terminologiesLogic) -> Optional[Path]:
    """Make the organs selectable in Slicer's terminology selector; returns the file loaded, if any."""
    path = organTablePath(TERMINOLOGY)
    if path is not None:
        terminologiesLogic.LoadTerminologyFromFile(str(path))
    return path

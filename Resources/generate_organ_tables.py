"""Writes the organ tables next to this file from the engine's label set (run it after changing
hsam/models/labels.py; a test checks that the files are up to date):

- HSAM-BTCV8.csv: a Slicer color table (label value, name, color, SNOMED CT terminology columns) for exporting
  segmentations with the model's label values;
- SegmentationCategoryTypeModifier-HSAM.term.json: the organs as a Slicer terminology context, for Slicer
  versions whose color tables carry no terminology.

Needs slicer-core (the color table is written by Slicer's own storage node): python Resources/generate_organ_tables.py
"""
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
COLOR_TABLE = HERE / "HSAM-BTCV8.csv"
TERMINOLOGY = HERE / "SegmentationCategoryTypeModifier-HSAM.term.json"
CONTEXT_NAME = "HSAM abdominal organs"
SCHEMA = "https://raw.githubusercontent.com/qiicr/dcmqi/master/doc/schemas/segment-context-schema.json#"


def _code(entry):
    return {"CodingSchemeDesignator": entry["CodingSchemeDesignator"], "CodeValue": entry["CodeValue"],
            "CodeMeaning": entry["CodeMeaning"]}


def terminology_json(labels):
    """One category per SNOMED category; organs with left/right share one type with modifiers."""
    categories = {}
    for label in labels:
        term = label["terminology"]
        category = categories.setdefault(term["category"]["CodeValue"],
                                         dict(_code(term["category"]), showAnatomy="false", Type=[]))
        types = category["Type"]
        organ = next((t for t in types if t["CodeValue"] == term["type"]["CodeValue"]), None)
        if organ is None:
            organ = dict(_code(term["type"]), recommendedDisplayRGBValue=label["color"])
            types.append(organ)
        if "typeModifier" in term:
            organ.setdefault("Modifier", []).append(
                dict(_code(term["typeModifier"]), recommendedDisplayRGBValue=label["color"]))
    return {"SegmentationCategoryTypeContextName": CONTEXT_NAME, "@schema": SCHEMA,
            "SegmentationCodes": {"Category": list(categories.values())}}


def write_color_table(labels, path):
    import slicer

    table = slicer.vtkMRMLColorTableNode()
    table.SetTypeToUser()
    table.SetNumberOfColors(max(label["value"] for label in labels) + 1)
    table.SetColor(0, "background", 0.0, 0.0, 0.0, 0.0)
    for label in labels:
        term = label["terminology"]
        modifier = term.get("typeModifier")
        table.SetColor(label["value"], label["name"], *[c / 255.0 for c in label["color"]], 1.0)
        table.SetTerminology(label["value"], *_scheme_value_meaning(term["category"]),
                             *_scheme_value_meaning(term["type"]), *_scheme_value_meaning(modifier),
                             "", "", "", "", "", "")
    storage = slicer.vtkMRMLColorTableStorageNode()
    storage.SetFileName(str(path))
    if not storage.WriteData(table):
        raise OSError(f"could not write {path}")


def _scheme_value_meaning(entry):
    return (entry["CodingSchemeDesignator"], entry["CodeValue"], entry["CodeMeaning"]) if entry else ("", "", "")


def main():
    sys.path.insert(0, str(HERE.parent))
    from hsam.models.labels import BTCV_8_ORGANS

    write_color_table(BTCV_8_ORGANS, COLOR_TABLE)
    TERMINOLOGY.write_text(json.dumps(terminology_json(BTCV_8_ORGANS), indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

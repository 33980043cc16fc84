"""The module panels' layout (.ui files) as Slicer renders them at its default panel width (about 420 px) on a
1080p screen: HSAM Train keeps its progress bar and plots in view during a run, its raw hyper-parameters sit under
a collapsed Advanced section, HSAM Segment lists all 8 organs with All/None, and no text is cut.
(That every widget the code uses exists in the .ui files is checked in test_slicer_segment_module_files.py.)"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
SEGMENT_UI = REPO / "HSAMSegment" / "Resources" / "UI" / "HSAMSegment.ui"
TRAIN_UI = REPO / "HSAMTrain" / "Resources" / "UI" / "HSAMTrain.ui"
RAW_HYPERPARAMETERS = ("sliceFractionSpinBox", "learningRateSpinBox", "loraRankSpinBox", "batchSizeSpinBox",
                       "freezeEncoderCheckBox")
ORGAN_ROW_PX = 27  # a checkable list row with a color swatch (Qt's Fusion style, 9 pt font)


def parse(path: Path) -> ET.Element:
    return ET.parse(path).getroot()  # fails on a malformed file


def widget(root: ET.Element, name: str) -> ET.Element:
    found = [w for w in root.iter("widget") if w.get("name") == name]
    assert len(found) == 1, f"{name}: {len(found)} widgets of that name"
    return found[0]


def prop(element: ET.Element, name: str) -> Optional[ET.Element]:
    return next((p for p in element.findall("property") if p.get("name") == name), None)


def ancestors(root: ET.Element, name: str) -> List[ET.Element]:
    """The widgets that contain widget ``name``, innermost first."""
    parents: Dict[ET.Element, ET.Element] = {child: parent for parent in root.iter() for child in parent}
    chain, node = [], widget(root, name)
    while node in parents:
        node = parents[node]
        if node.tag == "widget":
            chain.append(node)
    return chain


def is_collapsed(section: ET.Element) -> bool:
    collapsed = prop(section, "collapsed")
    return collapsed is not None and collapsed.find("bool").text == "true"


def top_level_names(root: ET.Element) -> List[str]:
    """Names of the main layout's items in order (widgets, or the first widget inside a nested layout)."""
    names = []
    for item in root.find("widget").find("layout").findall("item"):
        first = item.find(".//widget")
        names.append(first.get("name") if first is not None else "spacer")
    return names


@pytest.mark.parametrize("path", [SEGMENT_UI, TRAIN_UI], ids=lambda p: p.stem)
def test_ui_file_is_well_formed_and_names_are_unique(path):
    root = parse(path)
    names = [w.get("name") for w in root.iter("widget")] + [lay.get("name") for lay in root.iter("layout")]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_train_raw_hyperparameters_are_under_a_collapsed_advanced_section():
    root = parse(TRAIN_UI)
    for name in RAW_HYPERPARAMETERS:
        sections = [w for w in ancestors(root, name) if w.get("class") == "ctkCollapsibleButton"]
        assert sections and is_collapsed(sections[0]), f"{name} is not inside a collapsed section"
        assert prop(sections[0], "text").find("string").text == "Advanced"
    # What a user sets for every run stays in view.
    for name in ("epochsSpinBox", "deviceSelector", "estimateLabel"):
        assert not any(is_collapsed(w) for w in ancestors(root, name)), name


def test_train_progress_and_plots_follow_the_sections_a_run_collapses():
    root = parse(TRAIN_UI)
    order = top_level_names(root)
    sections = ["casesCollapsibleButton", "modelCollapsibleButton", "settingsCollapsibleButton"]
    assert order[:3] == sections
    # Only the Start and Resume rows lie between the collapsed sections and the progress.
    assert order.index("progressCollapsibleButton") - order.index("settingsCollapsibleButton") <= 3
    for name in ("progressBar", "progressLabel", "plotFrame", "statusLog"):
        assert "progressCollapsibleButton" in [w.get("name") for w in ancestors(root, name)]
    # The code collapses those sections when a run starts (they are disabled while it runs).
    code = (REPO / "HSAMTrain" / "HSAMTrain.py").read_text(encoding="utf-8")
    collapsing = re.search(r"for section in \(([^)]*)\):\s*\n\s*section\.collapsed = True", code)
    assert collapsing and all(f"self.ui.{s}" in collapsing.group(1) for s in sections)


@pytest.mark.parametrize("name, most", [("casesTable", 200), ("mappingTable", 240), ("statusLog", 160)])
def test_train_lists_have_a_bounded_height(name, most):
    size = prop(widget(parse(TRAIN_UI), name), "maximumSize")
    assert size is not None and int(size.find("size/height").text) <= most


def test_segment_organ_list_shows_all_eight_organs_with_all_and_none():
    root = parse(SEGMENT_UI)
    organs = widget(root, "organsList")
    minimum = prop(organs, "minimumSize")
    assert minimum is not None and int(minimum.find("size/height").text) >= 8 * ORGAN_ROW_PX
    maximum = prop(organs, "maximumSize")
    assert maximum is None or int(maximum.find("size/height").text) >= 8 * ORGAN_ROW_PX
    code = (REPO / "HSAMSegment" / "HSAMSegment.py").read_text(encoding="utf-8")
    for button, checked in (("allOrgansButton", "True"), ("noOrgansButton", "False")):
        assert widget(root, button).get("class") == "QPushButton"
        assert f"self.ui.{button}.clicked.connect(lambda: self.setAllOrgansChecked({checked}))" in code


def test_segment_advanced_puts_labels_above_their_fields():
    """Beside a label column two buttons get about 140 px each at 420 px, which cuts their texts."""
    root = parse(SEGMENT_UI)
    form = next(lay for lay in root.iter("layout") if lay.get("name") == "advancedFormLayout")
    assert prop(form, "rowWrapPolicy").find("enum").text == "QFormLayout::WrapAllRows"


@pytest.mark.parametrize("path", [SEGMENT_UI, TRAIN_UI], ids=lambda p: p.stem)
def test_labels_the_code_fills_wrap(path):
    """A label without a text in the .ui gets a sentence from the code; at 420 px it must wrap, not be cut."""
    for label in parse(path).iter("widget"):
        if label.get("class") == "QLabel" and prop(label, "text") is None:
            wrap = prop(label, "wordWrap")
            assert wrap is not None and wrap.find("bool").text == "true", label.get("name")


def test_segment_advanced_has_the_diagnostics_button():
    root = parse(SEGMENT_UI)
    for name in ("diagnosticsButton", "diagnosticsText"):
        assert "advancedCollapsibleButton" in [w.get("name") for w in ancestors(root, name)], name
    code = (REPO / "HSAMSegment" / "HSAMSegment.py").read_text(encoding="utf-8")
    assert "self.ui.diagnosticsButton.clicked.connect(self.onDiagnosticsButton)" in code
    assert "DiagnosticsCollector(" in code  # collected off the GUI thread (the engine imports torch)

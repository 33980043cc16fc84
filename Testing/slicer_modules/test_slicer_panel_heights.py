"""The module panels laid out by Qt at Slicer's default panel width (420 px), offscreen.

Slicer itself cannot run here, so its CTK and MRML widgets are replaced by the plain Qt widgets they derive from or
look like (a collapsible section by a group box, whose header is taller: the heights measured are upper bounds).
Checks: HSAM Train during a run fits the module panel of a 1080p screen, HSAM Segment shows all 8 organs without
scrolling, and no button or label text is cut."""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
QtWidgets = pytest.importorskip("PyQt5.QtWidgets", reason="PyQt5 lays the panels out: pip install -e .[test]")
from PyQt5 import QtCore, QtGui, uic  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PANEL_WIDTH = 420
# A 1080p screen leaves Slicer's module panel about 800 px below its toolbars, module selector and Help section.
PANEL_HEIGHT_1080P = 800
ORGANS = ["spleen", "right kidney", "left kidney", "gallbladder", "liver", "stomach", "aorta", "pancreas"]
STAND_INS = {"ctkCollapsibleButton": "QGroupBox", "qMRMLWidget": "QWidget", "qMRMLNodeComboBox": "QComboBox",
             "ctkPathLineEdit": "QLineEdit", "qMRMLSegmentationShow3DButton": "QPushButton"}
SLICER_ONLY_PROPERTIES = {"nodeTypes", "showChildNodeTypes", "addEnabled", "removeEnabled", "noneEnabled",
                          "noneDisplay", "renameEnabled", "filters", "SlicerParameterName"}


@pytest.fixture(scope="module")
def app():
    application = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    application.setStyle("Fusion")
    font = application.font()
    font.setPointSize(9)  # Slicer's default font size on Windows, the smallest screens our users have
    application.setFont(font)
    return application


def load_panel(module: str, tmp_path: Path, collapsed: Dict[str, bool]) -> "QtWidgets.QWidget":
    """The module's .ui with stand-ins; ``collapsed`` overrides sections' state (the others keep the .ui's)."""
    tree = ET.parse(REPO / module / "Resources" / "UI" / f"{module}.ui")
    root = tree.getroot()
    for tag in ("customwidgets", "connections"):
        for element in root.findall(tag):
            root.remove(element)
    for widget in root.iter("widget"):
        for prop in list(widget.findall("property")):
            if prop.get("name") in SLICER_ONLY_PROPERTIES:
                widget.remove(prop)
        if widget.get("class") == "ctkCollapsibleButton":
            props = {p.get("name"): p for p in widget.findall("property")}
            props["text"].set("name", "title")
            is_collapsed = "collapsed" in props and props["collapsed"].find("bool").text == "true"
            if "collapsed" in props:
                widget.remove(props["collapsed"])
            if collapsed.get(widget.get("name"), is_collapsed):
                layout = widget.find("layout")
                for item in list(layout):
                    if item.tag == "item":
                        layout.remove(item)
        widget.set("class", STAND_INS.get(widget.get("class"), widget.get("class")))
    path = tmp_path / f"{module}.ui"
    tree.write(path)
    panel = uic.loadUi(str(path))
    organs = panel.findChild(QtWidgets.QListWidget, "organsList")
    if organs is not None:  # as the module fills it: checkable, one row per organ
        for name in ORGANS:
            item = QtWidgets.QListWidgetItem(name)
            item.setFlags(item.flags() | QtCore.Qt.ItemIsUserCheckable)
            item.setCheckState(QtCore.Qt.Checked)
            item.setData(QtCore.Qt.DecorationRole, QtGui.QColor(221, 130, 101))  # its color swatch
            organs.addItem(item)
    plots = panel.findChild(QtWidgets.QFrame, "plotFrame")
    if plots is not None:  # as the module fills it: loss and Dice charts, 150 px each
        for _ in range(2):
            chart = QtWidgets.QWidget()
            chart.setMinimumHeight(150)
            plots.layout().addWidget(chart)
    return panel


def laid_out(panel, app) -> int:
    """Shows the panel at the panel width and its natural height; returns that height."""
    panel.resize(PANEL_WIDTH, 100)
    height = max(panel.layout().totalHeightForWidth(PANEL_WIDTH), panel.minimumSizeHint().height())
    panel.resize(PANEL_WIDTH, height)
    panel.show()
    app.processEvents()
    return height


def cut_texts(panel):
    cut = []
    for button in panel.findChildren(QtWidgets.QPushButton):
        needed = button.fontMetrics().horizontalAdvance(button.text()) + 12  # the style's text margins
        if button.isVisible() and button.text() and button.width() < needed:
            cut.append(f"{button.objectName()} '{button.text()}': {button.width()} < {needed} px")
    for label in panel.findChildren(QtWidgets.QLabel):
        needed = label.fontMetrics().horizontalAdvance(label.text())
        if label.isVisible() and not label.wordWrap() and label.width() < needed:
            cut.append(f"{label.objectName()} '{label.text()}': {label.width()} < {needed} px")
    return cut


RUNNING = {"casesCollapsibleButton": True, "modelCollapsibleButton": True, "settingsCollapsibleButton": True,
           "progressCollapsibleButton": False}


def test_train_panel_fits_a_1080p_screen_during_a_run(app, tmp_path):
    panel = load_panel("HSAMTrain", tmp_path, RUNNING)
    height = laid_out(panel, app)
    assert height <= PANEL_HEIGHT_1080P, f"HSAM Train during a run is {height} px tall"
    bar = panel.findChild(QtWidgets.QProgressBar, "progressBar")
    top = bar.mapTo(panel, QtCore.QPoint(0, 0)).y()
    assert top < PANEL_HEIGHT_1080P / 3, f"the progress bar starts {top} px down"
    assert cut_texts(panel) == []


def test_train_panel_texts_are_whole_with_every_section_open(app, tmp_path):
    sections = {"casesCollapsibleButton", "modelCollapsibleButton", "settingsCollapsibleButton",
                "advancedSettingsCollapsibleButton", "progressCollapsibleButton"}
    panel = load_panel("HSAMTrain", tmp_path, {name: False for name in sections})
    laid_out(panel, app)
    assert cut_texts(panel) == []


def test_segment_panel_shows_every_organ_and_whole_texts(app, tmp_path):
    panel = load_panel("HSAMSegment", tmp_path, {"advancedCollapsibleButton": False})
    laid_out(panel, app)
    assert cut_texts(panel) == []
    organs = panel.findChild(QtWidgets.QListWidget, "organsList")
    rows = organs.count()
    assert rows == 8
    assert organs.viewport().height() >= sum(organs.sizeHintForRow(r) for r in range(rows)), "the list scrolls"
    for button in ("allOrgansButton", "noOrgansButton", "diagnosticsButton"):
        assert panel.findChild(QtWidgets.QPushButton, button).isVisible()

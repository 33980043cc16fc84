"""The Slicer modules' files (HSAM Segment, HSAM Train) agree with each other: widget names used in code exist in
the .ui file, GUI bindings name real parameters, CMake lists every file, the code compiles for Slicer's Pythons
(3.9 and 3.12), the package list covers the engine's dependencies, and the organ tables match the engine's label
set."""
from __future__ import annotations

import ast
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "HSAMSegment"
SLICER_PYTHONS = ("3.9", "3.12")  # Slicer 5.8 and Slicer 5.10+
# Each module and the parameters its .ui file binds widgets to.
MODULES = {"HSAMSegment": {"inputVolume", "outputSegmentation", "postprocess"},
           "HSAMTrain": {"volume", "segmentation", "outputName", "epochs", "sliceFraction", "learningRate",
                         "loraRank", "batchSize", "freezeEncoder"}}
if str(MODULE) not in sys.path:
    sys.path.insert(0, str(MODULE))


def ui_file(module: str) -> Path:
    return REPO / module / "Resources" / "UI" / f"{module}.ui"


def module_file(module: str) -> Path:
    return REPO / module / f"{module}.py"


def self_test_file(module: str) -> Path:
    return REPO / module / f"{module}Lib" / "self_test.py"


def module_python_files():
    return sorted(p for module in MODULES for p in (REPO / module).rglob("*.py")) + \
        [REPO / "Resources" / "generate_organ_tables.py"]


def ui_widget_names(module: str):
    return {w.get("name") for w in ET.parse(ui_file(module)).iter("widget")}


def ui_parameter_bindings(module: str):
    bindings = {}
    for widget in ET.parse(ui_file(module)).iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bindings[widget.get("name")] = prop.find("string").text
    return bindings


def parameter_fields(module: str):
    tree = ast.parse(module_file(module).read_text(encoding="utf-8"))
    wrapped = [node for node in tree.body if isinstance(node, ast.ClassDef)
               and any(getattr(d, "id", None) == "parameterNodeWrapper" for d in node.decorator_list)]
    assert len(wrapped) == 1, "expected one @parameterNodeWrapper class"
    declared = {item.target.id for item in wrapped[0].body if isinstance(item, ast.AnnAssign)}
    if any(getattr(d.func, "id", None) == "withSettings" for d in wrapped[0].decorator_list if isinstance(d, ast.Call)):
        if str(REPO / module) not in sys.path:
            sys.path.insert(0, str(REPO / module))
        from HSAMTrainLib import SCENE_SETTINGS  # members from the engine's option table

        declared |= {setting.name for setting in SCENE_SETTINGS}
    return declared


def widgets_used(path: Path, owner: str):
    """Every <widget> of ``<owner>.ui.<widget>`` in the file."""
    return {node.attr for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
            and node.value.attr == "ui" and isinstance(node.value.value, ast.Name) and node.value.value.id == owner}


@pytest.mark.parametrize("module", MODULES)
def test_every_widget_the_code_uses_is_in_the_ui_file(module):
    for path, owner in ((module_file(module), "self"), (self_test_file(module), "widget")):
        used = widgets_used(path, owner)
        assert used, f"no {owner}.ui.<widget> found in {path.name}"
        assert used <= ui_widget_names(module), sorted(used - ui_widget_names(module))
    for path in (REPO / module / f"{module}Lib").glob("*.py"):  # the widget's mixins (HSAMTrain's case tables)
        used = widgets_used(path, "self")
        assert used <= ui_widget_names(module), (path.name, sorted(used - ui_widget_names(module)))


@pytest.mark.parametrize("module", MODULES)
def test_slicer_finds_the_self_test_in_the_module_file(module):
    """Slicer runs ``getattr(<module file>, "<module name>Test")`` (ScriptedLoadableModule.runTest): the module
    file imports the class from its self-test file, which defines it."""
    test_class = f"{module}Test"
    imported = [node for node in ast.parse(module_file(module).read_text(encoding="utf-8")).body
                if isinstance(node, ast.ImportFrom) and node.module == f"{module}Lib.self_test"]
    assert [alias.name for node in imported for alias in node.names] == [test_class]
    defined = [node.name for node in ast.parse(self_test_file(module).read_text(encoding="utf-8")).body
               if isinstance(node, ast.ClassDef)]
    assert test_class in defined
    package_init = (REPO / module / f"{module}Lib" / "__init__.py").read_text(encoding="utf-8")
    assert "self_test" not in package_init  # it needs Slicer's application: never imported by the package


@pytest.mark.parametrize("module", MODULES)
def test_every_gui_binding_names_a_parameter(module):
    bindings = ui_parameter_bindings(module)
    assert set(bindings.values()) == MODULES[module]
    assert set(bindings.values()) <= parameter_fields(module), bindings


@pytest.mark.parametrize("module", MODULES)
def test_ui_file_wires_the_scene_to_every_node_selector(module):
    root = ET.parse(ui_file(module)).getroot()
    selectors = {w.get("name") for w in root.iter("widget") if w.get("class") == "qMRMLNodeComboBox"}
    wired = {c.findtext("receiver") for c in root.iter("connection")
             if c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"}
    assert selectors and selectors <= wired


def test_module_files_compile_here():
    for path in module_python_files():
        compile(path.read_text(encoding="utf-8"), str(path), "exec")


def _interpreter(version: str):
    """A working python<version>: on PATH, or a pyenv install (a pyenv shim on PATH may point nowhere)."""
    candidates = [shutil.which(f"python{version}")] + \
        sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")), reverse=True)
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "--version"], capture_output=True).returncode == 0:
            return candidate
    return None


@pytest.mark.parametrize("version", SLICER_PYTHONS)
def test_module_files_compile_for_slicer_python(version):
    python = _interpreter(version)
    if python is None:
        pytest.skip(f"no Python {version} interpreter here (the ruff check covers 3.9 syntax)")
    code = "import sys\nfor p in sys.argv[1:]:\n    compile(open(p, encoding='utf-8').read(), p, 'exec')\n"
    result = subprocess.run([python, "-c", code, *map(str, module_python_files())], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_module_files_have_no_syntax_or_names_beyond_python_39():
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (pip install -e .[test])")
    result = subprocess.run([ruff, "check", "--target-version", "py39", "--select", "E9,F", "--no-cache",
                             *map(str, module_python_files())], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("module", MODULES)
def test_cmake_lists_every_script_and_resource(module):
    folder = REPO / module
    cmake = (folder / "CMakeLists.txt").read_text(encoding="utf-8").replace("${MODULE_NAME}", module)
    listed = set(re.findall(r"^\s+(\S+\.(?:py|png|ui|txt))\s*$", cmake, re.M))
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*")
               if p.is_file() and p.relative_to(folder).parts[0] != "Testing" and p.name != "CMakeLists.txt"
               and not any(part.startswith((".", "__pycache__")) for part in p.relative_to(folder).parts)}
    assert listed == present


def test_extension_cmake_depends_on_pytorch_and_adds_each_module():
    cmake = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    assert re.search(r'set\(EXTENSION_DEPENDS "PyTorch"\)', cmake)
    modules = {p.parent.name for p in REPO.glob("*/CMakeLists.txt")}
    assert modules and all(f"add_subdirectory({m})" in cmake for m in modules)
    for name in re.findall(r"Resources/(\S+?\.(?:csv|json))", cmake):
        assert (REPO / "Resources" / name).is_file()


def test_package_list_covers_the_engine_dependencies():
    tomllib = pytest.importorskip("tomllib")
    from HSAMSharedLib.dependencies import NEVER_INSTALLED, readRequirements

    engine = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    names = {re.split(r"[<>=;\s\[]", d, maxsplit=1)[0].lower().replace("_", "-") for d in engine}
    listed = {r.name.lower().replace("_", "-") for r in readRequirements()}
    assert names - set(NEVER_INSTALLED) <= listed, names - set(NEVER_INSTALLED) - listed


def test_organ_tables_match_the_engine_label_set(tmp_path):
    pytest.importorskip("slicer", reason="slicer-core writes the color table")
    sys.path.insert(0, str(REPO / "Resources"))
    try:
        import generate_organ_tables as tables
    finally:
        sys.path.remove(str(REPO / "Resources"))
    from hsam.models.labels import BTCV_8_ORGANS

    tables.write_color_table(BTCV_8_ORGANS, tmp_path / "table.csv")
    assert (tmp_path / "table.csv").read_text() == tables.COLOR_TABLE.read_text(), \
        "run python Resources/generate_organ_tables.py"
    assert json.loads(tables.TERMINOLOGY.read_text()) == tables.terminology_json(BTCV_8_ORGANS)


def test_icons_are_png():
    icons = [REPO / m / "Resources" / "Icons" / f"{m}.png" for m in MODULES] + [REPO / "Resources" / "HSAM.png"]
    for icon in icons:
        assert icon.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", icon


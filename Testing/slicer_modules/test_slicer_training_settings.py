"""HSAM Train's settings come from the engine's option table (hsam/train/options.py), not from a copy: the module's
settings are the table's panel entries, the options they become set exactly those engine settings, the panel shows
each with the table's label, and the module reads the table without importing the engine or torch."""
from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

from slicer_train_fixtures import TRAIN_MODULE_DIR

from hsam.cli import build_parser
from hsam.commands.train import settings_from_args
from hsam.train import options
from HSAMTrainLib import PANEL_SETTINGS, SCENE_SETTINGS, TrainingSettings
from HSAMTrainLib.training_settings import CUSTOM, FEW_SHOT, RECIPES, recipeDescription

TRAIN_UI = TRAIN_MODULE_DIR / "Resources" / "UI" / "HSAMTrain.ui"
NOT_SETTINGS = {"volume", "segmentation", "baseModel", "outputName"}  # parameter node members of the scene's own


def engine_settings(training: TrainingSettings):
    return settings_from_args(build_parser().parse_args(["train", "--out", "m", *training.engineOptions()]))


def test_the_module_settings_are_the_tables_panel_entries():
    table = options.panel_settings()
    assert [dataclasses.astuple(s) for s in PANEL_SETTINGS] == [dataclasses.astuple(s) for s in table]
    assert [(f.name, f.default) for f in dataclasses.fields(TrainingSettings) if f.name != "recipe"] == \
        [(s.name, s.default) for s in table]
    assert {"epochs", "sliceFraction", "learningRate", "freezeEncoder", "modality"} <= {s.name for s in table}


def test_the_options_the_settings_become_set_those_engine_settings():
    chosen = TrainingSettings(recipe=CUSTOM, epochs=3, sliceFraction=0.1, learningRate=0.004, loraRank=8,
                              batchSize=2, device="cpu", freezeEncoder=False, validationSlices=5, modality="mr")
    for training in (chosen, TrainingSettings(recipe=CUSTOM)):
        engine = engine_settings(training)
        for setting in PANEL_SETTINGS:
            assert getattr(engine, setting.option) == getattr(training, setting.name), setting.name
        assert dataclasses.asdict(engine) == dict(training.engineValues(), out="m")  # what the estimate counts
    assert engine_settings(TrainingSettings(modality=None)).modality is None  # the base model's normalization
    assert "--modality" not in TrainingSettings().engineOptions()


def test_the_few_shot_recipe_is_the_default_and_its_values_win_over_the_panels():
    """The panel's CPU defaults (frozen encoder, 20 epochs, half the slices, batch 4) once replaced the few-shot
    recipe's values; now the preset decides them, and the panel gives only what it leaves open."""
    assert TrainingSettings().recipe == FEW_SHOT == RECIPES[0][0]
    panel = TrainingSettings(epochs=3, sliceFraction=0.1, batchSize=2, freezeEncoder=True, validationSlices=5,
                             loraRank=8, device="cpu", modality="mr")
    engine = engine_settings(panel)
    preset = settings_from_args(build_parser().parse_args(
        ["train", "--out", "m", "--preset", "few-shot", "--lora-rank", "8", "--device", "cpu", "--modality", "mr"]))
    assert engine == preset
    assert (engine.epochs, engine.slice_fraction, engine.freeze_encoder, engine.lora_blocks) == (12, 1.0, False, 2)
    assert dataclasses.asdict(engine) == dict(panel.engineValues(), out="m")
    decided = {s.name for s in PANEL_SETTINGS if panel.decidedByRecipe(s)}
    assert decided == {"sliceFraction", "validationSlices", "freezeEncoder", "epochs", "batchSize", "learningRate"}
    assert "--lora-blocks 2" in recipeDescription(FEW_SHOT)


def test_a_run_saved_before_a_setting_existed_loads_with_its_default():
    saved = dict(TrainingSettings(recipe=CUSTOM, epochs=7).toDict(), unknown=1)
    del saved["modality"], saved["recipe"]
    loaded = TrainingSettings.fromDict(saved)
    assert loaded.epochs == 7 and loaded.modality is None
    assert loaded.recipe == CUSTOM  # runs saved before the recipe choice used the panel's settings
    assert TrainingSettings.fromDict(TrainingSettings().toDict()).recipe == FEW_SHOT


def test_the_panel_shows_every_setting_with_the_tables_label():
    root = ET.parse(TRAIN_UI).getroot()
    widgets = {w.get("name"): w for w in root.iter("widget")}
    code = (TRAIN_MODULE_DIR / "HSAMTrain.py").read_text(encoding="utf-8")
    panel = (TRAIN_MODULE_DIR / "HSAMTrainLib" / "settings_panel.py").read_text(encoding="utf-8")
    body = re.search(r"def settingWidgets\(self\) -> dict:\n(.*?)\n\n", panel, re.S).group(1)
    editors = dict(re.findall(r'"(\w+)": self\.ui\.(\w+)', body))
    shown = [s for s in PANEL_SETTINGS if s.shown]
    assert set(editors) == {s.name for s in shown}
    for setting in shown:
        label = widgets[setting.name + "Label"]
        assert label.find("property[@name='text']/string").text == setting.label + ":"  # as the code sets it
        assert editors[setting.name] in widgets
    bound = {p.find("string").text for w in widgets.values() for p in w.findall("property")
             if p.get("name") == "SlicerParameterName"}
    assert bound - NOT_SETTINGS == {s.name for s in SCENE_SETTINGS}  # the parameter node's settings
    assert "@withSettings(SCENE_SETTINGS, parameterType)" in code


def test_the_module_reads_the_table_without_the_engine_or_torch():
    code = ("import sys\n"
            f"sys.path[:0] = [{str(TRAIN_MODULE_DIR.parent / 'HSAMSegment')!r}, {str(TRAIN_MODULE_DIR)!r}]\n"
            "from HSAMTrainLib.training_settings import PANEL_SETTINGS\n"
            "assert PANEL_SETTINGS\n"
            "print(sorted(name for name in sys.modules if name.split('.')[0] in ('hsam', 'torch')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"

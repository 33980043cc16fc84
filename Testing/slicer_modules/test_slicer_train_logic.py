"""HSAM Train's logic on a real MRML scene (slicer-core) with two real BTCV CT cases and a tiny random base model:
export, a short real ``hsam train`` run in a worker process, the comparison with the base model, registration,
and segmenting with the new model; problems found before a start. Fixtures shared with the resume tests."""
from __future__ import annotations

import json

import pytest

from slicer_train_fixtures import ORGANS, TINY, case_list

from HSAMSharedLib import MODELS_CHANGED
from HSAMSegmentLib import SegmentLogic
from HSAMTrainLib import CaseList, TrainingSettings
from HSAMTrainLib.estimate import readMachineFactors

def test_fine_tune_register_and_segment_with_the_new_model(logic, home, scene_cases):
    cases = case_list(scene_cases)
    base = next(b for b in logic.baseModels() if b.id == "tiny-base")
    assert base.isModel and [c["name"] for c in base.classes] == ORGANS
    mapping = logic.suggestMapping(cases, base)
    assert all(mapping.targetOf(name) == name for name in ORGANS)
    events, announced = [], []
    MODELS_CHANGED.connect(announced.append)  # how both modules learn that there is a new model to list
    try:
        result = logic.train(cases, mapping, "tiny-base", "tiny-site", settings=TrainingSettings(**TINY),
                             progressCallback=events.append)
    finally:
        MODELS_CHANGED.disconnect(announced.append)
    assert announced == ["model registered"]

    assert result.path == home / "models" / "tiny-site" / "1" and (result.path / "weights.safetensors").is_file()
    card = json.loads((result.path / "model.json").read_text())
    assert card["id"] == "tiny-site" and [label["name"] for label in card["labels"]] == ORGANS
    training = card["training"]
    assert training["cases"] == {"train": ["case0005"], "val": ["case0006"]}
    assert [c["role"] for c in training["case_details"]] == ["train", "val"]
    assert training["recipe"]["epochs"] == 1 and training["recipe"]["freeze_encoder"]
    comparison = card["comparison"]
    assert comparison["base_model"] == "tiny-base" and comparison["validation_cases"] == ["case0006"]
    assert set(comparison["organs"]) == set(ORGANS)
    for dice in comparison["organs"].values():
        assert 0 <= dice["base"] <= 1 and 0 <= dice["fine_tuned"] <= 1
    assert comparison == result.comparison

    kinds = [e["event"] for e in events]
    assert {"step", "epoch", "checkpoint", "done", "result"} <= set(kinds)
    states = [e["state"] for e in events if e["event"] == "state"]
    assert states == ["running", "importing", "idle"]
    assert logic.job.progress.columns()["epoch"] == [1.0]
    assert "tiny-site" in [m.id for m in logic.listModels()]
    assert logic.stoppedRuns() == [] and readMachineFactors(logic.runsFolder)["cpu"] > 0

    segment = SegmentLogic()
    segment.setModelsHome(str(home))
    volume = scene_cases[1][1][0]
    output = segment.process(volume, None, model="tiny-site", device="cpu", show3D=False)
    content = output.GetSegmentation()
    assert [content.GetNthSegment(i).GetName() for i in range(content.GetNumberOfSegments())] == ORGANS


def test_unmapped_segment_is_reported_before_start(logic, scene_cases):
    scene = scene_cases[0]
    volume, segmentation, _ = scene_cases[1][0]
    extra = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "with a tumor")
    extra.GetSegmentation().DeepCopy(segmentation.GetSegmentation())
    extra.GetSegmentation().AddEmptySegment("tumor", "tumor")
    cases = CaseList()
    cases.add(volume, extra)
    cases.add(*scene_cases[1][1][:2])
    base = next(b for b in logic.baseModels() if b.id == "tiny-base")
    mapping = logic.suggestMapping(cases, base)
    with pytest.raises(ValueError, match=r"Case case0005: segment\(s\) 'tumor' are not mapped"):
        logic.startTraining(cases, mapping, base, "never-started", settings=TrainingSettings(**TINY))
    assert not (logic.runsFolder / "never-started").exists() and logic.job is None


def test_the_default_recipe_is_the_few_shot_preset(logic, scene_cases):
    """HSAM Train's default settings run ``hsam train --preset few-shot``: the recipe's values reach the engine, not
    the panel's CPU defaults (a frozen encoder, 20 epochs on half the slices)."""
    cases = case_list(scene_cases)
    base = next(b for b in logic.baseModels() if b.id == "tiny-base")
    result = logic.train(cases, logic.suggestMapping(cases, base), "tiny-base", "tiny-few-shot",
                         settings=TrainingSettings(device="cpu"))
    recipe = json.loads((result.path / "model.json").read_text())["training"]["recipe"]
    assert (recipe["lora_blocks"], recipe["freeze_encoder"], recipe["epochs"], recipe["slice_fraction"]) == \
        (2, False, 12, 1.0)
    assert logic.job.progress.columns()["epoch"] == [float(e) for e in range(1, 13)]

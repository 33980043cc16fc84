"""A structure the built-in organ table does not know (the left atrium, on real LA MR) through both Slicer modules,
on a real MRML scene (slicer-core): HSAM Segment imports it with the model card's name, color and terminology;
HSAM Train maps segments onto it (by terminology, by name) or makes it a new class, coding a segment that has no
terminology from Slicer's terminology lists by its name. Also the engine's side: a class without a color, or a
label map whose terminology Slicer could not read."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from model_fixtures import tiny_one_class_model_dir
from slicer_segment_fixtures import load_volume, new_scene, segment_terminology, slicer, terminology_string
from slicer_train_fixtures import TRAIN_MODULE_DIR  # noqa: F401 (puts HSAMTrain on the module path)

from hsam.infer.output import segmentation_dict
from hsam.models.card import MR_PERCENTILES
from hsam.models.label_map import LabelMapError, load_label_map
from hsam.models.labels import class_color
from HSAMSegmentLib import SegmentLogic
from HSAMSharedLib import EngineLogic
from HSAMSharedLib.models import ModelInfo
from HSAMTrainLib import CaseList, segmentRows
from HSAMTrainLib.segment_mapping import suggestMapping, terminologyByName

LEFT_ATRIUM = {"value": 1, "name": "left atrium", "color": [206, 110, 84], "terminology": {
    "category": {"CodingSchemeDesignator": "SCT", "CodeValue": "123037004", "CodeMeaning": "Anatomical Structure"},
    "type": {"CodingSchemeDesignator": "SCT", "CodeValue": "82471001", "CodeMeaning": "Left atrium"}}}
LA_SCAN = "06SR5RBREL16DQ6M8LWS"
SCHEMA = "https://raw.githubusercontent.com/qiicr/dcmqi/master/doc/schemas/segment-context-schema.json#"


def code(value: str, meaning: str) -> dict:
    return {"CodingSchemeDesignator": "SCT", "CodeValue": value, "CodeMeaning": meaning}


@pytest.fixture(scope="module")
def la_files(data_dir, tmp_path_factory):
    """(image, label): 8 axial slices through the middle of the left atrium of a real LA MR scan."""
    folder = tmp_path_factory.mktemp("la")
    image = sitk.ReadImage(str(data_dir / "la_mri" / f"{LA_SCAN}_mr.nii.gz"))
    label = sitk.ReadImage(str(data_dir / "la_mri" / f"{LA_SCAN}_label.nii.gz"))
    labelled = np.flatnonzero(sitk.GetArrayViewFromImage(label).any(axis=(1, 2)))
    first = int(labelled[len(labelled) // 2]) - 4
    sitk.WriteImage(image[:, :, first:first + 8], str(folder / "la_mr.nii.gz"))
    sitk.WriteImage(label[:, :, first:first + 8], str(folder / "la_label.nii.gz"))
    return folder / "la_mr.nii.gz", folder / "la_label.nii.gz"


@pytest.fixture(scope="module")
def la_model(tmp_path_factory):
    return tiny_one_class_model_dir(tmp_path_factory.mktemp("model") / "la-mr", LEFT_ATRIUM, MR_PERCENTILES)


@pytest.fixture(scope="module")
def terminologies(tmp_path_factory):
    """Slicer's terminologies logic with a list like Slicer's DICOM master list: the left atrium, and the kidney
    with a "left kidney" modifier (Slicer's lists name every type and modifier in lower case, "3dSlicerLabel")."""
    anatomy = dict(code("123037004", "Anatomical Structure"), Type=[
        dict(code("82471001", "Left atrium"), **{"3dSlicerLabel": "left atrium"}),
        dict(code("64033007", "Kidney"), **{"3dSlicerLabel": "kidney", "Modifier": [
            dict(code("7771000", "Left"), **{"3dSlicerLabel": "left kidney"})]})])
    path = tmp_path_factory.mktemp("terminology") / "anatomy.term.json"
    path.write_text(json.dumps({"SegmentationCategoryTypeContextName": "Test anatomy", "@schema": SCHEMA,
                                "SegmentationCodes": {"Category": [anatomy]}}))
    logic = slicer.vtkSlicerTerminologiesModuleLogic()
    assert logic.LoadTerminologyFromFile(str(path)) == "Test anatomy"
    return logic


def la_case(scene, la_files, segmentName: str, terminology: dict = None):
    """A volume node and a segmentation node with the atrium as one segment, named (and coded) as given."""
    volume = load_volume(scene, la_files[0], "la")
    labelmap = load_volume(scene, la_files[1], "la labels", "vtkMRMLLabelMapVolumeNode")
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "la segmentation")
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    logic = slicer.vtkSlicerSegmentationsModuleLogic()
    logic.SetMRMLScene(scene)
    assert logic.ImportLabelmapToSegmentationNode(labelmap, segmentation)
    scene.RemoveNode(labelmap)
    segment = segmentation.GetSegmentation().GetNthSegment(0)
    segment.SetName(segmentName)
    if terminology:
        segment.SetTag(segment.GetTerminologyEntryTagName(), terminology_string({"terminology": terminology}))
    return volume, segmentation


def test_segment_imports_the_model_class_with_its_name_color_and_terminology(la_model, la_files, tmp_path):
    EngineLogic()  # registers the segmentation converters, as the module's logic does
    scene = new_scene()
    volume = load_volume(scene, la_files[0], "la")
    logic = SegmentLogic()
    logic.setModelsHome(str(tmp_path / "home"))
    logic.tempRoot = str(tmp_path)
    output = logic.process(volume, None, model=str(la_model), device="cpu", show3D=False)
    segmentation = output.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 1
    segment = segmentation.GetNthSegment(0)
    assert segment.GetName() == "left atrium"
    assert np.allclose(segment.GetColor(), np.array(LEFT_ATRIUM["color"]) / 255.0)
    assert segment_terminology(segment) == terminology_string(LEFT_ATRIUM)
    # The organ list of the panel: the card's class, as it is
    organs = ModelInfo({"id": "la-mr", "path": str(la_model)}).organs()
    assert [(o["name"], o["color"]) for o in organs] == [("left atrium", LEFT_ATRIUM["color"])]


def test_a_class_without_color_gets_the_same_generated_color_in_the_panel_and_the_result(tmp_path):
    card = {"labels": [{"value": 1, "name": "left atrium"}, {"value": 2, "name": "right atrium"}]}
    (tmp_path / "model.json").write_text(json.dumps(card))
    panel = [o["color"] for o in ModelInfo({"id": "x", "path": str(tmp_path)}).organs()]
    written = segmentation_dict(sitk.Image(4, 4, 2, sitk.sitkUInt8), card["labels"])["segments"]
    assert panel == [class_color(1), class_color(2)] and panel[0] != panel[1]
    assert [s["color"] for s in written] == [[c / 255.0 for c in color] for color in panel]
    assert all("terminology" not in s for s in written)


def test_a_terminology_slicer_cannot_read_is_refused_before_training_and_skipped_in_results():
    partial = {"type": LEFT_ATRIUM["terminology"]["type"]}  # no category
    with pytest.raises(LabelMapError, match="class 'left atrium': terminology 'category' is missing"):
        load_label_map({"classes": [dict(LEFT_ATRIUM, terminology=partial)], "map": {"1": "left atrium"}}, None)
    unnamed = dict(LEFT_ATRIUM, terminology=None, color=None)  # null: as if not given
    assert load_label_map({"classes": [unnamed], "map": {"1": "left atrium"}}, None).classes == \
        [{"value": 1, "name": "left atrium", "color": class_color(1)}]
    # A hand-written card with such a terminology: the segment is written, named and colored, without it.
    segments = segmentation_dict(sitk.Image(4, 4, 2, sitk.sitkUInt8),
                                 [dict(LEFT_ATRIUM, terminology=partial)])["segments"]
    assert segments[0]["name"] == "left atrium" and "terminology" not in segments[0]


def test_terminology_by_name_from_slicer_terminology_lists(terminologies):
    assert terminologyByName("Left atrium", terminologies) == LEFT_ATRIUM["terminology"]
    left_kidney = terminologyByName("left kidney", terminologies)
    assert left_kidney["type"]["CodeValue"] == "64033007" and left_kidney["typeModifier"]["CodeValue"] == "7771000"
    assert terminologyByName("Segment_1", terminologies) is None
    assert terminologyByName("left atrium") is None  # outside the Slicer application: no lists, no guess


def test_train_maps_segments_onto_a_new_structure(la_files, la_model, terminologies):
    EngineLogic()
    scene = new_scene()
    # A new model: the segment, which has no terminology of its own, becomes a class coded by its name.
    cases = CaseList()
    cases.add(*la_case(scene, la_files, "Left atrium"))
    rows = segmentRows(cases, terminologies)
    assert [r.terminology for r in rows] == [LEFT_ATRIUM["terminology"]]
    mapping = suggestMapping(rows, [], newClassesForUnmatched=True)
    assert mapping.valueOf("Left atrium") == 1
    spec = mapping.labelMapSpec()
    assert spec["classes"][0]["terminology"] == LEFT_ATRIUM["terminology"]
    assert load_label_map(spec, None).classes[0]["terminology"] == LEFT_ATRIUM["terminology"]  # hsam train takes it
    assert segmentRows(cases)[0].terminology is None  # outside the Slicer application: left uncoded, no failure
    # Fine-tuning the left-atrium model: a segment named otherwise but coded as the left atrium maps onto its
    # class by terminology, one named like it maps by name.
    classes = json.loads((la_model / "model.json").read_text())["labels"]
    coded = CaseList()
    coded.add(*la_case(scene, la_files, "LA", LEFT_ATRIUM["terminology"]))
    assert suggestMapping(segmentRows(coded), classes).valueOf("LA") == 1
    named = CaseList()
    named.add(*la_case(scene, la_files, "Left Atrium"))
    assert suggestMapping(segmentRows(named), classes).valueOf("Left Atrium") == 1

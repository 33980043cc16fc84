"""Model cards are checked against one JSON Schema (hsam/models/model-card.schema.json) on import and on load; a
broken card is refused with the field named, and ``hsam models list`` shows the model as broken instead of failing."""
from __future__ import annotations

import io
import json
import shutil

import pytest
from jsonschema import Draft202012Validator

import hsam
from hsam.cli import main
from hsam.network import HSAMConfig, build_hsam
from hsam.models import make_card
from hsam.models.card import SCHEMA_FILE, ModelCardError, read_card
from hsam.models.catalog import load_catalog
from hsam.models.install import import_path
from hsam.progress import JsonLinesReporter

SHA = "ab" * 32


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.delenv("HSAM_CATALOG", raising=False)
    monkeypatch.setenv("HSAM_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _with_card(folder, **changes):
    card = json.loads((folder / "model.json").read_text())
    for key, value in changes.items():
        node, *path = key.split("__")
        target = card
        for part in [node, *path][:-1]:
            target = target[part]
        target[[node, *path][-1]] = value
    (folder / "model.json").write_text(json.dumps(card))
    return folder


# (change to a valid card, the field the error must name)
BROKEN = [
    ({"labels": "x"}, "labels"),
    ({"labels": [{"value": 1}]}, "labels[0]"),
    ({"labels": [{"value": 1, "name": "liver"}, {"value": 2, "name": "spleen"}]}, "labels"),  # 2 labels, 1 class
    ({"files": {}}, "files"),
    ({"files": {"weights.safetensors": None}}, "files.weights.safetensors"),
    ({"config__num_classes": "2"}, "config.num_classes"),
    ({"config__surprise": 1}, "config"),
    ({"normalization": {"kind": "magic"}}, "normalization.kind"),
    ({"backbone_weights": {"source": "file", "filename": "sam.pth"}}, "backbone_weights"),  # no sha256
    ({"backbone_weights": {"source": "file", "filename": "passwd", "sha256": SHA}}, "backbone_weights.filename"),
    ({"id": "../evil"}, "id"),
    ({"version": 3}, "version"),
    ({"canonical_orientation": "LLS"}, "canonical_orientation"),
    ({"inference": {"slice_smoothing": 0.5}}, "inference.slice_smoothing"),
    ({"inference": {"box_prompts": 2}}, "inference.box_prompts"),
    ({"inference": {"smoothing": 0.2}}, "inference"),
]


def test_the_schema_is_one_valid_file_that_the_bundled_card_meets():
    schema = json.loads(SCHEMA_FILE.read_text())
    Draft202012Validator.check_schema(schema)
    bundled = load_catalog()["hsam-abdomen-ct"].path
    assert read_card(bundled)["id"] == "hsam-abdomen-ct"


@pytest.mark.parametrize("change,field", BROKEN, ids=[field for _, field in BROKEN])
def test_a_broken_card_is_refused_on_load_with_its_field_named(tiny, tmp_path, change, field):
    broken = _with_card(shutil.copytree(tiny, tmp_path / "broken"), **change)
    with pytest.raises(ModelCardError) as exc:
        hsam.load_model(broken)
    message = str(exc.value)
    assert "invalid model card" in message and f": {field}:" in message and "\n" not in message, message


@pytest.mark.parametrize("change,field", BROKEN[:4], ids=[field for _, field in BROKEN[:4]])
def test_import_refuses_a_broken_card(home, tiny, tmp_path, capsys, change, field):
    broken = _with_card(shutil.copytree(tiny, tmp_path / "broken"), **change)
    assert main(["models", "import", str(broken)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hsam: error:") and f": {field}:" in err and "Traceback" not in err
    assert not (home / "models").exists() or not any((home / "models").rglob("model.json"))


def test_list_shows_a_broken_model_as_broken(home, tiny, capsys):
    import_path(tiny, reporter=JsonLinesReporter(io.StringIO()))
    import_path(tiny, model_id="still-good", reporter=JsonLinesReporter(io.StringIO()))
    _with_card(home / "models" / "tiny-liver" / "1", labels="x")  # damaged after it was installed
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("tiny-liver "))
    assert " broken " in line and "labels" in line
    assert main(["models", "list", "--progress", "jsonl"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)["models"]}
    assert rows["tiny-liver"]["state"] == "broken" and "labels: 'x' is not of type 'array'" in rows["tiny-liver"][
        "problem"]
    assert rows["still-good"]["state"] == "installed" and rows["still-good"]["labels"] == ["class 1"]
    assert main(["models", "info", "tiny-liver"]) == 0
    assert "state: broken" in capsys.readouterr().out
    assert main(["models", "info", "still-good"]) == 0  # an installed model's own files, with their sha256
    assert "model file weights.safetensors: " in capsys.readouterr().out
    assert main(["info", "tiny-liver"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hsam: error:") and "labels" in err and "Traceback" not in err


def test_a_model_is_never_saved_with_a_card_that_would_not_load(tmp_path):
    model = build_hsam(HSAMConfig(backbone="litemedsam_tiny", num_classes=2, stage2=False, decoder_mlp_dim=64),
                       "random", seed=1)
    card = make_card(model, "tiny", {"source": "file", "filename": "sam.ckpt", "sha256": SHA})
    with pytest.raises(ModelCardError, match="backbone_weights.filename"):
        hsam.save_model(model, tmp_path / "out", card)
    assert not (tmp_path / "out").exists()
    card = make_card(model, "tiny", {"source": "file", "filename": "sam_vit_b_01ec64 (1).pth", "sha256": SHA})
    hsam.save_model(model, tmp_path / "out", card)  # a browser's second download of the same file is fine
    assert read_card(tmp_path / "out")["backbone_weights"]["filename"] == "sam_vit_b_01ec64 (1).pth"


def test_a_card_is_written_as_strict_json(tmp_path):
    from hsam.models.card import write_json_atomic

    path = tmp_path / "model.json"
    write_json_atomic(path, {"metrics": {"dice": float("nan"), "hd95": float("inf"), "mean": 0.5}})
    assert json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in a card")) == \
        {"metrics": {"dice": None, "hd95": None, "mean": 0.5}}

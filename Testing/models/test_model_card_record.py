"""``hsam models record-evaluation``: a before/after comparison written into a model's card, checked against the
card's schema, with the model still verifiable afterwards."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from model_fixtures import tiny_liver_model_dir

from hsam.models.card import ModelCardError, read_card, record_evaluation
from hsam.models.verify import check_model_dir


def _comparison(**changes):
    comparison = {"protocol": "hsam evaluate on every slice", "base_model": "tiny-base",
                  "validation_cases": ["case0006"],
                  "organs": {"liver": {"base": 0.5, "fine_tuned": 0.75}, "lesion": {"base": None, "fine_tuned": 0.25}},
                  "mean": {"organs": ["liver"], "base": 0.5, "fine_tuned": 0.75}}
    comparison.update(changes)
    return comparison


def test_the_command_records_the_comparison_and_the_model_stays_verifiable(tmp_path):
    model = tiny_liver_model_dir(tmp_path / "model")
    files_before = read_card(model)["files"]
    evaluation = tmp_path / "comparison.json"
    evaluation.write_text(json.dumps({"comparison": _comparison(), "training": {"label_mapping": {"Liver": "liver"}}}))
    result = subprocess.run([sys.executable, "-m", "hsam", "models", "record-evaluation", str(model), str(evaluation),
                             "--progress", "jsonl"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {"event": "result", "path": str(model / "model.json")}
    card = read_card(model)
    assert card["comparison"] == _comparison()
    assert card["training"]["label_mapping"] == {"Liver": "liver"}
    assert card["files"] == files_before
    assert [c.problem for c in check_model_dir("tiny-liver", model)] == [None]
    assert not [p.name for p in model.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_existing_training_fields_stay_and_a_missing_dice_is_written_as_null(tmp_path):
    model = tiny_liver_model_dir(tmp_path / "model")
    card = json.loads((model / "model.json").read_text())
    card["training"] = {"status": "complete", "history": [{"epoch": 1}]}
    (model / "model.json").write_text(json.dumps(card))
    record_evaluation(model, _comparison(organs={"liver": {"base": math.nan, "fine_tuned": 0.5}}),
                      {"new_classes": []})
    card = json.loads((model / "model.json").read_text())  # strict JSON: NaN is not JSON
    assert card["training"] == {"status": "complete", "history": [{"epoch": 1}], "new_classes": []}
    assert card["comparison"]["organs"]["liver"] == {"base": None, "fine_tuned": 0.5}


@pytest.mark.parametrize("comparison, field", [
    ({"protocol": "x"}, "comparison"),  # required parts missing
    (_comparison(organs={"liver": {"base": "high", "fine_tuned": 0.5}}), "comparison.organs.liver.base"),
    (_comparison(mean={"base": 0.5, "fine_tuned": 0.7}), "comparison.mean"),
])
def test_a_comparison_that_does_not_fit_the_schema_leaves_the_card_as_it_was(tmp_path, comparison, field):
    model = tiny_liver_model_dir(tmp_path / "model")
    before = (model / "model.json").read_bytes()
    with pytest.raises(ModelCardError, match=f"invalid model card: {field}:"):
        record_evaluation(model, comparison)
    assert (model / "model.json").read_bytes() == before


@pytest.mark.parametrize("content, message", [("[1, 2]", 'give a JSON object with a "comparison" object'),
                                              ("{", "comparison.json: not valid JSON")])
def test_the_command_says_what_is_wrong_with_a_bad_file(tmp_path, content, message):
    model = tiny_liver_model_dir(tmp_path / "model")
    before = (model / "model.json").read_bytes()
    evaluation = tmp_path / "comparison.json"
    evaluation.write_text(content)
    result = subprocess.run([sys.executable, "-m", "hsam", "models", "record-evaluation", str(model), str(evaluation)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and result.stderr.startswith("hsam: error:") and message in result.stderr
    assert (model / "model.json").read_bytes() == before

"""``hsam models grow``: a trained model gets new classes; what it learned is kept, the new parts start fresh."""
from __future__ import annotations

import json
import subprocess
import sys

import torch
from model_fixtures import tiny_liver_model_dir

import hsam
from hsam.models.model_dir import trainable_state


def test_grow_keeps_every_trained_value_and_adds_the_new_class(tmp_path):
    base = tiny_liver_model_dir(tmp_path / "base")
    classes = [{"name": "class 1", "value": 1}, {"name": "left atrium", "value": 2}]
    (tmp_path / "classes.json").write_text(json.dumps(classes))
    result = subprocess.run([sys.executable, "-m", "hsam", "models", "grow", str(base), str(tmp_path / "grown"),
                             str(tmp_path / "classes.json"), "--progress", "jsonl"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["event"] == "result"
    old, new = hsam.load_model(str(base), merge_lora=False), hsam.load_model(str(tmp_path / "grown"),
                                                                              merge_lora=False)
    assert [label["name"] for label in new.card["labels"]] == ["class 1", "left atrium"]
    assert new.config.num_classes == old.config.num_classes + 1
    before, after = trainable_state(old), trainable_state(new)
    grown = [key for key in before if before[key].shape != after[key].shape]
    assert grown, "no tensor is sized by the number of classes"
    for key, value in before.items():  # trained values kept where the shapes overlap
        assert torch.equal(after[key][tuple(slice(0, n) for n in value.shape)], value), key


def test_grow_refuses_classes_that_do_not_start_with_the_base_models(tmp_path):
    base = tiny_liver_model_dir(tmp_path / "base")
    (tmp_path / "classes.json").write_text(json.dumps([{"name": "spleen", "value": 1}]))
    result = subprocess.run([sys.executable, "-m", "hsam", "models", "grow", str(base), str(tmp_path / "grown"),
                             str(tmp_path / "classes.json")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and result.stderr.startswith("hsam: error:")
    assert "base model's classes" in result.stderr and not (tmp_path / "grown").exists()

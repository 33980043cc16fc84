"""The table of ``hsam train`` options (hsam/train/options.py) is the one place an option is declared: every setting
is reachable from the command line under its group, the checks and the choices come from the table, resume compares
the settings it marks, and the file runs on its own without torch, as HSAM Train runs it in Slicer's process."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from hsam.cli import build_parser
from hsam.commands.train import settings_from_args
from hsam.train import TrainingError, TrainSettings
from hsam.train import options
from hsam.train.checkpoint import BEFORE_ADDED, check_same_settings

DECLARED = options.declared()
# The settings the first training states saved; every result setting added since needs its BEFORE_ADDED value.
FIRST_STATE_SETTINGS = {
    "base", "checkpoint", "lora_rank", "mode", "label_map", "val_cases", "slice_fraction", "empty_slice_fraction",
    "epochs", "batch_size", "accumulate", "lr", "weight_decay", "warmup_steps", "dice_weight", "stage_weights",
    "freeze_encoder", "cached_views", "augment", "intensity_jitter", "val_slices", "seed", "decoder_mlp_dim", "stage2",
    "cmattn", "mask_attention", "pixel_decoder", "precision"}


def parse(*flags: str) -> TrainSettings:
    return settings_from_args(build_parser().parse_args(["train", *flags]))


def non_default(f, option):
    """(the flag and its values on a command line, the setting they give), the setting not being its default."""
    name = options.flag(f.name)
    if isinstance(f.default, bool):
        return [name], not f.default
    if option.pairs:
        return [name, "a.nii.gz", "b.nii.gz"], [("a.nii.gz", "b.nii.gz")]
    if option.choices:
        value = next(choice for choice in option.choices if choice != f.default)
    elif option.bounds is not None:
        low, high = option.bounds.low, option.bounds.high
        candidates = [low + 1, low + 2] if option.bounds.integer else [(low + min(high, low + 1)) / 2, low + 0.01]
        value = next(v for v in candidates if option.bounds.problem(v) is None and v != f.default)
    else:
        value = "chosen"
    return [name, str(value)], value


@pytest.mark.parametrize("f, option", DECLARED, ids=[f.name for f, _ in DECLARED])
def test_every_setting_is_reachable_from_the_command_line(f, option):
    flags, value = non_default(f, option)
    settings = parse(*flags) if f.name == "out" else parse("--out", "m", *flags)
    assert getattr(settings, f.name) == value
    defaults = parse("--out", "m")
    changed = [g.name for g in fields(TrainSettings) if getattr(settings, g.name) != getattr(defaults, g.name)]
    assert changed == [f.name]  # that flag sets that setting only


def test_the_command_line_has_an_argument_per_setting_and_nothing_else():
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    destinations = {a.dest for a in train._actions} - {"help"}
    assert destinations == {f.name for f in fields(TrainSettings)} | {"preset"}
    assert parse("--out", "m") == TrainSettings(out="m")  # the command's defaults are the settings' defaults


def test_the_few_shot_preset_sets_its_recipe_where_the_command_line_is_silent():
    recipe = options.PRESETS["few-shot"]
    settings = parse("--out", "m", "--preset", "few-shot")
    assert {name: getattr(settings, name) for name in recipe} == recipe
    assert settings != TrainSettings(out="m") and settings == TrainSettings(out="m", **recipe)
    # A flag given wins over the preset, also when it repeats the table's default.
    assert parse("--out", "m", "--preset", "few-shot", "--epochs", "100").epochs == 100
    assert parse("--out", "m", "--preset", "few-shot", "--epochs", "30", "--lr", "0.001").lr == 0.001
    # A given setting that excludes one of the preset's replaces it instead of clashing with it.
    frozen = parse("--out", "m", "--preset", "few-shot", "--freeze-encoder")
    assert (frozen.freeze_encoder, frozen.lora_blocks, frozen.cached_views) == (True, 0, 4)
    frozen.validate()
    assert parse("--out", "m", "--preset", "few-shot", "--lora-blocks", "1").lora_blocks == 1
    text = subprocess.run([sys.executable, "-m", "hsam", "train", "--help"], capture_output=True, text=True,
                          env=dict(os.environ, COLUMNS="300"), check=True).stdout
    assert "--organ-jitter 0.25 --epochs 12" in text and "SUPPRESS" not in text


def test_help_lists_every_flag_in_its_group():
    text = subprocess.run([sys.executable, "-m", "hsam", "train", "--help"], capture_output=True, text=True,
                          env=dict(os.environ, COLUMNS="200"), check=True).stdout
    sections = {title: text.index(f"\n{title}:\n") for title in options.GROUPS.values()}
    assert list(sections.values()) == sorted(sections.values())  # the groups in the table's order
    ends = sorted(sections.values()) + [len(text)]
    for f, option in DECLARED:
        start = sections[options.GROUPS[option.group]]
        section = text[start:ends[ends.index(start) + 1]]
        assert f"\n  {options.flag(f.name)}" in section, f.name
    assert "(default 2048)" in text and "(default: 20%, at least 1)" in text  # help formatting still applies


def test_the_table_choices_are_their_owners_constants():
    from hsam.network.config import MODES
    from hsam.models.card import MODALITIES
    from hsam.precision import PRECISIONS
    from hsam.train.schedule import STAGE_WEIGHTS, STAGE_WEIGHTS_OVER

    assert (options.MODES, options.MODALITIES, options.PRECISIONS) == (MODES, MODALITIES, PRECISIONS)
    assert (options.STAGE_WEIGHTS, options.STAGE_WEIGHTS_OVER) == (STAGE_WEIGHTS, STAGE_WEIGHTS_OVER)


@pytest.mark.parametrize("setting, value, message", [
    ("mode", "sam", "--mode must be paper or release, not 'sam'"),
    ("modality", "pet", "--modality must be ct or mr, not 'pet'"),
    ("precision", "fp8", "--precision must be auto, fp32, bf16 or fp16, not 'fp8'"),
    ("progress", "xml", "--progress must be tqdm, jsonl or none, not 'xml'"),
    ("epochs", None, "--epochs must be at least 1 (an integer), not None"),
    ("decoder_mlp_dim", 0, "--decoder-mlp-dim must be at least 1 (an integer), not 0"),
])
def test_the_python_api_refuses_what_the_table_does_not_allow(setting, value, message):
    with pytest.raises(TrainingError) as error:
        TrainSettings(out="m", **{setting: value}).validate()
    assert str(error.value) == message


def test_none_means_automatic_where_it_is_the_default():
    TrainSettings(out="m", modality=None, val_cases=None, warmup_steps=None, early_stop=None).validate()
    TrainSettings(out="m", modality="mr", mode="release", cmattn=False).validate()


def test_a_state_from_before_a_result_setting_existed_still_resumes():
    """Resume compares the settings the table marks: one added without a BEFORE_ADDED value would refuse every
    state saved before it existed."""
    assert set(options.RESULT_SETTINGS) - FIRST_STATE_SETTINGS == set(BEFORE_ADDED)
    current = TrainSettings(out="m", **BEFORE_ADDED).result_settings()
    first_state = {key: value for key, value in current.items() if key in FIRST_STATE_SETTINGS}
    check_same_settings(first_state, current, Path("state.pt"))
    assert "device" not in current and "progress" not in current and "out" not in current


def test_the_panel_entries_fit_the_engine():
    panel = options.panel_settings()
    assert len({s.name for s in panel}) == len(panel)
    for setting in panel:
        declared = dict((f.name, o) for f, o in DECLARED)[setting.option]
        shown = TrainSettings(out="m", **{setting.option: setting.default})
        assert options.problems(shown) == [], setting.name  # the panel's default is allowed
        if setting.range:
            assert all(declared.bounds.problem(end) is None for end in setting.range), setting.name
        assert {value for value, _ in setting.choices} <= set(declared.choices) | {None}
        assert setting.tooltip and setting.label


def test_the_table_runs_on_its_own_without_the_engine_or_torch():
    path = Path(options.__file__)
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('table', {str(path)!r})\n"
            "module = importlib.util.module_from_spec(spec); sys.modules['table'] = module\n"
            "spec.loader.exec_module(module)\n"
            "assert module.panel_settings() and module.RESULT_SETTINGS\n"
            "print(sorted(name for name in sys.modules if name.split('.')[0] in ('hsam', 'torch', 'numpy')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert result.stdout.strip() == "[]"


def test_a_run_on_few_cases_without_the_few_shot_recipe_is_told_of_it():
    recipe = options.PRESETS["few-shot"]
    assert options.few_shot_hint(TrainSettings(out="m"), 1).startswith("1 training case: --preset few-shot")
    assert "3 training cases" in options.few_shot_hint(TrainSettings(out="m"), 3)
    assert options.few_shot_hint(TrainSettings(out="m", **recipe), 3) is None  # the recipe, however it was given
    assert options.few_shot_hint(TrainSettings(out="m"), options.FEW_CASES + 1) is None


def test_the_inference_group_is_the_cards_inference_entry():
    """``hsam train``'s inference options are written under the card's "inference" key by their setting names, which
    the card's schema allows with the same bounds."""
    import json

    from hsam.models.card import SCHEMA_FILE

    schema = json.loads(SCHEMA_FILE.read_text())["properties"]["inference"]["properties"]
    group = {f.name: option.bounds for f, option in options.declared() if option.group == "inference"}
    assert set(group) == set(schema)
    for name, bounds in group.items():
        assert schema[name]["minimum"] == bounds.low
        assert schema[name].get("maximum", schema[name].get("exclusiveMaximum")) == bounds.high

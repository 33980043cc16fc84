"""Every option of ``hsam train``, declared once: its setting's name, type and default, its flag and help, the
values it allows, its group in ``--help``, whether it changes what a run produces, and how HSAM Train shows it.

The rest derives from this table: the command line's arguments and the settings made from them
(``commands/train.py``), the checks of ``TrainSettings.validate``, the settings a resumed run must repeat
(``RESULT_SETTINGS``), and HSAM Train's settings with their labels, tooltips, defaults and ranges. HSAM Train runs
this file on its own in Slicer's process (``HSAMSharedLib.engine.loadEngineFile``), where torch must never be
imported: it imports nothing of the engine, so the choices owned by other modules are spelled out below (a test
keeps them equal to their owners').

Every number must also be finite: ``float("inf")`` and ``float("nan")`` parse as numbers, and an infinite learning
rate once trained a model to NaN weights that a run then reported as complete.
"""
from __future__ import annotations

import math
import typing
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, Dict, List, Optional, Tuple


@dataclass(frozen=True)
class Bounds:
    """The allowed range of a number."""

    low: float
    high: float = math.inf
    low_open: bool = False  # the low end itself is not allowed
    high_open: bool = False
    integer: bool = False
    hint: str = ""  # what a value means, for the error message

    def describe(self) -> str:
        """'in (0, 1]', 'at least 1 (an integer)': the phrase after 'must be'."""
        if self.high == math.inf:
            text = f"{'greater than' if self.low_open else 'at least'} {self.low:g}"
        else:
            text = f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        return text + (" (an integer)" if self.integer else "")

    def problem(self, value: Any) -> Optional[str]:
        """None when ``value`` is allowed, else what is wrong with it."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                (self.integer and not float(value).is_integer()):
            return f"must be {self.describe()}, not {value!r}"
        ok = math.isfinite(value) and \
            (value > self.low if self.low_open else value >= self.low) and \
            (value < self.high if self.high_open else value <= self.high)
        return None if ok else f"must be {self.describe()}, not {value!r}{self.hint}"


UNIT = Bounds(0, 1)
COUNT = Bounds(1, integer=True)

# The argument groups of ``hsam train --help``, in their order: key -> title.
GROUPS = {"cases": "cases", "model": "model",
          "components": "H-SAM components of a new model (ablation; all on by default)",
          "recipe": "recipe",
          "inference": "inference (written to the model card: what hsam segment and the Slicer modules use unless "
                       "told otherwise)",
          "run": "run"}
MODES = ("paper", "release")  # hsam.network.config.MODES: the architectures of a new model
MODALITIES = ("ct", "mr")  # hsam.models.card.MODALITIES: the intensity normalizations
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # hsam.precision.PRECISIONS
STAGE_WEIGHTS = ("paper", "release")  # hsam.train.schedule: the stage-1 weight curves
STAGE_WEIGHTS_OVER = ("run", "epochs")  # hsam.train.schedule
PROGRESS = ("tqdm", "jsonl", "none")

# Named recipes of ``hsam train --preset``: each sets these settings where the command line does not give them.
# few-shot: a handful of labelled scans on a CPU, chosen on the validation scans of the two MR few-shot benchmarks
# (benchmarks/la_mri, benchmarks/chaos_mr; docs/training.md says why each value). It names slice_fraction 1.0 (every
# labelled slice), the table's default, so that HSAM Train's own default for that field cannot replace it.
PRESETS: Dict[str, Dict[str, Any]] = {
    "few-shot": {"slice_fraction": 1.0, "lora_blocks": 2, "cached_views": 4, "intensity_jitter": True,
                 "organ_jitter": 0.25, "epochs": 12, "batch_size": 8, "lr": 0.002, "val_slices": 16},
}

# A preset's setting that a given setting excludes gives way to it: --preset few-shot --freeze-encoder trains the
# decoders only, in place of the preset's LoRA in the encoder's last blocks.
GIVES_WAY_TO = {"freeze_encoder": "lora_blocks", "lora_blocks": "freeze_encoder"}


def preset_settings(preset: str) -> Tuple[str, ...]:
    """The settings a preset decides: its own, and those that would make one of its own give way (HSAM Train leaves
    them out when the user picks the preset)."""
    recipe = PRESETS[preset]
    return tuple(recipe) + tuple(name for name, excluded in GIVES_WAY_TO.items() if excluded in recipe)


def preset_flags(preset: str) -> str:
    """The preset as the flags it stands for: '--slice-fraction 1.0 --lora-blocks 2 ... --intensity-jitter ...'."""
    return " ".join(flag(name) if value is True else f"{flag(name)} {value}" for name, value in PRESETS[preset].items())


class _EngineDefault:
    def __repr__(self) -> str:
        return "ENGINE_DEFAULT"


ENGINE_DEFAULT = _EngineDefault()  # a Panel's default that is the option's own


@dataclass(frozen=True)
class Panel:
    """How HSAM Train shows an option. The module keeps the setting under its own name (its saved runs use it), with
    a default that suits a CPU where it differs from the engine's."""

    name: str
    label: str
    tooltip: str = ""  # "": the option's help
    default: Any = ENGINE_DEFAULT
    range: Optional[Tuple[float, float]] = None  # of its spin box: inside the option's bounds, with a finite top
    step: Optional[float] = None
    decimals: Optional[int] = None
    choices: Tuple[Tuple[Any, str], ...] = ()  # (value, text) of its combo box
    shown: bool = True  # False: the module passes the setting on without a widget for it


@dataclass(frozen=True)
class Option:
    """What a setting is on the command line. A boolean's flag turns its default around: --freeze-encoder sets
    freeze_encoder, --no-augment clears augment."""

    group: str
    help: str = ""
    flag: str = ""  # "": "--" and the name with dashes
    choices: Tuple[Any, ...] = ()
    bounds: Optional[Bounds] = None  # of a number
    result: bool = False  # changes what a run produces, so a resumed run must repeat it
    metavar: Any = None
    pairs: bool = False  # two values a time, repeatable (--case IMAGE LABEL): a list of tuples


def option(default: Any = MISSING, group: str = "run", **declared: Any) -> Any:
    """A setting's dataclass field carrying its ``Option`` (and ``panel``, its ``Panel``); no default: required."""
    panel = declared.pop("panel", None)
    metadata = {"option": Option(group, **declared), "panel": panel}
    if isinstance(default, list):  # each settings object gets its own list
        return field(default_factory=list, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainOptions:
    """The settings of a training job with the recipe defaults (docs/training.md explains each choice); the engine
    uses them as ``hsam.train.TrainSettings``, which adds the checks."""

    out: str = option(group="model", help="model directory to write (also holds training/state.pt)")
    # Cases.
    manifest: Optional[str] = option(None, "cases", flag="--cases", metavar="MANIFEST",
                                     help="JSON or CSV manifest: image, label[, split]")
    cases: List[Tuple[str, str]] = option([], "cases", flag="--case", pairs=True, metavar=("IMAGE", "LABEL"),
                                          help="an image and its label file (NIfTI, NRRD, .seg.nrrd, DICOM folder); "
                                          "repeatable")
    label_map: Optional[str] = option(None, "cases", result=True,
                                      help="JSON mapping label values / segment names to model classes")
    val_cases: Optional[int] = option(None, "cases", bounds=COUNT, result=True,
                                      help="cases held out for validation when the manifest names no split "
                                      "(default: 20%%, at least 1)")
    no_validation: bool = option(False, "cases", help="train on every case, keep the last epoch")
    slice_fraction: float = option(
        1.0, "cases", bounds=Bounds(0, 1, low_open=True), result=True,
        help="share of each training case's slices to use (paper few-shot protocol: 0.1)",
        panel=Panel("sliceFraction", "Slice fraction", default=0.5, range=(0.01, 1.0), step=0.05, decimals=2,
                    tooltip="Share of each training case's slices used (slices that show an organ first). 1 uses "
                    "every labelled slice; 0.1 is the paper's few-shot protocol and 10 times faster per epoch."))
    empty_slice_fraction: float = option(0.1, "cases", flag="--empty-slices", bounds=UNIT, result=True,
                                         help="at most this share of the picked slices may show no organ (default "
                                         "%(default)s)")
    val_slices: int = option(40, "cases", bounds=COUNT, result=True,
                             help="evenly spaced slices per validation case (default %(default)s)",
                             panel=Panel("validationSlices", "Validation slices", shown=False))
    augment: bool = option(True, "cases", flag="--no-augment", result=True,
                           help="no rotation / scaling / elastic deformation")
    intensity_jitter: bool = option(False, "cases", result=True, help="also jitter contrast and brightness")
    organ_jitter: float = option(0.0, "cases", bounds=Bounds(0, 0.5, hint=" (0.1 shifts a CT organ by up to 40 HU)"),
                                 metavar="SHIFT", result=True,
                                 help="also shift each organ's intensity by up to ±SHIFT of the normalised range "
                                 "(0.15 = 60 HU for CT), so cases of one contrast phase teach others; 0 (default): off")
    organ_levels: float = option(0.0, "cases", bounds=UNIT, metavar="P", result=True,
                                 help="also, in a share P of the augmented views, move each labelled structure's "
                                 "mean intensity to a random level in [0, 1], texture kept (domain randomisation), so "
                                 "a structure far darker or brighter than in the training scans is still found; 0 "
                                 "(default): off")
    organ_gain: float = option(0.0, "cases", bounds=UNIT, metavar="P", result=True,
                               help="also, in a share P of the augmented views, multiply each labelled structure's "
                               "intensities by a random gain in [1/4, 2] (log-uniform), as iron darkens a liver "
                               "and spleen on T2 MR; 0 (default): off")
    coarse_views: float = option(0.0, "cases", bounds=UNIT, metavar="P", result=True,
                                 help="also show a share P of the augmented views at 1.5-4x coarser pixels (blurred "
                                 "as a low-resolution scan looks once resized to the model input), so scans with "
                                 "larger pixels than the training scans are still read; 0 (default): off")
    # Model. A model directory as --base keeps its own architecture: the rest of this group is for new models.
    base: str = option("litemedsam", "model", result=True,
                       help="model directory or installed id to fine-tune, or a backbone for a new model: "
                       "litemedsam (default), sam_vit_b/l/h (with --checkpoint)")
    model_id: Optional[str] = option(None, "model", flag="--id", help="model id (default: the --out folder's name)")
    modality: Optional[str] = option(
        None, "model", choices=MODALITIES, result=True,
        help="ct: a Hounsfield-unit window; mr: each scan scaled by its own 0.5/99.5 percentiles. Default: the base "
        "model's (ct for a new model); give mr to adapt a CT model to MR",
        panel=Panel("modality", "Intensities", choices=((None, "from the base model"), ("ct", "CT"), ("mr", "MR")),
                    tooltip="How scan intensities are scaled for the model: as the base model does (CT for a new "
                    "model), CT (a Hounsfield-unit window), or MR (each scan by its own 0.5 and 99.5 percentiles). "
                    "Choose MR to adapt a CT model to MR scans."))
    checkpoint: Optional[str] = option(None, "model", result=True, help="SAM checkpoint file for a sam_vit_* base")
    lora_rank: int = option(
        4, "model", bounds=Bounds(0, integer=True, hint=" (0: no LoRA)"), result=True, help="LoRA rank of a new model",
        panel=Panel("loraRank", "LoRA rank", range=(1, 64),
                    tooltip="Rank of the LoRA adapters in the image encoder of a new model (ignored with 'Freeze "
                    "encoder', and a base model keeps its own)."))
    mode: str = option("paper", "model", choices=MODES, result=True, help="architecture of a new model")
    decoder_mlp_dim: int = option(2048, "model", bounds=COUNT, result=True,
                                  help="hidden width of the MLPs in a new model's decoders (default %(default)s)")
    freeze_encoder: bool = option(
        False, "model", result=True,
        help="no LoRA: cache image embeddings once and train the decoders only (fast on CPU)",
        panel=Panel("freezeEncoder", "Freeze encoder", default=True,
                    tooltip="Train the decoders only, on image embeddings computed once: about 10 times faster per "
                    "step and the practical choice on a CPU. Unchecked, LoRA adapts the encoder too (GPU)."))
    lora_blocks: int = option(0, "model", bounds=Bounds(0, integer=True, hint=" (0: every block)"), metavar="N",
                              result=True,
                              help="LoRA in only the encoder's last N attention blocks, whose input is computed once "
                              "per cached view (--cached-views): adapts the encoder at a fraction of LoRA's cost on a "
                              "CPU; a base model without LoRA gets it there. 0 (default): LoRA in every block")
    cached_views: int = option(3, "model", bounds=COUNT, result=True,
                               help="with --freeze-encoder or --lora-blocks: each slice plus N-1 augmented copies "
                               "(default %(default)s)")
    embedding_store: Optional[str] = option(None, "model", metavar="DIR",
                                            help="with --freeze-encoder or --lora-blocks: keep what is computed once "
                                            "in DIR and reuse it in later runs")
    # The paper's components (Table 4 ablation), for a new model.
    stage2: bool = option(True, "components", flag="--stage1-only", result=True,
                          help="stage 1 only (the SAMed-style baseline)")
    cmattn: bool = option(True, "components", flag="--no-cmattn", result=True,  # paper mode only: release's is a no-op
                          help="no class-balanced mask-guided self-attention")
    mask_attention: bool = option(True, "components", flag="--no-mask-attention", result=True,
                                  help="no learnable mask cross-attention")
    pixel_decoder: bool = option(True, "components", flag="--no-pixel-decoder", result=True,
                                 help="no hierarchical pixel decoder")
    # Recipe (AdamW and the released schedule; method notes §10).
    epochs: int = option(
        100, "recipe", bounds=COUNT, result=True,
        panel=Panel("epochs", "Epochs", default=20, range=(1, 1000),
                    tooltip="Passes over the training slices. Few cases need many epochs; the best epoch by "
                    "validation Dice is kept, so more epochs cost time but do not make the result worse."))
    batch_size: int = option(
        8, "recipe", bounds=COUNT, result=True, help="slices per process and micro-batch",
        panel=Panel("batchSize", "Batch size", default=4, range=(1, 64),
                    tooltip="Slices per optimiser step. Larger batches need more memory (GPU: 8 fits in 8 GB with "
                    "LiteMedSAM)."))
    accumulate: int = option(1, "recipe", bounds=COUNT, result=True, help="micro-batches per optimiser step")
    lr: float = option(
        1e-3, "recipe", result=True, help="base learning rate (AdamW)",
        bounds=Bounds(0, 1, low_open=True, hint=" (AdamW's rate; the recipe's is 1e-3, and above about 0.01 training "
                      "usually diverges)"),
        panel=Panel("learningRate", "Learning rate", default=0.002, range=(0.0001, 0.05), step=0.0005, decimals=4,
                    tooltip="Base learning rate (AdamW, warm-up then decay). 0.001 for batch 8; short runs and small "
                    "batches train well with 0.002."))
    weight_decay: float = option(0.1, "recipe", bounds=Bounds(0, 10, hint=" (AdamW's decoupled decay; the recipe's is "
                                                               "0.1)"), result=True)
    warmup_steps: Optional[int] = option(None, "recipe", bounds=Bounds(0, integer=True), result=True,
                                         help="linear warm-up steps (default: 6%% of all steps)")
    dice_weight: float = option(0.9, "recipe", bounds=UNIT, result=True, help="d in (1-d) CE + d Dice")
    stage_weights: str = option("paper", "recipe", choices=STAGE_WEIGHTS, result=True,
                                help="stage-1 weight schedule: paper 0.8*exp(-0.005*epoch), or the released code's")
    stage_weights_over: str = option("run", "recipe", choices=STAGE_WEIGHTS_OVER, result=True,
                                     help="run (default): the schedule's 300 epochs spread over this run, so stage 2 "
                                     "takes over by its end; epochs: read at this run's epoch index, as written")
    early_stop: Optional[int] = option(None, "recipe", bounds=COUNT, metavar="EPOCHS",
                                       help="stop after this many epochs without a better validation Dice")
    ema: float = option(0.98, "recipe", bounds=Bounds(0, 1, high_open=True, hint=": 0.98 by default, 0 turns the "
                                                      "weight average off"), metavar="DECAY", result=True,
                        help="validate and save a moving average of the weights, this decay per step (default "
                        "%(default)s; 0: the last weights); steadier than the last weights on few slices")
    seed: int = option(2345, "recipe", bounds=Bounds(0, integer=True), result=True)
    # Inference: not used in training; the card keeps them as the options the model is meant to be used with.
    # None: the base model's own value (off for a new model).
    slice_smoothing: Optional[float] = option(None, "inference", bounds=Bounds(0, 0.5, high_open=True), metavar="W",
                                              help="hsam segment --slice-smoothing W by default (docs/inference.md); "
                                              "default: the base model's (off for a new model); 0: off")
    box_prompts: Optional[float] = option(None, "inference", bounds=UNIT, metavar="W",
                                          help="hsam segment --box-prompts W by default (LiteMedSAM models; "
                                          "docs/inference.md); default: the base model's (off for a new model); 0: off")
    # Run.
    device: str = option("auto", "run", help="auto (default), cpu, cuda, cuda:1, ...",
                         panel=Panel("device", "Device",
                                     tooltip="Where training runs: auto (the GPU when there is one), cpu, or a GPU."))
    precision: str = option("auto", "run", choices=PRECISIONS, result=True,
                            help="auto (default): bf16/fp16 autocast on CUDA, fp32 on a CPU; bf16 also speeds up CPUs "
                            "with native bf16 (AVX512-BF16/AMX)")
    progress: str = option("tqdm", "run", choices=PROGRESS, help="tqdm bar (default) or JSON-lines events on stdout")
    resume: bool = option(False, "run", help="continue the run saved in --out")


FEW_CASES = 8  # a run on at most this many training cases without the few-shot recipe is told of it


def few_shot_hint(settings: Any, training_cases: int) -> Optional[str]:
    """A line telling of ``--preset few-shot`` when a run on few cases differs from that recipe, else None."""
    recipe = PRESETS["few-shot"]
    if training_cases > FEW_CASES or all(getattr(settings, name) == value for name, value in recipe.items()):
        return None
    return (f"{training_cases} training case{'' if training_cases == 1 else 's'}: --preset few-shot is the recipe "
            "chosen for a handful of scans (docs/training.md)")


def settings_values(given: Dict[str, Any], preset: Optional[str] = None) -> Dict[str, Any]:
    """Every setting's value: as ``given``, else from ``preset``, else the table's default."""
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"--preset must be {_either(tuple(PRESETS))}, not {preset!r}")
    chosen = dict(PRESETS[preset]) if preset else {}
    for name, excluded in GIVES_WAY_TO.items():
        if given.get(name):
            chosen.pop(excluded, None)
    values = {}
    for f, _ in declared():
        if f.name in given:
            values[f.name] = given[f.name]
        elif f.name in chosen:
            values[f.name] = chosen[f.name]
        elif f.default is not MISSING:
            values[f.name] = f.default
        elif f.default_factory is not MISSING:
            values[f.name] = f.default_factory()
    return values


def declared() -> List[Tuple[Field, Option]]:
    """Every setting's field with its option, in the order of ``hsam train --help``."""
    return [(f, f.metadata["option"]) for f in fields(TrainOptions)]


def flag(name: str) -> str:
    """The command-line flag of a setting."""
    return _FIELDS[name].metadata["option"].flag or "--" + name.replace("_", "-")


def _either(values: Tuple[Any, ...]) -> str:
    return ", ".join(map(str, values[:-1])) + f" or {values[-1]}"


def problems(settings: Any) -> List[str]:
    """What is wrong with each setting on its own: a number outside its bounds, a value that is not a choice. None
    is allowed where it is the default (it means "automatic")."""
    found = []
    for f, declared_option in declared():
        value = getattr(settings, f.name)
        if value is None and f.default is None:
            continue
        problem = None
        if declared_option.bounds is not None:
            problem = declared_option.bounds.problem(value)
        elif declared_option.choices and value not in declared_option.choices:
            problem = f"must be {_either(declared_option.choices)}, not {value!r}"
        if problem:
            found.append(f"{flag(f.name)} {problem}")
    return found


@dataclass(frozen=True)
class PanelSetting:
    """An option as HSAM Train shows it, with everything the panel needs resolved."""

    name: str  # the module's
    option: str  # the engine's setting
    flag: str
    type: Any
    default: Any
    engine_default: Any
    label: str
    tooltip: str
    range: Optional[Tuple[float, float]]
    step: Optional[float]
    decimals: Optional[int]
    choices: Tuple[Tuple[Any, str], ...]
    shown: bool


def panel_settings() -> List[PanelSetting]:
    """The settings HSAM Train has, in this table's order."""
    types = typing.get_type_hints(TrainOptions)
    settings = []
    for f, declared_option in declared():
        panel = f.metadata["panel"]
        if panel is None:
            continue
        default = f.default if panel.default is ENGINE_DEFAULT else panel.default
        settings.append(PanelSetting(
            panel.name, f.name, flag(f.name), types[f.name], default, f.default, panel.label,
            panel.tooltip or declared_option.help % {"default": default}, panel.range, panel.step, panel.decimals,
            panel.choices, panel.shown))
    return settings


_FIELDS: Dict[str, Field] = {f.name: f for f in fields(TrainOptions)}
# Settings that change the numbers a run produces: a resumed run must use the same ones.
RESULT_SETTINGS = tuple(f.name for f, declared_option in declared() if declared_option.result)

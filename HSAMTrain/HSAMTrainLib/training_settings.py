"""The settings the module offers: the options of the engine's table (``hsam/train/options.py``) that have a panel
entry there, with their names, types, defaults (safe on a CPU), labels, tooltips and ranges, and the ``hsam train``
options they become; and the recipe they start from. Everything else keeps the engine's recipe (docs/training.md).

The recipe is one of the engine's presets (``hsam train --preset``) or "custom". A preset decides some settings
(``preset_settings``): the panel then leaves them out of the command line and hides their fields, so the preset's
values are what runs, not the panel's CPU defaults."""
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Dict, List, Sequence, Tuple

from HSAMSharedLib.engine import loadEngineFile

ENGINE_OPTIONS = loadEngineFile("train/options.py")
# Each: name, option, flag, type, default, engine_default, label, tooltip, range, step, decimals, choices, shown.
PANEL_SETTINGS = tuple(ENGINE_OPTIONS.panel_settings())
# The ones a scene keeps (the module's parameter node); the device is each user's, a choice is read from its combo box.
SCENE_SETTINGS = tuple(s for s in PANEL_SETTINGS if s.shown and not s.choices and s.name != "device")

FEW_SHOT = "few-shot"
CUSTOM = "custom"
# (value, text) of the recipe's combo box; the first is the default.
RECIPES: Tuple[Tuple[str, str], ...] = (
    (FEW_SHOT, "Few-shot (recommended for a handful of scans)"),
    (CUSTOM, "Custom (the settings below)"),
)


def withSettings(settings: Sequence[Any], typeOf: Callable[[Any], Any] = lambda setting: setting.type):
    """Class decorator: one class attribute per setting, with its name, default and type (``typeOf``), for
    ``dataclass`` or Slicer's ``parameterNodeWrapper`` to make members of."""
    def addSettings(cls):
        cls.__annotations__ = dict(cls.__dict__.get("__annotations__", {}),
                                   **{setting.name: typeOf(setting) for setting in settings})
        for setting in settings:
            setattr(cls, setting.name, setting.default)
        return cls
    return addSettings


def recipeDescription(recipe: str) -> str:
    """What a recipe sets, for the panel."""
    if recipe == CUSTOM:
        return "The settings below, as you set them."
    return f"hsam train --preset {recipe}: {ENGINE_OPTIONS.preset_flags(recipe)}"


@dataclass
@withSettings(PANEL_SETTINGS)
class TrainingSettings:
    """``recipe`` and one field per entry of ``PANEL_SETTINGS``: ``epochs``, ``sliceFraction``, ``modality``..."""

    recipe: str = FEW_SHOT

    def decidedByRecipe(self, setting: Any) -> bool:
        """True when the recipe, not the panel, sets this entry of ``PANEL_SETTINGS``."""
        return self.recipe != CUSTOM and setting.option in ENGINE_OPTIONS.preset_settings(self.recipe)

    def _given(self) -> Dict[Any, Any]:
        """The panel's entries the command line names: a boolean where it turns the engine's default around, a
        value unless None or "" (the engine's default)."""
        given = {}
        for setting in PANEL_SETTINGS:
            value = getattr(self, setting.name)
            if self.decidedByRecipe(setting) or value is None or value == "" or \
                    (isinstance(value, bool) and value == setting.engine_default):
                continue
            given[setting] = value
        return given

    def engineOptions(self) -> List[str]:
        options = ["--preset", self.recipe] if self.recipe != CUSTOM else []
        for setting, value in self._given().items():
            options += [setting.flag] if isinstance(value, bool) else [setting.flag, str(value)]
        return options

    def engineValues(self) -> Dict[str, Any]:
        """Every ``hsam train`` setting as the run will have it, by the engine's own rule (what the estimate
        counts)."""
        given = {setting.option: value for setting, value in self._given().items()}
        return ENGINE_OPTIONS.settings_values(given, None if self.recipe == CUSTOM else self.recipe)

    def toDict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def fromDict(cls, data: Dict[str, Any]) -> "TrainingSettings":
        """From ``toDict``'s output; a setting the data lacks (a run saved before it existed) keeps its default,
        except the recipe: runs saved before it existed used the panel's settings."""
        known = {f.name for f in fields(cls)}
        return cls(**dict({"recipe": CUSTOM}, **{k: v for k, v in data.items() if k in known}))

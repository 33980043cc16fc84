"""The settings the module offers: the options of the engine's table (``hsam/train/options.py``) that have a panel
entry there, with their names, types, defaults (safe on a CPU), labels, tooltips and ranges, and the ``hsam train``
options they become. Everything else keeps the engine's recipe (docs/training.md)."""
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Dict, List, Sequence

from HSAMSharedLib.engine import loadEngineFile

# Each: name, option, flag, type, default, engine_default, label, tooltip, range, step, decimals, choices, shown.
PANEL_SETTINGS = tuple(loadEngineFile("train/options.py").panel_settings())
# The ones a scene keeps (the module's parameter node); the device is each user's, a choice is read from its combo box.
SCENE_SETTINGS = tuple(s for s in PANEL_SETTINGS if s.shown and not s.choices and s.name != "device")


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


@dataclass
@withSettings(PANEL_SETTINGS)
class TrainingSettings:
    """One field per entry of ``PANEL_SETTINGS``: ``epochs``, ``sliceFraction``, ``learningRate``, ``modality``..."""

    def engineOptions(self) -> List[str]:
        options = []
        for setting in PANEL_SETTINGS:
            value = getattr(self, setting.name)
            if isinstance(value, bool):  # the flag turns the engine's default around
                options += [setting.flag] if value != setting.engine_default else []
            elif value is not None and value != "":  # None, "": the engine's default
                options += [setting.flag, str(value)]
        return options

    def toDict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def fromDict(cls, data: Dict[str, Any]) -> "TrainingSettings":
        """From ``toDict``'s output; a setting the data lacks (a run saved before it existed) keeps its default."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

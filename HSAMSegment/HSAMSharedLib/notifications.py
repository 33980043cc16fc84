"""Signals the two modules share without knowing each other's widgets: GUI-free, so the logics emit them in
scripts and tests too, and each module's widget listens while it exists.

``MODELS_CHANGED`` is emitted whenever what ``hsam models list`` would print may have changed: the engine's
packages were installed, a model was downloaded, trained and registered, or deleted, or the models folder
changed. Every listener reads its model list again."""
import logging
from typing import Callable, List


class Notifier:
    def __init__(self, name: str) -> None:
        self.name = name
        self._listeners: List[Callable[..., None]] = []

    def connect(self, listener: Callable[..., None]) -> None:
        if listener not in self._listeners:
            self._listeners.append(listener)

    def disconnect(self, listener: Callable[..., None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    @property
    def listeners(self) -> List[Callable[..., None]]:
        return list(self._listeners)

    def emit(self, *args) -> None:
        """Call every listener; one that fails is logged and does not stop the others."""
        for listener in list(self._listeners):
            try:
                listener(*args)
            except Exception:  # a broken listener (e.g. a widget being deleted) must not break the emitter
                logging.exception("HSAM: a listener of '%s' failed", self.name)


MODELS_CHANGED = Notifier("models changed")  # emit(reason: str)

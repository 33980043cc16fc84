"""What the self-tests of both modules share (they run inside Slicer: Reload and Test, or the Self Tests module).

They never install anything: with the engine's packages missing a test is skipped with a message saying what
to install. They leave the user's settings as they found them. Needs Slicer's application (qt), so the package's
__init__ does not import it."""
import contextlib
import importlib
import logging
import time
import unittest
from typing import Callable, Iterable

import qt
import slicer

from .dependencies import describeMissing, missingRequirements
from .engine import Engine
from .worker import WorkerProcess


def moduleFile(moduleName: str):
    """A module's own file (HSAMSegment.py, HSAMTrain.py), for the logic class and settings its self-test uses. That
    file imports the self-test (Slicer runs ``<module name>Test`` from it), so it is looked up when a test runs:
    after a Reload, the reloaded one."""
    return importlib.import_module(moduleName)


def packagesMissingMessage() -> str:
    """Why the heavy tests cannot run here ("" when they can)."""
    missing = missingRequirements()
    if not missing:
        return ""
    return ("Skipped: HSAM's Python packages are not installed ({names}). The self-test does not install them: "
            "click Segment organs (HSAM Segment) or Start fine-tuning (HSAM Train) once, agree to the install, "
            "then run the test again.").format(names=", ".join(describeMissing(r) for r in missing))


def skipUnlessPackagesInstalled(testCase: unittest.TestCase) -> None:
    message = packagesMissingMessage()
    if message:
        testCase.skipTest(message)


def runTests(testCase, tests: Iterable[Callable[[], None]]) -> None:
    """For ``runTest`` (Reload and Test calls it directly, outside unittest's runner): each test after
    ``setUp``, a skipped one reported with its reason instead of failing."""
    for test in tests:
        testCase.setUp()
        try:
            test()
        except unittest.SkipTest as skipped:
            logging.warning("%s: %s", test.__name__, skipped)
            testCase.delayDisplay(f"{test.__name__}: {skipped}", msec=3000)


@contextlib.contextmanager
def preservedSettings(keys: Iterable[str]):
    """Whatever the test changes under ``keys`` (directly or through a widget) is put back afterwards, and a
    key that did not exist is removed again."""
    settings = qt.QSettings()
    saved = {key: (settings.contains(key), settings.value(key)) for key in keys}
    try:
        yield
    finally:
        settings = qt.QSettings()
        for key, (existed, value) in saved.items():
            if existed:
                settings.setValue(key, value)
            else:
                settings.remove(key)


def processEventsWhile(condition, timeout: float = 1800.0) -> None:
    """Let the GUI and its poll timers run while condition() is true (fails after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout:.0f} s")
        slicer.app.processEvents()
        time.sleep(0.05)


def buildTinyTestModel(engine: Engine, modelDir, modelId: str = "hsam-test-tiny") -> None:
    """A tiny random-weight model with the 8 BTCV organs (real engine code, seconds on a CPU)."""
    script = ("import sys, hsam\n"
              "from hsam.models import BTCV_8_ORGANS, make_card\n"
              "m = hsam.build_hsam(hsam.HSAMConfig(backbone='litemedsam_tiny'), 'random', seed=1)\n"
              "hsam.save_model(m, sys.argv[1], make_card(m, sys.argv[2], {'source': 'random', 'seed': 1},"
              " BTCV_8_ORGANS))\n")
    worker = WorkerProcess([engine.python, "-c", script, str(modelDir), modelId], env=engine.environment())
    worker.start()
    if worker.wait(600) != 0:
        raise RuntimeError(worker.errorText() or "Could not build the test model.")


def abdomenLikeVolume(name: str = "HSAM test abdomen", variant: int = 0):
    """64 x 64 x 48 voxels of 3 mm: air, a soft-tissue body, a liver-like blob (120 HU) and an aorta-like tube
    (250 HU); enough slices that a cancel after the first batch lands mid-run. ``variant`` moves the liver by that
    many voxels (another patient, as far as the case list can tell)."""
    import numpy as np

    k, j, i = np.mgrid[0:48, 0:64, 0:64]
    voxels = np.full(k.shape, -1000, dtype=np.int16)
    voxels[((j - 32) / 28.0) ** 2 + ((i - 32) / 30.0) ** 2 < 1] = 40
    voxels[((j - 28) / 10.0) ** 2 + ((i - 22 - variant) / 12.0) ** 2 + ((k - 24) / 14.0) ** 2 < 1] = 120
    voxels[((j - 40) / 4.0) ** 2 + ((i - 34) / 4.0) ** 2 < 1] = 250
    ijkToRas = np.diag([-3.0, -3.0, 3.0, 1.0])
    return slicer.util.addVolumeFromArray(voxels, ijkToRas, name)


def caseFromVolume(volume, name: str):
    """A segmentation of ``abdomenLikeVolume``: "liver" and "aorta" segments from its blobs."""
    import numpy as np

    voxels = slicer.util.arrayFromVolume(volume)
    labels = np.select([voxels == 120, voxels == 250], [1, 2], 0).astype(np.uint8)
    labelmap = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    labelmap.CopyOrientation(volume)
    slicer.util.updateVolumeFromArray(labelmap, labels)
    segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", name + " segmentation")
    slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(labelmap, segmentation)
    slicer.mrmlScene.RemoveNode(labelmap)
    content = segmentation.GetSegmentation()
    names = {1: "liver", 2: "aorta"}
    for index in range(content.GetNumberOfSegments()):
        segment = content.GetNthSegment(index)
        segment.SetName(names[segment.GetLabelValue()])
    return segmentation

"""Resources/render_result_pictures.py renders a real .seg.nrrd (written by the engine's own writer) with VTK
offscreen, in a child process as a user runs it: three PNGs whose slices show the organs in their colors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("vtk", reason="vtk comes with the slicer-core test dependency: pip install -e .[test]")

from hsam.infer.output import write_labels  # noqa: E402
from hsam.models.labels import BTCV_8_ORGANS  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "Resources" / "render_result_pictures.py"
SPLEEN = next(o for o in BTCV_8_ORGANS if o["name"] == "spleen")
LIVER = next(o for o in BTCV_8_ORGANS if o["name"] == "liver")


@pytest.fixture
def small_case(tmp_path):
    """A 40x40x12 CT (soft tissue in air) with a spleen and a liver block, and its segmentation."""
    ct = np.full((12, 40, 40), -1000, dtype=np.int16)
    ct[:, 5:35, 5:35] = 40
    labels = np.zeros(ct.shape, dtype=np.uint8)
    labels[3:9, 10:20, 25:32] = SPLEEN["value"]
    labels[2:10, 12:28, 6:16] = LIVER["value"]
    image = sitk.GetImageFromArray(ct)
    image.SetSpacing((1.5, 1.5, 4.0))
    image.SetOrigin((-30.0, -30.0, 100.0))
    ct_path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(image, str(ct_path))
    label_image = sitk.GetImageFromArray(labels)
    label_image.CopyInformation(image)
    seg_path = write_labels(label_image, tmp_path / "ct.seg.nrrd", BTCV_8_ORGANS)
    return ct_path, seg_path


def render(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def pixels(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))[..., :3]


def has_color(image: np.ndarray, rgb) -> bool:
    return bool((image == np.array(rgb, dtype=image.dtype)).all(axis=-1).any())


def test_renders_axial_coronal_and_3d_pictures_in_the_organ_colors(small_case, tmp_path):
    ct_path, seg_path = small_case
    out = tmp_path / "images"
    run = render(ct_path, seg_path, "-o", out, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == ["result-3d.png", "result-axial.png", "result-coronal.png"]
    axial, coronal, surfaces = (pixels(out / n) for n in ("result-axial.png", "result-coronal.png", "result-3d.png"))
    # Outlines keep each organ's exact color (from the segment, which came from the label set).
    for image in (axial, coronal):
        assert has_color(image, SPLEEN["color"]) and has_color(image, LIVER["color"])
    # Coronal at its physical aspect: 12 slices x 4 mm over 40 x 1.5 mm is 0.8 as tall as wide.
    assert coronal.shape[0] == pytest.approx(0.8 * coronal.shape[1], abs=2)
    background = surfaces[0, 0]
    assert ((surfaces != background).any(axis=-1)).mean() > 0.05, "no surfaces drawn in the 3D view"
    assert all(p.stat().st_size < 300_000 for p in out.glob("*.png"))


def test_stretch_draws_the_slices_thicker(small_case, tmp_path):
    ct_path, seg_path = small_case
    run = render(ct_path, seg_path, "-o", tmp_path / "s", "--stretch", "2", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    coronal = pixels(tmp_path / "s" / "result-coronal.png")
    assert coronal.shape[0] == pytest.approx(1.25 * coronal.shape[1], abs=2)  # 1.6 capped at 1.25


def test_missing_input_is_a_usage_error(tmp_path):
    run = render(tmp_path / "absent.nii.gz", tmp_path / "absent.seg.nrrd", cwd=tmp_path)
    assert run.returncode == 2
    assert "absent.nii.gz: no such file" in run.stderr


def test_readme_and_extension_show_only_pictures_that_exist():
    import re

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    shown = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", readme) + re.findall(r"<img [^>]*src=\"([^\"]+)\"", readme)
    local = [p for p in shown if not p.startswith("http")]
    assert "docs/images/result-3d.png" in local
    for path in local:
        assert (REPO / path).is_file(), f"README shows {path}, which does not exist"
    cmake = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    urls = re.search(r'set\(EXTENSION_SCREENSHOTURLS "([^"]+)"\)', cmake).group(1).split()
    assert urls
    for url in urls:
        path = re.sub(r"^https://raw\.githubusercontent\.com/[^/]+/[^/]+/main/", "", url)
        assert path != url and (REPO / path).is_file(), f"{url} names no file of the repository"
        assert (REPO / path).stat().st_size < 300_000

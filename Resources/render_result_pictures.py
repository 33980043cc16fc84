"""Pictures of a segmentation result: organ overlays on an axial and a coronal CT slice and a 3D surface view,
rendered offscreen with VTK from a CT and the ``.seg.nrrd`` that ``hsam segment`` wrote (no Slicer needed).

    python Resources/render_result_pictures.py CT.nii.gz RESULT.seg.nrrd -o docs/images

writes ``result-axial.png``, ``result-coronal.png`` and ``result-3d.png``. Needs numpy, SimpleITK and vtk (vtk comes
with the ``slicer-core`` test dependency). Slices are shown as in Slicer: the patient's right on the left, anterior
and superior up; the 3D view looks at the patient from the front. Organ names and colors are the segments' own.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import SimpleITK as sitk

# Without a display VTK would first try X11 and print a warning; EGL renders headless (GPU or Mesa).
if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

import vtk  # noqa: E402  (after the window choice above)
from vtk.util.numpy_support import numpy_to_vtk  # noqa: E402

Segment = Tuple[int, str, Tuple[float, float, float]]  # (value in the label array, name, RGB in 0..1)
CT_WINDOW = (40.0, 400.0)  # abdomen soft-tissue window: level, width (Hounsfield units)
OVERLAY_OPACITY = 0.45
BACKGROUND = (0.08, 0.08, 0.1)


def read_ct(path: Path) -> sitk.Image:
    """The CT with axes reordered to L, P, S, so array[k, j, i] runs superior, posterior, left."""
    return sitk.DICOMOrient(sitk.ReadImage(str(path), sitk.sitkFloat32), "LPS")


def read_segments(path: Path, ct: sitk.Image) -> Tuple[np.ndarray, List[Segment]]:
    """The segmentation on the CT's grid as one label array (1..n in file order) and its segments.

    A Slicer segmentation keeps each segment's name, label value, layer and color in the NRRD header."""
    seg = sitk.ReadImage(str(path))
    keys = set(seg.GetMetaDataKeys())
    layers = sitk.GetArrayFromImage(seg)
    if seg.GetNumberOfComponentsPerPixel() == 1:
        layers = layers[..., None]
    labels = np.zeros(layers.shape[:3], dtype=np.uint8)
    segments: List[Segment] = []
    i = 0
    while f"Segment{i}_Name" in keys:
        meta = {k: seg.GetMetaData(f"Segment{i}_{k}") for k in ("Name", "LabelValue", "Layer", "Color")
                if f"Segment{i}_{k}" in keys}
        color = tuple(float(c) for c in meta.get("Color", "1 1 0").split()[:3])
        labels[layers[..., int(meta.get("Layer", 0))] == int(meta.get("LabelValue", 1))] = i + 1
        segments.append((i + 1, meta["Name"], color))
        i += 1
    if not segments:
        raise SystemExit(f"error: {path} has no segments; give a Slicer .seg.nrrd such as `hsam segment` writes")
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(seg)
    # Slicer may crop a segmentation to its segments' extent: resample onto the CT (nearest, outside = none).
    on_ct = sitk.Resample(image, ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return sitk.GetArrayFromImage(on_ct), segments


def busiest_index(labels: np.ndarray, axis: int) -> int:
    """The slice along ``axis`` that shows the most organs, then the most labeled area."""
    moved = np.moveaxis(labels, axis, 0).reshape(labels.shape[axis], -1)
    organs = np.array([len(np.unique(s[s > 0])) for s in moved])
    area = (moved > 0).sum(axis=1)
    return int(np.lexsort((area, organs))[-1])


def overlay_rgb(ct: np.ndarray, labels: np.ndarray, segments: List[Segment]) -> np.ndarray:
    """A windowed gray slice with each organ filled semi-transparently and outlined in its color (uint8 RGB)."""
    level, width = CT_WINDOW
    gray = np.clip((ct - (level - width / 2)) / width, 0, 1)
    rgb = np.repeat(gray[..., None], 3, axis=2)
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:-1] |= labels[:-1] != labels[1:]
    edge[1:] |= labels[:-1] != labels[1:]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:, 1:] |= labels[:, :-1] != labels[:, 1:]
    for value, _, color in segments:
        inside = labels == value
        rgb[inside] = (1 - OVERLAY_OPACITY) * rgb[inside] + OVERLAY_OPACITY * np.array(color)
        rgb[inside & edge] = color
    return np.round(rgb * 255).astype(np.uint8)


def _image_data(rgb: np.ndarray, spacing: Tuple[float, float]) -> vtk.vtkImageData:
    """rgb rows run bottom to top (VTK's y axis points up)."""
    data = vtk.vtkImageData()
    data.SetDimensions(rgb.shape[1], rgb.shape[0], 1)
    data.SetSpacing(spacing[0], spacing[1], 1.0)
    scalars = numpy_to_vtk(np.ascontiguousarray(rgb).reshape(-1, 3), deep=True)
    scalars.SetName("rgb")
    data.GetPointData().SetScalars(scalars)
    return data


def _text(renderer: vtk.vtkRenderer, text: str, x: float, y: float, color=(1, 1, 1), size: int = 16,
          right: bool = False) -> None:
    actor = vtk.vtkTextActor()
    actor.SetInput(text)
    actor.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
    actor.SetPosition(x, y)
    prop = actor.GetTextProperty()
    prop.SetFontSize(size)
    prop.SetColor(*color)
    prop.SetBold(True)
    prop.SetShadow(True)
    if right:
        prop.SetJustificationToRight()
    renderer.AddViewProp(actor)


def _window(width: int, height: int) -> Tuple[vtk.vtkRenderWindow, vtk.vtkRenderer]:
    window = vtk.vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetSize(width, height)
    renderer = vtk.vtkRenderer()
    renderer.SetBackground(*BACKGROUND)
    window.AddRenderer(renderer)
    return window, renderer


def _write_png(window: vtk.vtkRenderWindow, path: Path) -> Path:
    window.Render()
    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.SetInputBufferTypeToRGB()
    grab.ReadFrontBufferOff()
    grab.Update()
    writer = vtk.vtkPNGWriter()
    writer.SetFileName(str(path))
    writer.SetInputConnection(grab.GetOutputPort())
    writer.Write()
    window.Finalize()
    return path


def render_slice(rgb_up: np.ndarray, spacing: Tuple[float, float], corner: Tuple[str, str], title: str,
                 path: Path, width: int = 512) -> Path:
    """One overlay slice at its physical aspect ratio; corner = the letters for the left and right sides."""
    extent = (rgb_up.shape[1] * spacing[0], rgb_up.shape[0] * spacing[1])
    height = int(round(width * min(1.25, max(0.5, extent[1] / extent[0]))))
    window, renderer = _window(width, height)
    actor = vtk.vtkImageActor()
    actor.GetMapper().SetInputData(_image_data(rgb_up, spacing))
    actor.InterpolateOff()  # voxels stay crisp, so outlines keep their organ's exact color
    renderer.AddActor(actor)
    camera = renderer.GetActiveCamera()
    camera.ParallelProjectionOn()
    renderer.ResetCamera()
    camera.SetParallelScale(max(extent[1] / 2, extent[0] / 2 * height / width) * 1.02)
    _text(renderer, corner[0], 0.02, 0.5)
    _text(renderer, corner[1], 0.98, 0.5, right=True)
    _text(renderer, title, 0.02, 0.95, size=14)
    return _write_png(window, path)


def render_3d(labels: np.ndarray, spacing: Tuple[float, float, float], segments: List[Segment], path: Path,
              size: Tuple[int, int] = (560, 520)) -> Path:
    """Smoothed organ surfaces seen from the front, with a legend of the organs found."""
    data = vtk.vtkImageData()
    data.SetDimensions(labels.shape[2], labels.shape[1], labels.shape[0])
    data.SetSpacing(*spacing)
    data.GetPointData().SetScalars(numpy_to_vtk(np.ascontiguousarray(labels).ravel(), deep=True))
    window, renderer = _window(*size)
    found = []
    for value, name, color in segments:
        if not (labels == value).any():
            continue
        surface = vtk.vtkDiscreteFlyingEdges3D()
        surface.SetInputData(data)
        surface.SetValue(0, value)
        smooth = vtk.vtkWindowedSincPolyDataFilter()
        smooth.SetInputConnection(surface.GetOutputPort())
        smooth.SetNumberOfIterations(40)
        smooth.SetPassBand(0.01)
        smooth.NormalizeCoordinatesOn()
        normals = vtk.vtkPolyDataNormals()
        normals.SetInputConnection(smooth.GetOutputPort())
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputConnection(normals.GetOutputPort())
        mapper.ScalarVisibilityOff()
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(*color)
        actor.GetProperty().SetSpecular(0.2)
        renderer.AddActor(actor)
        found.append((name, color))
    # LPS axes: the camera stands anterior (-y) and looks posterior, superior (+z) up, so the patient's right is left.
    camera = renderer.GetActiveCamera()
    camera.SetFocalPoint(0, 0, 0)
    camera.SetPosition(0, -1, 0)
    camera.SetViewUp(0, 0, 1)
    renderer.ResetCamera()
    camera.Zoom(1.3)
    for row, (name, color) in enumerate(found):
        _text(renderer, name, 0.98, 0.94 - row * 0.05, color=color, size=14, right=True)
    _text(renderer, "R", 0.02, 0.5)
    _text(renderer, "L", 0.98, 0.5, right=True)
    return _write_png(window, path)


def render_all(ct_path: Path, seg_path: Path, out: Path, axial: Optional[int] = None,
               coronal: Optional[int] = None, stretch: float = 1.0) -> List[Path]:
    ct = read_ct(ct_path)
    labels, segments = read_segments(seg_path, ct)
    volume = sitk.GetArrayFromImage(ct)  # [k, j, i]
    sx, sy, sz = ct.GetSpacing()
    sz *= stretch
    k = busiest_index(labels, 0) if axial is None else axial
    j = busiest_index(labels, 1) if coronal is None else coronal
    out.mkdir(parents=True, exist_ok=True)
    # Axial: rows run posterior (j up) in the array; flip so anterior is up. Coronal: k already runs superior (up).
    axial_rgb = overlay_rgb(volume[k], labels[k], segments)[::-1]
    coronal_rgb = overlay_rgb(volume[:, j, :], labels[:, j, :], segments)
    return [
        render_slice(axial_rgb, (sx, sy), ("R", "L"), f"axial {k + 1}/{volume.shape[0]}", out / "result-axial.png"),
        render_slice(coronal_rgb, (sx, sz), ("R", "L"), f"coronal {j + 1}/{volume.shape[1]}",
                     out / "result-coronal.png"),
        render_3d(labels, (sx, sy, sz), segments, out / "result-3d.png"),
    ]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ct", type=Path, help="the CT volume (NIfTI, NRRD, MHA)")
    parser.add_argument("segmentation", type=Path, help="the .seg.nrrd that `hsam segment` wrote for it")
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/images"), help="folder for the PNGs")
    parser.add_argument("--axial", type=int, help="axial slice index (default: the one showing the most organs)")
    parser.add_argument("--coronal", type=int, help="coronal slice index (default: the one showing the most organs)")
    parser.add_argument("--stretch", type=float, default=1.0,
                        help="display the slice axis this many times longer, for files whose spacing is not "
                             "physical (default 1: the file's spacing)")
    args = parser.parse_args(argv)
    if args.stretch <= 0:
        parser.error("--stretch must be positive")
    for path in (args.ct, args.segmentation):
        if not path.is_file():
            parser.error(f"{path}: no such file")
    for path in render_all(args.ct, args.segmentation, args.output, args.axial, args.coronal,
                           args.stretch):
        print(f"wrote {path} ({path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

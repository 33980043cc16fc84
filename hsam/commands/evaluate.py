"""``hsam evaluate``: Dice and HD95 (voxel and mm) of predictions, or of a model run on images, against labels.

Before scoring, each reference is put on its prediction's grid in physical space (hsam/evaluation/geometry.py),
and its numbering is checked against the model's classes (hsam/evaluation/label_agreement.py).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import SimpleITK as sitk

from . import add_slice_options

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


def _expand(paths: List[str]) -> List[Path]:
    """Files as given; a folder of volume files -> its volume files, sorted; any other folder is one DICOM series."""
    out: List[Path] = []
    for p in map(Path, paths):
        files = sorted(x for x in p.iterdir() if x.is_file() and x.name.lower().endswith(VOLUME_SUFFIXES)) \
            if p.is_dir() else []
        out.extend(files or [p])
    return out


def _is_model(target: str) -> bool:
    from ..models.model_dir import resolve_model_dir

    if Path(target).is_dir():
        return (Path(target) / "model.json").is_file()
    if Path(target).exists():
        return False
    try:
        resolve_model_dir(target)
        return True
    except Exception:
        return False


def _to_classes(reference: np.ndarray, label_map, source: Path) -> np.ndarray:
    """Reference label values -> model class values through a label map (files often number organs otherwise)."""
    values = np.unique(reference)
    unmapped = [int(v) for v in values if label_map.class_of_value(int(v)) is None]
    if unmapped:
        raise ValueError(f"{source}: label values {unmapped} are not in the label map {label_map.source}")
    lut = np.zeros(int(values.max()) + 1, dtype=np.int32)
    for v in values:
        lut[int(v)] = label_map.class_of_value(int(v))
    return lut[reference]


def _checked_prediction(path: Path) -> sitk.Image:
    from ..infer.plausibility import check_label_values
    from ..io.volume import read_image

    image = read_image(path)
    check_label_values(sitk.GetArrayViewFromImage(image), path, "prediction")
    return image


def _score_case(pred: sitk.Image, label_path: Path, names: Dict[int, str], label_map, log) -> Dict:
    from ..evaluation.geometry import align_reference
    from ..evaluation.label_agreement import labelling_warning
    from ..evaluation.metrics import score_organs
    from ..io.volume import read_image

    ref, inside = align_reference(read_image(label_path), pred, str(label_path), log)
    reference = sitk.GetArrayFromImage(ref).astype(np.int32)
    if label_map is not None:
        reference = _to_classes(reference, label_map, label_path)
    prediction = sitk.GetArrayFromImage(pred).astype(np.int32)
    if inside is not None:
        prediction[~inside] = 0  # score only where the reference says something
    warning = labelling_warning(reference, prediction, names, str(label_path), label_map is not None)
    if warning:
        log(warning)
    return score_organs(prediction, reference, list(names), pred.GetSpacing()[::-1])


def _check_references(labels: List[Path], reporter) -> None:
    """Every reference is a label map, checked before any model runs: an image given as labels stops at once."""
    from ..infer.plausibility import check_label_values
    from ..io.volume import read_image

    for index, label_path in enumerate(labels):
        label_image = read_image(label_path)  # kept referenced while its array view is read
        check_label_values(sitk.GetArrayViewFromImage(label_image), label_path, "reference")
        if len(labels) > 1:
            reporter.progress(index + 1, len(labels), stage="checking labels")
    reporter.close()


def _model_predictions(args: argparse.Namespace, images: List[Path], reporter, log):
    """(the model's classes, a generator of its label images, one per image) with progress over all slices."""
    from ..evaluation.run_progress import RunProgress, axial_slices
    from ..infer.device import choose_device
    from ..infer.segment import segment_image
    from ..infer.slice_predictor import SlicePredictor
    from ..io.volume import read_image
    from ..models import load_model

    device = choose_device(args.device, log)
    started = time.monotonic()
    log(f"loading model {args.target} ...")
    model = load_model(args.target, device=device)
    # On a CPU one slice per pass is as fast as larger batches and needs far less memory (as in hsam segment).
    batch_size = args.batch_size or (8 if device.type == "cuda" else 1)
    predictor = SlicePredictor(model, device, batch_size, log, embedding_store=args.embedding_store,
                                slice_smoothing=args.slice_smoothing, box_prompts=args.box_prompts)
    slices = [axial_slices(p) for p in images]
    log(f"model loaded in {time.monotonic() - started:.0f} s; segmenting {len(images)} case(s), "
                 f"{sum(slices)} slices, {batch_size} slice(s) per pass on {device}")
    progress = RunProgress(reporter, slices, log)

    def predictions():
        for index, path in enumerate(images):
            progress.start_case(index)
            yield segment_image(predictor, read_image(path), postprocess=not args.no_postprocess,
                                reporter=progress, source=str(path))[0]

    return {s["value"]: s["name"] for s in model.card["labels"]}, predictions()


def run(args: argparse.Namespace) -> int:
    from ..evaluation.run_progress import console_log
    from ..evaluation.report import case_names, markdown, write_csv
    from ..models.labels import BTCV_8_ORGANS
    from ..progress import make_reporter

    reporter = make_reporter(args.progress)
    log = console_log(reporter, args.progress == "jsonl")
    labels = _expand(args.labels)
    is_model = _is_model(args.target)
    if is_model and not args.images:
        raise ValueError("evaluating a model needs --images (one per --labels file, same order)")
    images = _expand(args.images if is_model else [args.target])
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} predictions/images but {len(labels)} label files; give them in pairs")
    _check_references(labels, reporter)
    names: Dict[int, str] = {s["value"]: s["name"] for s in BTCV_8_ORGANS}
    if is_model:
        names, predictions = _model_predictions(args, images, reporter, log)
    else:
        predictions = (_checked_prediction(p) for p in images)
        if len(images) > 1:
            reporter.progress(0, len(images), stage="scoring")
    label_map = None
    if args.label_map:
        from ..models.label_map import load_label_map

        label_map = load_label_map(args.label_map, [{"value": v, "name": n} for v, n in names.items()])
        if label_map.by_value is not None:  # classes the map names no value for are not labelled in the reference
            mapped = set(label_map.by_value.values()) | set(label_map.by_segment.values())
            names = {value: name for value, name in names.items() if value in mapped}
    results = {}
    try:
        for case, pred, label_path in zip(case_names(images), predictions, labels):
            started = time.monotonic()
            results[case] = _score_case(pred, label_path, names, label_map, log)
            seconds = time.monotonic() - started
            if seconds > 5:  # the surface distances of large organs on a fine grid take a while
                log(f"{case}: scored in {seconds:.0f} s")
            if not is_model and len(images) > 1:  # a model's run shows its slices instead
                reporter.progress(len(results), len(images), stage="scoring")
    finally:
        reporter.close()
    table = markdown(results, names)
    written = {}
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.md").write_text(table)
        write_csv(out / "metrics.csv", results, names)
        written = {"report": str(out / "report.md"), "metrics": str(out / "metrics.csv")}
    if args.progress == "jsonl":  # stdout carries JSON lines only
        reporter.event("result", table=table, **written)
    else:
        print(table)
        if written:
            print(f"written {written['report']} and {written['metrics']}", file=sys.stderr)
    return 0


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="Dice and HD95 per organ against reference labels")
    p.add_argument("target", help="prediction file/folder, or a model (id or directory) to run on --images")
    p.add_argument("--labels", nargs="+", required=True, help="reference label files or a folder (same order)")
    p.add_argument("--images", nargs="+", help="images to segment when TARGET is a model")
    p.add_argument("--label-map", help="JSON label map (as for hsam train) from the reference files' values to the "
                   "model's classes, e.g. docs/examples/btcv_synapse_labels.json; only the classes it maps to are scored")
    p.add_argument("--out", help="folder for report.md and metrics.csv")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--batch-size", type=int, help="slices per forward pass (default 8 on a GPU, halved on "
                   "out-of-memory; 1 on a CPU)")
    p.add_argument("--progress", choices=["tqdm", "jsonl"], default="tqdm", help="jsonl: one JSON event per line")
    p.add_argument("--no-postprocess", action="store_true")
    add_slice_options(p)
    p.add_argument("--embedding-store", metavar="DIR", help="keep the encoder's image embeddings in DIR and reuse "
                   "them: models that share a frozen encoder (e.g. trained with --freeze-encoder on one base) then "
                   "encode each image once")
    p.set_defaults(func=run)

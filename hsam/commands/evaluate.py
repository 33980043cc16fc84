"""``hsam evaluate``: Dice and HD95 (voxel and mm) of predictions, or of a model run on images, against labels."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import SimpleITK as sitk


def _expand(paths: List[str]) -> List[Path]:
    out: List[Path] = []
    for p in map(Path, paths):
        out.extend(sorted(x for x in p.iterdir() if x.is_file()) if p.is_dir() else [p])
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


def run(args: argparse.Namespace) -> int:
    from ..evaluation.geometry import align_reference
    from ..evaluation.label_agreement import labelling_warning
    from ..evaluation.metrics import score_organs
    from ..evaluation.report import case_names, markdown, write_csv
    from ..infer.plausibility import check_label_values
    from ..io.volume import read_image
    from ..models.labels import BTCV_8_ORGANS

    labels = _expand(args.labels)
    for label_path in labels:  # before any model runs: a CT given as the labels is a mistake to stop at once
        label_image = read_image(label_path)  # kept referenced while its array view is read
        check_label_values(sitk.GetArrayViewFromImage(label_image), label_path, "reference")
    names: Dict[int, str] = {s["value"]: s["name"] for s in BTCV_8_ORGANS}
    if _is_model(args.target):
        from ..infer.device import choose_device
        from ..infer.segment import segment_image
        from ..infer.slice_predictor import SlicePredictor
        from ..models import load_model

        if not args.images:
            raise ValueError("evaluating a model needs --images (one per --labels file, same order)")
        images = _expand(args.images)
        device = choose_device(args.device, lambda m: print(m, file=sys.stderr))
        model = load_model(args.target, device=device)
        names = {s["value"]: s["name"] for s in model.card["labels"]}
        predictor = SlicePredictor(model, device, args.batch_size, embedding_store=args.embedding_store)
        predictions = (segment_image(predictor, read_image(p), postprocess=not args.no_postprocess,
                                     source=str(p))[0] for p in images)
        cases = case_names(images)
    else:
        images = _expand([args.target])
        predictions = (_checked_prediction(p) for p in images)
        cases = case_names(images)
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} predictions/images but {len(labels)} label files; give them in pairs")
    label_map = None
    if args.label_map:
        from ..train.labelmap import load_label_map

        label_map = load_label_map(args.label_map, [{"value": v, "name": n} for v, n in names.items()])
    results = {}
    for case, pred, label_path in zip(cases, predictions, labels):
        ref, inside = align_reference(read_image(label_path), pred, str(label_path),
                                      lambda m: print(m, file=sys.stderr))
        spacing_kji = pred.GetSpacing()[::-1]
        reference = sitk.GetArrayFromImage(ref).astype(np.int32)
        if label_map is not None:
            reference = _to_classes(reference, label_map, label_path)
        prediction = sitk.GetArrayFromImage(pred).astype(np.int32)
        if inside is not None:
            prediction[~inside] = 0  # score only where the reference says something
        warning = labelling_warning(reference, prediction, names, str(label_path), label_map is not None)
        if warning:
            print(warning, file=sys.stderr)
        results[case] = score_organs(prediction, reference, list(names), spacing_kji)
    table = markdown(results, names)
    print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.md").write_text(table)
        write_csv(out / "metrics.csv", results, names)
        print(f"written {out / 'report.md'} and {out / 'metrics.csv'}", file=sys.stderr)
    return 0


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="Dice and HD95 per organ against reference labels")
    p.add_argument("target", help="prediction file/folder, or a model (id or directory) to run on --images")
    p.add_argument("--labels", nargs="+", required=True, help="reference label files or a folder (same order)")
    p.add_argument("--images", nargs="+", help="images to segment when TARGET is a model")
    p.add_argument("--label-map", help="JSON label map (as for hsam train) from the reference files' values to the "
                   "model's classes, e.g. docs/examples/btcv_synapse_labels.json")
    p.add_argument("--out", help="folder for report.md and metrics.csv")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--no-postprocess", action="store_true")
    p.add_argument("--embedding-store", metavar="DIR", help="keep the encoder's image embeddings in DIR and reuse "
                   "them: models that share a frozen encoder (e.g. trained with --freeze-encoder on one base) then "
                   "encode each image once")
    p.set_defaults(func=run)

"""``hsam train``: fine-tune H-SAM on a few annotated cases (docs/training.md)."""
from __future__ import annotations

import argparse
import json
import sys

from ..stop import EXIT_STOPPED


def settings_from_args(args: argparse.Namespace):
    from ..train import TrainSettings

    return TrainSettings(
        out=args.out, base=args.base, cases=[tuple(pair) for pair in args.case], manifest=args.cases,
        label_map=args.label_map, modality=args.modality, checkpoint=args.checkpoint, model_id=args.id, lora_rank=args.lora_rank,
        mode=args.mode, val_cases=args.val_cases, slice_fraction=args.slice_fraction,
        empty_slice_fraction=args.empty_slices, val_slices=args.val_slices, augment=not args.no_augment,
        intensity_jitter=args.intensity_jitter, organ_jitter=args.organ_jitter, epochs=args.epochs,
        batch_size=args.batch_size,
        accumulate=args.accumulate, lr=args.lr, weight_decay=args.weight_decay, warmup_steps=args.warmup_steps,
        dice_weight=args.dice_weight, stage_weights=args.stage_weights,
        stage_weights_over=args.stage_weights_over, early_stop=args.early_stop, ema=args.ema,
        freeze_encoder=args.freeze_encoder, cached_views=args.cached_views, embedding_store=args.embedding_store,
        stage2=not args.stage1_only, cmattn=not args.no_cmattn, mask_attention=not args.no_mask_attention,
        pixel_decoder=not args.no_pixel_decoder, seed=args.seed, device=args.device, precision=args.precision,
        progress=args.progress, resume=args.resume, no_validation=args.no_validation)


def run(args: argparse.Namespace) -> int:
    from ..train import TrainingStopped, train

    try:
        summary = train(settings_from_args(args))
    except TrainingStopped as stopped:  # the state is saved: --resume continues the run
        print(f"hsam: {stopped}", file=sys.stderr)
        return EXIT_STOPPED
    if args.progress != "jsonl":
        print(json.dumps(summary, indent=2))
    return 0


def register(sub) -> None:
    from ..train.schedule import STAGE_WEIGHTS, STAGE_WEIGHTS_OVER
    from ..train.bounds import argparse_type as number
    from ..models.card import MODALITIES
    from ..train.settings import TrainSettings

    d = TrainSettings(out="")
    p = sub.add_parser("train", help="fine-tune a model on a few annotated cases",
                       description="Fine-tune H-SAM on image + label pairs; writes a model directory.")
    data = p.add_argument_group("cases")
    data.add_argument("--cases", metavar="MANIFEST", help="JSON or CSV manifest: image, label[, split]")
    data.add_argument("--case", nargs=2, action="append", default=[], metavar=("IMAGE", "LABEL"),
                      help="an image and its label file (NIfTI, NRRD, .seg.nrrd, DICOM folder); repeatable")
    data.add_argument("--label-map", help="JSON mapping label values / segment names to model classes")
    data.add_argument("--val-cases", type=number("val_cases"), help="cases held out for validation when the "
                      "manifest names no split (default: 20%%, at least 1)")
    data.add_argument("--no-validation", action="store_true", help="train on every case, keep the last epoch")
    data.add_argument("--slice-fraction", type=number("slice_fraction"), default=d.slice_fraction,
                      help="share of each training case's slices to use (paper few-shot protocol: 0.1)")
    data.add_argument("--empty-slices", type=number("empty_slice_fraction"), default=d.empty_slice_fraction,
                      help="at most this share of the picked slices may show no organ (default %(default)s)")
    data.add_argument("--val-slices", type=number("val_slices"), default=d.val_slices,
                      help="evenly spaced slices per validation case (default %(default)s)")
    data.add_argument("--no-augment", action="store_true", help="no rotation / scaling / elastic deformation")
    data.add_argument("--intensity-jitter", action="store_true", help="also jitter contrast and brightness")
    data.add_argument("--organ-jitter", type=number("organ_jitter"), default=d.organ_jitter, metavar="SHIFT",
                      help="also shift each organ's intensity by up to ±SHIFT of the normalised range (0.15 = 60 HU "
                      "for CT), so cases of one contrast phase teach others; 0 (default): off")

    model = p.add_argument_group("model")
    model.add_argument("--base", default=d.base, help="model directory or installed id to fine-tune, or a "
                       "backbone for a new model: litemedsam (default), sam_vit_b/l/h (with --checkpoint)")
    model.add_argument("--out", required=True, help="model directory to write (also holds training/state.pt)")
    model.add_argument("--id", help="model id (default: the --out folder's name)")
    model.add_argument("--modality", choices=MODALITIES,
                       help="ct: a Hounsfield-unit window; mr: each scan scaled by its own 0.5/99.5 percentiles. "
                       "Default: the base model's (ct for a new model); give mr to adapt a CT model to MR")
    model.add_argument("--checkpoint", help="SAM checkpoint file for a sam_vit_* base")
    model.add_argument("--lora-rank", type=number("lora_rank"), default=d.lora_rank,
                       help="LoRA rank of a new model")
    model.add_argument("--mode", default=d.mode, choices=STAGE_WEIGHTS, help="architecture of a new model")
    model.add_argument("--freeze-encoder", action="store_true",
                       help="no LoRA: cache image embeddings once and train the decoders only (fast on CPU)")
    model.add_argument("--cached-views", type=number("cached_views"), default=d.cached_views,
                       help="with --freeze-encoder: each slice plus N-1 augmented copies (default %(default)s)")
    model.add_argument("--embedding-store", metavar="DIR",
                       help="with --freeze-encoder: keep image embeddings in DIR and reuse them in later runs")
    parts = p.add_argument_group("H-SAM components of a new model (ablation; all on by default)")
    parts.add_argument("--stage1-only", action="store_true", help="stage 1 only (the SAMed-style baseline)")
    parts.add_argument("--no-cmattn", action="store_true", help="no class-balanced mask-guided self-attention")
    parts.add_argument("--no-mask-attention", action="store_true", help="no learnable mask cross-attention")
    parts.add_argument("--no-pixel-decoder", action="store_true", help="no hierarchical pixel decoder")

    recipe = p.add_argument_group("recipe")
    recipe.add_argument("--epochs", type=number("epochs"), default=d.epochs)
    recipe.add_argument("--batch-size", type=number("batch_size"), default=d.batch_size,
                        help="slices per process and micro-batch")
    recipe.add_argument("--accumulate", type=number("accumulate"), default=d.accumulate,
                        help="micro-batches per optimiser step")
    recipe.add_argument("--lr", type=number("lr"), default=d.lr, help="base learning rate (AdamW)")
    recipe.add_argument("--weight-decay", type=number("weight_decay"), default=d.weight_decay)
    recipe.add_argument("--warmup-steps", type=number("warmup_steps"),
                        help="linear warm-up steps (default: 6%% of all steps)")
    recipe.add_argument("--dice-weight", type=number("dice_weight"), default=d.dice_weight,
                        help="d in (1-d) CE + d Dice")
    recipe.add_argument("--stage-weights", default=d.stage_weights, choices=("paper", "release"),
                        help="stage-1 weight schedule: paper 0.8*exp(-0.005*epoch), or the released code's")
    recipe.add_argument("--stage-weights-over", default=d.stage_weights_over, choices=STAGE_WEIGHTS_OVER,
                        help="run (default): the schedule's 300 epochs spread over this run, so stage 2 takes over "
                        "by its end; epochs: read at this run's epoch index, as written")
    recipe.add_argument("--early-stop", type=number("early_stop"), metavar="EPOCHS",
                        help="stop after this many epochs without a better validation Dice")
    recipe.add_argument("--ema", type=number("ema"), metavar="DECAY", default=d.ema,
                        help="validate and save a moving average of the weights, this decay per step (default "
                        "%(default)s; 0: the last weights); steadier than the last weights on few slices")
    recipe.add_argument("--seed", type=number("seed"), default=d.seed)

    run_group = p.add_argument_group("run")
    run_group.add_argument("--device", default=d.device, help="auto (default), cpu, cuda, cuda:1, ...")
    run_group.add_argument("--precision", default=d.precision, choices=("auto", "fp32", "bf16", "fp16"),
                           help="auto (default): bf16/fp16 autocast on CUDA, fp32 on a CPU; bf16 also speeds up "
                           "CPUs with native bf16 (AVX512-BF16/AMX)")
    run_group.add_argument("--progress", default=d.progress, choices=("tqdm", "jsonl", "none"),
                           help="tqdm bar (default) or JSON-lines events on stdout")
    run_group.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    p.set_defaults(func=run)

"""The training loop of ``hsam train``.

One optimiser step = ``accumulate`` micro-batches of ``batch_size`` slices on each of the ``world`` processes.
Everything random is derived from (seed, epoch, step, slice), so a run stopped at any step and resumed gives the
same weights as an uninterrupted run on CPU, and DDP processes see disjoint parts of the same global batch.
After every epoch: validation Dice on the held-out cases, the best model written to ``--out`` (a complete model
directory), and the training state saved for ``--resume``.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..distributed import (World, any_process, barrier, broadcast_flag, init_from_environment, is_initialized,
                           process_device, shutdown)
from ..infer.device import choose_device
from ..infer.embedding_store import stored_encoder
from ..models.card import CARD_FILE, write_json_atomic
from ..models.model_dir import save_model, trainable_state
from ..precision import requested_autocast_dtype
from ..stop import StopRequest
from ..weights import describe_mismatch
from .augment import AugmentSettings
from .checkpoint import RunState, TrainingCheckpoint, check_same_settings, load_state, save_state, state_path
from .dataset import augmented_batch, epoch_order, sample_generator, step_torch_seed, to_batch
from .embeddings import EmbeddingCache, embeddings_as_input, encode_slices, head_as_encoder, pick_views
from .errors import DIVERGED, TrainingError, TrainingStopped, all_finite, diverged_error
from .events import Progress
from .losses import hsam_loss
from .model_setup import build_model, set_class_balanced_noise, set_training_mode, trainable_parameters
from .options import few_shot_hint
from .output_folder import (check_writable_folder, finished_status, finished_summary, run_summary, same_recipe,
                            training_card)
from .prepare import PreparedData, prepare_data
from .schedule import learning_rate, plan_steps, schedule_epoch, stage1_weight
from .settings import TrainSettings
from .validate import case_dice, summarize
from .weight_average import WeightAverage


def train(settings: TrainSettings, stop_at_step: Optional[int] = None) -> Dict[str, Any]:
    """Run (or resume) a job; returns its summary. ``stop_at_step`` acts as a stop request before that
    optimiser step (tests). Raises TrainingError for bad inputs and TrainingStopped after a stop request."""
    settings.validate()
    check_writable_folder(Path(settings.out))
    try:  # training on Apple GPUs is untested: auto keeps to CUDA or the CPU there, --device mps opts in
        device = choose_device(settings.device, auto_picks_mps=False)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    if settings.precision == "fp16" and device.type != "cuda":  # before any case is read
        raise TrainingError("--precision fp16 trains on CUDA only; use bf16 or fp32 on this device")
    joined_here = not is_initialized()
    try:
        world = init_from_environment(device)
        device = process_device(device, world)
    except ValueError as exc:  # more processes per node than GPUs
        raise TrainingError(str(exc)) from None
    if device.type == "cuda":
        torch.cuda.set_device(device)
    progress = Progress(settings.progress, world.is_main)
    try:
        with StopRequest() as stop:
            return _run(settings, world, device, progress, stop, stop_at_step)
    except TrainingStopped as exc:
        progress.event("stopped", checkpoint=exc.checkpoint, step=exc.step)
        raise
    except Exception as exc:
        progress.event("error", message=str(exc))
        raise
    finally:
        progress.close()
        if joined_here:
            shutdown()


def _run(settings: TrainSettings, world: World, device: torch.device, progress: Progress, stop: StopRequest,
         stop_at_step: Optional[int]) -> Dict[str, Any]:
    out = Path(settings.out)
    saved = load_state(state_path(out)) if settings.resume else None
    status = finished_status(saved) if saved is not None else None
    if status and same_recipe(saved.settings, settings.result_settings()):
        summary = finished_summary(out, saved, status)
        progress.log(f"the run in {out} has already ended ({status} after {summary['epochs_done']} epochs): "
                     "nothing to resume; train again with a new --out")
        progress.event("done", **summary)
        return summary
    if not settings.resume and out.is_dir() and any(out.iterdir()):
        raise TrainingError(f"{out} is not empty; continue its run with --resume or choose a new --out")
    return Trainer(settings, world, device, progress, stop, stop_at_step, saved).run()


class Trainer:
    """One session of a run: sets up the data, the model and the optimiser (restoring ``saved`` on --resume),
    then ``run`` trains the epochs left."""

    def __init__(self, settings: TrainSettings, world: World, device: torch.device, progress: Progress,
                 stop: StopRequest, stop_at_step: Optional[int], saved: Optional[TrainingCheckpoint]) -> None:
        self.settings = settings
        self.world = world
        self.device = device
        self.progress = progress
        self.stop = stop
        self.stop_at_step = stop_at_step  # tests: a stop request before this optimiser step
        self.out = Path(settings.out)
        self.state_file = state_path(self.out)
        self.data: PreparedData = prepare_data(settings, progress.log)
        # What determines the result, saved with the state and compared on --resume; through JSON, as the saved
        # one went (tuples become lists).
        self.fingerprint: Dict[str, Any] = json.loads(json.dumps(dict(
            settings.result_settings(), world_size=world.size, **self.data.fingerprint())))
        if saved is not None:
            check_same_settings(saved.settings, self.fingerprint, self.state_file)
        self.model, self.backbone_weights = build_model(self.data.base, settings, self.data.label_map.num_classes)
        self.model.to(device)
        self.noise_variance = set_class_balanced_noise(self.model, self.data.class_counts)
        self.optimizer = torch.optim.AdamW(trainable_parameters(self.model), lr=settings.lr, betas=(0.9, 0.999),
                                           weight_decay=settings.weight_decay)
        self.weight_average: Optional[WeightAverage] = WeightAverage(self.model, settings.ema) if settings.ema \
            else None
        self.autocast_dtype = requested_autocast_dtype(device, settings.precision)
        self.grad_scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)
        # Training's forward pass goes through DDP when there are several processes; the model is what is saved.
        self.training_net: nn.Module = self.model
        if world.distributed:
            self.training_net = DistributedDataParallel(self.model, device_ids=[device] if device.type == "cuda"
                                                        else None)
        self.input_size: int = self.model.img_size
        self.augmentation: Optional[AugmentSettings] = AugmentSettings(
            intensity_jitter=settings.intensity_jitter, organ_jitter=settings.organ_jitter,
            organ_levels_p=settings.organ_levels, organ_gain_p=settings.organ_gain,
            coarse_p=settings.coarse_views) if settings.augment else None
        self.steps = plan_steps(training_slices=len(self.data.train_slices), batch_size=settings.batch_size,
                                accumulate=settings.accumulate, processes=world.size, epochs=settings.epochs,
                                warmup_steps=settings.warmup_steps)
        hint = few_shot_hint(settings, len(self.data.train_cases))
        if hint and settings.progress != "jsonl":  # a command-line hint: HSAM Train has its own settings
            progress.log(hint)
        progress.log(f"{self.steps.total} optimiser steps: {settings.epochs} epochs x {self.steps.per_epoch} steps "
                     f"of {self.steps.global_batch} slices, warm-up {self.steps.warmup}")
        self.run_state = RunState()
        if saved is not None:
            self._restore(saved)
        # --freeze-encoder: the encoder's outputs, computed once by ``run`` (validation's on the main process).
        self.train_embeddings: Optional[EmbeddingCache] = None
        self.val_embeddings: List[EmbeddingCache] = []
        self.step_seconds: List[float] = []  # each optimiser step of this session, for the ETA

    def run(self) -> Dict[str, Any]:
        if self.settings.freeze_encoder or self.settings.lora_blocks:
            self._cache_embeddings()
        return self._loop()

    def _restore(self, saved: TrainingCheckpoint) -> None:
        problem = describe_mismatch(trainable_state(self.model), saved.model)
        if problem:
            raise TrainingError(f"{self.state_file}: does not fit the model being trained: {problem}")
        if not all_finite(t for t in saved.model.values() if t.is_floating_point()):
            raise TrainingError(f"{self.state_file}: holds weights that are not finite (NaN or infinite), from a "
                                "run that diverged; it cannot be resumed: start again with a new --out")
        self.model.load_state_dict(saved.model, strict=False)
        self.optimizer.load_state_dict(saved.optimizer)
        if saved.scaler:
            self.grad_scaler.load_state_dict(saved.scaler)
        if self.weight_average is not None:
            self.weight_average.load_state_dict(saved.average)
        self.run_state = saved.progress
        self.progress.log(f"resuming at epoch {self.run_state.epoch + 1}, step {self.run_state.step_in_epoch + 1}")

    def _cache_embeddings(self) -> None:
        settings, data, started = self.settings, self.data, time.perf_counter()
        views = settings.cached_views if self.augmentation is not None else 1
        what = f"the features before the encoder's last {settings.lora_blocks} blocks (--lora-blocks)" \
            if settings.lora_blocks else "the image embeddings (--freeze-encoder)"
        self.progress.log(f"computing {what} of {len(data.train_slices) * views} training and "
                          f"{sum(len(v) for v in data.val_slices)} validation slices once")
        total = len(data.train_slices) * views + sum(len(v) for v in data.val_slices)
        done = [0]

        def on_batch(n: int) -> None:
            # Encoding is the longest phase on a CPU: report it, and honour a stop request here too (in a
            # single process; several processes agree on stopping at the first step boundary instead).
            done[0] += n
            self.progress.event("progress", stage="caching embeddings", done=done[0], total=total)
            if self.stop.requested and not self.world.distributed:
                self._stop(self._global_step())

        with head_as_encoder(self.model, settings.lora_blocks), \
                stored_encoder(self.model, settings.embedding_store) as store:
            self.train_embeddings = encode_slices(self.model, data.train_slices, self.input_size, views,
                                                  settings.seed, self.augmentation, settings.batch_size, self.device,
                                                  on_batch)
            if self.world.is_main:
                self.val_embeddings = [encode_slices(self.model, v, self.input_size, 1, settings.seed, None,
                                                     settings.batch_size, self.device, on_batch)
                                       for v in data.val_slices]
        reused = f" ({store.hits} of {store.hits + store.misses} from {settings.embedding_store})" if store else ""
        self.progress.log(f"embeddings cached in {time.perf_counter() - started:.0f} s{reused}")

    # ------------------------------------------------------------------ loop
    def _loop(self) -> Dict[str, Any]:
        settings, state = self.settings, self.run_state
        while state.epoch < settings.epochs and not state.finished:
            epoch = state.epoch
            order = epoch_order(len(self.data.train_slices), settings.seed, epoch)
            while state.step_in_epoch < self.steps.per_epoch:
                step = epoch * self.steps.per_epoch + state.step_in_epoch
                if any_process(self.stop.requested or step == self.stop_at_step, self.device):
                    self._stop(step)
                started = time.perf_counter()
                loss = self._step(epoch, state.step_in_epoch, step, order)
                self.step_seconds.append(time.perf_counter() - started)
                state.wall_s += self.step_seconds[-1]
                state.loss_sum += loss
                state.loss_count += 1
                state.step_in_epoch += 1
                self.progress.step(epoch=epoch + 1, step=step + 1, steps=self.steps.total, loss=round(loss, 5),
                                   lr=self.optimizer.param_groups[0]["lr"], eta_s=self._eta(step + 1))
            self._end_epoch(epoch)
        return self._finish()

    def _step(self, epoch: int, step_in_epoch: int, step: int, order: np.ndarray) -> float:
        settings, world = self.settings, self.world
        lr = learning_rate(step, settings.lr, self.steps.warmup, self.steps.total)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        weight1 = self._stage1_weight(step, epoch)
        # Dropout and CMAttn noise draw from torch's generator: reseed it per step (and process) for exact resume.
        torch.manual_seed(step_torch_seed(settings.seed, step, world.rank))
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for micro in range(settings.accumulate):
            start = ((step_in_epoch * settings.accumulate + micro) * world.size + world.rank) * settings.batch_size
            x, y = self._batch(epoch, order[start:start + settings.batch_size].tolist())
            sync = self.training_net.no_sync() if world.distributed and micro < settings.accumulate - 1 \
                else contextlib.nullcontext()
            with sync:
                with self._autocast(), self._input_mode():
                    outputs = self.training_net(x, y)
                loss, _ = hsam_loss(outputs, y, weight1, settings.dice_weight, world.distributed)
                self.grad_scaler.scale(loss / settings.accumulate).backward()
            total += float(loss.detach()) / settings.accumulate
        # A NaN or infinite loss would poison the weights: stop before the optimiser step (on every process).
        if any_process(not math.isfinite(total), self.device):
            raise self._diverged(step, total, weights=False)
        self.grad_scaler.step(self.optimizer)
        self.grad_scaler.update()
        if not all_finite(p for group in self.optimizer.param_groups for p in group["params"]):
            raise self._diverged(step, total, weights=True)  # e.g. a huge learning rate overflowed them
        if self.weight_average is not None:
            self.weight_average.update(step)
        return total

    def _stage1_weight(self, step: int, epoch: int) -> float:
        settings = self.settings
        return stage1_weight(schedule_epoch(step, epoch, self.steps.total, settings.stage_weights_over),
                             settings.stage_weights)

    def _batch(self, epoch: int, indices: List[int]):
        if self.train_embeddings is not None:
            views = pick_views(self.train_embeddings.views,
                               [sample_generator(self.settings.seed, epoch, i) for i in indices])
            return self.train_embeddings.batch(indices, views, self.device)
        x, y = augmented_batch(self.data.train_slices, indices, self.input_size, self.settings.seed, epoch,
                               self.augmentation)
        return x.to(self.device), y.to(self.device)

    def _averaged(self):
        return self.weight_average.applied() if self.weight_average is not None else contextlib.nullcontext()

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def _input_mode(self):
        if self.train_embeddings is None:
            return contextlib.nullcontext()
        return embeddings_as_input(self.model, self.settings.lora_blocks)

    def _eta(self, steps_done: int) -> float:
        recent = self.step_seconds[-20:] or [0.0]
        per_step = sum(recent) / len(recent)
        epochs_left = self.settings.epochs - self.run_state.epoch
        validation_s = self.run_state.validation_s or 0.0
        return round(per_step * (self.steps.total - steps_done) + validation_s * epochs_left, 1)

    # ------------------------------------------------------------ per epoch
    def _end_epoch(self, epoch: int) -> None:
        settings, state = self.settings, self.run_state
        record = {"epoch": epoch + 1, "loss": round(state.loss_sum / max(1, state.loss_count), 5),
                  "lr": self.optimizer.param_groups[0]["lr"], "stage1_weight": round(self._stage1_weight(
                      (epoch + 1) * self.steps.per_epoch - 1, epoch), 4)}
        stop_early = False
        if self.world.is_main:
            started = time.perf_counter()
            improved = True
            if not settings.no_validation:
                with self._averaged():
                    val = self._validate()
                record.update(val_dice=val["per_organ"], val_dice_mean=val["mean"])
                improved = state.best is None or val["mean"] > state.best["val_dice_mean"]
            state.validation_s = time.perf_counter() - started
            state.wall_s += state.validation_s
            record["wall_s"] = round(state.wall_s, 1)
            state.history.append(record)
            if improved:
                state.best = {"epoch": epoch + 1, "val_dice": record.get("val_dice"),
                              "val_dice_mean": record.get("val_dice_mean")}
                state.bad_epochs = 0
                with self._averaged():
                    save_model(self.model, self.out, self._card("running"))
            else:
                state.bad_epochs += 1
            stop_early = bool(settings.early_stop and state.bad_epochs >= settings.early_stop)
        state.finished = broadcast_flag(stop_early, self.device)
        state.start_next_epoch()
        self._save_state(epoch + 1)
        if self.world.is_main:
            self.progress.event("epoch", epochs=settings.epochs, best=state.best["epoch"],
                                eta_s=self._eta((epoch + 1) * self.steps.per_epoch), **record)
            dice = record.get("val_dice_mean")
            self.progress.log(f"epoch {epoch + 1}/{settings.epochs}: loss {record['loss']:.4f}"
                              + (f", validation Dice {dice:.4f}" if dice is not None else "")
                              + (" (early stop)" if state.finished else ""))

    def _validate(self) -> Dict[str, Any]:
        self.model.eval()
        size, num_classes = self.settings.batch_size, self.data.label_map.num_classes
        per_case = []
        try:
            for case, slices in enumerate(self.data.val_slices):
                with self._autocast():
                    if self.val_embeddings:
                        cache = self.val_embeddings[case]
                        n = cache.embeddings.shape[0]
                        batches = (cache.batch(list(range(i, min(n, i + size))), [0] * (min(n, i + size) - i),
                                               self.device) for i in range(0, n, size))
                        with embeddings_as_input(self.model, self.settings.lora_blocks):
                            per_case.append(case_dice(self.model, batches, num_classes, self.device))
                    else:
                        batches = (to_batch(slices.images[i:i + size], slices.labels[i:i + size], self.input_size)
                                   for i in range(0, len(slices), size))
                        per_case.append(case_dice(self.model, batches, num_classes, self.device))
        finally:
            set_training_mode(self.model)
        return summarize(per_case, self.data.label_map.names[1:])

    # ------------------------------------------------------- saving, ending
    def _card(self, status: str) -> Dict[str, Any]:
        return training_card(self.model, self.settings, self.data, self.backbone_weights, self.noise_variance,
                             self.run_state, status, self.steps)

    def _save_state(self, epoch: int) -> None:
        if self.world.is_main:
            checkpoint = TrainingCheckpoint(
                model=trainable_state(self.model), optimizer=self.optimizer.state_dict(),
                scaler=self.grad_scaler.state_dict() if self.grad_scaler.is_enabled() else None,
                average=self.weight_average.state_dict() if self.weight_average is not None else None,
                progress=self.run_state, settings=self.fingerprint)
            path = save_state(self.state_file, checkpoint)
            self.progress.event("checkpoint", path=str(path), epoch=epoch, step=self._global_step())
        barrier()

    def _global_step(self) -> int:
        return self.run_state.epoch * self.steps.per_epoch + self.run_state.step_in_epoch

    def _stop(self, step: int) -> None:
        self._save_state(self.run_state.epoch)
        if self.world.is_main and (self.out / CARD_FILE).is_file():
            self._update_card("stopped")
        raise TrainingStopped(str(self.state_file), step)

    def _diverged(self, step: int, loss: float, weights: bool) -> Exception:
        if self.world.is_main and (self.out / CARD_FILE).is_file():
            self._update_card(DIVERGED)  # the weights saved there (a good epoch) stay; the run is not complete
        return diverged_error(step, loss, weights, self.settings.lr, self.run_state.best, self.out, self.state_file)

    def _update_card(self, status: str) -> None:
        card = json.loads((self.out / CARD_FILE).read_text(encoding="utf-8"))
        fresh = self._card(status)
        card.update(training=fresh["training"])
        write_json_atomic(self.out / CARD_FILE, card)

    def _finish(self) -> Dict[str, Any]:
        state = self.run_state
        status = "early-stopped" if state.finished and state.epoch < self.settings.epochs else "complete"
        if self.world.is_main:
            self._update_card(status)
        summary = run_summary(self.out, state, status)
        self.progress.event("done", **summary)
        return summary

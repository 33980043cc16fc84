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
from torch.nn.parallel import DistributedDataParallel

from ..infer.device import choose_device
from ..model.embedding_store import stored_encoder
from ..models.card import CARD_FILE, write_json_atomic
from ..models.model_dir import save_model, trainable_state
from ..precision import requested_autocast_dtype
from ..stop import StopRequest
from ..model.weights import describe_mismatch
from .augment import AugmentSettings
from .card_summary import training_card
from .checkpoint import check_same_settings, load_state, save_state, state_path
from .dataset import augmented_batch, epoch_order, sample_generator, to_batch
from .divergence import DIVERGED, all_finite, diverged_error
from .distributed import (World, any_process, barrier, broadcast_flag, init_from_environment, is_initialized,
                          shutdown)
from .embeddings import EmbeddingCache, embeddings_as_input, encode_slices, pick_views
from .errors import TrainingError, TrainingStopped
from .losses import hsam_loss
from .output_folder import check_writable_folder, finished_status, finished_summary, same_recipe
from .model_setup import build_model, set_class_balanced_noise, set_training_mode, trainable_parameters
from .prepare import prepare_data
from .progress import Progress
from .schedule import default_warmup, learning_rate, schedule_epoch, stage1_weight
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
    world = init_from_environment(device)
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    progress = Progress(settings.progress, world.is_main)
    try:
        with StopRequest() as stop:
            return Trainer(settings, world, device, progress, stop, stop_at_step).run()
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


class Trainer:
    def __init__(self, settings: TrainSettings, world: World, device: torch.device, progress: Progress,
                 stop: StopRequest, stop_at_step: Optional[int]) -> None:
        self.s, self.world, self.device, self.progress = settings, world, device, progress
        self.stop, self.stop_at_step = stop, stop_at_step
        self.out = Path(settings.out)
        self.state_file = state_path(self.out)

    # ----------------------------------------------------------------- set-up
    def run(self) -> Dict[str, Any]:
        s = self.s
        saved = load_state(self.state_file) if s.resume else None
        if saved is not None and finished_status(saved) and same_recipe(saved["settings"], s.result_settings()):
            return self._already_finished(saved)
        if not s.resume and self.out.is_dir() and any(self.out.iterdir()):
            raise TrainingError(f"{self.out} is not empty; continue its run with --resume or choose a new --out")
        self.data = prepare_data(s, self.progress.log)
        self.fingerprint = json.loads(json.dumps(dict(s.result_settings(), world_size=self.world.size,
                                                      **self.data.fingerprint())))
        if saved is not None:
            check_same_settings(saved["settings"], self.fingerprint, self.state_file)
        self.model, self.backbone_weights = build_model(self.data.base, s, self.data.label_map.num_classes)
        self.model.to(self.device)
        self.noise_variance = set_class_balanced_noise(self.model, self.data.class_counts)
        self.optimizer = torch.optim.AdamW(trainable_parameters(self.model), lr=s.lr, betas=(0.9, 0.999),
                                           weight_decay=s.weight_decay)
        self.average = WeightAverage(self.model, s.ema) if s.ema else None
        self.amp_dtype = requested_autocast_dtype(self.device, s.precision)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.net = self.model
        if self.world.distributed:
            self.net = DistributedDataParallel(self.model, device_ids=[self.device] if self.device.type == "cuda"
                                               else None)
        self.size = self.model.img_size
        self.augment = AugmentSettings(intensity_jitter=s.intensity_jitter, organ_jitter=s.organ_jitter) \
            if s.augment else None
        n = len(self.data.train_slices)
        self.global_batch = s.batch_size * s.accumulate * self.world.size
        if n < self.global_batch:
            raise TrainingError(f"{n} training slices are fewer than one batch ({s.batch_size} x {s.accumulate} "
                                f"accumulated x {self.world.size} processes); lower --batch-size or raise "
                                "--slice-fraction")
        self.steps_per_epoch = n // self.global_batch
        self.total_steps = self.steps_per_epoch * s.epochs
        self.warmup = s.warmup_steps if s.warmup_steps is not None else default_warmup(self.total_steps)
        self.progress.log(f"{self.total_steps} optimiser steps: {s.epochs} epochs x {self.steps_per_epoch} steps of "
                          f"{self.global_batch} slices, warm-up {self.warmup}")
        self.state = {"epoch": 0, "step_in_epoch": 0, "loss_sum": 0.0, "loss_count": 0, "history": [],
                      "best": None, "bad_epochs": 0, "wall_s": 0.0, "finished": False}
        if saved is not None:
            self._restore(saved)
        self.train_cache: Optional[EmbeddingCache] = None
        self.val_cache: List[EmbeddingCache] = []
        if s.freeze_encoder:
            self._cache_embeddings()
        return self._loop()

    def _already_finished(self, saved: Dict[str, Any]) -> Dict[str, Any]:
        status = finished_status(saved)
        summary = finished_summary(self.out, saved, status)
        self.progress.log(f"the run in {self.out} has already ended ({status} after {summary['epochs_done']} "
                          "epochs): nothing to resume; train again with a new --out")
        self.progress.event("done", **summary)
        return summary

    def _restore(self, saved: Dict[str, Any]) -> None:
        problem = describe_mismatch(trainable_state(self.model), saved["model"])
        if problem:
            raise TrainingError(f"{self.state_file}: does not fit the model being trained: {problem}")
        if not all_finite(t for t in saved["model"].values() if t.is_floating_point()):
            raise TrainingError(f"{self.state_file}: holds weights that are not finite (NaN or infinite), from a "
                                "run that diverged; it cannot be resumed: start again with a new --out")
        self.model.load_state_dict(saved["model"], strict=False)
        self.optimizer.load_state_dict(saved["optimizer"])
        if saved.get("scaler"):
            self.scaler.load_state_dict(saved["scaler"])
        if self.average is not None:
            self.average.load_state_dict(saved["average"])
        self.state = dict(saved["progress"])
        self.progress.log(f"resuming at epoch {self.state['epoch'] + 1}, step {self.state['step_in_epoch'] + 1}")

    def _cache_embeddings(self) -> None:
        s, started = self.s, time.perf_counter()
        views = s.cached_views if self.augment is not None else 1
        self.progress.log(f"--freeze-encoder: computing {len(self.data.train_slices) * views} training and "
                          f"{sum(len(v) for v in self.data.val_slices)} validation embeddings once")
        total = len(self.data.train_slices) * views + sum(len(v) for v in self.data.val_slices)
        done = [0]

        def on_batch(n: int) -> None:
            # Encoding is the longest phase on a CPU: report it, and honour a stop request here too (in a
            # single process; several processes agree on stopping at the first step boundary instead).
            done[0] += n
            self.progress.event("progress", stage="caching embeddings", done=done[0], total=total)
            if self.stop.requested and not self.world.distributed:
                self._stop(self._global_step())

        with stored_encoder(self.model, s.embedding_store) as store:
            self.train_cache = encode_slices(self.model, self.data.train_slices, self.size, views, s.seed,
                                             self.augment, s.batch_size, self.device, on_batch)
            if self.world.is_main:
                self.val_cache = [encode_slices(self.model, v, self.size, 1, s.seed, None, s.batch_size,
                                                self.device, on_batch) for v in self.data.val_slices]
        reused = f" ({store.hits} of {store.hits + store.misses} from {s.embedding_store})" if store else ""
        self.progress.log(f"embeddings cached in {time.perf_counter() - started:.0f} s{reused}")

    # ------------------------------------------------------------------ loop
    def _loop(self) -> Dict[str, Any]:
        s, st = self.s, self.state
        step_times: List[float] = []
        while st["epoch"] < s.epochs and not st["finished"]:
            epoch = st["epoch"]
            order = epoch_order(len(self.data.train_slices), s.seed, epoch)
            while st["step_in_epoch"] < self.steps_per_epoch:
                step = epoch * self.steps_per_epoch + st["step_in_epoch"]
                if any_process(self.stop.requested or step == self.stop_at_step, self.device):
                    self._stop(step)
                started = time.perf_counter()
                loss = self._step(epoch, st["step_in_epoch"], step, order)
                step_times.append(time.perf_counter() - started)
                st["wall_s"] += step_times[-1]
                st["loss_sum"] += loss
                st["loss_count"] += 1
                st["step_in_epoch"] += 1
                self.progress.step(epoch=epoch + 1, step=step + 1, steps=self.total_steps, loss=round(loss, 5),
                                   lr=self.optimizer.param_groups[0]["lr"], eta_s=self._eta(step + 1, step_times))
            self._end_epoch(epoch, step_times)
        return self._finish()

    def _step(self, epoch: int, step_in_epoch: int, step: int, order: np.ndarray) -> float:
        s, w = self.s, self.world
        lr = learning_rate(step, s.lr, self.warmup, self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        weight1 = self._stage1_weight(step, epoch)
        # Dropout and CMAttn noise draw from torch's generator: reseed it per step (and process) for exact resume.
        torch.manual_seed(int(np.random.SeedSequence([s.seed, 5, step, w.rank]).generate_state(1)[0]))
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for micro in range(s.accumulate):
            start = ((step_in_epoch * s.accumulate + micro) * w.size + w.rank) * s.batch_size
            x, y = self._batch(epoch, order[start:start + s.batch_size].tolist())
            sync = self.net.no_sync() if w.distributed and micro < s.accumulate - 1 else contextlib.nullcontext()
            with sync:
                with self._autocast(), self._input_mode():
                    outputs = self.net(x, y)
                loss, _ = hsam_loss(outputs, y, weight1, s.dice_weight, w.distributed)
                self.scaler.scale(loss / s.accumulate).backward()
            total += float(loss.detach()) / s.accumulate
        # A NaN or infinite loss would poison the weights: stop before the optimiser step (on every process).
        if any_process(not math.isfinite(total), self.device):
            raise self._diverged(step, total, weights=False)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if not all_finite(p for group in self.optimizer.param_groups for p in group["params"]):
            raise self._diverged(step, total, weights=True)  # e.g. a huge learning rate overflowed them
        if self.average is not None:
            self.average.update(step)
        return total

    def _stage1_weight(self, step: int, epoch: int) -> float:
        s = self.s
        return stage1_weight(schedule_epoch(step, epoch, self.total_steps, s.stage_weights_over), s.stage_weights)

    def _batch(self, epoch: int, indices: List[int]):
        if self.train_cache is not None:
            views = pick_views(self.train_cache.views, [sample_generator(self.s.seed, epoch, i) for i in indices])
            return self.train_cache.batch(indices, views, self.device)
        x, y = augmented_batch(self.data.train_slices, indices, self.size, self.s.seed, epoch, self.augment)
        return x.to(self.device), y.to(self.device)

    def _averaged(self):
        return self.average.applied() if self.average is not None else contextlib.nullcontext()

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _input_mode(self):
        return embeddings_as_input(self.model) if self.train_cache is not None else contextlib.nullcontext()

    def _eta(self, done: int, step_times: List[float]) -> float:
        recent = step_times[-20:]
        per_step = sum(recent) / len(recent)
        epochs_left = self.s.epochs - self.state["epoch"]
        val_time = self.state.get("val_s", 0.0)
        return round(per_step * (self.total_steps - done) + val_time * epochs_left, 1)

    # ------------------------------------------------------------ per epoch
    def _end_epoch(self, epoch: int, step_times: List[float]) -> None:
        s, st = self.s, self.state
        record = {"epoch": epoch + 1, "loss": round(st["loss_sum"] / max(1, st["loss_count"]), 5),
                  "lr": self.optimizer.param_groups[0]["lr"], "stage1_weight": round(self._stage1_weight(
                      (epoch + 1) * self.steps_per_epoch - 1, epoch), 4)}
        stop_early = False
        if self.world.is_main:
            started = time.perf_counter()
            improved = True
            if not s.no_validation:
                with self._averaged():
                    val = self._validate()
                record.update(val_dice=val["per_organ"], val_dice_mean=val["mean"])
                best = st["best"]
                improved = best is None or val["mean"] > best["val_dice_mean"]
            st["val_s"] = time.perf_counter() - started
            st["wall_s"] += st["val_s"]
            record["wall_s"] = round(st["wall_s"], 1)
            st["history"].append(record)
            if improved:
                st["best"] = {"epoch": epoch + 1, "val_dice": record.get("val_dice"),
                              "val_dice_mean": record.get("val_dice_mean")}
                st["bad_epochs"] = 0
                with self._averaged():
                    save_model(self.model, self.out, self._card("running"))
            else:
                st["bad_epochs"] += 1
            stop_early = bool(s.early_stop and st["bad_epochs"] >= s.early_stop)
        st["finished"] = broadcast_flag(stop_early, self.device)
        st.update(epoch=epoch + 1, step_in_epoch=0, loss_sum=0.0, loss_count=0)
        self._save_state(epoch + 1)
        if self.world.is_main:
            self.progress.event("epoch", epochs=s.epochs, best=st["best"]["epoch"], eta_s=self._eta(
                (epoch + 1) * self.steps_per_epoch, step_times or [0.0]), **record)
            dice = record.get("val_dice_mean")
            self.progress.log(f"epoch {epoch + 1}/{s.epochs}: loss {record['loss']:.4f}"
                              + (f", validation Dice {dice:.4f}" if dice is not None else "")
                              + (" (early stop)" if st["finished"] else ""))

    def _validate(self) -> Dict[str, Any]:
        self.model.eval()
        per_case = []
        try:
            for c, slices in enumerate(self.data.val_slices):
                with self._autocast():
                    if self.val_cache:
                        cache = self.val_cache[c]
                        n = cache.embeddings.shape[0]
                        batches = (cache.batch(list(range(i, min(n, i + self.s.batch_size))),
                                               [0] * (min(n, i + self.s.batch_size) - i), self.device)
                                   for i in range(0, n, self.s.batch_size))
                        with embeddings_as_input(self.model):
                            per_case.append(case_dice(self.model, batches, self.data.label_map.num_classes,
                                                      self.device))
                    else:
                        batches = (to_batch(slices.images[i:i + self.s.batch_size],
                                            slices.labels[i:i + self.s.batch_size], self.size)
                                   for i in range(0, len(slices), self.s.batch_size))
                        per_case.append(case_dice(self.model, batches, self.data.label_map.num_classes,
                                                  self.device))
        finally:
            set_training_mode(self.model)
        return summarize(per_case, self.data.label_map.names[1:])

    # ------------------------------------------------------- saving, ending
    def _card(self, status: str) -> Dict[str, Any]:
        steps = {"per_epoch": self.steps_per_epoch, "total": self.total_steps, "warmup": self.warmup,
                 "global_batch": self.global_batch, "processes": self.world.size}
        return training_card(self.model, self.s, self.data, self.backbone_weights, self.noise_variance,
                             self.state, status, steps)

    def _save_state(self, epoch: int) -> None:
        if self.world.is_main:
            state = {"model": trainable_state(self.model), "optimizer": self.optimizer.state_dict(),
                     "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                     "average": self.average.state_dict() if self.average is not None else None,
                     "progress": self.state, "settings": self.fingerprint}
            path = save_state(self.state_file, state)
            self.progress.event("checkpoint", path=str(path), epoch=epoch, step=self._global_step())
        barrier()

    def _global_step(self) -> int:
        return self.state["epoch"] * self.steps_per_epoch + self.state["step_in_epoch"]

    def _stop(self, step: int) -> None:
        self._save_state(self.state["epoch"])
        if self.world.is_main and (self.out / CARD_FILE).is_file():
            self._update_card("stopped")
        raise TrainingStopped(str(self.state_file), step)

    def _diverged(self, step: int, loss: float, weights: bool) -> Exception:
        if self.world.is_main and (self.out / CARD_FILE).is_file():
            self._update_card(DIVERGED)  # the weights saved there (a good epoch) stay; the run is not complete
        return diverged_error(step, loss, weights, self.s.lr, self.state["best"],
                              self.out, self.state_file)

    def _update_card(self, status: str) -> None:
        card = json.loads((self.out / CARD_FILE).read_text(encoding="utf-8"))
        fresh = self._card(status)
        card.update(training=fresh["training"])
        write_json_atomic(self.out / CARD_FILE, card)

    def _finish(self) -> Dict[str, Any]:
        st = self.state
        status = "early-stopped" if st["finished"] and st["epoch"] < self.s.epochs else "complete"
        if self.world.is_main:
            self._update_card(status)
        best = st["best"] or {}
        summary = {"model": str(self.out), "status": status, "best_epoch": best.get("epoch"),
                   "val_dice": best.get("val_dice"), "val_dice_mean": best.get("val_dice_mean"),
                   "epochs_done": len(st["history"]), "wall_s": round(st["wall_s"], 1)}
        self.progress.event("done", **summary)
        return summary

"""The training loop: AdamW, warm-up + cosine schedule, mixed precision, evaluation, early
stopping, atomic checkpoints, exact resume (resume.py), signals, and DDP under torchrun.
What the run prints and writes for people (metrics, curve, card, push) is reporting.py."""

from __future__ import annotations

import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm.auto import tqdm

from .. import device as devices
from ..checkpoint import load, load_training_state, save_checkpoint
from ..errors import TrainingError
from ..files import ARGS_FILE, BEST_DIR, CACHE_DIR, CORPUS_FILE, LATEST_DIR, SNAPSHOTS_DIR, claim_run_folder, write_json
from ..generate.decoder import thread_count_kept
from ..generate.sampling import stream
from ..model.model import GPT
from . import distributed, resume
from .config import TrainConfig
from .cpu_kernels import set_attention
from .data import CorpusData, get_batch, prepare_corpus
from .process import StopSignal, run_lock
from .reporting import LN2, Reporter


@dataclass
class TrainResult:
    out: Path
    step: int
    best_val_loss: float | None
    best_step: int | None
    stop_reason: str  # "finished", "early stopping", "time limit", "interrupted"
    elapsed_s: float
    signal_name: str | None = None  # SIGINT or SIGTERM, when one stopped the run
    push_error: str | None = None  # why the push to the Hub failed, when it did


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``final_lr`` at ``max_iters``."""
    if cfg.lr_schedule == "constant":
        return cfg.lr
    if step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / cfg.warmup_iters
    progress = (step - cfg.warmup_iters) / max(1, cfg.max_iters - cfg.warmup_iters)
    return cfg.final_lr + 0.5 * (1 + math.cos(math.pi * min(1.0, progress))) * (cfg.lr - cfg.final_lr)


def make_optimizer(model: GPT, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """Weight decay on matrices (embeddings, Linear weights) only: decaying biases and
    LayerNorm gains towards zero only hurts."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=device.type == "cuda")


class Trainer:
    def __init__(self, cfg: TrainConfig, resume_from: Path | None = None, log=tqdm.write, overwrite: bool = False):
        """``overwrite``: an old run in ``cfg.out`` may be replaced (train.py --overwrite)."""
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.dist, self.device = distributed.setup_distributed(cfg.device)
        devices.keep_freed_memory(self.device)
        self.report = Reporter(self.out, cfg, log, self.dist.is_main)
        self.dtype = devices.resolve_dtype(cfg.dtype, self.device)
        made_out = not self.out.exists()
        try:
            if self.dist.is_main:
                claim_run_folder(self.out, resuming=resume_from is not None, overwrite=overwrite)
                self._check_writable(self.out)
            self._set_up(resume_from)
        except BaseException:
            if made_out and self.dist.is_main:  # a refused corpus or config leaves no empty run folder behind
                self._remove_if_empty(self.out)
            raise

    def _set_up(self, resume_from: Path | None) -> None:
        cfg = self.cfg
        resumed = load(resume_from) if resume_from is not None else None
        self.data = self._prepare_data(resumed.tokenizer if resumed else None)
        self.tokenizer = self.data.tokenizer

        torch.manual_seed(cfg.seed)  # same initial weights on every rank
        self.model = GPT(cfg.model_config(len(self.tokenizer)))
        if resumed is not None:
            if resumed.model.config != self.model.config:
                raise TrainingError(f"the model flags differ from the checkpoint being resumed "
                                    f"({resumed.model.config} vs {self.model.config}): drop them to resume")
            self.model.load_state_dict(resumed.model.state_dict())
        self.model.to(self.device)
        set_attention(self.model, cfg.attention, self.device)  # on a CPU, auto: cpu_kernels (dropout p to 1/256)
        self.optimizer = make_optimizer(self.model, cfg, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        # Each rank draws its own batches and dropout masks; the val batches are the same every time.
        self.batch_gen = torch.Generator().manual_seed(cfg.seed + self.dist.rank)
        torch.manual_seed(cfg.seed + self.dist.rank)
        self.progress = resume.Progress()
        if resumed is not None:
            self.progress = resume.restore(load_training_state(resume_from), self.optimizer, self.scaler,
                                           self.batch_gen, self.device, self.dist, cfg.seed, self.report.say,
                                           resume_from)
        self.train_model = self._wrap(self.model)

    @property
    def step(self) -> int:
        return self.progress.step

    @property
    def tokens_per_step(self) -> int:
        return self.cfg.batch_size * self.cfg.block_size * self.dist.world_size

    # ---- set-up ---------------------------------------------------------------------------
    @staticmethod
    def _check_writable(out: Path) -> None:
        """Fail now, not after hours of training, when the run folder cannot be written
        (Kaggle's /kaggle/input is read-only: write under /kaggle/working)."""
        try:
            out.mkdir(parents=True, exist_ok=True)
            probe = out / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise TrainingError(f"cannot write the run folder {out}: {e.strerror}. Pass a writable --out "
                                "(on Kaggle: /kaggle/working/NAME)") from None

    @staticmethod
    def _remove_if_empty(folder: Path) -> None:
        """Remove ``folder`` and the empty folders in it, if nothing else is there."""
        for sub in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True) + [folder]:
            try:
                sub.rmdir()
            except OSError:  # not empty, or not a folder: kept
                pass

    def _prepare_data(self, tokenizer) -> CorpusData:
        cfg = self.cfg
        cache = cfg.cache_dir or self.out / CACHE_DIR
        prepare = lambda: prepare_corpus(cfg.data, cache, cfg.val_fraction, cfg.min_char_count, tokenizer)  # noqa: E731
        if self.dist.enabled:  # rank 0 encodes and writes the cache; the others then read it
            data = prepare() if self.dist.is_main else None
            dist.barrier()
            data = data or prepare()
        else:
            data = prepare()
        if tokenizer is not None:  # resuming: the run's own books, or a clear refusal
            data.check_vocabulary_covers()
        data.check_fits(cfg.block_size)
        return data

    def _wrap(self, model: GPT):
        if self.cfg.compile:
            model = torch.compile(model)
        if self.dist.enabled:
            model = DDP(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return model

    # ---- checkpoints ----------------------------------------------------------------------
    def _check_finite(self) -> None:
        """A checkpoint of nan/inf weights would only repeat the failure: never write one."""
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            raise TrainingError(
                f"the weights became nan or inf by step {self.step}: training diverged, and no checkpoint was "
                f"written from them; {self.out / LATEST_DIR} keeps the last finite one. Lower --lr, raise "
                "--warmup-iters, or try --dtype float32, then --resume (or start again).")

    def save_latest(self) -> None:
        """The resumable checkpoint: weights, tokenizer, arguments and the whole training state."""
        self._check_finite()
        rngs = resume.rng_states(self.batch_gen, self.device, self.dist)  # every rank takes part
        if self.dist.is_main:
            resume.write_latest(self.out / LATEST_DIR, self.model, self.tokenizer, self.cfg, self.progress,
                                self.optimizer, self.scaler, rngs)

    def save_best(self) -> None:
        self._check_finite()
        if self.dist.is_main:
            save_checkpoint(self.model, self.out / BEST_DIR, self.tokenizer)

    # ---- evaluation -----------------------------------------------------------------------
    @torch.no_grad()
    def estimate_loss(self) -> dict[str, float]:
        """Mean loss over ``eval_iters`` batches of each split; the same batches at every evaluation
        (a fixed seed), so successive val losses differ by what the model learned, not by luck."""
        self.model.eval()
        losses = {}
        for split in ("train", "val"):
            gen = torch.Generator().manual_seed(self.cfg.seed + (split == "val"))
            data = getattr(self.data, split)
            total = 0.0
            for _ in range(self.cfg.eval_iters):
                x, y = get_batch(data, self.cfg.batch_size, self.cfg.block_size, gen, self.device)
                with devices.autocast(self.device, self.dtype):
                    total += self.model(x, y).loss.item()
            losses[split] = total / self.cfg.eval_iters
        self.model.train()
        return losses

    def sample_text(self, n_chars: int) -> str:
        gen = torch.Generator(self.device).manual_seed(self.cfg.seed)
        prompt = self.tokenizer.encode_prompt("\n").ids
        with thread_count_kept():
            ids = [int(s.token[0]) for s in stream(self.model, prompt, n_chars, temperature=0.8, generator=gen)]
        return self.tokenizer.decode(ids)

    def evaluate(self) -> bool:
        """Log the losses, keep the best checkpoint, save the latest; True when patience ran out."""
        losses, p = self.estimate_loss(), self.progress
        if not all(math.isfinite(v) for v in losses.values()):
            which = "train" if not math.isfinite(losses["train"]) else "val"
            raise TrainingError(
                f"the {which} loss became {losses[which]} at step "
                f"{p.step}: training diverged, and no checkpoint was written from it; {self.out / LATEST_DIR} "
                "keeps the last good one. Lower --lr, raise --warmup-iters, or try --dtype float32.")
        # Step 0 is the untrained model: never "best", so an early stop leaves no random model in best/.
        improved = p.step > 0 and (p.best_val is None or losses["val"] < p.best_val)
        if improved:
            p.best_val, p.best_step, p.bad_evals = losses["val"], p.step, 0
            self.save_best()
        elif p.step > 0:
            p.bad_evals += 1
        record = {"step": p.step, "train_loss": round(losses["train"], 5), "val_loss": round(losses["val"], 5),
                  "val_bpc": round(losses["val"] / LN2, 5), "lr": lr_at(max(0, p.step - 1), self.cfg),
                  "tokens": p.step * self.tokens_per_step, "elapsed_s": round(p.elapsed_s, 2)}
        self.save_latest()
        if self.dist.is_main and self.cfg.snapshot_every and p.step % self.cfg.snapshot_every == 0:
            # Half precision halves the size; the app converts back when it loads a snapshot.
            save_checkpoint(self.model, self.out / SNAPSHOTS_DIR / f"step-{p.step:06d}", self.tokenizer,
                            dtype=torch.float16, info=record)
        sample = self.sample_text(self.cfg.sample_chars) if self.dist.is_main and self.cfg.sample_chars else None
        self.report.evaluation(record, improved, p.best_val, p.best_step, sample)
        return self.cfg.patience > 0 and p.bad_evals >= self.cfg.patience

    def _evaluate_all(self) -> bool:
        # Ranks may round differently on a GPU: agree on stopping, or one would wait forever.
        return distributed.any_rank(self.evaluate(), self.dist, self.device)

    # ---- the loop -------------------------------------------------------------------------
    def train_step(self) -> float:
        lr = lr_at(self.step, self.cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x, y = get_batch(self.data.train, self.cfg.batch_size, self.cfg.block_size, self.batch_gen, self.device)
        with devices.autocast(self.device, self.dtype):
            loss = self.train_model(x, y).loss
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            return loss_value  # never step on a nan/inf loss: the caller stops the run
        self.scaler.scale(loss).backward()
        if self.cfg.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return loss_value

    def _step_or_explain(self) -> float:
        try:
            return self.train_step()
        except RuntimeError as e:  # torch.OutOfMemoryError too; CPUs say "can't allocate memory"
            if "memory" not in str(e).lower() and not isinstance(e, torch.OutOfMemoryError):
                raise
            raise TrainingError(
                f"out of memory at step {self.step + 1} with --batch-size {self.cfg.batch_size} x --block-size "
                f"{self.cfg.block_size} on {self.device}: lower --batch-size (the last checkpoint is kept in "
                f"{self.out / LATEST_DIR})") from None

    def run(self, until_step: int | None = None) -> TrainResult:
        """Train to ``max_iters`` (or ``until_step``, then save as if interrupted: for tests)."""
        with run_lock(self.out) if self.dist.is_main else nullcontext():
            return self._run(until_step)

    def _run(self, until_step: int | None) -> TrainResult:
        cfg, p = self.cfg, self.progress
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            write_json(self.out / ARGS_FILE, cfg.to_dict())
            write_json(self.out / CORPUS_FILE, self.data.summary())
            self.report.trim_metrics(p.step)
        self.report.header(self.data, self.model, self.device, self.dist.world_size, self.dtype,
                           self.tokens_per_step, p.step)
        signals = StopSignal()
        reason = "finished"
        pbar = tqdm(total=cfg.max_iters, initial=p.step, disable=not self.dist.is_main, dynamic_ncols=True,
                    unit="step", file=sys.stderr, mininterval=1.0)
        # --time-limit is this session's: a resumed run gets the whole limit again (a new Kaggle session).
        start, tokens_done, tic = time.time() - p.elapsed_s, 0, time.time()
        with signals.installed():
            if p.step == 0 and self._evaluate_all():
                reason = "early stopping"
            while reason == "finished" and p.step < cfg.max_iters:
                loss = self._step_or_explain()
                if distributed.any_rank(not math.isfinite(loss), self.dist, self.device):
                    pbar.close()
                    raise TrainingError(
                        f"the loss became {loss} at step {p.step + 1}: training diverged. The last good "
                        f"checkpoint is kept in {self.out / LATEST_DIR} (resume with --resume {self.out}). "
                        "Lower --lr, raise --warmup-iters, or try --dtype float32.")
                p.step += 1
                p.elapsed_s = time.time() - start
                tokens_done += self.tokens_per_step
                pbar.update(1)
                if pbar.n % 10 == 1 or p.step == cfg.max_iters:  # from the first step on
                    pbar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tokens_done / (time.time() - tic):,.0f}")
                if p.step % cfg.eval_interval == 0 or p.step == cfg.max_iters:
                    if self._evaluate_all():
                        reason = "early stopping"
                        break
                time_up = cfg.time_limit is not None and time.time() - tic >= 60 * cfg.time_limit
                if distributed.any_rank(time_up or signals.requested is not None or p.step == until_step,
                                    self.dist, self.device):
                    reason = "time limit" if time_up else "interrupted"
                    self.save_latest()
                    break
        pbar.close()
        result = TrainResult(self.out, p.step, p.best_val, p.best_step, reason, p.elapsed_s, signals.requested)
        self.report.summary(result)
        self.report.finish(result, devices.describe_hardware(self.device, self.dist.world_size), self.dtype,
                           self.tokens_per_step)
        return result

    def close(self) -> None:
        distributed.cleanup_distributed(self.dist)

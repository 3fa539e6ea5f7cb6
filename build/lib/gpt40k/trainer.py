"""The training loop: AdamW, warm-up + cosine schedule, mixed precision, evaluation, early
stopping, atomic checkpoints, exact resume, signal handling, and DDP under torchrun."""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm.auto import tqdm

from . import hub, runtime
from .card import CORPUS_FILE, SUMMARY_FILE, write_card
from .checkpoint import (ARGS_FILE, SNAPSHOTS_DIR, STATE_FILE, atomic_folder, load_local, load_training_state,
                         save_model, save_training_state, write_json, write_model_files)
from .config import TrainConfig
from .errors import GPT40kError
from .data import CorpusData, get_batch, prepare_corpus
from .generation import stream
from .model import GPT
from .plotting import plot_loss_curve

METRICS_FILE = "metrics.jsonl"
CURVE_FILE = "loss_curve.png"
LN2 = math.log(2)


class TrainingError(GPT40kError, RuntimeError):
    """Training cannot go on; the message says why and what is kept on disk."""


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


class StopSignal:
    """SIGINT/SIGTERM set a flag; the loop saves a resumable checkpoint and exits at the next step.
    A second SIGINT falls back to Python's default (an immediate KeyboardInterrupt)."""

    def __init__(self):
        self.requested: str | None = None

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    @contextmanager
    def installed(self):
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        # SIGHUP too: a closed terminal or dropped SSH session saves like Ctrl-C does.
        stops = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
        previous = {s: signal.signal(s, self._handle) for s in stops}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


@contextmanager
def run_lock(out: Path):
    """One trainer per run folder: a second one would interleave metrics and overwrite checkpoints."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here
        yield
        return
    with open(out / ".train.lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise TrainingError(f"another train.py is writing to {out}: wait for it to end, or give this run "
                                "another --out") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class Trainer:
    def __init__(self, cfg: TrainConfig, resume_from: Path | None = None, log=tqdm.write):
        self.cfg, self.log = cfg, log
        self.out = Path(cfg.out)
        self.dist, self.device = runtime.setup_distributed(cfg.device)
        self.say = log if self.dist.is_main else (lambda *a, **k: None)
        self.dtype = runtime.resolve_dtype(cfg.dtype, self.device)
        if self.dist.is_main:
            self._check_writable(self.out)
        self.resume_state = None
        tokenizer = None
        if resume_from is not None:
            resumed_model, tokenizer = load_local(resume_from, "cpu")
            self.resume_state = load_training_state(resume_from)
        self.data = self._prepare_data(tokenizer)
        self.tokenizer = self.data.tokenizer

        torch.manual_seed(cfg.seed)  # same initial weights on every rank
        self.model = GPT(cfg.model_config(len(self.tokenizer)))
        if resume_from is not None:
            if resumed_model.config != self.model.config:
                raise TrainingError(f"the model flags differ from the checkpoint being resumed "
                                    f"({resumed_model.config} vs {self.model.config}): drop them to resume")
            self.model.load_state_dict(resumed_model.state_dict())
        self.model.to(self.device)
        self.model.set_attention_kernel(cfg.attention, self.device)
        self.optimizer = make_optimizer(self.model, cfg, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        # Each rank draws its own batches and dropout masks; the val batches are the same every time.
        self.batch_gen = torch.Generator().manual_seed(cfg.seed + self.dist.rank)
        torch.manual_seed(cfg.seed + self.dist.rank)
        self.step, self.best_val, self.best_step, self.bad_evals, self.elapsed = 0, None, None, 0, 0.0
        if self.resume_state is not None:
            self._restore(self.resume_state)
        self.train_model = self._wrap(self.model)

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

    def _prepare_data(self, tokenizer) -> CorpusData:
        cfg = self.cfg
        cache = cfg.cache_dir or self.out / "data_cache"
        prepare = lambda: prepare_corpus(cfg.data, cache, cfg.val_fraction, cfg.min_char_count, tokenizer)  # noqa: E731
        if self.dist.enabled:  # rank 0 encodes and writes the cache; the others then read it
            data = prepare() if self.dist.is_main else None
            dist.barrier()
            data = data or prepare()
        else:
            data = prepare()
        data.check_fits(cfg.block_size)
        return data

    def _wrap(self, model: GPT):
        if self.cfg.compile:
            model = torch.compile(model)
        if self.dist.enabled:
            model = DDP(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return model

    def _restore(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step, self.elapsed = state["step"], state["elapsed_s"]
        self.best_val, self.best_step, self.bad_evals = state["best_val"], state["best_step"], state["bad_evals"]
        rngs = state["rng"]
        if len(rngs) != self.dist.world_size:
            self.say(f"note: the run was saved with {len(rngs)} process(es) and resumes with "
                     f"{self.dist.world_size}; batches are re-seeded, so the losses will not match "
                     "an uninterrupted run exactly")
            self.batch_gen.manual_seed(self.cfg.seed + 7919 * self.step + self.dist.rank)
            return
        rng = rngs[self.dist.rank]
        torch.set_rng_state(rng["torch"])
        self.batch_gen.set_state(rng["batches"])
        if self.device.type == "cuda" and rng.get("cuda") is not None:
            torch.cuda.set_rng_state(rng["cuda"], self.device)

    # ---- checkpoints ----------------------------------------------------------------------
    def _rng_states(self) -> list[dict]:
        """Every rank's RNG states, gathered on all ranks (a collective call)."""
        mine = {"torch": torch.get_rng_state(), "batches": self.batch_gen.get_state(),
                "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None}
        if not self.dist.enabled:
            return [mine]
        gathered = [None] * self.dist.world_size
        dist.all_gather_object(gathered, mine)
        return gathered

    def _check_finite(self) -> None:
        """A checkpoint of nan/inf weights would only repeat the failure: never write one."""
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            raise TrainingError(
                f"the weights became nan or inf by step {self.step}: training diverged, and no checkpoint was "
                f"written from them; {self.out / 'latest'} keeps the last finite one. Lower --lr, raise "
                "--warmup-iters, or try --dtype float32, then --resume (or start again).")

    def save_latest(self) -> None:
        """The resumable checkpoint: weights, tokenizer, arguments and the whole training state."""
        self._check_finite()
        rng = self._rng_states()  # every rank takes part in the gather; only rank 0 writes
        if not self.dist.is_main:
            return
        state = {"step": self.step, "elapsed_s": self.elapsed, "best_val": self.best_val,
                 "best_step": self.best_step, "bad_evals": self.bad_evals, "rng": rng,
                 "optimizer": self.optimizer.state_dict(),
                 "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None}
        with atomic_folder(self.out / "latest") as tmp:
            write_model_files(self.model, tmp, self.tokenizer)
            write_json(tmp / ARGS_FILE, self.cfg.to_dict())
            save_training_state(tmp / STATE_FILE, state)

    def save_best(self) -> None:
        self._check_finite()
        if self.dist.is_main:
            save_model(self.model, self.out / "best", self.tokenizer)

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
                with runtime.autocast(self.device, self.dtype):
                    total += self.model(x, y).loss.item()
            losses[split] = total / self.cfg.eval_iters
        self.model.train()
        return losses

    def sample_text(self, n_chars: int) -> str:
        gen = torch.Generator(self.device).manual_seed(self.cfg.seed)
        prompt = self.tokenizer.encode("\n", unknown="replace")
        ids = [int(s.token[0]) for s in stream(self.model, prompt, n_chars, temperature=0.8, generator=gen)]
        return self.tokenizer.decode(ids)

    def evaluate(self) -> bool:
        """Log the losses, keep the best checkpoint, save the latest; True when patience ran out."""
        losses = self.estimate_loss()
        if not all(math.isfinite(v) for v in losses.values()):
            which = "train" if not math.isfinite(losses["train"]) else "val"
            raise TrainingError(
                f"the {which} loss became {losses[which]} at step "
                f"{self.step}: training diverged, and no checkpoint was written from it; {self.out / 'latest'} "
                "keeps the last good one. Lower --lr, raise --warmup-iters, or try --dtype float32.")
        improved = self.best_val is None or losses["val"] < self.best_val
        if improved:
            self.best_val, self.best_step, self.bad_evals = losses["val"], self.step, 0
            self.save_best()
        else:
            self.bad_evals += 1
        record = {"step": self.step, "train_loss": round(losses["train"], 5), "val_loss": round(losses["val"], 5),
                  "val_bpc": round(losses["val"] / LN2, 5), "lr": lr_at(max(0, self.step - 1), self.cfg),
                  "tokens": self.step * self.tokens_per_step, "elapsed_s": round(self.elapsed, 2)}
        self.save_latest()
        if self.dist.is_main and self.cfg.snapshot_every and self.step % self.cfg.snapshot_every == 0:
            # Half precision halves the size; the app converts back when it loads a snapshot.
            save_model(self.model, self.out / SNAPSHOTS_DIR / f"step-{self.step:06d}", self.tokenizer,
                       dtype=torch.float16, info=record)
        if self.dist.is_main:
            with open(self.out / METRICS_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            plot_loss_curve(self.out / METRICS_FILE, self.out / CURVE_FILE)
            if self.cfg.push_to_hub and self.cfg.push_every and self.step > 0:
                self._push(lambda: hub.push_snapshot(self.out, self.cfg.push_to_hub, self.step, losses["val"],
                                                     private=self.cfg.hub_private))
            mark = " (best)" if improved else f" (best {self.best_val:.4f} at step {self.best_step})"
            self.say(f"step {self.step:>6}: train {losses['train']:.4f}  val {losses['val']:.4f}{mark}")
            if self.cfg.sample_chars:
                sample = self.sample_text(self.cfg.sample_chars).replace("\n", "\n    ")
                self.say("    " + sample)
        return self.cfg.patience > 0 and self.bad_evals >= self.cfg.patience

    def _evaluate_all(self) -> bool:
        # Ranks may round differently on a GPU: agree on stopping, or one would wait forever.
        return runtime.any_rank(self.evaluate(), self.dist, self.device)

    def _trim_metrics(self) -> None:
        """Drop metrics of steps after the checkpoint being resumed (logged by a run that died later)."""
        path = self.out / METRICS_FILE
        if self.dist.is_main and path.exists():
            lines = [ln for ln in path.read_text(encoding="utf-8").splitlines()
                     if ln.strip() and json.loads(ln)["step"] <= self.step]
            path.write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")

    # ---- the loop -------------------------------------------------------------------------
    @property
    def tokens_per_step(self) -> int:
        return self.cfg.batch_size * self.cfg.block_size * self.dist.world_size

    def train_step(self) -> float:
        lr = lr_at(self.step, self.cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x, y = get_batch(self.data.train, self.cfg.batch_size, self.cfg.block_size, self.batch_gen, self.device)
        with runtime.autocast(self.device, self.dtype):
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

    def run(self, until_step: int | None = None) -> TrainResult:
        """Train to ``max_iters`` (or ``until_step``, then save as if interrupted: for tests)."""
        with run_lock(self.out) if self.dist.is_main else nullcontext():
            return self._run(until_step)

    def _run(self, until_step: int | None) -> TrainResult:
        cfg = self.cfg
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            write_json(self.out / ARGS_FILE, cfg.to_dict())
            write_json(self.out / CORPUS_FILE, self.data.summary())
            self._trim_metrics()
        self._print_header()
        signals = StopSignal()
        reason = "finished"
        pbar = tqdm(total=cfg.max_iters, initial=self.step, disable=not self.dist.is_main, dynamic_ncols=True,
                    unit="step", file=sys.stderr, mininterval=1.0)
        start, tokens_done, tic = time.time() - self.elapsed, 0, time.time()
        with signals.installed():
            if self.step == 0 and self._evaluate_all():
                reason = "early stopping"
            while reason == "finished" and self.step < cfg.max_iters:
                loss = self.train_step()
                bad_loss = not math.isfinite(loss)
                if runtime.any_rank(bad_loss, self.dist, self.device):
                    pbar.close()
                    raise TrainingError(
                        f"the loss became {loss} at step {self.step + 1}: training diverged. The last good "
                        f"checkpoint is kept in {self.out / 'latest'} (resume with --resume {self.out}). "
                        "Lower --lr, raise --warmup-iters, or try --dtype float32.")
                self.step += 1
                self.elapsed = time.time() - start
                tokens_done += self.tokens_per_step
                pbar.update(1)
                if pbar.n % 10 == 0 or self.step == cfg.max_iters:
                    pbar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tokens_done / (time.time() - tic):,.0f}")
                if self.step % cfg.eval_interval == 0 or self.step == cfg.max_iters:
                    if self._evaluate_all():
                        reason = "early stopping"
                        break
                time_up = cfg.time_limit is not None and self.elapsed >= 60 * cfg.time_limit
                if runtime.any_rank(time_up or signals.requested is not None or self.step == until_step,
                                    self.dist, self.device):
                    reason = "time limit" if time_up else "interrupted"
                    self.save_latest()
                    break
        pbar.close()
        result = TrainResult(self.out, self.step, self.best_val, self.best_step, reason, self.elapsed,
                             signals.requested)
        self._print_summary(result)
        if self.dist.is_main:
            self._finish(result)
        return result

    # ---- the end: summary, model card, push ------------------------------------------------
    def _finish(self, result: TrainResult) -> None:
        write_json(self.out / SUMMARY_FILE, {
            "steps": result.step, "tokens": result.step * self.tokens_per_step, "elapsed_s": round(result.elapsed_s, 1),
            "hardware": runtime.describe_hardware(self.device, self.dist.world_size),
            "dtype": str(self.dtype).replace("torch.", ""), "stop_reason": result.stop_reason,
            "best_val_loss": result.best_val_loss, "best_step": result.best_step})
        write_card(self.out / "best", self.out, self.cfg.push_to_hub)
        if self.cfg.push_to_hub:
            result.push_error = self._push(lambda: hub.push_run(
                self.out, self.cfg.push_to_hub, private=self.cfg.hub_private,
                with_training_state=self.cfg.push_training_state))

    def _push(self, push) -> str | None:
        """Run a push; a failure is reported and returned, never raised: the run stays on disk."""
        try:
            url = push()
        except hub.HubError as e:
            self.say(f"error: {e}\nEverything is saved in {self.out}. Push it later with: "
                     f"python -m gpt40k.push {self.out} {self.cfg.push_to_hub}")
            return str(e)
        self.say(f"pushed to the Hub: {url}")
        return None

    # ---- reporting ------------------------------------------------------------------------
    def _print_header(self) -> None:
        cfg, m = self.cfg, self.model
        self.say(self.data.summary_table())
        self.say(f"model: {m.num_parameters():,} parameters ({cfg.n_layer} layers, {cfg.n_head} heads, "
                 f"{cfg.n_embd} channels, block {cfg.block_size}, vocab {len(self.tokenizer)})")
        where = f"{self.device}" + (f" x {self.dist.world_size} processes" if self.dist.enabled else "")
        self.say(f"training on {where}, {str(self.dtype).replace('torch.', '')}"
                 f"{', compiled' if cfg.compile else ''}; {self.tokens_per_step:,} tokens per step"
                 + (f"; resuming at step {self.step}" if self.step else ""))

    def _print_summary(self, r: TrainResult) -> None:
        if r.best_val_loss is not None:
            best = f"best val loss {r.best_val_loss:.4f} ({r.best_val_loss / LN2:.3f} bits/char) at step {r.best_step}"
        else:
            best = "no evaluation yet"
        why = {"finished": f"finished {r.step} steps", "early stopping":
               f"stopped early at step {r.step}: val loss did not improve for {self.cfg.patience} evaluations",
               "time limit": f"time limit reached at step {r.step}",
               "interrupted": f"interrupted ({r.signal_name or 'requested'}) at step {r.step}"}[r.stop_reason]
        self.say(f"{why} in {r.elapsed_s / 60:.1f} min; {best}")
        self.say(f"best checkpoint: {self.out / 'best'}   resumable: {self.out / 'latest'}")
        if r.stop_reason in ("interrupted", "time limit"):
            self.say(f"continue with: python train.py --resume {self.out}")

    def close(self) -> None:
        runtime.cleanup_distributed(self.dist)

"""What a training run tells: the header, a line and a sample per evaluation, metrics.jsonl and
its loss curve, the summary at the end, the model card and the push to the Hub."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from ..errors import CheckpointError, HubError, TrainingError
from ..files import (
    BEST_DIR,
    CONFIG_FILE,
    CURVE_FILE,
    LATEST_DIR,
    METRICS_FILE,
    SUMMARY_FILE,
    checked_file,
    write_json,
    write_text,
)
from ..hub.card import write_card
from ..hub.publish import push_run, push_snapshot
from .plotting import parse_metrics, plot_loss_curve

LN2 = math.log(2)


class Reporter:
    """Rank 0's voice and files; on the other ranks ``say`` is silent and nothing is written."""

    def __init__(self, out: Path, cfg, say, is_main: bool = True):
        self.out, self.cfg, self.is_main = out, cfg, is_main
        self.say = say if is_main else (lambda *a, **k: None)

    def header(self, data, model, device, world_size: int, dtype, tokens_per_step: int, step: int) -> None:
        cfg = self.cfg
        self.say(data.summary_table())
        self.say(f"model: {model.num_parameters():,} parameters ({cfg.n_layer} layers, {cfg.n_head} heads, "
                 f"{cfg.n_embd} channels, block {cfg.block_size}, vocab {model.config.vocab_size})")
        where = f"{device}" + (f" x {world_size} processes" if world_size > 1 else "")
        self.say(f"training on {where}, {str(dtype).replace('torch.', '')}"
                 f"{', compiled' if cfg.compile else ''}; {tokens_per_step:,} tokens per step"
                 + (f"; resuming at step {step}" if step else ""))

    def trim_metrics(self, step: int) -> None:
        """Drop metrics of steps after the checkpoint being resumed (logged by a run that died later)."""
        path = self.out / METRICS_FILE
        if self.is_main and path.exists():
            try:
                text = checked_file(self.out, METRICS_FILE).read_text(encoding="utf-8", errors="replace")
            except OSError as e:
                raise TrainingError(f"cannot read {path}: {e.strerror}") from None
            except CheckpointError as e:  # a FIFO, a link out of the folder, a file of gigabytes
                raise TrainingError(f"{e}; move it away to resume") from None
            rows, torn = parse_metrics(text)
            if torn:  # a line cut by a kill mid-write (or not ours): the curve goes on without it
                self.say(f"note: {torn} unreadable line(s) of {path} left out")
            write_text(path, "".join(json.dumps(row) + "\n" for row in rows if row["step"] <= step))

    def evaluation(self, record: dict, improved: bool, best_val: float, best_step: int, sample: str | None) -> None:
        """One evaluation: appended to metrics.jsonl, drawn, printed (with a sample), pushed if asked."""
        if not self.is_main:
            return
        with open(self.out / METRICS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        plot_loss_curve(self.out / METRICS_FILE, self.out / CURVE_FILE)
        if self.cfg.push_to_hub and self.cfg.push_every and record["step"] > 0:
            self.push(lambda: push_snapshot(self.out, self.cfg.push_to_hub, record["step"], record["val_loss"],
                                            private=self.cfg.hub_private))
        if improved:
            mark = " (best)"
        elif best_val is None:
            mark = " (the untrained model)"
        else:
            mark = f" (best {best_val:.4f} at step {best_step})"
        self.say(f"step {record['step']:>6}: train {record['train_loss']:.4f}  val {record['val_loss']:.4f}{mark}")
        if sample is not None:
            self.say("    " + sample.replace("\n", "\n    "))

    def summary(self, r) -> None:
        if r.best_val_loss is not None:
            best = f"best val loss {r.best_val_loss:.4f} ({r.best_val_loss / LN2:.3f} bits/char) at step {r.best_step}"
        else:
            best = "no evaluation yet"
        why = {"finished": f"finished {r.step} steps", "early stopping":
               f"stopped early at step {r.step}: val loss did not improve for {self.cfg.patience} evaluations",
               "time limit": f"time limit reached at step {r.step}",
               "interrupted": f"interrupted ({r.signal_name or 'requested'}) at step {r.step}"}[r.stop_reason]
        self.say(f"{why} in {r.elapsed_s / 60:.1f} min; {best}")
        if r.best_val_loss is None:
            self.say(f"no best checkpoint yet (none evaluated after step 0); the model so far: {self.out / LATEST_DIR}")
        else:
            self.say(f"best checkpoint: {self.out / BEST_DIR}   resumable: {self.out / LATEST_DIR}")
        if r.stop_reason in ("interrupted", "time limit"):
            self.say(f"continue with: python train.py --resume {self.out}")

    def finish(self, r, hardware: str, dtype, tokens_per_step: int) -> None:
        """run_summary.json, the model card, and the push when --push-to-hub asked for one."""
        if not self.is_main:
            return
        write_json(self.out / SUMMARY_FILE, {
            "steps": r.step, "tokens": r.step * tokens_per_step, "elapsed_s": round(r.elapsed_s, 1),
            "hardware": hardware, "dtype": str(dtype).replace("torch.", ""), "stop_reason": r.stop_reason,
            "best_val_loss": r.best_val_loss, "best_step": r.best_step})
        for folder in (self.out / BEST_DIR, self.out / LATEST_DIR):  # best/ is missing before a first evaluation
            if (folder / CONFIG_FILE).is_file():
                write_card(folder, self.out, self.cfg.push_to_hub)
        if self.cfg.push_to_hub:
            r.push_error = self.push(lambda: push_run(self.out, self.cfg.push_to_hub, private=self.cfg.hub_private,
                                                      with_training_state=self.cfg.push_training_state))

    def push(self, push) -> str | None:
        """Run a push; a failure is reported and returned, never raised: the run stays on disk. The
        Hub client's own progress bars and log lines would break the training bar: its bars are off
        and its log lines go through tqdm, above the bar."""
        from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
        from tqdm.contrib.logging import logging_redirect_tqdm

        were_disabled = are_progress_bars_disabled()
        disable_progress_bars()
        try:
            with logging_redirect_tqdm([logging.root, logging.getLogger("huggingface_hub")]):
                url = push()
        except HubError as e:
            self.say(f"error: {e}\nEverything is saved in {self.out}. Push it later with: "
                     f"python -m gpt40k.push {self.out} {self.cfg.push_to_hub}")
            return str(e)
        finally:
            if not were_disabled:
                enable_progress_bars()
        self.say(f"pushed to the Hub: {url}")
        return None


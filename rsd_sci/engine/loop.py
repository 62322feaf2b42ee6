"""The generic training loop: steps, logging, progress, checkpoints, NaN stop, clean interrupts.

`run_stage` knows nothing of diffusion. The caller supplies
    step_fn(step) -> dict of floats     one optimiser step (step counts from 0); must hold "loss"
    save_fn(steps_done)                 writes a checkpoint of the state after `steps_done` steps
                                        (atomically; rank 0 only: it must not call collectives)
and the loop runs steps start_step .. total_steps - 1:

    metrics = step_fn(step)
    loss not finite      -> raise TrainingStopped, WITHOUT saving (the last good checkpoint stays)
    log(stage=..., step=step + 1, **metrics) every `log_every` steps; progress(step + 1, total_steps)
    (step + 1) % checkpoint_every == 0 or the last step -> save_fn(step + 1)
    SIGINT/SIGTERM received during the step -> save_fn(step + 1) (unless just saved) and raise
                                               StageInterrupted: "resume with the same command"
                                               (after the last step too: the caller's next stage
                                               must not start; a resume finds this one done)

Resuming means calling run_stage again with start_step = the checkpoint's steps_done. With several
processes, every rank runs the loop; the metrics should be all-reduced (the same on every rank) so all
ranks stop together on a NaN, and `sync_stop` (e.g. `lambda f: any_rank(f, info)`) makes every rank see
an interrupt that reached any of them, so no rank is left waiting in a collective.

A first SIGINT/SIGTERM asks the loop to stop after the current step; a second one aborts at once
(KeyboardInterrupt, no save). The previous handlers are restored when run_stage returns or raises.

Example:
    >>> saved = []
    >>> run_stage(step_fn=lambda s: {"loss": 1.0 / (s + 1)}, total_steps=5, start_step=0,
    ...           save_fn=saved.append, checkpoint_every=2, is_main=True)["loss"]
    0.2
    >>> saved
    [2, 4, 5]
"""

from __future__ import annotations

import logging
import math
import signal
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

import torch

logger = logging.getLogger(__name__)

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingStopped(RuntimeError):
    """The loss became NaN or Inf; no checkpoint was written for the bad step.

    step: the step (0-based) whose loss was not finite; last_good: steps_done of the last good
    checkpoint (None if there is none).
    """

    def __init__(self, message: str, step: int, last_good: int | None):
        super().__init__(message)
        self.step = step
        self.last_good = last_good


class StageInterrupted(Exception):
    """SIGINT/SIGTERM stopped the stage after a completed step; its checkpoint was saved.

    steps_done: the number of completed steps, the checkpoint's position (resume from it); signal_name:
    "SIGINT" or "SIGTERM", the signal that stopped it ("" when another process asked).
    """

    def __init__(self, message: str, steps_done: int, signal_name: str = ""):
        super().__init__(message)
        self.steps_done = steps_done
        self.signal_name = signal_name


def warmup_lr(step: int, base_lr: float, warmup_steps: int) -> float:
    """Linear warm-up from base_lr / warmup_steps at step 0 to base_lr at step warmup_steps - 1, then
    constant: base_lr · min(1, (step + 1) / warmup_steps); base_lr when warmup_steps <= 0.

    >>> [warmup_lr(s, 1.0, 4) for s in range(6)]
    [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    """
    if warmup_steps <= 0:
        return float(base_lr)
    return float(base_lr) * min(1.0, (step + 1) / warmup_steps)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group of `optimizer` to `lr`."""
    for group in optimizer.param_groups:
        group["lr"] = lr


class _StopRequest:
    """Installs SIGINT/SIGTERM handlers that set a flag; restores the previous handlers on exit."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.requested:  # a second signal: the user insists
            raise KeyboardInterrupt(f"{name} received twice: stopping at once without saving")
        self.requested = True
        self.signal_name = name   # the one line comes when the step is done (StageInterrupted)
        logger.debug("%s received: finishing the current step, then saving a checkpoint", name)

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is not threading.main_thread():
            logger.debug("not in the main thread: SIGINT/SIGTERM handlers not installed")
            return self
        for sig in _STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def _where(checkpoint_path: str | Path | None) -> str:
    return f" at {checkpoint_path}" if checkpoint_path is not None else ""


def _loss_of(metrics: Mapping[str, Any], step: int) -> float:
    if not isinstance(metrics, Mapping) or "loss" not in metrics:
        raise ValueError(f"step_fn must return a dict with a 'loss' entry; step {step} returned "
                         f"{metrics!r}")
    return float(metrics["loss"])


def run_stage(*, step_fn: Callable[[int], Mapping[str, Any]], total_steps: int, start_step: int,
              save_fn: Callable[[int], Any], checkpoint_every: int, is_main: bool,
              progress: Callable[[int, int], Any] | None = None,
              log: Callable[..., Any] | None = None, stage: str = "teacher", log_every: int = 1,
              checkpoint_path: str | Path | None = None,
              sync_stop: Callable[[bool], bool] | None = None) -> dict[str, Any]:
    """Run steps start_step .. total_steps - 1 of a stage; returns the last step's metrics ({} if none).

    step_fn(step) -> metrics (floats, with "loss"); save_fn(steps_done) writes the checkpoint (called on
    the main process only); checkpoint_every: save every this many steps (and always after the last);
    is_main: this process logs, reports progress and saves; progress(done, total) after each step;
    log(stage=..., step=done, **metrics) (e.g. a RunLog) every `log_every` steps and after the last;
    checkpoint_path: where save_fn writes, named in messages only; sync_stop(local_flag) -> global flag
    (default: the local flag).

    Raises TrainingStopped on a NaN/Inf loss (nothing saved for that step) and StageInterrupted after
    SIGINT/SIGTERM (the checkpoint after the current step saved first).
    """
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    if log_every < 1:
        raise ValueError(f"log_every must be >= 1, got {log_every}")
    if not 0 <= start_step <= total_steps:
        raise ValueError(f"start_step {start_step} is outside [0, total_steps={total_steps}]")
    last_good = start_step if start_step > 0 else None  # a resumed run starts from a checkpoint
    metrics: Mapping[str, Any] = {}
    with _StopRequest() as stop:
        for step in range(start_step, total_steps):
            metrics = step_fn(step)
            loss = _loss_of(metrics, step)
            done = step + 1
            if not math.isfinite(loss):
                kept = (f"the last good checkpoint (step {last_good}) is kept{_where(checkpoint_path)}"
                        if last_good is not None else "no checkpoint was written yet")
                raise TrainingStopped(f"{stage}: loss is {loss} at step {step}; {kept}. Lower the "
                                      "learning rate or check the data, then resume", step, last_good)
            if is_main and log is not None and (done % log_every == 0 or done == total_steps):
                log(stage=stage, step=done, **metrics)
            if is_main and progress is not None:
                progress(done, total_steps)
            saved = False
            if done % checkpoint_every == 0 or done == total_steps:
                if is_main:
                    save_fn(done)
                last_good, saved = done, True
            requested = sync_stop(stop.requested) if sync_stop is not None else stop.requested
            if requested:  # also after the last step: the caller must not start its next stage
                if not saved:
                    if is_main:
                        save_fn(done)
                    last_good = done
                why = stop.signal_name or "a stop request on another process"
                raise StageInterrupted(f"{stage}: interrupted ({why}) at step {done} of {total_steps}; "
                                       f"checkpoint saved{_where(checkpoint_path)}; resume with the "
                                       "same command", done, stop.signal_name)
    return dict(metrics)

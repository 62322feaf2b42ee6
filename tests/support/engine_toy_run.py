"""A toy training run on the engine alone (no diffusion): linear regression, Adam, EMA, keyed data.

Used in two ways:
- imported by tests/engine/test_engine_loop.py (interrupt-and-resume) and tests/engine/test_distributed.py (the
  one-process reference run);
- launched by tests/engine/test_distributed.py as a script under torchrun with 2 processes (gloo):
      python -m torch.distributed.run --standalone --nproc_per_node 2 tests/support/engine_toy_run.py --out F
  Each rank takes its shard of the global batch of 8; rank 0 exports the final weights (model and EMA)
  to F (safetensors), which must match the one-process run.

Data: N_SAMPLES fixed inputs x_i ~ N(0, I_DIM) keyed by their index alone (fixed per sample) and targets
y_i = x_i·w_true + 0.1·ε with ε keyed by (step, index): a fresh noise draw per step, as in training.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from rsd_sci.engine.checkpoint import export_safetensors, load_training_state, rng_state, \
    save_training_state
from rsd_sci.engine.distributed import DistInfo, all_reduce_mean, any_rank, barrier, cleanup, \
    init_distributed, shard, wrap_ddp
from rsd_sci.engine.ema import EMA
from rsd_sci.keyed_random import PER_SAMPLE, keyed_generator, keyed_randn
from rsd_sci.engine.loop import run_stage, set_lr, warmup_lr

DIM = 4
N_SAMPLES = 40
GLOBAL_BATCH = 8
SEED = 1234
BASE_LR = 0.05
WARMUP = 3


class ToyRun:
    """Model, DDP wrapper, Adam, EMA and the step / save / load functions of the toy run."""

    def __init__(self, info: DistInfo, checkpoint: Path | None = None):
        self.info = info
        self.checkpoint = checkpoint
        self.model = nn.Linear(DIM, 1).to(info.device)
        gen = keyed_generator(SEED, 999)  # initial weights independent of the global RNG
        with torch.no_grad():
            for param in self.model.parameters():
                param.copy_(torch.randn(param.shape, generator=gen))
        self.w_true = torch.randn(DIM, 1, generator=gen).to(info.device)
        self.ddp = wrap_ddp(self.model, info)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=BASE_LR)
        self.ema = EMA(self.model, half_life_images=64, ramp=0.5)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's (x (b, DIM), y (b, 1)) for `step`, b = GLOBAL_BATCH / world size."""
        global_index = (step * GLOBAL_BATCH + torch.arange(GLOBAL_BATCH)) % N_SAMPLES
        local = shard(global_index, self.info)
        x = keyed_randn(local, (DIM,), SEED, PER_SAMPLE, stream=0, device=self.info.device)
        eps = keyed_randn(local, (1,), SEED, step, stream=1, device=self.info.device)
        return x, x @ self.w_true + 0.1 * eps

    def step(self, step: int) -> dict[str, float]:
        """One Adam step on the mean squared error of the local shard; EMA update after it."""
        lr = warmup_lr(step, BASE_LR, WARMUP)
        set_lr(self.optimizer, lr)
        x, y = self.batch(step)
        loss = ((self.ddp(x) - y) ** 2).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.ema.update(self.model, images_seen=(step + 1) * GLOBAL_BATCH, batch_size=GLOBAL_BATCH)
        return {"loss": float(all_reduce_mean(loss.detach())), "lr": lr}

    def save(self, steps_done: int) -> None:
        """The training state after `steps_done` steps, atomically, to self.checkpoint."""
        save_training_state(self.checkpoint, {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state_dict(), "steps_done": steps_done, "rng": rng_state()})

    def load(self) -> int:
        """Restore from self.checkpoint if it exists; returns steps_done (0 for a fresh run)."""
        if self.checkpoint is None or not self.checkpoint.exists():
            return 0
        state = load_training_state(self.checkpoint)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.ema.load_state_dict(state["ema"])
        return int(state["steps_done"])

    def run(self, total_steps: int, checkpoint_every: int = 5, **kwargs) -> dict:
        """run_stage from the checkpoint (if any) to total_steps."""
        return run_stage(step_fn=self.step, total_steps=total_steps, start_step=self.load(),
                         save_fn=self.save, checkpoint_every=checkpoint_every,
                         is_main=self.info.is_main, checkpoint_path=self.checkpoint,
                         sync_stop=lambda flag: any_rank(flag, self.info), **kwargs)

    def final_weights(self) -> dict[str, torch.Tensor]:
        """Model and EMA weights, prefixed "model." and "ema."."""
        out = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        out.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="safetensors file for the final weights")
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    info = init_distributed("cpu")
    toy = ToyRun(info, checkpoint=args.out.with_suffix(".ckpt"))
    toy.run(args.steps)
    if info.is_main:
        export_safetensors(args.out, toy.final_weights(), {"world_size": info.world_size})
    barrier()
    cleanup()


if __name__ == "__main__":
    main()

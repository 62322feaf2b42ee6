"""A small bank of real operators stored with a model, so sampling needs no data set.

Sampling draws "one fixed further mask per sample at the training density" (Ambient sampler) or builds
the generator's input R̂·Â(σ_init z) (one-step sampling): both need operators distributed like the
training ones: masks, calibration centres, coil-map sets and σ_n, never the measurement values. A model
file carries BANK_SIZE of them, taken from the held-out split, as tensors named `bank.<key>`, and the
measurement's shape and dtype in its metadata. Sample i of a run uses bank entry i mod N, with its own
index i (keyed draws), so different samples get different further masks from the same entry.

    bank = operator_bank(test_set)                                  # {"masks": ..., "sigma_n": ..., ...}
    tensors = bank_tensors(bank)                                    # for export_safetensors
    ops = bank_batch(bank, range(8), "cpu")                         # a batch dict with y zeros, index 0..7
"""

from __future__ import annotations

from typing import Sequence

import torch

BANK_SIZE = 16
BANK_KEYS = ("masks", "centers", "coil_maps", "sigma_n")
PREFIX = "bank."


def operator_bank(measurement_set, size: int = BANK_SIZE) -> dict:
    """The first `size` samples' operators of a measurement set, plus y's per-sample shape and dtype."""
    from rsd_sci.data.batches import load_batch

    batch = load_batch(measurement_set, range(min(size, len(measurement_set))))
    bank = {k: batch[k] for k in BANK_KEYS if k in batch}
    bank["y_shape"], bank["y_dtype"] = list(batch["y"].shape[1:]), str(batch["y"].dtype).removeprefix("torch.")
    return bank


def bank_tensors(bank: dict) -> dict[str, torch.Tensor]:
    """The bank's tensors under `bank.<key>` names (safetensors state)."""
    return {PREFIX + k: v for k, v in bank.items() if isinstance(v, torch.Tensor)}


def bank_metadata(bank: dict) -> dict:
    return {"bank": {"y_shape": bank["y_shape"], "y_dtype": bank["y_dtype"]}}


def split_bank(state: dict[str, torch.Tensor], meta: dict) -> tuple[dict[str, torch.Tensor], dict | None]:
    """(network state without the bank, the bank or None) from a model file's tensors and metadata."""
    bank = {k[len(PREFIX):]: v for k, v in state.items() if k.startswith(PREFIX)}
    weights = {k: v for k, v in state.items() if not k.startswith(PREFIX)}
    if not bank or "bank" not in meta:
        return weights, None
    return weights, bank | meta["bank"]


def bank_batch(bank: dict, indices: Sequence[int], device: torch.device | str = "cpu") -> dict:
    """A batch dict for samples `indices`: bank entry i mod N, y zeros of the stored shape, index i."""
    index = torch.as_tensor(list(indices), dtype=torch.int64)
    rows = index % int(bank["sigma_n"].shape[0])
    batch = {k: bank[k][rows].to(device) for k in BANK_KEYS if k in bank}
    dtype = getattr(torch, bank["y_dtype"])
    batch["y"] = torch.zeros((len(index), *bank["y_shape"]), dtype=dtype, device=device)
    batch["index"] = index.to(device)
    return batch

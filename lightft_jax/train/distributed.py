"""Multi-host setup and small cross-process helpers."""

from __future__ import annotations

import json
import os

import jax
import ml_collections
import numpy as np

_ENV_HINTS = ("JAX_COORDINATOR_ADDRESS", "COORDINATOR_ADDRESS", "SLURM_JOB_ID", "TPU_WORKER_HOSTNAMES",
              "MEGASCALE_COORDINATOR_ADDRESS")


def initialize(cfg: ml_collections.ConfigDict) -> None:
  """`jax.distributed.initialize()` from `cfg.distributed` (address, count, id) or the environment.

  A config with a coordinator address wins; otherwise JAX's own cluster detection runs when the
  environment looks like a cluster (Slurm, Cloud TPU, JAX_COORDINATOR_ADDRESS); single-process otherwise.
  """
  if jax.distributed.is_initialized():
    return
  d = cfg.distributed
  if d.coordinator_address:
    if d.num_processes <= 0 or d.process_id < 0:
      raise ValueError("distributed.coordinator_address needs distributed.num_processes >= 1 and "
                       "distributed.process_id >= 0")
    jax.distributed.initialize(d.coordinator_address, num_processes=d.num_processes, process_id=d.process_id)
  elif any(k in os.environ for k in _ENV_HINTS):
    jax.distributed.initialize()


def is_main() -> bool:
  return jax.process_index() == 0


def allgather_json(obj) -> list:
  """Every process's JSON-serialisable `obj`, in process order (the same list on every process)."""
  if jax.process_count() == 1:
    return [obj]
  from jax.experimental import multihost_utils
  data = np.frombuffer(json.dumps(obj).encode(), np.uint8)
  sizes = multihost_utils.process_allgather(np.array([data.size], np.int32))
  padded = np.zeros(int(sizes.max()), np.uint8)
  padded[:data.size] = data
  rows = multihost_utils.process_allgather(padded)
  return [json.loads(bytes(r[:int(n)]).decode()) for r, n in zip(rows, sizes.reshape(-1))]


def sync(name: str) -> None:
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)

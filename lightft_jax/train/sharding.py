"""Device mesh and logical-axis sharding rules (MaxText style).

Parameters carry logical axis names (`embed`, `mlp`, `heads`, ...) in their `out_sharding` metadata; a
rules table maps each logical name to a mesh axis (`data`, `fsdp`, `tensor`) or None (replicated). Every
name must have a rule (an unknown name is an error, not a silent replication). A dimension is only
sharded when the mesh axis size divides it, and a mesh axis is used once per array.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from lightft_jax.models.extensions import axis_names

MESH_AXES = ("data", "fsdp", "tensor")

MeshAxes = str | tuple[str, ...] | None
DEFAULT_RULES: tuple[tuple[str, MeshAxes], ...] = (
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("embed_out", "tensor"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv", "tensor"),
    ("kv_heads", "tensor"),  # a [.., K, Dh] array split by key/value head (prefix-tuning slots)
    ("qkv", "tensor"),
    ("vocab", "tensor"),
    ("layers", None),
    ("norm", None),
    ("length", None),
)


def make_mesh(data: int = -1, fsdp: int = 1, tensor: int = 1, devices: Sequence[jax.Device] | None = None) -> Mesh:
  """Mesh with axes (data, fsdp, tensor); one size may be -1 (all devices left over)."""
  devices = list(jax.devices() if devices is None else devices)
  sizes = [data, fsdp, tensor]
  if sizes.count(-1) > 1:
    raise ValueError(f"at most one mesh axis may be -1, got data={data} fsdp={fsdp} tensor={tensor}")
  known = int(np.prod([s for s in sizes if s != -1]))
  if -1 in sizes:
    if len(devices) % known:
      raise ValueError(f"{len(devices)} devices do not split into mesh axes data={data} fsdp={fsdp} "
                       f"tensor={tensor}")
    sizes[sizes.index(-1)] = len(devices) // known
  if int(np.prod(sizes)) != len(devices):
    raise ValueError(f"mesh data={sizes[0]} x fsdp={sizes[1]} x tensor={sizes[2]} needs {np.prod(sizes)} "
                     f"devices, but {len(devices)} are available")
  return Mesh(np.asarray(devices).reshape(sizes), MESH_AXES)


def merge_rules(overrides: Sequence[tuple[str, MeshAxes]] = ()) -> tuple[tuple[str, MeshAxes], ...]:
  """DEFAULT_RULES with entries replaced / added by `overrides`; mesh axes are checked."""
  rules = dict(DEFAULT_RULES)
  for name, axes in overrides:
    for a in (axes,) if isinstance(axes, str) else (axes or ()):
      if a not in MESH_AXES:
        raise ValueError(f"sharding rule {name!r} -> {axes!r}: unknown mesh axis {a!r}; valid: {MESH_AXES}")
    rules[name] = tuple(axes) if isinstance(axes, list) else axes
  return tuple(rules.items())


def logical_to_spec(names: Sequence[str | None], shape: Sequence[int], mesh: Mesh,
                    rules: Sequence[tuple[str, MeshAxes]] = DEFAULT_RULES) -> P:
  """Logical axis names of one array -> mesh PartitionSpec.

  None is replicated; a name missing from `rules` is an error (a typo would otherwise silently replicate);
  a mesh axis already used by an earlier dimension, or whose size does not divide the dimension, is dropped.
  """
  table = dict(rules)
  unknown = [n for n in names if n is not None and n not in table]
  if unknown:
    raise ValueError(f"unknown logical axis name(s) {unknown} (array of shape {tuple(shape)}, axes {tuple(names)}); "
                     f"known: {sorted(table)}. Add a rule with mesh.rules to map a new name.")
  used: set[str] = set()
  out = []
  for name, dim in zip(names, shape):
    axes = table.get(name) if name is not None else None
    axes = (axes,) if isinstance(axes, str) else tuple(axes or ())
    keep = []
    for a in axes:
      size = mesh.shape[a]
      if a in used or size == 1 or dim % (size * int(np.prod([mesh.shape[k] for k in keep] or [1]))):
        continue
      keep.append(a)
    used.update(keep)
    out.append(None if not keep else keep[0] if len(keep) == 1 else tuple(keep))
  while out and out[-1] is None:
    out.pop()
  return P(*out)


def _names(var: nnx.Variable, ndim: int) -> tuple:
  names = axis_names(var)
  return names if len(names) == ndim else (None,) * ndim


def state_specs(state: nnx.State, mesh: Mesh, rules=DEFAULT_RULES) -> Any:
  """nnx.State of Variables -> pure-dict tree of mesh PartitionSpecs (same structure as `to_pure_dict`)."""
  specs = jax.tree.map(lambda v: logical_to_spec(_names(v, v[...].ndim), v[...].shape, mesh, rules), state,
                       is_leaf=lambda x: isinstance(x, nnx.Variable))
  return nnx.to_pure_dict(specs) if isinstance(specs, nnx.State) else specs


def named(mesh: Mesh, specs: Any) -> Any:
  """Tree of PartitionSpecs -> tree of NamedShardings."""
  return jax.tree.map(lambda s: NamedSharding(mesh, s), specs, is_leaf=lambda x: isinstance(x, P))


def batch_spec(mesh: Mesh, rules=DEFAULT_RULES) -> P:
  """Spec of the leading (batch) dimension of every input array."""
  axes = dict(rules).get("batch")
  axes = (axes,) if isinstance(axes, str) else tuple(axes or ())
  axes = tuple(a for a in axes if mesh.shape[a] > 1)
  return P(axes if len(axes) > 1 else axes[0] if axes else None)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def global_batch(local: dict[str, np.ndarray], mesh: Mesh, rules=DEFAULT_RULES) -> dict[str, jax.Array]:
  """This process's rows of the global batch -> global arrays sharded on the batch axis."""
  sharding = NamedSharding(mesh, batch_spec(mesh, rules))
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in local.items()}

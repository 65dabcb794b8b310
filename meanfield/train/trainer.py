"""Training a whole grid of networks (variance settings x seeds) in one jitted program.

All networks of a grid share the architecture, activation, depth and width (static: they fix the
shapes), and differ in their variances, alpha, learning rate, branch scale and seed (arrays: one leading
grid axis). Initialization, each training epoch and evaluation are ``jax.vmap`` over the grid axis of a
one-network function, and the grid axis is sharded over every device of every process
(:mod:`meanfield.parallel`), padded to a multiple of the device count. Training is float32.

A network whose loss or gradient turns NaN or inf is *diverged*: the offending update and all later
ones are masked out (its parameters stay at their last finite values), the epoch is recorded, and the
other networks of the grid carry on untouched. Each network's data order comes from its own seed, so
its result does not depend on which other networks share its grid.
"""

from __future__ import annotations

import functools
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from ..activations import Activation
from ..parallel import grid_mesh, pad_rows, replicate, shard_rows, to_host
from .config import TrainConfig
from .data import MNIST
from .model import NetworkSettings, apply, cross_entropy, init_params


def make_optimizer(cfg: TrainConfig, lr) -> optax.GradientTransformation:
    """The optimizer of ``cfg`` at learning rate ``lr`` (a number or a traced per-network scalar)."""
    if cfg.optimizer == "adam":
        return optax.adam(lr)
    return optax.sgd(lr, momentum=cfg.momentum or None)


class TrainState(NamedTuple):
    """One network's (or, with a leading grid axis, a grid's) training state."""

    params: dict
    opt_state: object
    alive: object  # bool: no non-finite loss or gradient seen yet
    diverged_epoch: object  # int32: 1-based epoch of the first non-finite step, 0 if none
    epoch_loss: object  # float32: mean training loss of the last epoch (finite steps only)


class GridResult(NamedTuple):
    """Per-network results (numpy, shape (G,)); ``val_acc`` is NaN without a validation set."""

    train_acc: np.ndarray
    val_acc: np.ndarray
    test_acc: np.ndarray
    test_loss: np.ndarray
    diverged_epoch: np.ndarray
    train_loss: np.ndarray


# ------------------------------------------------------------------------------ one-network functions
def _init_one(key, var: NetworkSettings, *, arch: str, width: int, depth: int, cfg: TrainConfig) -> TrainState:
    params = init_params(jax.random.fold_in(key, 0), var, arch=arch, width=width, depth=depth)
    opt_state = make_optimizer(cfg, var.lr).init(params)
    return TrainState(params, opt_state, jnp.array(True), jnp.array(0, jnp.int32), jnp.array(0.0, jnp.float32))


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(tree)]
    return functools.reduce(jnp.logical_and, leaves)


def _epoch_one(state: TrainState, var: NetworkSettings, key, epoch, x, y, *, arch: str, act: Activation,
               cfg: TrainConfig) -> TrainState:
    """One pass over (x, y) in this network's own random order (key, epoch) with masked updates."""
    n = x.shape[0]
    steps = n // cfg.batch
    order = jax.random.permutation(jax.random.fold_in(jax.random.fold_in(key, 1), epoch), n)
    batches = order[: steps * cfg.batch].reshape(steps, cfg.batch)
    opt = make_optimizer(cfg, var.lr)

    depth = jax.tree_util.tree_leaves(state.params["blocks"])[0].shape[0]
    mask_key = jax.random.fold_in(jax.random.fold_in(key, 2), epoch)

    def loss_fn(params, xb, yb, xi):
        logits = apply(params, var.alpha, xb, arch=arch, act=act, out_scale=var.out_scale,
                       branch_scale=var.branch_scale, layer_scale=xi)
        return cross_entropy(logits, yb)

    def step(carry, batch):
        st, loss_sum, n_ok = carry
        t, idx = batch
        # stochastic depth: each layer keeps its branch with probability survival, one draw per step
        xi = jax.random.bernoulli(jax.random.fold_in(mask_key, t), var.survival, (depth,)).astype(x.dtype)
        loss, grads = jax.value_and_grad(loss_fn)(st.params, x[idx], y[idx], xi)
        ok = jnp.isfinite(loss) & _all_finite(grads)
        keep = st.alive & ok
        updates, new_opt = opt.update(grads, st.opt_state, st.params)
        new_params = optax.apply_updates(st.params, updates)
        pick = lambda new, old: jnp.where(keep, new, old)  # noqa: E731
        st = TrainState(
            jax.tree_util.tree_map(pick, new_params, st.params),
            jax.tree_util.tree_map(pick, new_opt, st.opt_state),
            keep,
            jnp.where(st.alive & ~ok, (epoch + 1).astype(jnp.int32), st.diverged_epoch),
            st.epoch_loss,
        )
        return (st, loss_sum + jnp.where(keep, loss, 0.0), n_ok + keep), None

    zero = jnp.array(0.0, jnp.float32)
    (state, loss_sum, n_ok), _ = jax.lax.scan(step, (state, zero, jnp.array(0, jnp.int32)),
                                              (jnp.arange(steps), batches))
    epoch_loss = jnp.where(n_ok > 0, loss_sum / jnp.maximum(n_ok, 1), jnp.nan).astype(jnp.float32)
    return state._replace(epoch_loss=epoch_loss)


def _eval_one(params, var: NetworkSettings, xs, ys, split, *, arch: str, act: Activation):
    """Correct counts and summed losses, per split, over padded chunks xs (c, b, 784).

    ``split`` (c, b) marks each example 0 (padding), 1 (training set), 2 (test set) or 3 (validation
    set); returns arrays of shape (3,) for (train, test, validation). A row of logits with a NaN or inf
    counts as a wrong prediction.
    """

    def body(carry, inp):
        correct, loss_sum = carry
        xb, yb, sb = inp
        logits = apply(params, var.alpha, xb, arch=arch, act=act, out_scale=var.out_scale,
                       branch_scale=var.branch_scale, layer_scale=var.survival)  # the expected branch
        finite = jnp.all(jnp.isfinite(logits), -1)
        hit = (jnp.argmax(logits, -1) == yb) & finite
        losses = jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, yb[:, None], -1)[:, 0]
        which = sb[None, :] == jnp.array([1, 2, 3], sb.dtype)[:, None]  # (3, b)
        correct = correct + jnp.sum(which & hit[None, :], -1, dtype=jnp.int32)
        loss_sum = loss_sum + jnp.sum(jnp.where(which, losses[None, :], 0.0), -1)
        return (correct, loss_sum), None

    init = (jnp.zeros(3, jnp.int32), jnp.zeros(3, jnp.float32))
    (correct, loss_sum), _ = jax.lax.scan(body, init, (xs, ys, split))
    return correct, loss_sum


# ------------------------------------------------------------------------------------- grid programs
@functools.partial(jax.jit, static_argnames=("arch", "width", "depth", "cfg"))
def init_grid(keys, var: NetworkSettings, *, arch: str, width: int, depth: int, cfg: TrainConfig) -> TrainState:
    """Initial states of a grid: keys (G, 2) and variances (G,) -> TrainState with a leading G axis."""
    fn = functools.partial(_init_one, arch=arch, width=width, depth=depth, cfg=cfg)
    return jax.vmap(fn)(keys, var)


@functools.partial(jax.jit, static_argnames=("arch", "act", "cfg"), donate_argnums=(0,))
def train_epoch_grid(state: TrainState, var: NetworkSettings, keys, epoch, x, y, *, arch: str, act: Activation,
                     cfg: TrainConfig) -> TrainState:
    """One epoch for every network of a grid (shared data x, y; per-network order and masking)."""
    fn = functools.partial(_epoch_one, arch=arch, act=act, cfg=cfg)
    return jax.vmap(fn, in_axes=(0, 0, 0, None, None, None))(state, var, keys, epoch, x, y)


@functools.partial(jax.jit, static_argnames=("arch", "act"))
def evaluate_grid(params, var: NetworkSettings, xs, ys, split, *, arch: str, act: Activation):
    """Correct counts and summed losses (G, 3) of every network of a grid, for (train, test, validation)."""
    fn = functools.partial(_eval_one, arch=arch, act=act)
    return jax.vmap(fn, in_axes=(0, 0, None, None, None))(params, var, xs, ys, split)


def eval_chunks(data: MNIST, size: int):
    """Training, test and validation sets in one padded stack of chunks (c, size, 784), labels
    (c, size) and the split marks (c, size): 1 train, 2 test, 3 validation, 0 padding. One evaluation
    program serves every set."""
    parts = [(data.x_train, data.y_train), (data.x_test, data.y_test), (data.x_val, data.y_val)]
    x = np.concatenate([p[0] for p in parts]).astype(np.float32)
    y = np.concatenate([p[1] for p in parts]).astype(np.int32)
    split = np.concatenate([np.full(len(p[0]), i + 1, np.int32) for i, p in enumerate(parts)])
    size = min(size, len(x))
    n_chunks = -(-len(x) // size)
    pad = n_chunks * size - len(x)
    x = np.concatenate([x, np.zeros((pad, x.shape[1]), x.dtype)])
    y = np.concatenate([y, np.zeros(pad, y.dtype)])
    split = np.concatenate([split, np.zeros(pad, np.int32)])
    return x.reshape(n_chunks, size, -1), y.reshape(n_chunks, size), split.reshape(n_chunks, size)


def _broadcast(var: NetworkSettings, shape) -> NetworkSettings:
    """Every field as a float32 array of ``shape``, after checking the learning rates."""
    lr = np.asarray(np.nan if var.lr is None else var.lr, np.float64)
    if not np.all(np.isfinite(lr) & (lr > 0)):
        raise ValueError(f"lr must be given for every network, finite and > 0, got {var.lr!r}")
    return NetworkSettings(*(np.broadcast_to(np.asarray(v, np.float32), shape) for v in var))


def train_grid(var: NetworkSettings, seeds, data: MNIST, *, arch: str, act: Activation, depth: int,
               cfg: TrainConfig, devices=None,
               on_epoch: Callable[[int, TrainState], None] | None = None) -> GridResult:
    """Train G networks at once and evaluate them; returns per-network results.

    Args:
      var: the networks' settings, each broadcastable to (G,); ``lr`` is required.
      seeds: (G,) integer seeds; a network's initialization and data order depend only on its seed.
      data: standardized MNIST (any subset); training uses every training example each epoch.
      arch, act, depth: the shared architecture (a block of :mod:`meanfield.blocks`), activation and depth.
      cfg: training hyperparameters.
      devices: devices to shard the grid over, or a one-axis :class:`~jax.sharding.Mesh` (default:
        every device of every process, :func:`meanfield.parallel.grid_mesh`). Under
        ``jax.distributed`` every process calls this with the same arguments and receives every
        network's results.
      on_epoch: called after each epoch with (epoch index from 1, the grid's TrainState).
    """
    seeds = np.asarray(seeds, dtype=np.int64).ravel()
    g = len(seeds)
    if g == 0:
        raise ValueError("seeds must hold at least one seed")
    if cfg.batch > len(data.x_train):
        raise ValueError(f"batch must be <= the number of training examples ({len(data.x_train)}), got {cfg.batch}")
    var_np = _broadcast(var, (g,))
    mesh = grid_mesh(devices)
    n_dev = mesh.devices.size
    padded = -(-g // n_dev) * n_dev
    # padding repeats the last network; its results are dropped
    keys = np.stack([np.asarray(jax.random.PRNGKey(int(s))) for s in seeds])
    keys = shard_rows(pad_rows(keys, padded), mesh)
    var_dev = shard_rows(NetworkSettings(*(pad_rows(v, padded) for v in var_np)), mesh)
    x_train, y_train = replicate((data.x_train.astype(np.float32), data.y_train.astype(np.int32)), mesh)

    state = init_grid(keys, var_dev, arch=arch, width=cfg.width, depth=depth, cfg=cfg)
    for epoch in range(cfg.epochs):
        state = train_epoch_grid(state, var_dev, keys, jnp.asarray(epoch, jnp.int32), x_train, y_train,
                                 arch=arch, act=act, cfg=cfg)
        if on_epoch is not None:
            on_epoch(epoch + 1, state)

    xs, ys, split = replicate(eval_chunks(data, cfg.eval_batch), mesh)
    correct, loss = evaluate_grid(state.params, var_dev, xs, ys, split, arch=arch, act=act)
    correct, loss, diverged_epoch, epoch_loss = to_host((correct, loss, state.diverged_epoch, state.epoch_loss))
    sizes = np.array([len(data.x_train), len(data.x_test), len(data.x_val)], np.float64)
    with np.errstate(invalid="ignore"):  # no validation set: 0 / 0 = NaN
        acc = correct[:g] / sizes
        loss = loss.astype(np.float64)[:g] / sizes
    return GridResult(acc[:, 0], acc[:, 2], acc[:, 1], loss[:, 1], diverged_epoch[:g], epoch_loss[:g])


def train_sequential(var: NetworkSettings, seeds, data: MNIST, **kwargs) -> tuple[GridResult, float]:
    """The same networks trained one after another, each as a grid of one (the baseline of
    ``experiments/bench_train.py``). Keyword arguments are those of :func:`train_grid`.

    Returns the stacked results and the wall time in seconds (compilation included, unless the
    caller has trained one such network before).
    """
    seeds = np.asarray(seeds, dtype=np.int64).ravel()
    var_np = _broadcast(var, seeds.shape)
    start = time.perf_counter()
    results = [train_grid(NetworkSettings(*(v[i:i + 1] for v in var_np)), seeds[i:i + 1], data, **kwargs)
               for i in range(len(seeds))]
    seconds = time.perf_counter() - start
    return GridResult(*(np.concatenate(field) for field in zip(*results))), seconds

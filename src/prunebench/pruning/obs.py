"""Second-order pruning of one linear map: the layer Hessian, Optimal Brain Surgeon's exact
compensation, and SparseGPT (Frantar & Alistarh 2023, "SparseGPT: Massive Language Models Can
Be Accurately Pruned in One-Shot", Algorithm 1).

A linear layer ``y = W x`` with calibration inputs ``X`` has the layer-wise reconstruction loss
``||W X - W' X||^2``, the same quadratic in every output row with Hessian ``H = 2 X X^T``
(here averaged: ``H = (2/n) sum_t x_t x_t^T``). Weights are ``(out, in)``; every row is pruned
along the input dimension with that one ``H``. Pure tensor maths: the statistics are
accumulated by whoever runs the calibration data (:mod:`prunebench.pruning.layerwise`).

Precision: ``H`` is accumulated in float32 (its entries are means of products of activations,
well within range); the inverse and its Cholesky factor are computed in float64, where the
dampened ``H`` of a layer with near-collinear inputs can still be ill-conditioned, and returned
in float32 for the column sweep, which is how the reference implementation runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

Tensor = torch.Tensor


def add_to_hessian(h: Tensor | None, x: Tensor, count: int) -> tuple[Tensor, int]:
    """Fold the rows of ``x`` (``(..., in)``) into the running ``H = (2/n) sum x x^T``.

    ``h`` is the average over the ``count`` rows seen so far (``None`` before the first); the
    result is the average over ``count + rows``, in float32 (SparseGPT's running average, so
    no sum grows with the calibration size)."""
    rows = x.detach().reshape(-1, x.shape[-1]).to(torch.float32)
    new = rows.shape[0]
    if new == 0:
        if h is None:
            raise ValueError("add_to_hessian needs at least one row before the Hessian exists")
        return h, count
    total = count + new
    update = rows.T @ rows * (2.0 / total)
    if h is None:
        return update, total
    return h * (count / total) + update, total


def damped(h: Tensor, percdamp: float = 0.01) -> Tensor:
    """``H + d I`` in float64 with ``d = percdamp * mean(diag H)``; a dead input (a zero
    diagonal entry: the input was never nonzero) gets diagonal 1, as in SparseGPT, so the
    matrix stays invertible and that input's weights, which never affect the output, are free."""
    hd = h.detach().to(torch.float64).clone()
    diag = torch.diagonal(hd)
    dead = diag == 0
    hd[dead, dead] = 1.0
    mean = float(diag.mean())
    diag += percdamp * (mean if mean > 0 else 1.0)
    return hd


def damped_inverse(h: Tensor, percdamp: float = 0.01) -> Tensor:
    """``(H + d I)^-1`` (see :func:`damped`), float32."""
    return torch.cholesky_inverse(torch.linalg.cholesky(damped(h, percdamp))).to(torch.float32)


def damped_inverse_cholesky(h: Tensor, percdamp: float = 0.01) -> Tensor:
    """The upper Cholesky factor ``U`` of ``(H + d I)^-1 = U^T U`` (see :func:`damped`), float32.

    Row ``i`` of ``U`` divided by ``U_ii`` is the OBS update for removing weight ``i`` once the
    weights before it are fixed: what SparseGPT's left-to-right sweep needs."""
    inverse = torch.cholesky_inverse(torch.linalg.cholesky(damped(h, percdamp)))
    return torch.linalg.cholesky(inverse, upper=True).to(torch.float32)


@contextmanager
def one_thread() -> Iterator[None]:
    """Run a sweep of many small tensor operations on one thread, restoring torch's count after.

    Each column step touches a few thousand numbers: split over threads, the synchronisation
    costs more than the arithmetic (on a busy 2-core machine, 20x the single-thread time)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def dead_inputs(h: Tensor) -> Tensor:
    """The inputs never seen nonzero during calibration (``diag H == 0``)."""
    return torch.diagonal(h) == 0


def _block_quotas(target: int, free: Tensor, earlier: Tensor) -> Tensor:
    """Weights to prune per unit (a row, or the whole layer) in each block of columns:
    ``(units, blocks)`` counts adding up to exactly ``target`` per unit, with every earlier
    pruned weight among them and the rest spread over the blocks in proportion to their free
    weights (cumulative rounding, so no block drifts the total)."""
    extra = target - earlier.sum(dim=1)
    if bool((extra < 0).any()):
        raise ValueError("the earlier mask prunes more weights than the target")
    cumulative = free.cumsum(dim=1).to(torch.float64)
    total = cumulative[:, -1:].clamp(min=1)
    spread = torch.round(extra.unsqueeze(1).to(torch.float64) * cumulative / total).to(torch.long)
    return earlier + torch.diff(spread, dim=1, prepend=torch.zeros_like(spread[:, :1]))


def sparsegpt_prune(
    weight: Tensor,
    h: Tensor,
    *,
    sparsity: float | None = None,
    n: int | None = None,
    m: int | None = None,
    per_row: bool = False,
    pruned: Tensor | None = None,
    blocksize: int = 128,
    percdamp: float = 0.01,
) -> tuple[Tensor, Tensor]:
    """SparseGPT on one ``(out, in)`` weight: ``(new weight, keep mask)``.

    Columns are swept left to right in blocks of ``blocksize``. At the start of each block its
    mask is chosen adaptively from the current (already compensated) weights by the OBS
    saliency ``w^2 / [U]_cc^2``; then each column's pruned weights are removed and the error
    is spread over the columns to its right with the Cholesky rows of ``H^-1``.

    Unstructured (``sparsity``): the paper prunes the lowest saliencies across the whole
    block (``per_row=False``); ``per_row=True`` prunes the same count in every row. The layer
    loses exactly ``round(sparsity * in)`` weights per row on average (exactly per row with
    ``per_row``). N:M (``n`` kept of every ``m`` consecutive inputs): each group's mask is
    chosen when the sweep reaches it, so it sees the updates of the groups before it.
    ``pruned`` (unstructured only) marks weights an earlier mask pruned: they are pruned again,
    first, so the new mask only shrinks the earlier one.
    """
    out_features, in_features = weight.shape
    if (sparsity is None) == (n is None or m is None):
        raise ValueError("sparsegpt_prune needs either sparsity or n and m")
    if n is not None and m is not None:
        if not 0 < n < m or in_features % m:
            raise ValueError(f"N:M {n}:{m} needs 0 < N < M and M dividing {in_features} inputs")
        if pruned is not None:
            raise ValueError("N:M cannot refine an earlier mask")
    elif sparsity is not None and not 0 <= sparsity < 1:
        raise ValueError(f"sparsity {sparsity} outside [0, 1)")
    with one_thread():  # small operations throughout: see one_thread
        return _sparsegpt(weight, h, sparsity, n, m, per_row, pruned, blocksize, percdamp)


def _sparsegpt(
    weight: Tensor, h: Tensor, sparsity: float | None, n: int | None, m: int | None, per_row: bool,
    pruned: Tensor | None, blocksize: int, percdamp: float,
) -> tuple[Tensor, Tensor]:
    out_features, in_features = weight.shape
    if m is not None:
        blocksize = max(m, blocksize - blocksize % m)  # a group never straddles two blocks
    w = weight.detach().to(torch.float32).clone()
    w[:, dead_inputs(h)] = 0
    u = damped_inverse_cholesky(h, percdamp)
    prune = torch.zeros_like(w, dtype=torch.bool)
    forced = torch.zeros_like(prune) if pruned is None else pruned.to(device=w.device, dtype=torch.bool)
    starts = range(0, in_features, blocksize)
    quotas: Tensor | None = None
    if sparsity is not None:
        # per block (columns), per unit (rows, or the layer as one unit)
        earlier = torch.stack([forced[:, s : s + blocksize].sum(dim=1) for s in starts], dim=1)
        widths = torch.tensor([min(blocksize, in_features - s) for s in starts])
        free = widths.unsqueeze(0) - earlier
        if not per_row:
            earlier, free = earlier.sum(dim=0, keepdim=True), free.sum(dim=0, keepdim=True)
        target = round(sparsity * in_features) * (1 if per_row else out_features)
        quotas = _block_quotas(target, free, earlier)

    _sweep(w, u, prune, forced, starts, blocksize, quotas, per_row, n, m)
    keep = ~prune
    w[prune] = 0
    return w.to(weight.dtype), keep


def _sweep(
    w: Tensor, u: Tensor, prune: Tensor, forced: Tensor, starts: range, blocksize: int,
    quotas: Tensor | None, per_row: bool, n: int | None, m: int | None,
) -> None:
    """SparseGPT's column sweep over ``w`` in place, recording the pruned entries in ``prune``."""
    in_features = w.shape[1]
    for block, start in enumerate(starts):
        end = min(start + blocksize, in_features)
        w1 = w[:, start:end].clone()
        u1 = u[start:end, start:end]
        d1 = torch.diagonal(u1)
        err1 = torch.zeros_like(w1)
        p1 = torch.zeros_like(w1, dtype=torch.bool)
        if quotas is not None:
            saliency = (w1.square() / d1.square()).masked_fill(forced[:, start:end], -torch.inf)
            p1 = _lowest(saliency, quotas[:, block], per_row)
        for i in range(end - start):
            if m is not None and n is not None and i % m == 0:
                group = w1[:, i : i + m].square() / d1[i : i + m].square()
                lowest = torch.topk(group, m - n, dim=1, largest=False).indices
                p1[:, i : i + m].scatter_(1, lowest, True)
            col = w1[:, i]
            err = torch.where(p1[:, i], col, torch.zeros_like(col)) / d1[i]
            w1[:, i:].addr_(err, u1[i, i:], alpha=-1)
            err1[:, i] = err
        w1[p1] = 0
        w[:, start:end] = w1
        prune[:, start:end] = p1
        w[:, end:] -= err1 @ u[start:end, end:]


def _lowest(saliency: Tensor, counts: Tensor, per_row: bool) -> Tensor:
    """The ``counts[r]`` lowest entries of every row ``r`` (``per_row``), or the ``counts[0]``
    lowest of the whole tensor, as a boolean mask."""
    flat = saliency if per_row else saliency.reshape(1, -1)
    order = flat.argsort(dim=1, stable=True)
    ranks = torch.arange(flat.shape[1], device=flat.device).expand_as(flat)
    chosen = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, order, ranks < counts.to(flat.device).unsqueeze(1))
    return chosen.reshape(saliency.shape)


def obs_update(weight: Tensor, h_inv: Tensor, keep: Tensor, *, max_elements: int = 1 << 24) -> Tensor:
    """The exact multi-weight OBS compensation (Hassibi & Stork 1993, generalised to a set of
    weights as in Kurtic et al. 2022): for each row with pruned set ``Q``,
    ``delta = -w_Q [H^-1]_QQ^-1 [H^-1]_Q,:``, the minimiser of ``(w'-w) H (w'-w)^T`` subject to
    ``w'_Q = 0``. ``h_inv`` is the (damped) inverse Hessian, e.g. :func:`damped_inverse`.

    Returns the new weight (pruned entries exactly zero). Rows with the same number of pruned
    weights are solved together in chunks of at most ``max_elements`` matrix entries."""
    w = weight.detach().to(torch.float64).clone()
    hinv = h_inv.detach().to(torch.float64)
    prune = ~keep.to(torch.bool)
    counts = prune.sum(dim=1)
    for k in counts.unique().tolist():
        if k == 0:
            continue
        rows = torch.nonzero(counts == k).flatten()
        chunk = max(1, max_elements // (k * max(k, w.shape[1])))
        for part in rows.split(chunk):
            q = torch.nonzero(prune[part])[:, 1].reshape(len(part), k)  # sorted pruned columns per row
            hqq = hinv[q.unsqueeze(2), q.unsqueeze(1)]  # (rows, k, k)
            hq = hinv[q]  # (rows, k, in)
            wq = torch.gather(w[part], 1, q).unsqueeze(1)  # (rows, 1, k)
            # Hqq, a principal block of a positive definite inverse, is positive definite: a Cholesky
            # solve fits it, and torch 2.13's batched LU solve fails on the CPU (oneMKL's DLASWP
            # refuses its pivots) for batches of blocks of about 250 or more on 2 threads.
            factor = torch.linalg.cholesky(hqq)
            coef = torch.cholesky_solve(wq.transpose(1, 2), factor).transpose(1, 2)  # w_Q Hqq^-1 (Hqq symmetric)
            w[part] -= (coef @ hq).squeeze(1)
    w[prune] = 0
    return w.to(weight.dtype)

"""The second-order maths of one linear layer: Hessian, OBS compensation, SparseGPT."""

from __future__ import annotations

import pytest
import torch

from prunebench.pruning.obs import (
    add_to_hessian,
    damped,
    damped_inverse,
    damped_inverse_cholesky,
    obs_update,
    sparsegpt_prune,
)


def layer(out: int = 8, inp: int = 16, tokens: int = 200, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(tokens, inp, generator=g) @ torch.randn(inp, inp, generator=g)  # correlated inputs
    return torch.randn(out, inp, generator=g), x


def reconstruction_error(w: torch.Tensor, w2: torch.Tensor, x: torch.Tensor) -> float:
    return float(torch.linalg.norm(x @ w.T - x @ w2.T))


def test_hessian_running_average_equals_the_batch_formula() -> None:
    _, x = layer()
    h, n = add_to_hessian(None, x[:70], 0)
    h, n = add_to_hessian(h, x[70:].reshape(2, 65, 16), n)  # leading dims are rows too
    assert n == 200 and h.dtype == torch.float32
    torch.testing.assert_close(h, 2 * x.T @ x / 200, rtol=1e-5, atol=1e-4)


def test_damping_and_dead_inputs() -> None:
    h = torch.diag(torch.tensor([2.0, 0.0, 4.0]))
    hd = damped(h, 0.01)
    # the dead input gets diagonal 1 before the mean is taken: mean(2, 1, 4) = 7/3
    torch.testing.assert_close(torch.diagonal(hd), torch.tensor([2.0, 1.0, 4.0], dtype=torch.float64) + 0.07 / 3)
    u = damped_inverse_cholesky(h, 0.01)
    assert torch.equal(u, torch.triu(u))
    torch.testing.assert_close(u.T @ u, damped_inverse(h, 0.01), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(damped_inverse(h, 0.01).double() @ hd, torch.eye(3, dtype=torch.float64), atol=1e-6, rtol=0)


def test_obs_update_is_the_least_squares_optimum_for_its_mask() -> None:
    w, x = layer()
    h = 2 * x.T @ x / len(x)
    keep = torch.rand(w.shape, generator=torch.Generator().manual_seed(1)) > 0.4  # a different count per row
    new = obs_update(w, torch.linalg.inv(h.double()), keep)
    assert torch.all(new[~keep] == 0)
    for r in range(w.shape[0]):  # direct least squares on the kept inputs of each row
        k = keep[r]
        solution = torch.linalg.lstsq(x[:, k].double(), (x.double() @ w[r].double()).unsqueeze(1)).solution
        torch.testing.assert_close(new[r, k].double(), solution.squeeze(1), rtol=1e-3, atol=1e-4)


def test_obs_update_solves_a_batch_of_large_pruned_sets_on_two_threads() -> None:
    """Rows with the same pruned count are solved as one batch. torch 2.13's batched LU solve
    fails on the CPU for batches of blocks of about 250 on 2 threads (oneMKL rejects its pivots),
    so the update factors the blocks by Cholesky; each row must equal its own solve."""
    g = torch.Generator().manual_seed(3)
    n, pruned = 300, 249
    a = torch.randn(n, n, generator=g, dtype=torch.float64)
    hinv = torch.linalg.inv(a @ a.T / n + torch.eye(n, dtype=torch.float64))
    w = torch.randn(4, n, generator=g, dtype=torch.float64)
    keep = torch.ones_like(w, dtype=torch.bool)
    for r in range(4):
        keep[r, torch.randperm(n, generator=g)[:pruned]] = False
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        new = obs_update(w, hinv, keep)
    finally:
        torch.set_num_threads(threads)
    for r in range(4):
        q = torch.nonzero(~keep[r]).flatten()
        expected = w[r] - torch.linalg.solve(hinv[q][:, q], w[r, q]) @ hinv[q]
        expected[q] = 0
        torch.testing.assert_close(new[r], expected, rtol=1e-9, atol=1e-9)


def test_obs_update_of_one_weight_is_the_closed_form() -> None:
    w, x = layer(out=1)
    hinv = damped_inverse(2 * x.T @ x / len(x))
    keep = torch.ones_like(w, dtype=torch.bool)
    keep[0, 5] = False
    expected = w - w[0, 5] / hinv[5, 5] * hinv[5]
    expected[0, 5] = 0
    torch.testing.assert_close(obs_update(w, hinv, keep), expected, rtol=1e-5, atol=1e-6)


def test_sparsegpt_single_weight_matches_obs_closed_form() -> None:
    w, x = layer(out=1)
    h = 2 * x.T @ x / len(x)
    w[0, 0] = 1e-3  # the lowest saliency: SparseGPT removes it first, before any column is fixed
    new, keep = sparsegpt_prune(w, h, sparsity=1 / 16)
    assert keep.sum() == 15 and not keep[0, 0]
    hinv = damped_inverse(h)
    expected = w - w[0, 0] / hinv[0, 0] * hinv[0]
    expected[0, 0] = 0
    torch.testing.assert_close(new, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("per_row", [False, True])
def test_sparsegpt_beats_magnitude_and_counts_exactly(per_row: bool) -> None:
    w, x = layer(out=12, inp=40)
    h, _ = add_to_hessian(None, x, 0)
    new, keep = sparsegpt_prune(w, h, sparsity=0.5, per_row=per_row, blocksize=16)  # 3 blocks, the last partial
    assert int((~keep).sum()) == 12 * 20
    if per_row:
        assert torch.all((~keep).sum(dim=1) == 20)
    assert torch.all(new[~keep] == 0) and torch.all(new[keep] != 0)
    threshold = w.abs().flatten().kthvalue(12 * 20).values
    magnitude = torch.where(w.abs() > threshold, w, torch.zeros_like(w))
    assert int((magnitude == 0).sum()) == 12 * 20
    assert reconstruction_error(w, new, x) < reconstruction_error(w, magnitude, x)
    # OBS on SparseGPT's own mask is the optimum for that mask: SparseGPT is close to it, not below
    best = obs_update(w, damped_inverse(h), keep)
    assert reconstruction_error(w, best, x) <= reconstruction_error(w, new, x) * 1.001


@pytest.mark.parametrize(("n", "m"), [(2, 4), (4, 8), (1, 3)])
def test_sparsegpt_nm_keeps_exactly_n_per_group_along_inputs(n: int, m: int) -> None:
    w, x = layer(out=6, inp=24)
    new, keep = sparsegpt_prune(w, 2 * x.T @ x, n=n, m=m, blocksize=10)  # blocksize rounds down to a multiple of m
    assert torch.all(keep.reshape(6, 24 // m, m).sum(dim=2) == n)
    assert torch.all(new[~keep] == 0)


def test_sparsegpt_rejects_bad_targets() -> None:
    w, x = layer(inp=16)
    h = x.T @ x
    with pytest.raises(ValueError, match="divid"):
        sparsegpt_prune(w, h, n=2, m=3)
    with pytest.raises(ValueError, match="either"):
        sparsegpt_prune(w, h)
    with pytest.raises(ValueError, match="outside"):
        sparsegpt_prune(w, h, sparsity=1.0)


def test_sparsegpt_zeroes_weights_of_dead_inputs_first() -> None:
    w, x = layer()
    x[:, 3] = 0
    new, keep = sparsegpt_prune(w, 2 * x.T @ x / len(x), sparsity=0.25)
    assert torch.isfinite(new).all()
    assert torch.all(new[:, 3] == 0)  # dead weights cost nothing, so they are pruned first
    assert not keep[:, 3].any()


@pytest.mark.parametrize("per_row", [False, True])
def test_sparsegpt_keeps_earlier_pruned_weights_pruned(per_row: bool) -> None:
    w, x = layer(out=6, inp=40)
    h = 2 * x.T @ x / len(x)
    _, first = sparsegpt_prune(w, h, sparsity=0.3, per_row=per_row, blocksize=16)
    earlier = ~first
    earlier[0, :3] = True  # beyond the earlier selection: an earlier mask from anywhere
    new, keep = sparsegpt_prune(w, h, sparsity=0.6, per_row=per_row, pruned=earlier, blocksize=16)
    assert not (keep & earlier).any()  # only shrinks
    assert int((~keep).sum()) == 6 * 24
    if per_row:
        assert torch.all((~keep).sum(dim=1) == 24)
    assert torch.all(new[~keep] == 0)
    with pytest.raises(ValueError, match="earlier mask prunes more"):
        sparsegpt_prune(w, h, sparsity=0.1, pruned=earlier)

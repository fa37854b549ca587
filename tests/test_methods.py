"""SNIP, GraSP and SynFlow against hand computations; N:M and block structures."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from prunebench.errors import ConfigError
from prunebench.pruning import STRATEGIES, Mask, ScoreInputs
from prunebench.pruning.rounds import scores_for_selection
from prunebench.pruning.scores.grasp import hessian_gradient_product
from prunebench.pruning.scores.synflow import synaptic_flow
from prunebench.pruning.structures import (
    check_structure,
    parse_structure,
    select_blocks,
    select_nm,
    structure_violations,
)


def inputs_for(model: nn.Module, batches) -> ScoreInputs:  # type: ignore[no-untyped-def]
    params = {n: p for n, p in model.named_parameters() if n.endswith("weight")}
    return ScoreInputs(model, params, batches, F.cross_entropy, torch.Generator().manual_seed(0))


def synflow_scores(model: nn.Module, batches, keep: int, rounds: int = 100):  # type: ignore[no-untyped-def]
    """SynFlow's scores as the selection layer drives its rounds towards ``keep`` entries."""
    strategy = STRATEGIES.get("synflow")
    return scores_for_selection(strategy, inputs_for(model, batches), strategy.parse_options({"rounds": rounds}), keep)


def test_snip_scores_equal_abs_gradient_times_weight_by_hand() -> None:
    torch.manual_seed(1)
    layer = nn.Linear(4, 3, bias=False)
    x, y = torch.randn(5, 4), torch.tensor([0, 2, 1, 1, 0])
    # cross-entropy of logits W x: dL/dW = (softmax(W x) - onehot(y))^T x / batch
    probs = torch.softmax(x @ layer.weight.detach().T, dim=1)
    grad = (probs - F.one_hot(y, 3).float()).T @ x / 5
    scores = STRATEGIES.get("snip")(inputs_for(layer, [(x, y)]))
    torch.testing.assert_close(scores["weight"], (grad * layer.weight.detach()).abs())


def test_snip_uses_only_its_first_batch_by_default() -> None:
    torch.manual_seed(2)
    layer = nn.Linear(4, 3, bias=False)
    one = (torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1]))
    other = (torch.randn(5, 4), torch.tensor([2, 2, 1, 0, 1]))
    snip = STRATEGIES.get("snip")
    torch.testing.assert_close(snip(inputs_for(layer, [one, other]))["weight"], snip(inputs_for(layer, [one]))["weight"])
    assert not torch.allclose(snip(inputs_for(layer, [one]))["weight"], snip(inputs_for(layer, [other]))["weight"])


def tiny_mlp() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()


def test_grasp_hessian_gradient_product_matches_finite_differences() -> None:
    model = tiny_mlp()
    x, y = torch.randn(6, 3, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    params = dict(model.named_parameters())
    g, hg = hessian_gradient_product(model, params, (x, y), F.cross_entropy, temperature=2.0)

    def gradient_at(shift: float) -> list[torch.Tensor]:
        with torch.no_grad():
            for name, p in params.items():
                p.add_(shift * g[name])
        grads = torch.autograd.grad(F.cross_entropy(model(x) / 2.0, y), list(params.values()))
        with torch.no_grad():
            for name, p in params.items():
                p.sub_(shift * g[name])
        return list(grads)

    eps = 1e-5
    plus, minus = gradient_at(eps), gradient_at(-eps)
    for (name, _), a, b in zip(params.items(), plus, minus):
        torch.testing.assert_close(hg[name], (a - b) / (2 * eps), rtol=1e-5, atol=1e-8)


def test_grasp_scores_are_weight_times_hg_with_the_paper_temperature() -> None:
    model = tiny_mlp()
    x, y = torch.randn(6, 3, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    inputs = inputs_for(model, [(x, y)])
    _, hg = hessian_gradient_product(model, inputs.params, (x, y), F.cross_entropy, temperature=200.0)
    scores = STRATEGIES.get("grasp")(inputs)
    for name, p in inputs.params.items():  # GraSP's S(-w) = -w * Hg; the lowest -S is pruned
        torch.testing.assert_close(scores[name], p.detach() * hg[name])


def linear_chain() -> nn.Module:
    chain = nn.Sequential(nn.Linear(3, 2, bias=False), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        chain[0].weight.copy_(torch.tensor([[1.0, -2.0, 3.0], [0.5, 4.0, -1.0]]))
        chain[1].weight.copy_(torch.tensor([[2.0, -1.0], [-3.0, 0.25]]))
    return chain


def test_synflow_scores_equal_path_products_on_a_linear_chain() -> None:
    chain = linear_chain()
    w1, w2 = chain[0].weight.detach().abs(), chain[1].weight.detach().abs()
    copy = linear_chain().double().eval()
    flow = synaptic_flow(copy, dict(copy.named_parameters()), (3,))
    # every input-output path through w1[j, i] is w2[k, j] * w1[j, i] for some k (inputs are 1)
    expected_1 = w1 * w2.sum(dim=0).unsqueeze(1)
    expected_2 = w2 * w1.sum(dim=1).unsqueeze(0)
    torch.testing.assert_close(flow["0.weight"].float(), expected_1)
    torch.testing.assert_close(flow["1.weight"].float(), expected_2)


def test_synflow_is_data_free_and_leaves_the_model_alone() -> None:
    chain = linear_chain()
    before = {k: v.clone() for k, v in chain.state_dict().items()}
    one = [(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))]
    other = [(torch.randn(4, 3) * 100, torch.ones(4, dtype=torch.long))]
    a = synflow_scores(chain, one, keep=5)
    b = synflow_scores(chain, other, keep=5)
    for name in a:
        torch.testing.assert_close(a[name], b[name])
        torch.testing.assert_close(chain.state_dict()[name], before[name])


def test_synflow_rounds_rank_earlier_pruned_entries_lowest() -> None:
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(6, 8, bias=False), nn.ReLU(), nn.Linear(8, 4, bias=False))
    batch = [(torch.randn(2, 6), torch.zeros(2, dtype=torch.long))]
    total = 6 * 8 + 8 * 4
    scores = synflow_scores(model, batch, keep=10, rounds=5)
    flat = torch.cat([s.reshape(-1) for s in scores.values()])
    survivors = flat > 6  # survivors score rounds + 1 + flow; pruned ones their round (1..5)
    assert int(survivors.sum()) == 10
    assert int((flat <= 5).sum()) == total - 10


def test_nm_masks_keep_exactly_n_of_every_m_inputs() -> None:
    torch.manual_seed(5)
    scores = {"fc": torch.randn(6, 8), "conv": torch.randn(4, 8, 3, 3)}
    structure = parse_structure("2:4")
    mask = select_nm(scores, structure)
    assert mask["fc"].reshape(6, 2, 4).sum(dim=2).eq(2).all()
    assert mask["conv"].movedim(1, -1).reshape(-1, 4).sum(dim=1).eq(2).all()
    assert mask.kept == mask.total // 2
    check_structure(mask, structure)


def test_nm_keeps_the_highest_scores_of_each_group() -> None:
    scores = {"fc": torch.tensor([[0.1, 0.9, 0.5, 0.2, 3.0, 2.0, 1.0, 0.0]])}
    mask = select_nm(scores, parse_structure("2:4"))
    assert mask["fc"].tolist() == [[False, True, True, False, True, True, False, False]]


def test_structure_check_reports_broken_masks() -> None:
    broken = Mask({"fc": torch.tensor([[True, True, True, False]])})
    assert structure_violations(broken, parse_structure("2:4"))
    with pytest.raises(ValueError, match="exactly 2"):
        check_structure(broken, parse_structure("2:4"))
    partial = Mask({"fc": torch.tensor([[True, False], [True, True]])})
    with pytest.raises(ValueError, match="partly kept"):
        check_structure(partial, parse_structure("block:2x2"))


def test_blocks_are_kept_whole_ranked_by_their_score_sums() -> None:
    scores = {"fc": torch.tensor([
        [1.0, 1.0, 0.0, 0.1],
        [1.0, 1.0, 0.1, 0.0],
        [5.0, 0.0, 0.2, 0.2],
        [0.0, 0.0, 0.2, 0.2],
    ])}
    structure = parse_structure("block:2x2")
    mask = select_blocks(scores, keep=8, structure=structure)
    expected = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]], dtype=torch.bool)
    assert torch.equal(mask["fc"], expected)  # block sums 4, 0.2, 5, 0.8: keep the two largest
    check_structure(mask, structure)


@pytest.mark.parametrize("text", ["4:2", "0:4", "block:1x1", "2-4", "block:2"])
def test_bad_structures_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="prune.structure"):
        parse_structure(text)


def test_nm_refuses_layers_whose_inputs_do_not_divide() -> None:
    with pytest.raises(ConfigError, match="not a multiple of 4"):
        select_nm({"fc": torch.randn(3, 6)}, parse_structure("2:4"))


def test_unquoted_yaml_nm_is_refused_with_a_hint() -> None:
    from prunebench.spec import build_specs

    with pytest.raises(ConfigError, match=r"prune\.structure: got the number 124: quote N:M"):
        build_specs({"dataset": "synthetic", "model": "mlp", "prune": {"structure": 124}})  # YAML 1.1 reads 2:4 as 124

"""RIA and DSnoT: hand-computed cases on tiny layers, direct reimplementations of the papers'
formulas on random layers, the statistics the driver collects, and runs on a tiny Llama (through
`prune_causal_lm` and `prunebench run`). Their contract (exact counts in every scope, N:M, masks
that only shrink, no weight moved) is tests/test_strategy_contract.py's, which covers every
registered method."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from prunebench.errors import ConfigError
from prunebench.pruning.layerwise import keep_from_scores, prune_causal_lm
from prunebench.pruning.scores import STRATEGIES, LayerStatistics, LayerTarget
from prunebench.pruning.scores.dsnot import DSnoTOptions, dsnot_refine, refinable_bases
from prunebench.pruning.scores.ria import RIAOptions, ria_scores

transformers = pytest.importorskip("transformers")

from lm_tiny import CORPUS, tiny_llama, tiny_tokenizer  # noqa: E402

VOCAB = 300


def calibration(n: int = 3, length: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (n, length), generator=torch.Generator().manual_seed(seed))


def block_input(model: Any, module: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """What ``module`` reads, ``(sequences, seq_len, in)``, when the dense model runs ``tokens``."""
    seen: list[torch.Tensor] = []
    handle = module.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    with torch.no_grad():
        model(input_ids=tokens, use_cache=False)
    handle.remove()
    return torch.cat(seen)


# --- RIA ---------------------------------------------------------------------------------------


def test_ria_scores_a_hand_computed_layer() -> None:
    """W = [[1, -2, 3], [4, 0, -1]], ||X||_2 = [2, 1, 4]. Row sums of |W| 6 and 5, column sums
    5, 2 and 4; relative importance |W|/row + |W|/column = [[11/30, 4/3, 5/4], [8/5, 0, 9/20]],
    times ||X_j||^0.5 = [sqrt 2, 1, 2]."""
    weight = torch.tensor([[1.0, -2.0, 3.0], [4.0, 0.0, -1.0]])
    stats = LayerStatistics(tokens=5, sq_norms=torch.tensor([4.0, 1.0, 16.0]))
    expected = torch.tensor([[11 / 30 * math.sqrt(2), 4 / 3, 5 / 2], [8 / 5 * math.sqrt(2), 0.0, 9 / 10]])
    scores = ria_scores(weight, stats, RIAOptions(), torch.Generator())
    assert torch.allclose(scores, expected, rtol=1e-6, atol=0)
    with_a_1 = ria_scores(weight, stats, RIAOptions(a=1.0), torch.Generator())
    assert torch.allclose(with_a_1, expected * torch.tensor([math.sqrt(2), 1.0, 2.0]), rtol=1e-6, atol=0)
    # the reference's default: one threshold over the layer prunes 0, 11/30 sqrt 2 = 0.519 and 0.9
    layer = keep_from_scores(scores, LayerTarget(sparsity=0.5, scope="layer"))
    assert layer.tolist() == [[False, True, True], [True, False, False]]
    row = keep_from_scores(scores, LayerTarget(sparsity=0.5, scope="row"))  # round(1.5) = 2 pruned per row
    assert row.tolist() == [[False, False, True], [True, False, False]]


def test_ria_equals_the_papers_formula_on_a_random_layer_and_stays_finite_on_empty_rows() -> None:
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(7, 11, generator=generator)
    weight[2] = 0  # a whole row and a whole column pruned earlier: 0/0 must not make NaN
    weight[:, 5] = 0
    sq_norms = torch.rand(11, generator=generator) * 10
    a = 0.7
    w = weight.abs().double()
    rows, columns = w.sum(dim=1, keepdim=True), w.sum(dim=0, keepdim=True)
    reference = (torch.nan_to_num(w / rows) + torch.nan_to_num(w / columns)) * sq_norms.double().sqrt() ** a
    scores = ria_scores(weight, LayerStatistics(tokens=1, sq_norms=sq_norms), RIAOptions(a=a), torch.Generator())
    assert torch.isfinite(scores).all()
    assert torch.allclose(scores.double(), reference, rtol=1e-5, atol=1e-7)


def test_ria_defaults_are_the_references() -> None:
    method = STRATEGIES.get("ria")
    form = method.form("language_model")
    assert form is not None and form.needs == "norms" and not form.reconstructs
    assert form.default_scope == "layer" and form.scopes == ("layer", "row")  # --per_outneuron off
    assert method.parse_options(None) == RIAOptions(a=0.5)
    with pytest.raises(ConfigError, match=r"^prune.options.a: .*greater than or equal to 0.*\(strategy ria\)$"):
        method.parse_options({"a": -1})


def test_ria_in_the_driver_scores_a_block_from_its_dense_inputs() -> None:
    """Block 0's q_proj: the mask equals the formula on the norms of what it reads (per layer, the
    run's seed drawing ties), so the driver feeds RIA the same statistic it feeds Wanda."""
    model, tokens = tiny_llama(), calibration()
    q_proj = model.model.layers[0].self_attn.q_proj
    x = block_input(model, q_proj, tokens)
    dense = q_proj.weight.detach().clone()
    outcome = prune_causal_lm(model, tokens, "ria", sparsity=0.5, seed=3)
    name = "model.layers.0.self_attn.q_proj.weight"
    stats = LayerStatistics(tokens=x.shape[0] * x.shape[1], sq_norms=x.reshape(-1, x.shape[-1]).square().sum(dim=0))
    expected = keep_from_scores(ria_scores(dense, stats, RIAOptions(), torch.Generator()),
                                LayerTarget(sparsity=0.5, scope="layer"), name=name, seed=3)
    assert torch.equal(outcome.mask[name], expected)
    assert not torch.equal(outcome.mask[name], prune_causal_lm(tiny_llama(), tokens, "wanda", sparsity=0.5,
                                                               scope="layer", seed=3).mask[name])


# --- DSnoT -------------------------------------------------------------------------------------


def stats_for(sums: list[float], variance: list[float], sq_norms: list[float], sequences: int = 2) -> LayerStatistics:
    return LayerStatistics(tokens=8, sq_norms=torch.tensor(sq_norms), sums=torch.tensor(sums),
                           variance=torch.tensor(variance), sequences=sequences)


def refine(weight: list[list[float]], stats: LayerStatistics, keep: list[list[bool]], target: LayerTarget,
           scores: list[list[float]] | None = None, **options: Any) -> list[list[bool]]:
    w = torch.tensor(weight)
    chosen = DSnoTOptions(**{"skip_layer": "no_skip", **options})
    out = dsnot_refine(w, stats, torch.tensor(scores) if scores is not None else w.abs(), torch.tensor(keep), target,
                       chosen, name="model.layers.0.self_attn.q_proj.weight", generator=torch.Generator())
    return out.tolist()


def test_dsnot_unstructured_swaps_a_hand_computed_row() -> None:
    """Row 0: W = [1, 2, -1, 0.5, -3, 1], each feature summed over a sequence S = [1, 1, 1, 2, 1, -1]
    (sums over 2 sequences, halved), so D = W S = [1, 2, -1, 1, -3, -1]; variances [1, 1, 0.25, 1,
    1, 4], so D / Var = [1, 2, -4, 1, -3, -0.25]; unit norms, so Wanda's score is |W|. Base mask
    keeps 1, 3, 4: e = D0 + D2 + D5 = -1.
    1: e < 0: regrow the pruned weight of most negative D/Var, 2 (-4, not 5: its variance is
       larger); prune the kept weight of positive D with the lowest Wanda score, 3 (0.5 < 2):
       e = -1 + D3 - D2 = 1.
    2: e > 0: regrow 0 (the only positive pruned); prune 4 (the only negative kept): e = -3.
    3: e < 0: regrow 5; prune 1: e = 0, at most the threshold: done.
    Row 1 starts at |e| = 0.05 <= 0.1 and keeps its mask."""
    weight = [[1.0, 2.0, -1.0, 0.5, -3.0, 1.0], [1.0, 2.0, -1.0, 0.5, -3.0, 0.05]]
    stats = stats_for(sums=[2.0, 2.0, 2.0, 4.0, 2.0, -2.0], variance=[1.0, 1.0, 0.25, 1.0, 1.0, 4.0], sq_norms=[1.0] * 6)
    keep = [[False, True, False, True, True, False], [True, True, True, True, True, False]]
    target = LayerTarget(sparsity=0.5)
    assert refine(weight, stats, keep, target) == [[True, False, True, False, False, True], keep[1]]
    assert refine(weight, stats, keep, target, max_cycle_time=2)[0] == [True, True, True, False, False, False]
    assert refine(weight, stats, keep, target, update_threshold=1.5)[0] == keep[0]  # |e| = 1: nothing to do
    # one cycle: 2 is regrown before 5 (both D = -1) because its input varies less
    assert refine(weight, stats, keep, target, max_cycle_time=1)[0] == [False, True, True, False, True, False]


def test_dsnot_nm_swaps_inside_a_group_while_the_error_keeps_its_sign() -> None:
    """2:4, D = W = [1, -2, 1.5, 0.5 | -0.5, 1.2, 2.5, -0.8] (unit sums, one sequence), base
    scores [0.1, 0.6, 0.5, 0.2 | 0.7, 0.3, 0.8, 0.4] keep 1, 2 | 4, 6: e = D0 + D3 + D5 + D7 = 1.9.
    1: regrow 5 (largest D); in its group the kept weight of lowest score is 4: e = 1.9 - 0.5
       - 1.2 = 0.2, still positive: done.
    2: regrow 0; in group 0 the lowest kept is 2 (0.5 < 0.6): e = 0.2 + 1.5 - 1 = 0.7.
    3: regrow 3; group 0's only originally kept weight left is 1: e would be 0.7 - 2 - 0.5 = -1.8,
       the other sign: the row stops."""
    weight = [[1.0, -2.0, 1.5, 0.5, -0.5, 1.2, 2.5, -0.8]]
    scores = [[0.1, 0.6, 0.5, 0.2, 0.7, 0.3, 0.8, 0.4]]
    stats = stats_for(sums=[1.0] * 8, variance=[1.0] * 8, sq_norms=[1.0] * 8, sequences=1)
    target = LayerTarget(n=2, m=4)
    keep = keep_from_scores(torch.tensor(scores), target).tolist()
    assert keep == [[False, True, True, False, True, False, True, False]]
    refined = refine(weight, stats, keep, target, scores=scores)
    assert refined == [[True, True, False, False, False, True, True, False]]
    assert refine(weight, stats, keep, target, scores=scores, max_cycle_time=1) == [
        [False, True, True, False, False, True, True, False]]


def reference_rows(weight: torch.Tensor, stats: LayerStatistics, keep: torch.Tensor, options: DSnoTOptions) -> torch.Tensor:
    """DSnoT's unstructured loop, one row at a time, as the paper and its code state it."""
    keep = keep.clone()
    drift = weight.double() * stats.sums.double() / stats.sequences  # type: ignore[union-attr]
    key = drift / stats.variance.double() ** options.pow_of_var_regrowing  # type: ignore[union-attr]
    wanda = weight.double().abs() * stats.sq_norms.double().sqrt()  # type: ignore[union-attr]
    for r in range(weight.shape[0]):
        pruned = [j for j in range(weight.shape[1]) if not keep[r, j]]
        kept = [j for j in range(weight.shape[1]) if keep[r, j]]
        grow = {True: sorted((j for j in pruned if key[r, j] > 0), key=lambda j: -key[r, j]),
                False: sorted((j for j in pruned if key[r, j] < 0), key=lambda j: key[r, j])}
        cut = {True: sorted((j for j in kept if drift[r, j] < 0), key=lambda j: wanda[r, j]),
               False: sorted((j for j in kept if drift[r, j] > 0), key=lambda j: wanda[r, j])}
        error = float(sum(drift[r, j] for j in pruned))
        for _ in range(options.max_cycle_time):
            side = error > 0
            if abs(error) <= options.update_threshold or not grow[side] or not cut[side]:
                break
            j, k = grow[side].pop(0), cut[side].pop(0)
            keep[r, j], keep[r, k] = True, False
            error += float(drift[r, k] - drift[r, j])
    return keep


@pytest.mark.parametrize("threshold", [0.0, 0.1, 1e6])
def test_dsnot_equals_a_row_by_row_reimplementation_on_a_random_layer(threshold: float) -> None:
    generator = torch.Generator().manual_seed(1)
    weight = torch.randn(12, 40, generator=generator)
    stats = LayerStatistics(tokens=64, sq_norms=torch.rand(40, generator=generator) * 5 + 0.1,
                            sums=torch.randn(40, generator=generator) * 3, variance=torch.rand(40, generator=generator) + 0.1,
                            sequences=4)
    target = LayerTarget(sparsity=0.5)
    keep = keep_from_scores(weight.abs(), target)
    options = DSnoTOptions(skip_layer="no_skip", update_threshold=threshold)
    refined = dsnot_refine(weight, stats, weight.abs(), keep, target, options, name="w", generator=torch.Generator())
    assert torch.equal(refined, reference_rows(weight, stats, keep, options))
    assert torch.equal(refined.sum(dim=1), keep.sum(dim=1))  # the same count in every row
    assert bool((refined != keep).any()) == (threshold < 1e6)  # above every |e|: nothing moves


def test_dsnot_never_regrows_what_an_earlier_mask_pruned() -> None:
    generator = torch.Generator().manual_seed(2)
    weight = torch.randn(6, 20, generator=generator)
    stats = LayerStatistics(tokens=8, sq_norms=torch.ones(20), sums=torch.randn(20, generator=generator) * 4,
                            variance=torch.ones(20), sequences=1)
    earlier = torch.zeros(6, 20, dtype=torch.bool)
    earlier[:, :6] = True
    target = LayerTarget(sparsity=0.6, pruned=earlier)
    keep = keep_from_scores(weight.abs(), target)
    refined = dsnot_refine(weight, stats, weight.abs(), keep, target, DSnoTOptions(skip_layer="no_skip", update_threshold=0.0),
                           name="w", generator=torch.Generator())
    assert (refined != keep).any() and not (refined & earlier).any()
    assert torch.equal(refined.sum(dim=1), keep.sum(dim=1))


def test_dsnot_defaults_are_the_references_and_bad_options_are_one_line() -> None:
    method = STRATEGIES.get("dsnot")
    form = method.form("language_model")
    assert form is not None and form.needs == "moments" and not form.reconstructs and form.default_scope == "row"
    assert method.parse_options(None) == DSnoTOptions(base="wanda", max_cycle_time=50, update_threshold=0.1,
                                                      pow_of_var_regrowing=1.0, skip_layer="mlp")
    assert {"magnitude", "random", "wanda", "ria"} <= set(refinable_bases())
    assert not {"sparsegpt", "obs", "dsnot"} & set(refinable_bases())
    for bad, where in (({"base": "sparsegpt"}, "base"), ({"base": "nope"}, "base"), ({"max_cycle_time": -1}, "max_cycle_time"),
                       ({"skip_layer": "attn"}, "skip_layer"), ({"cycles": 3}, "cycles")):
        with pytest.raises(ConfigError, match=rf"^prune.options.{where}: ") as error:
            method.parse_options(bad)
        assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match=r"sparsegpt.*one that only scores"):
        method.parse_options({"base": "sparsegpt"})


def test_dsnot_statistics_are_the_references_whatever_the_batch() -> None:
    """The driver's moments of block 0's q_proj input: the sums over all tokens, and the mean over
    sequences of each sequence's variance (the reference runs one sequence per pass)."""
    from prunebench.pruning.layerwise import _observe, _first_block_inputs, _block_linears, decoder_blocks

    model, tokens = tiny_llama(), calibration(n=4)
    x = block_input(model, model.model.layers[0].self_attn.q_proj, tokens)
    name = "model.layers.0.self_attn.q_proj.weight"
    for batch_size in (1, 3):
        with torch.no_grad():
            inputs = _first_block_inputs(model, tokens, batch_size)
            stats = _observe(decoder_blocks(model)[0], _block_linears(model)[0], inputs, "moments")[name]
        assert stats.sequences == 4 and stats.tokens == 64
        assert torch.allclose(stats.sums, x.sum(dim=(0, 1)), rtol=1e-5, atol=1e-5)  # type: ignore[arg-type]
        assert torch.allclose(stats.variance, x.var(dim=1, unbiased=False).mean(dim=0), rtol=1e-5, atol=1e-6)  # type: ignore[arg-type]
        assert torch.allclose(stats.sq_norms, x.square().sum(dim=(0, 1)), rtol=1e-5)  # type: ignore[arg-type]


@pytest.mark.slow  # 5 to 12 s on a loaded 2-core machine: the fast suite stays within 6 minutes
def test_dsnot_on_a_tiny_llama_refines_the_attention_and_leaves_the_mlp_by_default() -> None:
    """Block 0 is pruned from the dense model's statistics: its MLP keeps Wanda's mask (the
    reference skips the MLP), its attention projections are Wanda's masks moved by DSnoT with
    the same count in every row; magnitude and RIA as the base work the same way."""
    tokens = calibration()
    wanda = prune_causal_lm(tiny_llama(), tokens, "wanda", sparsity=0.5, seed=0).mask
    def alone(strategy: str) -> Any:  # the base by itself, in dsnot's default scope
        return prune_causal_lm(tiny_llama(), tokens, strategy, sparsity=0.5, scope="row", seed=0).mask

    for options, base in (({}, wanda), ({"base": "magnitude"}, alone("magnitude")), ({"base": "ria"}, alone("ria"))):
        dsnot = prune_causal_lm(tiny_llama(), tokens, "dsnot", sparsity=0.5, options=options, seed=0).mask
        for name, keep in dsnot.items():
            assert torch.equal(keep.sum(dim=1), base[name].sum(dim=1)), name
            if name.startswith("model.layers.0.mlp."):
                assert torch.equal(keep, base[name]), name
        moved = [n for n in dsnot if n.startswith("model.layers.0.self_attn.") and not torch.equal(dsnot[n], base[n])]
        assert moved, options
    every = prune_causal_lm(tiny_llama(), tokens, "dsnot", sparsity=0.5, options={"skip_layer": "no_skip"}, seed=0).mask
    assert any(not torch.equal(every[n], wanda[n]) for n in wanda if n.startswith("model.layers.0.mlp."))
    nm = prune_causal_lm(tiny_llama(), tokens, "dsnot", structure="2:4", options={"skip_layer": "no_skip"}, seed=0).mask
    assert all(bool((k.reshape(k.shape[0], -1, 4).sum(dim=2) == 2).all()) for k in nm.values())


def test_ria_and_dsnot_run_end_to_end_through_prunebench_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from prunebench.cli import main
    from prunebench.record import read_result

    folder = tmp_path / "tiny"
    tokenizer = tiny_tokenizer()
    tiny_llama(len(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    text = tmp_path / "play.txt"
    text.write_text(CORPUS * 10)
    config = {
        "model": f"hf:{folder}", "dataset": f"text:{text}", "threads": 1,
        "prune": {"strategy": "ria", "sparsity": 0.5, "calibration": {"n_samples": 4, "seq_len": 32}},
        "evaluation": {"protocol": "sliding", "window": 64, "stride": 32}, "sweep": {"prune.strategy": ["ria", "dsnot"]}, "baselines": False,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", str(path), "--results", str(tmp_path / "results"), "--executor", "serial"]) == 0
    results = {r.spec["prune"]["strategy"]: r for r in map(read_result, (tmp_path / "results").glob("*/result.json"))}
    assert set(results) == {"ria", "dsnot"}
    assert results["ria"].spec["prune"]["scope"] == "layer" and results["dsnot"].spec["prune"]["scope"] == "row"
    assert results["dsnot"].spec["prune"]["options"] == {}
    for result in results.values():
        assert result.sizes.sparsity == pytest.approx(0.5, abs=1e-3)
        assert math.isfinite(result.perplexity) and result.perplexity > 1
    bad = {**config, "prune": {**config["prune"], "strategy": "dsnot", "options": {"base": "sparsegpt"}}}
    del bad["sweep"]
    path.write_text(yaml.safe_dump(bad))
    capsys.readouterr()
    assert main(["run", str(path), "--results", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("prunebench: error: prune.options.base: ") and "\n" not in err, err
    assert not (tmp_path / "bad").exists()

"""``han-lenet-mnist``: iterative magnitude pruning with retraining to 12x (Han et al. 2015)."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

from prunebench.spec import RunSettings
from prunebench.experiment import prepare, run_experiment
from prunebench.pruning import prunable_parameters
from prunebench.reproduce.common import Check, Report, Stopwatch, experiment_spec, fmt, load_reproduction_config, mean_spread

NAME = "han-lenet-mnist"


def with_prunable_target(experiment: dict[str, Any], ratio: float, settings: RunSettings) -> dict[str, Any]:
    """Set ``prune.compression`` (a whole-model ratio) so the prunable weights reach ``ratio``.

    prunebench's compression counts every parameter; Han et al.'s 12x counts the weights that
    are pruned, so the whole-model target is derived from the model's own counts.
    """
    spec = experiment_spec(experiment, 0)
    _, model = prepare(spec, settings)
    prunable = prunable_parameters(model, spec.prune.prunable)
    total = sum(p.numel() for p in model.parameters())
    prunable_total = sum(p.numel() for p in prunable.values())
    keep = math.floor(prunable_total / ratio)
    others = total - prunable_total
    data = copy.deepcopy(experiment)
    data["prune"]["compression"] = round(total / (keep + others), 6)
    return data


def run(seeds: list[int], settings: RunSettings, results_dir: Path) -> Report:
    config = load_reproduction_config(NAME)
    clock = Stopwatch()
    tolerance = float(config["tolerance"]["error_points"])
    checks = []
    extra: dict[str, Any] = {}
    for model_name, entry in config["models"].items():
        experiment = with_prunable_target(entry["experiment"], float(config["prunable_compression"]), settings)
        dense_err, pruned_err, ratios = [], [], []
        model_clock = Stopwatch()
        for seed in seeds:
            result = run_experiment(experiment_spec(experiment, seed), settings, results_dir)
            dense_err.append(100 * (1 - result.accuracy.dense_top1))
            pruned_err.append(100 * (1 - result.accuracy.top1))
            ratios.append(result.sizes.prunable_compression_ratio)
        published = entry["published"]
        dense_mean, _ = mean_spread(dense_err)
        pruned_mean, _ = mean_spread(pruned_err)
        checks.append(Check(f"{model_name} prunable compression", f"{config['prunable_compression']}x",
                            f"{ratios[0]:.2f}x", ">= 11.95x", min(ratios) >= 11.95, ratios))
        checks.append(Check(f"{model_name} dense error", f"{published['dense_error']:.2f}%",
                            fmt(dense_err), "—", None, dense_err))
        checks.append(Check(
            f"{model_name} pruned error", f"{published['pruned_error']:.2f}%",
            f"{fmt(pruned_err)} (Δ {pruned_mean - dense_mean:+.2f} pt)", f"<= dense + {tolerance:.2f} pt",
            pruned_mean <= dense_mean + tolerance, pruned_err,
        ))
        extra[model_name] = {"experiment": experiment, "dense_error": dense_err, "pruned_error": pruned_err,
                             "prunable_compression": ratios, "wall_time_s": model_clock.elapsed}
    return Report(NAME, config["paper"], seeds, checks, clock.elapsed, config["differences"], extra)

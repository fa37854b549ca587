"""``deep-compression-lenet-mnist``: pruning, trained quantization and Huffman coding (Han et al. 2016)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prunebench.spec import RunSettings
from prunebench.experiment import run_experiment
from prunebench.reproduce.common import Check, Report, Stopwatch, experiment_spec, fmt, load_reproduction_config, mean_spread
from prunebench.reproduce.han import with_prunable_target

NAME = "deep-compression-lenet-mnist"


def run(seeds: list[int], settings: RunSettings, results_dir: Path) -> Report:
    config = load_reproduction_config(NAME)
    clock = Stopwatch()
    tolerance = config["tolerance"]
    error_points, quantization_points = float(tolerance["error_points"]), float(tolerance["quantization_points"])
    fraction = float(tolerance["storage_fraction"])
    checks = []
    extra: dict[str, Any] = {}
    for model_name, entry in config["models"].items():
        experiment = with_prunable_target(entry["experiment"], float(config["prunable_compression"]), settings)
        dense_err, pruned_err, compressed_err, storage, params = [], [], [], [], []
        weights_only = []  # the same stored form without biases, Huffman tables and entry counts
        model_clock = Stopwatch()
        for seed in seeds:
            result = run_experiment(experiment_spec(experiment, seed), settings, results_dir)
            if result.accuracy.quantized_top1 is None or result.sizes.storage_compression_ratio is None or result.storage is None:
                raise RuntimeError(f"{model_name}: the run has no compress stage")
            dense_err.append(100 * (1 - result.accuracy.dense_top1))
            pruned_err.append(100 * (1 - result.accuracy.top1))
            compressed_err.append(100 * (1 - result.accuracy.quantized_top1))
            storage.append(result.sizes.storage_compression_ratio)
            weights_only.append(result.storage.ratio_without_biases_and_tables)
            params.append(result.sizes.prunable_compression_ratio)
        published = entry["published"]
        dense_mean, _ = mean_spread(dense_err)
        pruned_mean, _ = mean_spread(pruned_err)
        compressed_mean, _ = mean_spread(compressed_err)
        storage_mean, _ = mean_spread(storage)
        least = fraction * float(published["storage_compression"])
        checks.append(Check(f"{model_name} prunable compression", f"{config['prunable_compression']}x",
                            f"{params[0]:.2f}x", "—", None, params))
        checks.append(Check(
            f"{model_name} storage compression", f"{published['storage_compression']}x", fmt(storage, "x", 1),
            f">= {least:.1f}x every seed", min(storage) >= least, storage,
        ))
        checks.append(Check(
            f"{model_name} storage compression without biases, Huffman tables and counts",
            f"{published['storage_compression']}x", fmt(weights_only, "x", 1), "—", None, weights_only,
        ))
        checks.append(Check(f"{model_name} dense error", f"{published['dense_error']:.2f}%", fmt(dense_err), "—",
                            None, dense_err))
        checks.append(Check(f"{model_name} pruned error (before quantization)", "—", fmt(pruned_err), "—",
                            None, pruned_err))
        checks.append(Check(
            f"{model_name} compressed error", f"{published['compressed_error']:.2f}%",
            f"{fmt(compressed_err)} (Δ {compressed_mean - dense_mean:+.2f} pt vs dense, "
            f"{compressed_mean - pruned_mean:+.2f} vs pruned)",
            f"<= dense + {error_points:.2f} pt and <= pruned + {quantization_points:.2f} pt",
            compressed_mean <= dense_mean + error_points and compressed_mean <= pruned_mean + quantization_points,
            compressed_err,
        ))
        extra[model_name] = {
            "experiment": experiment, "dense_error": dense_err, "pruned_error": pruned_err,
            "compressed_error": compressed_err, "storage_compression": storage, "prunable_compression": params,
            "storage_compression_without_biases_and_tables": weights_only,
            "storage_mean": storage_mean, "wall_time_s": model_clock.elapsed,
        }
    return Report(NAME, config["paper"], seeds, checks, clock.elapsed, config["differences"], extra)

"""``lth-lenet-mnist``: lottery tickets and their random-reinit controls (Frankle & Carbin 2019)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prunebench.spec import ExperimentSpec, RunSettings
from prunebench.experiment import prepare, run_experiment
from prunebench.store.artifacts import load_tensors, read_json, write_json
from prunebench.experiment.retrain import retrain
from prunebench.metrics import evaluate
from prunebench.pruning import Mask
from prunebench.reproduce.common import Check, Report, Stopwatch, experiment_spec, fmt, load_reproduction_config, mean_spread

NAME = "lth-lenet-mnist"
log = logging.getLogger("prunebench")


def reinit_control(spec: ExperimentSpec, settings: RunSettings, results_dir: Path, round_index: int) -> float:
    """Test top-1 of round ``round_index``'s ticket mask trained from a fresh random init.

    Uses the pipeline's own ``reinit`` retraining; cached beside the ticket run.
    """
    path = results_dir / spec.run_id / "controls" / f"reinit_{round_index:02d}.json"
    if path.is_file():
        return float(read_json(path)["top1"])
    data, model = prepare(spec, settings)
    mask = Mask(load_tensors(results_dir / spec.run_id / "rounds" / f"mask_{round_index:02d}.pt"))
    retrain(model, data, spec, mask, "reinit", rewind_state=None, stage=f"reinit control, round {round_index}")
    top1 = evaluate(model, data.test_x, data.test_y).top1
    write_json(path, {"round": round_index, "top1": top1, "weights_remaining": mask.kept / mask.total})
    return top1


def run(seeds: list[int], settings: RunSettings, results_dir: Path) -> Report:
    config = load_reproduction_config(NAME)
    clock = Stopwatch()
    published = config["published"]
    tolerance = float(config["tolerance"]["ticket_vs_dense_points"])
    dense: list[float] = []
    tickets: dict[int, list[float]] = {}
    controls: dict[int, list[float]] = {r: [] for r in config["controls"]}
    remaining: dict[int, list[float]] = {}
    for seed in seeds:
        spec = experiment_spec(config["experiment"], seed)
        result = run_experiment(spec, settings, results_dir)
        dense.append(100 * result.accuracy.dense_top1)
        for entry in result.retraining.rounds if result.retraining else []:
            tickets.setdefault(entry["round"], []).append(100 * entry["top1"])
            remaining.setdefault(entry["round"], []).append(100 * entry["weights_remaining"])
        for r in controls:
            controls[r].append(100 * reinit_control(spec, settings, results_dir, r))
            log.info("seed %d: reinit control after round %d: %.2f%%", seed, r, controls[r][-1])

    checks = []
    for r, percent in published["ladder"].items():
        ours = remaining[int(r)]
        checks.append(Check(
            f"weights remaining after {r} rounds", f"{percent}%", f"{ours[0]:.2f}%",
            "equal at 0.1%", all(round(v, 1) == percent for v in ours), ours,
        ))
    dense_mean, _ = mean_spread(dense)
    checks.append(Check("dense test top-1", "~98% (paper)", fmt(dense), "—", None, dense))
    for r in published["tickets_match_dense_at_rounds"]:
        ticket_mean, _ = mean_spread(tickets[r])
        checks.append(Check(
            f"ticket at {remaining[r][0]:.1f}% vs dense", "matches or beats dense",
            f"{fmt(tickets[r])} (dense {dense_mean:.2f}%)", f">= dense - {tolerance:.2f} pt",
            ticket_mean >= dense_mean - tolerance, tickets[r],
        ))
    for r in published["reinit_below_ticket_at_rounds"]:
        ticket_mean, _ = mean_spread(tickets[r])
        control_mean, _ = mean_spread(controls[r])
        checks.append(Check(
            f"reinit control at {remaining[r][0]:.1f}%", "below the ticket",
            f"{fmt(controls[r])} (ticket {ticket_mean:.2f}%)", "< ticket", control_mean < ticket_mean, controls[r],
        ))
    ladder = {r: {"weights_remaining": remaining[r][0], "ticket_top1": mean_spread(tickets[r])}
              for r in sorted(tickets)}
    extra: dict[str, Any] = {
        "dense_top1": dense, "ticket_top1_by_round": tickets, "reinit_top1_by_round": controls,
        "ladder": ladder, "experiment": config["experiment"],
    }
    return Report(NAME, config["paper"], seeds, checks, clock.elapsed, config["differences"], extra)

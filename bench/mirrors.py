"""Mirror cost in the training loop: local store only vs local + MLflow + W&B + TensorBoard.

One process, one small PyTorch MLP trained on random digits-sized data (one CPU thread),
the same loop run alternately with ``backend=["local"]`` and with all three mirrors
(MLflow on a SQLite store prepared beforehand, W&B offline, TensorBoard), several rounds.
A second local-only variant, ``control``, measures the noise floor: on a shared 2-vCPU
machine two identical runs often differ by 5-15 %, so a ratio is only meaningful next to the
control's (control/local should be 1.00; its spread is the measurement's precision).
Each step logs 3 metrics; every ``--epoch-steps`` steps 2 epoch metrics and a checkpoint
(an artifact version, one file per checkpoint). Measured per run:

* logging: the time spent inside the tracker's calls in the loop, as wall time and as the
  main thread's CPU time (the target: mirrors add at most 5 % to it, ratio <= 1.05; the
  CPU time is the stable measure on a busy machine, where wall time includes preemption);
* process CPU: CPU time of the whole training process (all its threads) during the loop;
* mirror CPU: CPU time of the mirror child process (it runs beside training, on another
  core when one is free);
* loop: the loop's wall time, training included;
* finish: ``tracker.finish()``, which waits for the mirrors to drain (outside the loop).

    .venv/bin/python bench/mirrors.py [--rounds 5] [--steps 15000] [--epoch-steps 2500] [--hidden 128]

The default logs ~3,900 points a second, more than the three SDKs together can take on a
2-core machine (about 3,000); ``--hidden 4096 --steps 3000`` trains a wider model at a
rate closer to real training.

The mirror process has a fixed cost (importing three SDKs, MLflow's store setup, W&B's
service: about 6 s of CPU on another core), so very short runs show higher ratios.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

for _name, _value in {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
                      "WANDB_MODE": "offline", "WANDB_SILENT": "true",
                      "WANDB_DISABLE_GIT": "true"}.items():
    os.environ.setdefault(_name, _value)

MIRRORS = ["local", "mlflow", "wandb", "tensorboard"]


def make_step(hidden: int = 128):  # type: ignore[no-untyped-def]
    """One optimisation step of a 64-``hidden``-10 MLP on a batch of 64: (loss, accuracy)."""
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.ReLU(),
                                torch.nn.Linear(hidden, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    inputs, labels = torch.randn(64, 64), torch.randint(0, 10, (64,))

    def step() -> tuple[float, float]:
        optimizer.zero_grad()
        logits = model(inputs)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        loss.backward()
        optimizer.step()
        return loss.item(), (logits.argmax(1) == labels).float().mean().item()

    return step, model


def run_once(root: Path, backend: list[str], options: dict, steps: int, epoch_steps: int,
             index: int, hidden: int = 128) -> dict[str, float]:
    import torch

    from neural_dsl_tracking.tracking import ExperimentTracker

    step, model = make_step(hidden)
    tracker = ExperimentTracker("bench-mirrors", base_dir=root / "store", backend=backend,
                                backend_options=options, run_name=f"{backend[-1]}-{index}",
                                auto_visualize=False)
    tracker.log_hyperparameters({"lr": 1e-3, "batch_size": 64, "hidden": 128})
    log_wall = log_cpu = 0.0
    started, process_started = time.perf_counter(), time.process_time()
    for i in range(steps):
        loss, accuracy = step()
        t0, c0 = time.perf_counter(), time.thread_time()
        tracker.log_metrics({"loss": loss, "accuracy": accuracy, "lr": 1e-3}, step=i)
        log_cpu += time.thread_time() - c0
        log_wall += time.perf_counter() - t0
        if i % epoch_steps == epoch_steps - 1:
            checkpoint = root / f"ckpt-{index}-{i}.pt"
            torch.save(model.state_dict(), checkpoint)
            t0, c0 = time.perf_counter(), time.thread_time()
            tracker.log_metrics({"val_loss": loss, "val_accuracy": accuracy}, step=i // epoch_steps)
            tracker.log_artifact(checkpoint, name="checkpoint")
            log_cpu += time.thread_time() - c0
            log_wall += time.perf_counter() - t0
    loop_seconds = time.perf_counter() - started
    process_cpu = time.process_time() - process_started
    t0 = time.perf_counter()
    tracker.finish("completed")
    finish_seconds = time.perf_counter() - t0
    return {"logging": log_wall, "logging_cpu": log_cpu, "process_cpu": process_cpu,
            "loop": loop_seconds, "finish": finish_seconds}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=15000)
    parser.add_argument("--epoch-steps", type=int, default=2500)
    parser.add_argument("--hidden", type=int, default=128,
                        help="hidden width: larger means slower steps, fewer points per second")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="neural-bench-mirrors-") as tmp:
        root = Path(tmp)
        options = {"mlflow": {"tracking_uri": f"sqlite:///{root}/mlflow.db",
                              "experiment": "bench-mirrors"},
                   "wandb": {"mode": "offline", "project": "bench-mirrors"},
                   "tensorboard": {}}
        variants = {"local": (["local"], {}), "control": (["local"], {}),
                    "mirrors": (MIRRORS, options)}
        # warm-up (imports, MLflow's database migrations, W&B service start), not measured
        for name, (backend, opts) in variants.items():
            run_once(root, backend, opts, 200, 100, -1)
        results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
        names = list(variants)
        for round_index in range(args.rounds):
            # every variant takes every position in turn, so drifts in machine speed even out
            shift = round_index % len(names)
            order = names[shift:] + names[:shift]
            if round_index // len(names) % 2:
                order.reverse()
            for name in order:
                backend, opts = variants[name]
                before = children_cpu()
                result = run_once(root, backend, opts, args.steps, args.epoch_steps, round_index,
                                  args.hidden)
                result["mirror_cpu"] = children_cpu() - before
                results[name].append(result)
            print(f"round {round_index + 1}: " + "   ".join(
                f"{name}: logging {r[-1]['logging'] * 1e3:.1f} ms ({r[-1]['logging_cpu'] * 1e3:.1f} "
                f"ms CPU), loop {r[-1]['loop']:.2f} s, finish {r[-1]['finish']:.2f} s"
                for name, r in results.items()), flush=True)

    parts = ("logging", "logging_cpu", "process_cpu", "mirror_cpu", "loop", "finish")
    median = {name: {part: statistics.median(r[part] for r in runs) for part in parts}
              for name, runs in results.items()}
    calls = args.steps + 2 * (args.steps // args.epoch_steps)
    local = median["local"]
    points = args.steps * 3 + 2 * (args.steps // args.epoch_steps)
    rate = points / local["loop"]
    print(f"{args.steps} steps, 3 metrics per step ({rate:,.0f} points/s), a checkpoint every "
          f"{args.epoch_steps} steps, {args.rounds} rounds, medians:")
    for name, values in median.items():
        print(f"  {name:8s} logging {values['logging'] * 1e3:7.1f} ms wall "
              f"({values['logging'] / calls * 1e6:5.1f} us/call), "
              f"{values['logging_cpu'] * 1e3:7.1f} ms CPU   process CPU {values['process_cpu']:6.2f} s   "
              f"mirror CPU {values['mirror_cpu']:5.2f} s   loop {values['loop']:6.2f} s   "
              f"finish {values['finish']:5.2f} s")
    for name in ("control", "mirrors"):
        values = median[name]
        per_round = [r["logging_cpu"] / l["logging_cpu"]
                     for r, l in zip(results[name], results["local"])]
        print(f"  ratio {name}/local: logging CPU {values['logging_cpu'] / local['logging_cpu']:.3f}"
              f" (rounds {min(per_round):.2f}-{max(per_round):.2f})"
              + (" (target <= 1.05)" if name == "mirrors" else "")
              + f", logging wall {values['logging'] / local['logging']:.3f}, "
              f"process CPU {values['process_cpu'] / local['process_cpu']:.3f}, "
              f"loop wall {values['loop'] / local['loop']:.3f}")
    mirror_cpu = median["mirrors"]["mirror_cpu"]
    print(f"  mirror process: {mirror_cpu:.2f} s CPU for {points} points "
          f"({mirror_cpu / points * 1e6:.0f} us/point including SDK start-up)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

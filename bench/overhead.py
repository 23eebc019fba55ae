"""Tracking overhead: the digits program compiled with and without its tracking block.

Both programs train the same network on the same data (scikit-learn digits, same seed,
one CPU thread) in this one process, alternating, several rounds. The tracked program runs
twice per round: "metrics" logs the batch loss every batch and the per-epoch metrics
(checkpoint_every=0: only the final model), "checkpoints" also stores a checkpoint
artifact version every epoch (the example's setting). Printed: the median training time
of each and the ratios to the untracked program (target: at most 1.05 for "metrics"). Training time is what the program reports as ``training_time``:
the epochs (with every hook call, checkpoint and validation pass) and the final
evaluation. The whole ``train()`` call, which adds opening the run and finishing it
(flushing and drawing the final plots), is printed beside it.

    .venv/bin/python bench/overhead.py [--rounds 5] [--epochs 10] [--visualize-every N]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "digits.neural"


def _compile(out: Path, tracked: bool) -> Path:
    from neural_dsl_tracking.compiler import compile_network
    from neural_dsl_tracking.language import parse_file

    spec = parse_file(EXAMPLE).network()
    if not tracked:
        spec = spec.model_copy(update={"plugins": {}})
    return compile_network(spec, EXAMPLE, out / ("tracked" if tracked else "plain"))


def _load(train_py: Path):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(f"bench_{train_py.parent.name}", train_py)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _config(module, train_py: Path, overrides: list[str]):  # type: ignore[no-untyped-def]
    from hydra import compose, initialize_config_dir

    from neural_dsl_tracking.compiler import runtime
    from neural_dsl_tracking.resources import configs_dir

    with initialize_config_dir(config_dir=str(train_py.parent / "conf"), version_base="1.3"):
        cfg = compose(config_name="config",
                      overrides=[f"hydra.searchpath=[{configs_dir().as_uri()}]", *overrides])
    return runtime.load_config(cfg, module.MODEL_KINDS, module.LOSS_FAMILY, module.PLUGIN_SECTIONS)


def _time(module, config, composed) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """(training wall time, training CPU time of the process, whole train() call)."""
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        final = module.train(config, composed)
    return final["training_time"], final["training_cpu_time"], time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--visualize-every", type=int, default=0,
                        help="tracking.visualize_every for the tracked program (default 0: plots drawn "
                             "once, when the run finishes, outside the training time)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="neural-bench-") as tmp:
        root = Path(tmp)
        common = [f"train.epochs={args.epochs}", "execution.threads=1"]
        plain_py, tracked_py = _compile(root, tracked=False), _compile(root, tracked=True)
        plain, tracked = _load(plain_py), _load(tracked_py)
        tracked_overrides = [*common, f"tracking.store={root / 'store'}", "tracking.log_every=1"]
        tracked_overrides.append(f"tracking.visualize_every={args.visualize_every}")
        plain_cfg = _config(plain, plain_py, common)
        programs = {
            "untracked": (plain, plain_cfg),
            "metrics": (tracked, _config(tracked, tracked_py, [*tracked_overrides, "tracking.checkpoint_every=0"])),
            "checkpoints": (tracked, _config(tracked, tracked_py, [*tracked_overrides, "tracking.checkpoint_every=1"])),
        }
        _time(plain, *plain_cfg)  # warm-up: imports, allocator, sklearn data cache
        times: dict[str, list[float]] = {name: [] for name in programs}
        cpu: dict[str, list[float]] = {name: [] for name in programs}
        whole: dict[str, list[float]] = {name: [] for name in programs}
        for round_index in range(args.rounds):
            order = list(programs.items())
            if round_index % 2:
                order.reverse()
            for name, (module, (config, composed)) in order:
                seconds, cpu_seconds, call_seconds = _time(module, config, composed)
                times[name].append(seconds)
                cpu[name].append(cpu_seconds)
                whole[name].append(call_seconds)
            print(f"round {round_index + 1}: " + ", ".join(
                f"{name} {times[name][-1]:.3f} s ({cpu[name][-1]:.3f} s CPU)" for name in programs), flush=True)
        median = {name: statistics.median(values) for name, values in times.items()}
        median_cpu = {name: statistics.median(values) for name, values in cpu.items()}
        call = {name: statistics.median(values) for name, values in whole.items()}
        print(f"digits CNN, {args.epochs} epochs ({args.epochs * 45} batches, batch loss logged every batch, "
              f"visualize_every={args.visualize_every}), {args.rounds} rounds, median training time "
              "(wall; CPU of the process, all threads, which a busy machine disturbs less):")
        print(f"  untracked             {median['untracked']:.3f} s   {median_cpu['untracked']:.3f} s CPU")
        for name in ("metrics", "checkpoints"):
            print(f"  tracked, {name:<11}  {median[name]:.3f} s   {median_cpu[name]:.3f} s CPU   "
                  f"ratio {median[name] / median['untracked']:.3f} wall, "
                  f"{median_cpu[name] / median_cpu['untracked']:.3f} CPU"
                  + ("   (target <= 1.05)" if name == "metrics" else ""))
        print("  whole train() call, with opening and finishing the run (final plots): "
              + ", ".join(f"{name} {call[name]:.3f} s" for name in programs))
    return 0


if __name__ == "__main__":
    sys.exit(main())

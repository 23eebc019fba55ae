"""Tracking overhead: the digits program compiled with and without its tracking block.

Both programs train the same network on the same data (scikit-learn digits, same seed,
one CPU thread) in this one process, alternating, several rounds; the tracked one logs
the batch loss every batch, per-epoch metrics, a checkpoint every epoch, the model, the
source and the config. Printed: the median training time of each and their ratio
(target: at most 1.05). Training time is what the program reports as ``training_time``:
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


def _time(module, config, composed) -> tuple[float, float, dict]:  # type: ignore[no-untyped-def]
    """(training time, whole train() call, final metrics)."""
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        final = module.train(config, composed)
    return final["training_time"], time.perf_counter() - started, final


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
        tracked_cfg = _config(tracked, tracked_py, tracked_overrides)
        _time(plain, *plain_cfg)  # warm-up: imports, allocator, sklearn data cache
        times: dict[str, list[float]] = {"untracked": [], "tracked": []}
        whole: dict[str, list[float]] = {"untracked": [], "tracked": []}
        for round_index in range(args.rounds):
            order = [("untracked", plain, plain_cfg), ("tracked", tracked, tracked_cfg)]
            if round_index % 2:
                order.reverse()
            for name, module, (config, composed) in order:
                seconds, call_seconds, final = _time(module, config, composed)
                times[name].append(seconds)
                whole[name].append(call_seconds)
            print(f"round {round_index + 1}: training untracked {times['untracked'][-1]:.3f} s, "
                  f"tracked {times['tracked'][-1]:.3f} s (whole call {whole['untracked'][-1]:.3f} s / "
                  f"{whole['tracked'][-1]:.3f} s), val accuracy {final.get('accuracy', float('nan')):.3f}",
                  flush=True)
        plain_median = statistics.median(times["untracked"])
        tracked_median = statistics.median(times["tracked"])
        batches = args.epochs * 45
        print(f"digits CNN, {args.epochs} epochs ({batches} batches, batch loss logged every batch, "
              f"visualize_every={args.visualize_every}), {args.rounds} rounds, median:")
        print(f"  training  untracked {plain_median:.3f} s   tracked {tracked_median:.3f} s   "
              f"ratio tracked/untracked {tracked_median / plain_median:.3f} (target <= 1.05)")
        call_plain, call_tracked = statistics.median(whole["untracked"]), statistics.median(whole["tracked"])
        print(f"  whole train() call, with opening and finishing the run: untracked {call_plain:.3f} s   "
              f"tracked {call_tracked:.3f} s   ratio {call_tracked / call_plain:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

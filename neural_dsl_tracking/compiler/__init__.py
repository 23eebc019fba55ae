"""Compiler: a ModelSpec becomes a PyTorch training program with Hydra config and plugin hooks.

``compile_network(spec, source_path, out_dir)`` writes ``train.py``, ``conf/config.yaml``
and a copy of the source. Nothing heavy (torch, hydra) is imported by compiling, and
nothing at all until a name is used (``neural check`` imports this package's CLI).
"""

from __future__ import annotations

from neural_dsl_tracking.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "CompiledProgram": "neural_dsl_tracking.compiler.build",
    "compile_network": "neural_dsl_tracking.compiler.build",
    "compile_program": "neural_dsl_tracking.compiler.build",
})

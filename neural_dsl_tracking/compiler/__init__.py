"""Compiler: a ModelSpec becomes a PyTorch training program with Hydra config and plugin hooks.

``compile_network(spec, source_path, out_dir)`` writes ``train.py``, ``conf/config.yaml``
and a copy of the source. Nothing heavy (torch, hydra) is imported by compiling.
"""

from __future__ import annotations

from neural_dsl_tracking.compiler.build import CompiledProgram, compile_network, compile_program

__all__ = ["CompiledProgram", "compile_network", "compile_program"]

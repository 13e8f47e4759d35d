"""The bytes a compiled program needs, from XLA's memory analysis of the executable.

One record (`MemoryCost`) serves the step profiler, the batch-size lab and the chunk
chooser of `gdlab.train` (how many seeds one call trains), so the memory they report and
the memory training plans for are the same numbers.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class MemoryCost:
    """The bytes one compiled call needs, from XLA's memory analysis of the executable.

    Attributes:
      argument_bytes: its inputs (for a part: the seeds' state and the data it reads).
      output_bytes: its outputs.
      temp_bytes: temporaries XLA allocates while it runs (activations, gradients).
      code_bytes: generated code (0 on CPU, where code is not counted as device memory).
      alias_bytes: outputs that reuse an input's buffer (counted once in `total_bytes`).
    """

    argument_bytes: int
    output_bytes: int
    temp_bytes: int
    code_bytes: int
    alias_bytes: int = 0

    @property
    def total_bytes(self) -> int:
        """Everything the call holds at once: arguments + outputs + temporaries + code,
        less the aliased outputs."""
        return (self.argument_bytes + self.output_bytes + self.temp_bytes + self.code_bytes
                - self.alias_bytes)

    def describe(self) -> dict[str, int]:
        """JSON-friendly summary (the total included)."""
        return {**dataclasses.asdict(self), "total_bytes": self.total_bytes}


def xla_memory(compiled) -> MemoryCost | None:
    """XLA's memory analysis of a compiled function (`compiled.memory_analysis()`), or None
    where the backend gives none.

    Example:
      >>> xla_memory(jax.jit(f).lower(x).compile()).temp_bytes
    """
    try:
        m = compiled.memory_analysis()
    except Exception:  # backend-dependent and best-effort
        return None
    if isinstance(m, list | tuple):  # older JAX: one entry per device program
        m = m[0] if m else None
    if m is None:
        return None
    get = lambda name: int(getattr(m, name, 0) or 0)
    return MemoryCost(get("argument_size_in_bytes"), get("output_size_in_bytes"),
                      get("temp_size_in_bytes"), get("generated_code_size_in_bytes"),
                      get("alias_size_in_bytes"))

"""Live metrics: writers behind one small interface, fed by `train(..., on_eval=...)`.

A writer has `write_scalars(step, {name: float})` and `close()`. `JsonlWriter` appends
one JSON line per measurement (what `gdlab train --out DIR` always writes to
DIR/metrics.jsonl); `TensorBoardWriter` writes TensorBoard event files (tensorboardX).
`LiveMetrics` turns each `Evaluation` of a run (per-seed values) into scalars: loss
quantiles over seeds, every metric's median, the diverged count and the throughput, and
hands them to every writer, in the main process only.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from gdlab.core import devices as dev
from gdlab.core.loop import Evaluation

QUANTILES = (0.0, 0.1, 0.5, 0.9, 1.0)


class MetricWriter(Protocol):
    def write_scalars(self, step: int, scalars: dict[str, float]) -> None: ...

    def close(self) -> None: ...


class JsonlWriter:
    """One JSON object per line: {"step": ..., name: value, ...}; flushed every write."""

    def __init__(self, path: str | os.PathLike, append: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a" if append else "w", encoding="utf-8")

    def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
        self._file.write(json.dumps({"step": int(step), **scalars}) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class TensorBoardWriter:
    """TensorBoard event files in `logdir` (one scalar tag per name)."""

    def __init__(self, logdir: str | os.PathLike):
        from tensorboardX import SummaryWriter
        self._writer = SummaryWriter(str(logdir))

    def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
        for name, value in scalars.items():
            self._writer.add_scalar(name, value, global_step=int(step))
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def read_events(path: str | os.PathLike) -> list[tuple[int, str, float]]:
    """(step, tag, value) of every scalar in a TensorBoard event file (TFRecord framing:
    length, its CRC, the serialized Event, its CRC), e.g. to check or plot a run."""
    from tensorboardX.proto.event_pb2 import Event
    data, out, pos = Path(path).read_bytes(), [], 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[pos:pos + 8])
        event = Event.FromString(data[pos + 12:pos + 12 + length])
        pos += 12 + length + 4
        out += [(int(event.step), v.tag, float(v.simple_value)) for v in event.summary.value]
    return out


def summarize(evaluation: Evaluation) -> dict[str, float]:
    """Scalars of one measurement: quantiles over seeds of every "<set>/loss", the median
    of every other metric, the diverged count, seconds and steps per second."""
    out = {}
    for name, values in evaluation.metrics.items():
        finite = np.asarray(values, np.float64)[np.isfinite(values)]
        if not finite.size:
            continue
        if name.endswith("/loss"):
            for q, v in zip(QUANTILES, np.quantile(finite, QUANTILES), strict=True):
                out[f"{name}/q{round(q * 100):02d}"] = float(v)
        else:
            out[f"{name}/median"] = float(np.median(finite))
    out["seeds/diverged"] = float(evaluation.diverged)
    out["time/seconds"] = float(evaluation.seconds)
    if evaluation.steps_per_second is not None:
        out["time/steps_per_second"] = float(evaluation.steps_per_second)
    return out


class LiveMetrics:
    """An `on_eval` callback writing every measurement's summary to `writers`."""

    def __init__(self, writers: Sequence[MetricWriter]):
        self.writers = list(writers) if dev.is_main_process() else []

    def __call__(self, evaluation: Evaluation) -> None:
        scalars = summarize(evaluation)
        for writer in self.writers:
            writer.write_scalars(evaluation.step, scalars)

    def close(self) -> None:
        for writer in self.writers:
            writer.close()

    def __enter__(self) -> LiveMetrics:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

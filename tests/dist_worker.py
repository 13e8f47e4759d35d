"""One process of a two-process run for test_distributed.py (2 CPU devices each).

Usage: python tests/dist_worker.py PORT PROCESS_ID OUT_DIR
"""

import os
import sys


def main() -> None:
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax
    jax.config.update("jax_num_cpu_devices", 2)
    from gdlab.core.devices import initialize_distributed
    port, process_id, out = sys.argv[1:4]
    initialize_distributed(f"127.0.0.1:{port}", 2, int(process_id), initialization_timeout=60)
    import gdlab
    problem, config, kwargs = run_spec()
    gdlab.train(problem, config, out=out, **kwargs)


def run_spec():
    """The run both the two-process and the one-process side train."""
    import gdlab
    from gdlab import problems
    config = gdlab.TrainConfig(learning_rate=0.05, steps=300, batch_size=16, eval_every=50)
    return (problems.teacher_student(d_in=2, hidden=3, n=64), config,
            dict(seeds=10, key=5, trajectories=3))


if __name__ == "__main__":
    main()

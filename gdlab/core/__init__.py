"""The training core: samplers, the engine (step, chunked scan, vmap, guard), devices and
seeds, the host loop (`train`), Runs and their store, checkpoints.

Nothing is re-exported here: `gdlab/__init__.py` must import `devices` first (it sets the
CPU device count before JAX starts), and the public names live in `gdlab` itself.
"""

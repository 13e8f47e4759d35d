"""The minima atlas: which minimum each seed landed in, and which minima are the same.

`minima` classifies endpoints (`classify_endpoints`, once per run) and maps them into
minima (`map_minima`, at any tolerance; `find_minima` does both), `cluster` groups points
within a tolerance (symmetries live in `gdlab.symmetry`).
"""

from gdlab.atlas.cluster import cluster_points, first_seen, join_partitions
from gdlab.atlas.minima import (
    Atlas,
    Endpoints,
    KnownMatch,
    Minimum,
    classify_endpoints,
    find_minima,
    map_minima,
    match_known_minima,
)

__all__ = ["Atlas", "Endpoints", "KnownMatch", "Minimum", "classify_endpoints",
           "cluster_points", "find_minima", "first_seen", "join_partitions", "map_minima",
           "match_known_minima"]

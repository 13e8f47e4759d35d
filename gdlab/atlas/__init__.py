"""The minima atlas: which minimum each seed landed in, and which minima are the same.

`minima` classifies endpoints (`classify_endpoints`, once per run) and maps them into
minima (`map_minima`, at any tolerance; `find_minima` does both), `cluster` groups points
within a tolerance (symmetries live in `gdlab.symmetry`). For real networks, `equivalence`
counts seeds as points, modulo symmetry, modes (linear mode connectivity after weight
matching) and functions (`functions`: predicted labels, `disagreement`), and `refine`
polishes endpoints by full-batch descent.
"""

from gdlab.atlas import functions
from gdlab.atlas.cluster import cluster_points, first_seen, join_partitions
from gdlab.atlas.functions import disagreement, function_classes, predicted_labels
from gdlab.atlas.minima import (
    Atlas,
    Endpoints,
    Equivalence,
    KnownMatch,
    Level,
    Minimum,
    Refined,
    classify_endpoints,
    equivalence,
    find_minima,
    map_minima,
    match_known_minima,
    refine,
)
from gdlab.atlas.saved import load_atlas, save_atlas

__all__ = ["Atlas", "Endpoints", "KnownMatch", "Minimum", "classify_endpoints",
           "cluster_points", "find_minima", "first_seen", "join_partitions", "map_minima",
           "match_known_minima"]
__all__ += ["Equivalence", "Level", "Refined", "disagreement", "equivalence",
            "function_classes", "functions", "predicted_labels", "refine"]
__all__ += ["load_atlas", "save_atlas"]

"""The minima atlas: which minimum each seed landed in, and which minima are the same.

`minima` classifies endpoints and maps them into minima, `cluster` groups points within a
tolerance, `symmetry` holds the canonical forms and weight matching of network symmetries.
"""

from gdlab.atlas import symmetry
from gdlab.atlas.cluster import cluster_points, first_seen, join_partitions
from gdlab.atlas.minima import Atlas, KnownMatch, Minimum, find_minima, match_known_minima

__all__ = ["Atlas", "KnownMatch", "Minimum", "cluster_points", "find_minima", "first_seen",
           "join_partitions", "match_known_minima", "symmetry"]

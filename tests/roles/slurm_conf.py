"""The smallest slurm.conf Slurm's own parser (scontrol) accepts, for the role and module tests."""

from __future__ import annotations


def minimal_slurm_conf(heading: str, cluster: str, accounting: str, partition: str) -> str:
    """One node, one partition; `accounting` (whole lines) stands between the controller and the node."""
    return (f"{heading}\nClusterName={cluster}\nSlurmctldHost=localhost\n{accounting}"
            f"NodeName=localhost CPUs=1 State=UNKNOWN\nPartitionName={partition} Nodes=localhost Default=YES\n")

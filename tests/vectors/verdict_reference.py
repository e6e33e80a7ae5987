"""How the Python side (ood_mt.shares) decides a verdict-vector case: used by the generator
(tests/vectors/generate_verdicts.py) to check each case before saving it, and by the
Python suite (tests/initializer/test_verdict_vectors.py) to check the committed file."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from ood_mt import shares


def write_files(vectors: dict[str, Any], root: Path) -> tuple[Path, Path]:
    """The vectors' key files and users' keys, where the real readers look; (key dir, homes)."""
    key_dir, homes = root / "keys", root / "homes"
    for rel, text in vectors["key_files"].items():
        (key_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (key_dir / rel).write_text(text)
    for user, text in vectors["user_key_files"].items():
        own = homes / user / ".ood-mt"
        own.mkdir(parents=True, mode=0o700)
        own.chmod(0o700)
        (own / "user.key").write_text(text)
        (own / "user.key").chmod(0o600)
    return key_dir, homes


def outcome(vectors: dict[str, Any], case: dict[str, Any], key_dir: Path, homes: Path) -> Any:
    """"listing-refused", or {jobid: "accepted" | rejection reason} after the per-publisher limit."""
    try:
        jobs = shares.parse_squeue(base64.b64decode(case["listing_b64"]))
    except shares.DiscoveryError:
        return "listing-refused"
    site_v = vectors["site"]
    site = shares.SiteSummary(site="vectors", cluster="vectors", wckey=site_v["wckey"],
                              publisher_group=site_v["publisher_group"], tenant_groups=tuple(site_v["tenant_groups"]),
                              tenant_group_pattern="", key_dir=key_dir, refresh_seconds=0,
                              discovery_interval_seconds=10, spool_dir=Path("/nonexistent"), card_cluster="vectors",
                              squeue="squeue",
                              squeue_timeout_seconds=10, delivery_apps=tuple(site_v["delivery_apps"]),
                              preset_delivery={})
    me = case["me"]
    identity = shares.Identity(me["name"], me["uid"], me["uid"], homes / me["name"], tuple(me["groups"]))
    directory = vectors["directory"]
    verifier = shares.Verifier(site, identity, membership=lambda user, group: user in directory.get(group, []))
    evaluations = [verifier.evaluate(job) for job in jobs]
    shares.limit_per_publisher(evaluations)
    return {ev.job.jobid: "accepted" if ev.accepted else ev.rejection.reason  # type: ignore[union-attr]
            for ev in evaluations}

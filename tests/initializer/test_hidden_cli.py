"""`ood-mt hide`, `hide --undo`, `list --hidden` and `list` leaving hidden shares out, without
Slurm: discovery and verification are replaced by accepted evaluations (the real ones run in
tests/initializer/test_initializer_slurm.py). The file's rule is pinned by tests/vectors/hidden.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ood_mt import hidden, shares, shares_cli
from tests.initializer.test_shares_unit import SITE

CREATED = 1767225600


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A home, a site.json and two running shares (4711, 4712) of alice, accepted."""
    home = tmp_path / "home"
    home.mkdir()
    site = tmp_path / "site.json"
    site.write_text(json.dumps(SITE))
    state: dict[str, Any] = {"created": {"4711": CREATED, "4712": CREATED + 1}, "home": home, "site": site}
    me = shares.Identity("bob", 1000, 1000, home, ("bob", "mtclass"))
    monkeypatch.setattr(shares.Identity, "current", classmethod(lambda cls: me))

    def running(self: Any, who: Any) -> list[shares.Job]:
        return [shares.Job(j, "alice", "multitenant", "mt1:x", "") for j in state["created"]]

    def evaluate(self: Any, job: shares.Job, **_kw: Any) -> shares.Evaluation:
        payload = {"app": "llm", "title": f"Llama {job.jobid}", "preset": "api", "mode": "card",
                   "delivery": "sys/mt_delivery_default", "created": state["created"][job.jobid], "conn": {}}
        return shares.Evaluation(job=job, payload=payload, group="mtclass")

    monkeypatch.setattr(shares_cli._Slurm, "running", running)
    monkeypatch.setattr(shares.Verifier, "evaluate", evaluate)
    return state


def cli(command: Any, env: dict[str, Any], *args: str) -> Any:
    return CliRunner().invoke(command, ["--site-json", str(env["site"]), *args])


def listed(env: dict[str, Any], *args: str) -> list[dict[str, Any]]:
    result = cli(shares_cli.list_command, env, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_hide_list_hidden_and_undo(env: dict[str, Any]) -> None:
    assert [r["jobid"] for r in listed(env)] == ["4711", "4712"]
    done = cli(shares_cli.hide_command, env, "4711")
    assert done.exit_code == 0 and "job 4711: hidden (Llama 4711 from alice (job 4711))" in done.output
    path = hidden.path_for(env["home"])
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    assert json.loads(path.read_text())["hidden"][0] | {"hidden_at": 0} == {
        "jobid": "4711", "created": CREATED, "app": "llm", "title": "Llama 4711", "publisher": "alice",
        "hidden_at": 0}
    assert [r["jobid"] for r in listed(env)] == ["4712"]
    assert [(r["jobid"], r["running"]) for r in listed(env, "--hidden")] == [("4711", True)]
    assert "already hidden" in cli(shares_cli.hide_command, env, "4711").output
    undone = cli(shares_cli.hide_command, env, "--undo", "4711")
    assert undone.exit_code == 0 and "shown again" in undone.output
    assert [r["jobid"] for r in listed(env)] == ["4711", "4712"]
    assert "was not hidden" in cli(shares_cli.hide_command, env, "--undo", "4711").output


def test_a_new_publication_of_a_hidden_job_is_shown_again(env: dict[str, Any]) -> None:
    assert cli(shares_cli.hide_command, env, "4711").exit_code == 0
    env["created"]["4711"] = CREATED + 600  # the publisher re-shared: a new created
    assert [r["jobid"] for r in listed(env)] == ["4711", "4712"]
    assert [(r["jobid"], r["running"]) for r in listed(env, "--hidden")] == [("4711", False)]


def test_hide_refuses_what_is_not_a_visible_share(env: dict[str, Any]) -> None:
    for jobid, message in (("999", "not a running share visible to you"), ("4x", "is not a Slurm job id")):
        result = cli(shares_cli.hide_command, env, jobid)
        assert result.exit_code == 2 and message in result.output
    assert not hidden.path_for(env["home"]).exists()


def test_a_corrupted_file_hides_nothing_is_named_and_never_overwritten(env: dict[str, Any]) -> None:
    path = hidden.path_for(env["home"])
    path.parent.mkdir(parents=True)
    path.write_text('{"format": 1, "hidden": [{"jobid": "4711", "created": "soon"}]}')
    before = path.read_bytes()
    result = CliRunner().invoke(shares_cli.list_command, ["--site-json", str(env["site"]), "--json"])
    assert result.exit_code == 0
    assert [r["jobid"] for r in json.loads(result.stdout)] == ["4711", "4712"]
    assert f"hidden shares file {path}: entry 0: created is not a positive integer" in result.stderr
    assert "fix: repair it or move it aside" in result.stderr
    for args in (["4712"], ["--undo", "4711"]):
        refused = cli(shares_cli.hide_command, env, *args)
        assert refused.exit_code == 2 and str(path) in refused.output and "left as it was" in refused.output
    assert path.read_bytes() == before

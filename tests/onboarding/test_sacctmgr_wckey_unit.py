"""Unit tests of the sacctmgr_wckey module's pure code: validation and parsing
(plugins/module_utils/ood_mt_sacctmgr_parse.py) and planning (plugins/module_utils/ood_mt_wckey_plan.py).

They are imported as the module imports them,
`ansible_collections.ood_mt.multitenant.plugins.module_utils.<name>` (tests/conftest.py puts the
checkout's collections path on sys.path, scripts/collection_link.sh makes the link). The output
parsed here was captured from a real Slurm 22.05 (sacctmgr_samples/README.md); no daemon is
needed. Hostile WCKeys are shown on the real Slurm by test_sacctmgr_wckey_slurm.py.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from ansible_collections.ood_mt.multitenant.plugins.module_utils import ood_mt_sacctmgr_parse as parse
from ansible_collections.ood_mt.multitenant.plugins.module_utils import ood_mt_wckey_plan as plan
from ansible_collections.ood_mt.multitenant.plugins.modules import sacctmgr_wckey as sw

SAMPLES = Path(__file__).resolve().parent / "sacctmgr_samples"


def sample(name: str) -> str:
    return (SAMPLES / name).read_text(encoding="utf-8")


# ---------------------------------------------------------------- members of the site's WCKey


def test_members_of_the_site_wckey_from_the_filtered_listing() -> None:
    assert parse.parse_members(sample("list_wckey_name_multitenant.txt"), "multitenant", "hostlab") == [
        "mtpub", "mtrecv", "mtrecv2"]


def test_members_of_an_empty_listing() -> None:
    assert sample("list_wckey_empty.txt") == ""
    assert parse.parse_members(sample("list_wckey_empty.txt"), "multitenant", "hostlab") == []


def test_members_are_lower_cased_like_slurm() -> None:
    assert parse.parse_members("MultiTenant|HostLab|Alice\n", "multitenant", "hostlab") == ["alice"]


@pytest.mark.parametrize("sample_name", ["list_wckey_all_clusters.txt", "list_wckey_cluster_capture2.txt"])
def test_a_listing_not_aligned_on_the_site_wckey_stops_the_module(sample_name: str) -> None:
    """An unfiltered listing (other WCKeys, other clusters) is not what the module asked for."""
    with pytest.raises(parse.WckeyModuleError, match=r"line 1: .*expected 'multitenant\|hostlab\|<user>'.*"
                                                     r"nothing was changed"):
        parse.parse_members(sample(sample_name), "multitenant", "hostlab")


@pytest.mark.parametrize("line", ["multitenant|hostlab", "multitenant|hostlab|a|b", "multitenant|hostlab|",
                                  "multitenant2|hostlab|a", "a|b\nc|hostlab|x"])
def test_any_misaligned_members_line_is_refused(line: str) -> None:
    with pytest.raises(parse.WckeyModuleError, match="unexpected sacctmgr output line"):
        parse.parse_members(f"multitenant|hostlab|ok\n{line}\n", "multitenant", "hostlab")


# ---------------------------------------------------------------- WCKeys of the users being added


USERS = ["mtpub", "mtout", "root", "ghost"]


def test_row_counts_and_wckeys_held_from_captured_listings() -> None:
    counts = parse.parse_row_counts(sample("list_wckey_users_count.txt"), USERS)
    assert counts == Counter({"mtpub": 3, "mtout": 2, "root": 1})
    held = parse.wckeys_held(sample("list_wckey_users_wckeys.txt"), USERS, counts)
    assert held == {"mtout": ["", "*"], "mtpub": ["", "*", "multitenant"], "root": [""]}
    assert plan.holding_a_wckey(held) == {"mtout", "mtpub", "root"}


def test_star_rows_are_not_associations() -> None:
    held = parse.wckeys_held("jobsonly|*\njobsonly|*other\n", ["jobsonly"], Counter({"jobsonly": 2}))
    assert plan.holding_a_wckey(held) == set()


def test_a_users_own_wckey_with_bar_and_newline_is_read_whole() -> None:
    """What `--wckey='a|b<newline>c'` (WCKeys not enforced) looks like in the listing: WCKey last."""
    held = parse.wckeys_held("mallory|a|b\nc\nmallory|*\n", ["mallory"], Counter({"mallory": 2}))
    assert held == {"mallory": ["a|b\nc", "*"]}
    assert plan.holding_a_wckey(held) == {"mallory"}


def test_a_wckey_forging_another_users_record_is_caught_by_the_count() -> None:
    forged = "mallory|x\nvictim|ours\nvictim|*\n"  # mallory's WCKey is "x\nvictim|ours"
    with pytest.raises(parse.WckeyModuleError, match=r"listing of victim is ambiguous.*changed nothing"):
        parse.wckeys_held(forged, ["mallory", "victim"], Counter({"mallory": 1, "victim": 1}))


def test_row_counts_refuse_a_name_not_asked_for() -> None:
    with pytest.raises(parse.WckeyModuleError, match="unexpected sacctmgr output line 2: 'eve'"):
        parse.parse_row_counts("alice\neve\n", ["alice"])


def test_wckeys_listing_must_start_with_a_record() -> None:
    with pytest.raises(parse.WckeyModuleError, match="unexpected sacctmgr output line 1"):
        parse.wckeys_held("stray\nalice|k\n", ["alice"], Counter({"alice": 1}))


def test_parse_association_users_sample() -> None:
    # 'ghost' was asked for but has no association, so it is absent.
    assert parse.parse_association_users(sample("list_association_users.txt")) == {"capa", "capb"}


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("bad", ["", "  ", "*multitenant", "a,b", "a|b", "a b", "a=b", "a'b", None, 3])
def test_invalid_wckeys_are_refused_with_the_parameter_named(bad: object) -> None:
    with pytest.raises(parse.WckeyModuleError, match="parameter 'wckey'"):
        parse.normalize_wckey(bad)


def test_wckey_is_lower_cased() -> None:
    assert parse.normalize_wckey("MultiTenant") == "multitenant"


def test_users_are_normalized_into_a_new_list_without_touching_the_input() -> None:
    given = ["Bob", "alice", "bob", "ALICE"]
    snapshot = list(given)
    assert parse.normalize_users(given) == ["bob", "alice"]
    assert given == snapshot


@pytest.mark.parametrize("bad", ["", "a,b", "a b", "-x", "a|b"])
def test_invalid_user_names_name_the_item(bad: str) -> None:
    with pytest.raises(parse.WckeyModuleError, match=r"'users' item 1"):
        parse.normalize_users(["ok", bad])


# ---------------------------------------------------------------- planning


MEMBERS = parse.parse_members(sample("list_wckey_name_multitenant.txt"), "multitenant", "hostlab")


def test_plan_adds_only_missing_users_and_the_default_for_those_with_no_wckey() -> None:
    candidates = plan.default_candidates(MEMBERS, ["mtpub", "mtout", "newbie"], "present", True)
    assert candidates == ["mtout", "newbie"]  # mtpub already holds the WCKey
    result = plan.plan_changes(MEMBERS, {"mtout"}, ["mtpub", "mtout", "newbie"], "present", True)
    assert result.add == ["mtout", "newbie"]
    assert result.default_wckey_add == ["newbie"]
    assert result.before == MEMBERS and result.after == sorted([*MEMBERS, "mtout", "newbie"])
    assert result.changed


def test_no_wckeys_are_read_without_ensure_default_or_when_removing() -> None:
    assert plan.default_candidates(MEMBERS, ["newbie"], "present", False) == []
    assert plan.default_candidates(MEMBERS, ["newbie"], "absent", True) == []
    result = plan.plan_changes(MEMBERS, set(), ["newbie"], "present", False)
    assert result.add == ["newbie"] and result.default_wckey_add == []


def test_plan_is_a_no_op_when_everyone_is_there() -> None:
    result = plan.plan_changes(MEMBERS, set(), MEMBERS, "present", True)
    assert not result.changed
    assert result.before == result.after == MEMBERS


def test_plan_compares_mixed_case_input_after_normalization() -> None:
    users = parse.normalize_users(["MTPUB", "mtrecv"])
    assert not plan.plan_changes(MEMBERS, set(), users, "present", True).changed


def test_plan_absent_removes_only_members() -> None:
    result = plan.plan_changes(MEMBERS, set(), ["mtrecv", "mtout"], "absent", True)
    assert result.remove == ["mtrecv"]  # mtout does not hold it
    assert result.after == ["mtpub", "mtrecv2"]
    assert result.default_wckey_add == []


def test_plan_on_an_empty_listing() -> None:
    result = plan.plan_changes([], set(), ["u1"], "present", True)
    assert result.before == [] and result.after == ["u1"]
    assert result.default_wckey_add == ["u1"]


def test_bad_state_is_refused() -> None:
    with pytest.raises(parse.WckeyModuleError, match="parameter 'state' is 'gone'"):
        plan.plan_changes([], set(), ["u1"], "gone", True)


# ---------------------------------------------------------------- command lines


def test_read_commands_ask_for_the_site_wckey_and_the_users_only() -> None:
    assert plan.members_argv("sacctmgr", "hostlab", "multitenant") == [
        "sacctmgr", "--parsable2", "--noheader", "list", "wckey", "name=multitenant", "cluster=hostlab",
        "format=WCKey,Cluster,User"]
    (call,) = plan.held_argvs("sacctmgr", "hostlab", ["a", "b"])
    assert call["users"] == ["a", "b"]
    assert call["counts"][-3:] == ["user=a,b", "cluster=hostlab", "format=User"]
    assert call["wckeys"][-3:] == ["user=a,b", "cluster=hostlab", "format=User,WCKey"]


def test_write_commands_order_and_syntax() -> None:
    result = plan.Plan(before=[], after=["a", "b"], add=["a", "b"], default_wckey_add=["b"])
    assert plan.write_commands("/usr/bin/sacctmgr", "hostlab", "multitenant", result) == [
        ["/usr/bin/sacctmgr", "-i", "add", "user", "b", "wckey=", "cluster=hostlab"],
        ["/usr/bin/sacctmgr", "-i", "modify", "user", "where", "name=b", "cluster=hostlab", "set",
         "defaultwckey="],
        ["/usr/bin/sacctmgr", "-i", "add", "user", "a,b", "wckey=multitenant", "cluster=hostlab"],
    ]


def test_one_add_command_for_a_thousand_users() -> None:
    users = [f"user{i:04d}" for i in range(1000)]
    commands = plan.write_commands("sacctmgr", "hostlab", "k", plan.Plan(before=[], after=users, add=users))
    assert len(commands) == 1
    assert commands[0][4].split(",") == users


def test_chunks_respect_the_byte_limit_and_keep_every_name() -> None:
    names = [f"u{i:06d}" for i in range(30_000)]  # 8 bytes each with the comma
    chunks = plan.chunk_names(names, fixed_bytes=100)
    assert len(chunks) > 1
    assert [n for chunk in chunks for n in chunk] == names
    assert all(100 + sum(len(n) + 1 for n in chunk) <= plan.MAX_COMMAND_BYTES for chunk in chunks)
    assert [c["users"] for c in plan.held_argvs("sacctmgr", "hostlab", names)] == plan.chunk_names(
        names, plan._fixed_bytes(["sacctmgr", "--parsable2", "--noheader", "list", "wckey", "cluster=hostlab",
                                  "format=User,WCKey"]))


# ---------------------------------------------------------------- errors and results


def test_unreachable_slurmdbd_message_from_captured_stderr() -> None:
    message = parse.unreachable_message(sample("stderr_slurmdbd_down.txt"), "dbhost")
    assert message is not None
    assert message.startswith("sacctmgr could not reach slurmdbd: ")
    assert message.endswith("is slurmdbd running on localhost (port 6819)?")


def test_other_errors_are_not_reported_as_unreachable() -> None:
    assert parse.unreachable_message("sacctmgr: error: Unknown option: foo", "h") is None


def test_unknown_users_message_says_which_and_how() -> None:
    message = plan.unknown_users_message(["ghost", "spook"], "hostlab")
    assert "ghost, spook" in message
    assert "sacctmgr -i add user ghost,spook account=<account> cluster=hostlab" in message


def test_cluster_and_host_from_slurm_conf() -> None:
    text = "# c\nClusterName=Lab1 # comment\naccountingstoragehost=db1\n"
    assert parse.cluster_from_slurm_conf(text) == ("Lab1", "db1")
    assert parse.cluster_from_slurm_conf(None) == (None, None)


def test_result_reports_cancelled_jobs_and_the_diff() -> None:
    jobs = [parse.ActiveJob("7", "a", "k", "RUNNING")]
    done = plan.result(plan.Plan(before=["a"], after=[], remove=["a"]), "k", "c", [["x"]], jobs, [])
    assert done["changed"] is True and done["cancelled"] == ["7"]
    assert done["active_jobs"] == [{"job_id": "7", "user": "a", "state": "RUNNING"}]
    assert done["diff"]["before"] == "# users with WCKey 'k' on cluster c\na\n"  # type: ignore[index]


# ---------------------------------------------------------------- live jobs (offboarding)


def test_parse_squeue_keeps_users_wckeys_and_states() -> None:
    jobs = parse.parse_squeue_jobs(sample("squeue_jobs.txt"))
    assert parse.ActiveJob("22424", "mtrecv2", "multitenant", "PENDING") in jobs  # --wckey=MultiTenant
    assert parse.ActiveJob("22425", "mtrecv2", "*", "RUNNING") in jobs  # default WCKey
    assert len(jobs) == 5


def test_jobs_holding_wckey_are_only_the_removed_users_jobs_under_it() -> None:
    jobs = parse.parse_squeue_jobs(sample("squeue_jobs.txt"))
    held = plan.jobs_holding_wckey(jobs, "multitenant", ["mtrecv2"])
    assert [job.job_id for job in held] == ["22423", "22424", "22426"]
    assert plan.jobs_holding_wckey(jobs, "multitenant", ["nobody"]) == []
    assert [job.user for job in plan.jobs_holding_wckey(jobs, "multitenant", ["mtout"])] == ["mtout"]


def test_parse_squeue_refuses_unexpected_lines() -> None:
    with pytest.raises(parse.WckeyModuleError, match="unexpected squeue output line 1"):
        parse.parse_squeue_jobs("22423 mtrecv2 multitenant RUNNING\n")


def test_jobs_sacct_has_not_seen_end_are_still_unrecorded() -> None:
    before = parse.unrecorded_jobs(sample("sacct_before_cancel.txt"), ["22423", "22424", "22426"])
    assert before == ["22423", "22424", "22426"]  # PENDING in sacct, and two not listed at all
    after = parse.unrecorded_jobs(sample("sacct_after_cancel.txt"), ["22423", "22424", "22426"])
    assert after == []


def test_active_jobs_message_names_jobs_and_both_fixes() -> None:
    jobs = plan.jobs_holding_wckey(parse.parse_squeue_jobs(sample("squeue_jobs.txt")), "multitenant", ["mtrecv2"])
    message = plan.active_jobs_message(jobs, "multitenant")
    assert "22423 (mtrecv2, RUNNING)" in message and "22426 (mtrecv2, PENDING)" in message
    assert "nothing was changed" in message and "active_jobs: cancel" in message


# ---------------------------------------------------------------- the module's thin layer


def test_sibling_tools_follow_an_absolute_sacctmgr() -> None:
    assert sw.sibling_tool("/opt/slurm/bin/sacctmgr", "squeue") == "/opt/slurm/bin/squeue"
    assert sw.sibling_tool("sacctmgr", "scancel") == "scancel"


def test_bad_active_jobs_value_is_refused_before_any_call() -> None:
    with pytest.raises(parse.WckeyModuleError, match="'active_jobs' is 'kill'"):
        sw.run_module({"wckey": "multitenant", "users": ["a"], "state": "absent", "active_jobs": "kill"},
                      False, "/nonexistent/sacctmgr")

# frozen_string_literal: true

require_relative "test_helper"

# Verification policy, with tokens made by the PYTHON reference encoder and checked by the
# Ruby codec + lib. Users and groups are the lab's (DirectoryDouble.lab), injected, so the
# policy is tested on a fresh machine too; the system directory (Etc) is read by the same
# code (Verifier.membership_in), tested at the end with the user running the tests.
class VerifierTest < Minitest::Test
  include InitializerTestHelpers

  LAB = DirectoryDouble.lab
  LAB_MEMBERSHIP = MultiTenant::Verifier.membership_in(LAB)

  def setup
    @root = Dir.mktmpdir
    @key_dir = File.join(@root, "keys")
    @keys = write_keys(@key_dir, "mtclass", current: 2, versions: [1, 2])
    @config = site_config("publisher_group" => "mtusr", "key_dir" => @key_dir)
    @me = identity("mtrecv")
  end

  def teardown
    FileUtils.rm_rf(@root) if @root
  end

  def identity(name, home: File.join(@root, "home-#{name}"))
    FileUtils.mkdir_p(home)
    entry = LAB.getpwnam(name)
    MultiTenant::Identity.new(name: name, uid: entry.uid, gid: entry.gid, home: home, group_names: LAB.group_names(name))
  end

  def verifier(me = @me, config = @config, membership: LAB_MEMBERSHIP)
    MultiTenant::Verifier.new(config: config, identity: me, membership: membership,
                              keys: MultiTenant::KeyStore.new(key_dir: config.key_dir, home: me.home))
  end

  def job(token, jobid: "500", owner: "mtpub", wckey: "multitenant")
    name, comment = MultiTenant::Codec.split_transport(token)
    MultiTenant::Job.new(jobid: jobid, owner: owner, wckey: wckey, name: name, comment: comment.to_s)
  end

  def token(aud: "mtclass", kv: 2, key: @keys[2], jobid: "500", owner: "mtpub", payload: sample_payload)
    python_token(payload: payload, key: key, aud: aud, kv: kv, jobid: jobid, owner: owner)
  end

  def assert_rejected(reason, the_job, me = @me, config = @config, **membership)
    error = assert_raises(MultiTenant::Rejected) { verifier(me, config, **membership).verify(the_job) }
    assert_equal reason, error.reason, error.message
    error
  end

  def test_accepts_a_group_share_and_exposes_its_fields
    share = verifier.verify(job(token))
    assert_equal ["500", "mtpub", "mtclass", "card", "sys/mt_delivery_default"],
                 [share.jobid, share.owner, share.group, share.mode, share.payload["delivery"]]
    assert_equal "s3cr#et:x{y}", share.conn["password"]
    assert_equal "Llama from mtpub (job 500)", share.label
  end

  def test_previous_key_version_is_accepted_older_is_retired
    assert_equal "mtclass", verifier.verify(job(token(kv: 1, key: @keys[1]))).group
    write_keys(@key_dir, "mtclass", current: 3, versions: [3])
    FileUtils.rm_f(File.join(@key_dir, "mtclass", "v2.key"))
    error = assert_rejected("key-version-retired", job(token(kv: 1, key: @keys[1])))
    assert_match(/accepted: 3/, error.detail)
  end

  def test_wckey_is_compared_case_insensitively_and_must_match
    assert verifier.verify(job(token, wckey: "MultiTenant"))
    assert_rejected("wrong-wckey", job(token, wckey: "*"))
    assert_rejected("wrong-wckey", job(token, wckey: "other"))
  end

  def test_owner_must_be_a_publisher_by_membership_or_primary_group
    assert_rejected("publisher-not-in-group", job(token(owner: "mtrecv"), owner: "mtrecv"))
    # mtrecv2 is in mtclass only through its primary gid (not in the member list)
    primary = site_config("publisher_group" => "mtclass", "key_dir" => @key_dir)
    assert verifier(@me, primary).verify(job(token(owner: "mtrecv2"), owner: "mtrecv2"))
  end

  def test_a_name_copied_into_another_job_or_tampered_fails_the_tag
    good = token
    assert_rejected("bad-tag", job(good, jobid: "501"))
    tampered = good[0..-3] + (good[-2] == "A" ? "B" : "A") + good[-1]
    assert_rejected("bad-tag", job(tampered))
  end

  def test_audience_rules
    outsider = identity("mtout")
    assert_rejected("not-in-audience", job(token), outsider)
    not_tenant = site_config("publisher_group" => "mtusr", "key_dir" => @key_dir, "tenant_groups" => ["other"])
    assert_rejected("not-in-audience", job(token), @me, not_tenant)
    pattern = site_config("publisher_group" => "mtusr", "key_dir" => @key_dir, "tenant_groups" => [],
                          "tenant_group_pattern" => "mt.*")
    assert verifier(@me, pattern).verify(job(token))
    listed = token(payload: sample_payload("users" => python_users([LAB.getpwnam("mtrecv2").uid, 5000])))
    assert_rejected("not-in-audience", job(listed))
    mine = token(payload: sample_payload("users" => python_users([@me.uid, 5000])))
    assert verifier.verify(job(mine))
  end

  def test_user_only_share_is_for_its_publisher_alone
    me = identity("mtpub")
    key = MultiTenant::KeyStore.new(key_dir: @key_dir, home: me.home).user_key
    path = File.join(me.home, ".ood-mt", "user.key")
    assert_equal 0o600, File.stat(path).mode & 0o777
    assert_equal 0o700, File.stat(File.dirname(path)).mode & 0o777
    mine = token(aud: "~mtpub", kv: 1, key: key)
    assert_equal "~mtpub", verifier(me).verify(job(mine)).group
    assert_rejected("not-in-audience", job(token(aud: "~mtrecv2", kv: 1, key: key)), me)
    File.chmod(0o644, path)
    assert_rejected("no-key", job(mine), me)
  end

  # Finding 3 of the hostile-publisher review: the audience must hold the publisher.
  def test_publisher_must_be_in_the_audience
    # "my user only" addressed to another user: refused even with that user's key.
    receiver_key = MultiTenant::KeyStore.new(key_dir: @key_dir, home: @me.home).user_key
    to_other = token(aud: "~mtrecv", kv: 1, key: receiver_key)
    assert_rejected("publisher-not-in-audience", job(to_other))
    # a group share from a publisher outside that group (membership as a directory says).
    outside = ->(user, group) { !(user == "mtpub" && group == "mtclass") && LAB_MEMBERSHIP.call(user, group) }
    error = assert_rejected("publisher-not-in-audience", job(token), @me, @config, membership: outside)
    assert_match(/mtpub is not in group mtclass/, error.message)
  end

  def test_missing_key_and_bad_encoding_and_bad_payload
    FileUtils.rm_rf(File.join(@key_dir, "mtclass"))
    assert_rejected("no-key", job(token))
    assert_rejected("bad-encoding", job("mt1:mtclass:2:!!"))
    @keys = write_keys(@key_dir, "mtclass", current: 2, versions: [1, 2])
    evil = token(payload: sample_payload(delivery: "sys/anything_else"))
    assert_rejected("bad-payload", job(evil))
  end

  # The system directory through the same code: the user running the tests is in their
  # primary group (by gid; /etc/group seldom lists it), in no group that does not exist,
  # and no user that does not exist is in any group.
  def test_system_membership_reads_the_system_directory
    me = Etc.getpwuid(Process.euid)
    primary = Etc.getgrgid(me.gid).name
    system = MultiTenant::Verifier::SYSTEM_MEMBERSHIP
    assert system.call(me.name, primary)
    refute system.call(me.name, "ood-mt-no-such-group")
    refute system.call("ood-mt-no-such-user", primary)
  end
end

# The refresh loop: one log line per rejection, the others still processed, cards written.
class RefresherTest < Minitest::Test
  include InitializerTestHelpers

  def setup
    @root = Dir.mktmpdir
    @keys = write_keys(File.join(@root, "keys"), "mtclass", current: 1, versions: [1])
    @config = site_config("publisher_group" => "mtusr", "key_dir" => File.join(@root, "keys"), "refresh_seconds" => 0)
  end

  def teardown
    FileUtils.rm_rf(@root) if @root
  end

  def row(jobid, owner: "mtpub", wckey: "multitenant", mode: "card", token: nil)
    token ||= python_token(payload: sample_payload(mode: mode), key: @keys[1], aud: "mtclass", kv: 1, jobid: jobid,
                           owner: owner)
    squeue_row(jobid, owner, wckey, token)
  end

  def refresher(name, out)
    home = File.join(@root, name)
    FileUtils.mkdir_p(home)
    me = MultiTenant::Identity.new(name: name, uid: VerifierTest::LAB.getpwnam(name).uid, gid: 0, home: home,
                                   group_names: [name, "mtclass"])
    lines = []
    r = MultiTenant::Refresher.new(config: @config, identity: me, env: {}, logger: ->(l) { lines << l },
                                   runner: CannedSqueueRunnerDouble.new(out), membership: VerifierTest::LAB_MEMBERSHIP)
    [r, lines]
  end

  # The refresher's own squeue runs in the background (no spool here): the first call
  # starts it, the next one uses its result.
  def settled(refresher, force: false)
    refresher.refresh
    assert refresher.settle(30)
    refresher.refresh(force: force)
  end

  def kit_lines(lines) = lines.grep_v(/\Aood-mt: discovery spool \S+ stale/)

  def test_rejections_are_logged_once_each_and_do_not_stop_other_shares
    good = row("600")
    copied_name = python_token(payload: sample_payload, key: @keys[1], aud: "mtclass", kv: 1, jobid: "600", owner: "mtpub")
    out = good + row("601", wckey: "*") + squeue_row("602", "mtpub", "multitenant", copied_name) +
          row("603", mode: "form") + row("604", owner: "mtrecv")
    r, all_lines = refresher("mtrecv", out)
    specs = settled(r)
    settled(r, force: true)
    lines = kit_lines(all_lines)
    assert_equal 1, all_lines.size - lines.size, "the fall-back is logged once: #{all_lines.inspect}"
    assert_equal %w[600 603], specs.keys.sort
    assert_equal ["ood-mt: job 601: rejected: wrong-wckey", "ood-mt: job 602: rejected: bad-tag",
                  "ood-mt: job 604: rejected: publisher-not-in-group"],
                 lines.map { |l| l[/\Aood-mt: job \d+: rejected: [a-z-]+/] }.sort
    assert_equal 3, lines.size, "each rejection exactly once across refreshes: #{lines.inspect}"
    assert_equal 1, Dir.children(r.cards.db_dir).size, "one card (600); 603 is a form share"
    # both delivery modes are offered in client forms ("card" means card and forms)
    assert_equal [["Llama from mtpub (job 600)", "600"], ["Llama from mtpub (job 603)", "603"]],
                 MultiTenant.tap { |m| m.refresher = r }.form_options(kind: "llm")
    assert_equal [], MultiTenant.form_options(kind: "database")
    assert_equal "mtpub", MultiTenant.share("603")[:owner]
    assert_nil MultiTenant.share("999")
  ensure
    MultiTenant.refresher = nil
  end

  def test_publisher_gets_no_card_of_its_own_share_but_uses_both_in_forms
    r, lines = refresher("mtpub", row("700") + row("701", mode: "form"))
    assert_equal %w[700 701], settled(r).keys.sort
    assert_equal [], kit_lines(lines), "the publisher's own share is not a rejection"
    refute Dir.exist?(r.cards.db_dir) && !Dir.children(r.cards.db_dir).empty?
  end

  def test_specs_helpers_are_empty_safe_without_a_refresher
    MultiTenant.refresher = nil
    assert_equal({}, MultiTenant.specs)
    assert_equal [], MultiTenant.form_options
    assert_nil MultiTenant.share("1")
  end
end

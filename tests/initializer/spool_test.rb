# frozen_string_literal: true

require_relative "test_helper"

# The discovery spool reader (MultiTenant::Spool) and the refresh around it
# (docs/discovery.md "Readers"): which files are read, what a bad file costs, the stat skip,
# and the fall-back to the refresher's own squeue off the request path.
module SpoolTestHelpers
  include InitializerTestHelpers

  HANGING_SQUEUE_DOUBLE = File.join(__dir__, "hanging_squeue_double.sh")
  NOW = 1_767_225_600.0
  LAB = DirectoryDouble.lab
  LAB_DIRECTORY = MultiTenant::Verifier.membership_in(LAB)
  # The lab's groups plus lab2, a second tenant group of mtpub's.
  LAB_MEMBERSHIP = ->(user, group) { group == "lab2" ? user == "mtpub" : LAB_DIRECTORY.call(user, group) }

  # TEST DOUBLE of File.binread that records every path read and can refuse some.
  class RecordingReader
    attr_reader :reads

    def initialize(denied: [])
      @denied = denied
      @reads = []
    end

    def call(path)
      @reads << path
      raise Errno::EACCES, path if @denied.include?(path)

      File.binread(path)
    end

    def listing_reads = @reads.grep(/\.listing\z/)
  end

  # Counts Discovery.parse calls (the one parser of squeue output and spool files).
  module CountingParse
    class << self
      attr_accessor :count
    end
    self.count = 0

    def parse(*args)
      CountingParse.count += 1
      super
    end
  end
  MultiTenant::Discovery.singleton_class.prepend(CountingParse)

  def setup
    @root = Dir.mktmpdir
    @spool = File.join(@root, "spool")
    FileUtils.mkdir_p([File.join(@spool, "group"), File.join(@spool, "user")])
    @now = NOW
    @keys = write_keys(File.join(@root, "keys"), "mtclass", current: 1, versions: [1])
    @lines = []
  end

  def teardown
    FileUtils.rm_rf(@root) if @root
  end

  def config(over = {})
    site_config({ "publisher_group" => "mtusr", "key_dir" => File.join(@root, "keys"), "spool_dir" => @spool,
                  "tenant_groups" => %w[mtclass lab2], "refresh_seconds" => 30 }.merge(over))
  end

  def heartbeat(written: @now, interval: 10)
    path = File.join(@spool, "heartbeat")
    File.write("#{path}.tmp", JSON.generate({ "format" => 1, "written" => written, "interval" => interval }))
    File.rename("#{path}.tmp", path)
  end

  def share_row(jobid, aud: "mtclass", owner: "mtpub", key: @keys[1], mode: "card")
    token = python_token(payload: sample_payload(mode: mode), key: key, aud: aud, kv: 1, jobid: jobid, owner: owner)
    squeue_row(jobid, owner, "multitenant", token)
  end

  def listing(kind, name, text)
    path = File.join(@spool, kind, "#{name}.listing")
    File.binwrite("#{path}.tmp", text)
    File.rename("#{path}.tmp", path)
    path
  end

  def refresher(user: "mtrecv", groups: [user, "mtclass"], runner: CannedSqueueRunnerDouble.new(""), reader: nil,
                over: {})
    home = File.join(@root, "home-#{user}")
    FileUtils.mkdir_p(home)
    me = MultiTenant::Identity.new(name: user, uid: LAB.getpwnam(user).uid, gid: 0, home: home,
                                   group_names: groups)
    MultiTenant::Refresher.new(config: config(over), identity: me, env: {}, logger: ->(l) { @lines << l },
                               runner: runner, membership: LAB_MEMBERSHIP, clock: -> { @now },
                               spool_reader: reader)
  end

  def elapsed
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    result = yield
    [result, Process.clock_gettime(Process::CLOCK_MONOTONIC) - started]
  end
end

class SpoolReaderTest < Minitest::Test
  include SpoolTestHelpers

  def test_only_the_users_groups_and_own_file_are_read
    heartbeat
    mine = listing("group", "mtclass", share_row("800"))
    # lab2 is a tenant group mtrecv is not in; mtusr is not a tenant group; mtpub's file is another user's.
    listing("group", "lab2", "not a listing: reading it would log a misaligned file\n")
    listing("group", "mtusr", "not a listing either\n")
    listing("user", "mtpub", "not a listing either\n")
    own = listing("user", "mtrecv", "")
    reader = RecordingReader.new
    r = refresher(groups: %w[mtrecv mtclass mtusr], reader: reader)
    assert_equal %w[800], r.refresh.keys
    assert_equal :spool, r.source
    assert_equal [mine, own], reader.listing_reads
    assert_equal [], @lines, "nothing logged: no fall-back, no file that is not the user's"
  end

  def test_a_missing_file_means_no_shares_for_that_audience
    heartbeat
    r = refresher
    assert_equal({}, r.refresh)
    assert_equal :spool, r.source
    assert_equal [], @lines
  end

  def test_a_refused_file_is_logged_once_and_the_others_still_count
    heartbeat
    denied = listing("group", "mtclass", share_row("810"))
    user_key = "\x11".b * 32
    FileUtils.mkdir_p(File.join(@root, "home-mtpub", ".ood-mt"), mode: 0o700)
    File.write(File.join(@root, "home-mtpub", ".ood-mt", "user.key"), user_key.unpack1("H*") + "\n", perm: 0o600)
    listing("user", "mtpub", share_row("811", aud: "~mtpub", key: user_key))
    r = refresher(user: "mtpub", groups: %w[mtpub mtusr mtclass], reader: RecordingReader.new(denied: [denied]))
    assert_equal %w[811], r.refresh.keys, "the user's own file is read: a 'my user only' share"
    r.refresh(force: true)
    assert_equal ["ood-mt: discovery spool file #{denied}: unreadable (Permission denied - #{denied}); " \
                  "no shares from it"], @lines
  end

  def test_a_misaligned_file_costs_only_that_file_logged_once
    heartbeat
    bad = listing("group", "mtclass", share_row("820") + "junk\n")
    lab2 = write_keys(File.join(@root, "keys"), "lab2", current: 1, versions: [1])
    listing("group", "lab2", share_row("821", aud: "lab2", key: lab2[1]))
    r = refresher(groups: %w[mtrecv mtclass lab2])
    r.refresh
    r.refresh(force: true)
    assert_equal 1, @lines.size, @lines.inspect
    assert_match(%r{\Aood-mt: discovery spool file #{Regexp.escape(bad)}: listing misaligned: \d+ bytes}, @lines[0])
    assert_match(/; no shares from it\z/, @lines[0])
    assert_equal %w[821], r.specs.keys, "the other group's file still counts"
  end

  def test_names_that_are_not_posix_names_never_become_paths
    spool = MultiTenant::Spool.new(dir: @spool, contract: CONTRACT, user: "../etc", groups: ["../x", ".hidden", "ok"])
    assert_equal [File.join(@spool, "group", "ok.listing")], spool.paths
  end
end

# Nothing changed since the last refresh: a few stat calls, no squeue, no read, no parse.
class SpoolSkipTest < Minitest::Test
  include SpoolTestHelpers

  def test_unchanged_files_cost_no_read_no_parse_no_squeue
    heartbeat
    listing("group", "mtclass", share_row("830"))
    runner = CannedSqueueRunnerDouble.new("")
    reader = RecordingReader.new
    r = refresher(runner: runner, reader: reader)
    assert_equal %w[830], r.refresh.keys
    reads = reader.reads.size
    parses = CountingParse.count
    500.times { @now += 0.01; r.refresh }
    assert_equal [reads, parses, 0], [reader.reads.size, CountingParse.count, runner.calls]

    # The heartbeat is rewritten every cycle: read again (it changed), the listings not.
    heartbeat(written: @now)
    r.refresh
    assert_equal [File.join(@spool, "heartbeat")], reader.reads.drop(reads)
    assert_equal parses, CountingParse.count

    # A listing rewritten (new bytes): read and parsed again.
    listing("group", "mtclass", share_row("830") + share_row("831"))
    assert_equal %w[830 831], r.refresh.keys.sort
    assert_equal parses + 1, CountingParse.count

    # A new file (the user's own): read too.
    listing("user", "mtrecv", "")
    r.refresh
    assert_equal parses + 3, CountingParse.count, "both files are read again when one appears"
    assert_equal 0, runner.calls
    assert_equal [], @lines
  end

  def test_force_reads_again
    heartbeat
    listing("group", "mtclass", share_row("840"))
    r = refresher
    r.refresh
    parses = CountingParse.count
    r.refresh(force: true)
    assert_equal parses + 1, CountingParse.count
  end
end

# A stale or missing spool: the refresher's own squeue, off the request path.
class SpoolFallbackTest < Minitest::Test
  include SpoolTestHelpers

  def slow_squeue(seconds, output)
    out = File.join(@root, "squeue.out")
    File.binwrite(out, output)
    path = File.join(@root, "slow_squeue_double.sh")
    File.write(path, "#!/bin/sh\n# TEST DOUBLE of a slow squeue.\nsleep #{seconds}\ncat '#{out}'\n")
    File.chmod(0o755, path)
    path
  end

  def test_a_hanging_squeue_never_holds_a_request
    heartbeat(written: @now - 100)
    r = refresher(runner: nil, over: { "squeue" => HANGING_SQUEUE_DOUBLE, "squeue_timeout_seconds" => 1.5,
                                       "refresh_seconds" => 0 })
    specs, took = elapsed { r.refresh }
    assert_equal({}, specs)
    assert_operator took, :<, 0.1, "the request returned in #{took} s"
    assert r.fallback_in_flight?
    first = r.instance_variable_get(:@inflight)
    20.times do
      _, took = elapsed { r.refresh(force: true) }
      assert_operator took, :<, 0.1
    end
    assert_same first, r.instance_variable_get(:@inflight), "at most one squeue in flight"
    assert r.settle(10)
    _, took = elapsed { r.refresh }
    assert_operator took, :<, 0.1
    assert_equal ["ood-mt: discovery spool #{@spool} stale (age 100 s) or missing; querying Slurm directly " \
                  "(heartbeat interval 10 s)",
                  "ood-mt: discovery: squeue timed out after 1.5 s"], @lines
  end

  def test_the_result_arrives_for_a_later_request
    row = share_row("850")
    r = refresher(runner: nil, over: { "squeue" => slow_squeue(0.5, row) })
    specs, took = elapsed { r.refresh }
    assert_equal({}, specs)
    assert_operator took, :<, 0.1
    assert_equal :squeue, r.source
    assert r.settle(10)
    assert_equal %w[850], r.refresh.keys
    assert_equal 1, @lines.size
    assert_match(/stale \(age unknown s\) or missing; querying Slurm directly \(no heartbeat file\)\z/, @lines[0])
  end

  def test_the_fallback_stays_throttled_by_refresh_seconds
    runner = CannedSqueueRunnerDouble.new(share_row("860"))
    r = refresher(runner: runner)
    r.refresh
    r.settle(5)
    assert_equal %w[860], r.refresh.keys
    5.times { @now += 1; r.refresh }
    assert_equal 1, runner.calls
    @now += 30
    r.refresh
    r.settle(5)
    assert_equal 2, runner.calls
  end

  def test_back_to_the_spool_and_away_again_each_logged_once
    runner = CannedSqueueRunnerDouble.new(share_row("870"))
    listing("group", "mtclass", share_row("871"))
    heartbeat(written: @now - 31)
    r = refresher(runner: runner, over: { "refresh_seconds" => 0 })
    3.times { r.refresh; r.settle(5) }
    assert_equal %w[870], r.refresh.keys
    heartbeat(written: @now)
    calls = runner.calls
    assert_equal %w[871], r.refresh.keys, "fresh again: the spool, not squeue"
    5.times { r.refresh }
    assert_equal calls, runner.calls
    assert_equal :spool, r.source
    @now += 30 # the heartbeat is now 3 intervals old
    r.refresh
    r.settle(5)
    assert_equal %w[870], r.refresh.keys
    assert_equal [
      "ood-mt: discovery spool #{@spool} stale (age 31 s) or missing; querying Slurm directly (heartbeat interval 10 s)",
      "ood-mt: discovery spool #{@spool} fresh again; reading it instead of querying Slurm",
      "ood-mt: discovery spool #{@spool} stale (age 30 s) or missing; querying Slurm directly (heartbeat interval 10 s)"
    ], @lines
  end

  def test_a_squeue_answer_arriving_after_the_spool_came_back_is_dropped
    listing("group", "mtclass", share_row("880"))
    r = refresher(runner: nil, over: { "squeue" => slow_squeue(0.3, share_row("881")) })
    r.refresh
    assert r.fallback_in_flight?
    heartbeat
    assert_equal %w[880], r.refresh.keys
    assert r.settle(10)
    assert_equal %w[880], r.refresh.keys
  end
end

# The refresh honours the receiver's hidden file (docs/protocol.md "Hidden shares"): no card,
# no form entry; an existing card goes at the next refresh, even when the spool did not
# change; a new publication of the job is shown again; a broken file hides nothing, is logged
# once naming the file and is left as it was.
class HiddenRefreshTest < Minitest::Test
  include SpoolTestHelpers

  CREATED = 1_700_000_000 # sample_payload's

  def hide(user, text)
    path = MultiTenant::Hidden.path_for(File.join(@root, "home-#{user}"))
    FileUtils.mkdir_p(File.dirname(path))
    File.write("#{path}.tmp", text)
    File.rename("#{path}.tmp", path)
    path
  end

  def hidden_json(*pairs)
    JSON.generate({ "format" => 1, "hidden" => pairs.map { |j, c| { "jobid" => j, "created" => c } } })
  end

  def card_ids(r) = JSON.parse(File.read(r.cards.state_path))["cards"].values.map { |e| e["jobid"] }

  def test_a_hidden_share_loses_its_card_and_form_entry_at_the_next_refresh
    heartbeat
    listing("group", "mtclass", share_row("900") + share_row("901"))
    r = refresher
    assert_equal %w[900 901], r.refresh.keys.sort
    assert_equal %w[900 901], card_ids(r).sort
    hide("mtrecv", hidden_json(["900", CREATED]))
    assert_equal %w[901], r.refresh.keys, "the spool did not change; the hidden file did"
    assert_equal %w[901], card_ids(r)
    hide("mtrecv", hidden_json)
    assert_equal %w[900 901], r.refresh.keys.sort, "shown again after --undo"
  end

  def test_a_new_publication_of_the_job_is_shown
    heartbeat
    listing("group", "mtclass", share_row("902"))
    hide("mtrecv", hidden_json(["902", CREATED - 60]))
    assert_equal %w[902], refresher.refresh.keys
  end

  def test_a_broken_file_hides_nothing_is_logged_once_and_left_alone
    heartbeat
    listing("group", "mtclass", share_row("903"))
    path = hide("mtrecv", "{\"format\": 1, \"hidden\": [{\"jobid\": \"903\"")
    r = refresher
    assert_equal %w[903], r.refresh.keys
    assert_equal %w[903], r.refresh(force: true).keys
    broken = @lines.grep(/hidden shares file/)
    assert_equal 1, broken.size, @lines.inspect
    assert_includes broken[0], path
    assert_includes broken[0], "fix:"
    assert_equal "{\"format\": 1, \"hidden\": [{\"jobid\": \"903\"", File.read(path)
  end

  def test_hidden_on_the_squeue_fall_back_goes_without_a_new_squeue
    listing("group", "mtclass", "")
    runner = CannedSqueueRunnerDouble.new(share_row("904"))
    r = refresher(runner: runner)
    r.refresh
    assert r.settle(5)
    assert_equal %w[904], r.refresh.keys
    hide("mtrecv", hidden_json(["904", CREATED]))
    assert_equal [], r.refresh.keys
  end
end

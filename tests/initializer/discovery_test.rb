# frozen_string_literal: true

require_relative "test_helper"

class DiscoveryParseTest < Minitest::Test
  include InitializerTestHelpers

  def test_keeps_share_rows_and_their_fields
    out = squeue_row("101", "mtpub", "multitenant", "mt1:mtclass:1:AAAA") +
          squeue_row("102", "bob", "*", "sys/dashboard/sys/jupyter")
    jobs = MultiTenant::Discovery.parse(out, CONTRACT)
    assert_equal 1, jobs.size
    job = jobs.first
    assert_equal ["101", "mtpub", "multitenant", "mt1:mtclass:1:AAAA", ""],
                 [job.jobid, job.owner, job.wckey, job.name, job.comment]
  end

  def test_hostile_names_do_not_break_or_forge_rows
    forged = "x\n999|mtpub|multitenant|mt1:mtclass:1:FORGED"
    out = squeue_row("7", "mallory", "*", "a|b|c|d") +
          squeue_row("8", "mallory", "*", forged, "c|d\n1000|mtpub|multitenant|mt1:x") +
          squeue_row("9", "eve", "*", "é😀\u0000 mt1:") +
          squeue_row("10", "mtpub", "multitenant", "mt1:mtclass:1:REAL")
    jobs = MultiTenant::Discovery.parse(out, CONTRACT)
    assert_equal ["10"], jobs.map(&:jobid), "a newline inside a name must not start a record"
    assert_equal "mt1:mtclass:1:REAL", jobs.first.name
  end

  def test_name_that_starts_with_mt1_but_has_a_pipe_is_kept_whole
    out = squeue_row("11", "mallory", "*", "mt1:a|b")
    assert_equal ["mt1:a|b"], MultiTenant::Discovery.parse(out, CONTRACT).map(&:name)
  end

  def test_split_token_keeps_the_comment
    name = "mt1:" + ("A" * 1019)
    comment = "mt1c:" + ("B" * 1019)
    jobs = MultiTenant::Discovery.parse(squeue_row("12", "mtpub", "multitenant", name, comment), CONTRACT)
    assert_equal [name, comment], [jobs.first.name, jobs.first.comment]
  end

  def test_array_and_het_job_ids_and_empty_output
    out = squeue_row("13_4", "mtpub", "multitenant", "mt1:a") + squeue_row("14+0", "mtpub", "multitenant", "mt1:b")
    assert_equal %w[13_4 14+0], MultiTenant::Discovery.parse(out, CONTRACT).map(&:jobid)
    assert_equal [], MultiTenant::Discovery.parse("", CONTRACT)
  end

  # Anything that is not whole fixed-width records means the listing cannot be trusted:
  # the refresh fails (logged) and yields no record at all, not even the good ones.
  def test_a_misaligned_listing_yields_nothing
    good = squeue_row("15", "mtpub", "multitenant", "mt1:c")
    {
      "a stray line" => "slurm_load_jobs error: something\n".b + good,
      "a short record" => good + good.byteslice(0, 100) + "\n",
      "a missing separator" => good.sub("|", " "),
      "no job id" => squeue_row("x15", "mtpub", "multitenant", "mt1:c"),
      "a user name with a newline" => squeue_row("16", "mt\npub", "multitenant", "mt1:c")
    }.each do |what, out|
      result = MultiTenant::Discovery.parse(out, CONTRACT)
      assert_kind_of MultiTenant::Discovery::Failure, result, what
      assert_match(/squeue listing misaligned/, result.message, what)
    end
  end

  # The forgery the old resynchronising parser allowed: with WCKeys not enforced, a WCKey
  # holding '|' made the record look wrong, the parser resynchronised at the next line,
  # and that line was inside the attacker's job name: another job id and owner.
  def test_a_hostile_wckey_and_name_cannot_forge_a_record
    forged = "x\n999 |mtpub|multitenant|mt1:mtclass:1:FORGED"
    out = squeue_row("20", "mallory", "a|b\nc", forged) + squeue_row("21", "mtpub", "multitenant", "mt1:REAL")
    jobs = MultiTenant::Discovery.parse(out, CONTRACT)
    assert_equal %w[21], jobs.map(&:jobid)
    assert_equal "mtpub", jobs.first.owner
  end

  def test_a_job_listed_twice_yields_nothing
    out = squeue_row("30", "mtpub", "multitenant", "mt1:a") + squeue_row("30", "mtpub", "multitenant", "mt1:b")
    result = MultiTenant::Discovery.parse(out, CONTRACT)
    assert_kind_of MultiTenant::Discovery::Failure, result
    assert_match(/lists job 30 twice/, result.message)
  end

  def test_the_call_is_one_squeue_with_the_documented_format
    config = site_config
    argv = MultiTenant::Discovery.new(config: config).argv
    assert_equal ["squeue", "--noheader", "--states=RUNNING", "-O",
                  "JobID:20|,UserName:40|,WCKey:70|,StartTime:20|,Name:1024|,Comment:1024|"], argv
  end
end

class DiscoveryFailureTest < Minitest::Test
  include InitializerTestHelpers

  HANGING_SQUEUE_DOUBLE = File.join(__dir__, "hanging_squeue_double.sh")

  def test_hanging_squeue_times_out_and_is_killed
    config = site_config("squeue" => HANGING_SQUEUE_DOUBLE, "squeue_timeout_seconds" => 0.5)
    pidfile = File.join(Dir.mktmpdir, "pid")
    ENV["HANGING_SQUEUE_DOUBLE_PIDFILE"] = pidfile
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    result = MultiTenant::Discovery.new(config: config).call
    elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
    assert_kind_of MultiTenant::Discovery::Failure, result
    assert_match(/timed out after 0.5 s/, result.message)
    assert_operator elapsed, :<, 3.0
    child = Integer(File.read(pidfile))
    sleep 0.2
    assert_includes [nil, "Z"], process_state(child),
                    "the sleeping child of the double must be killed with its group"
  ensure
    ENV.delete("HANGING_SQUEUE_DOUBLE_PIDFILE")
  end

  # nil when gone; "Z" when killed but not yet reaped by its new parent.
  def process_state(pid)
    File.read("/proc/#{pid}/stat")[/\) (\S)/, 1]
  rescue Errno::ENOENT
    nil
  end

  # The refresher's own squeue (no spool here) runs off the request path: the refresh
  # answers at once, the timeout is logged once when the result arrives.
  def test_refresher_logs_one_line_and_returns_empty_specs_on_timeout
    Dir.mktmpdir do |home|
      lines = []
      config = site_config("squeue" => HANGING_SQUEUE_DOUBLE, "squeue_timeout_seconds" => 0.3, "refresh_seconds" => 0)
      me = MultiTenant::Identity.new(name: "me", uid: 4242, gid: 4242, home: home, group_names: ["me"])
      refresher = MultiTenant::Refresher.new(config: config, identity: me, env: {}, logger: ->(l) { lines << l },
                                             codec: Object.new)
      assert_equal({}, refresher.refresh)
      assert refresher.settle(5)
      assert_equal({}, refresher.refresh(force: true))
      assert refresher.settle(5)
      assert_equal({}, refresher.refresh(force: true))
      assert_equal 2, lines.size, lines.inspect
      assert_match(/\Aood-mt: discovery spool \S+ stale \(age unknown s\) or missing; querying Slurm directly/, lines[0])
      assert_match(/\Aood-mt: discovery: squeue timed out/, lines[1])
    end
  end

  def test_failing_and_missing_squeue_give_a_failure
    Dir.mktmpdir do |dir|
      failing = File.join(dir, "failing_squeue_double")
      File.write(failing, "#!/bin/sh\necho 'slurm_load_jobs error: Unable to contact slurm controller' >&2\nexit 1\n")
      File.chmod(0o755, failing)
      result = MultiTenant::Discovery.new(config: site_config("squeue" => failing)).call
      assert_match(/squeue failed \(1\): slurm_load_jobs error: Unable to contact/, result.message)
      missing = MultiTenant::Discovery.new(config: site_config("squeue" => File.join(dir, "nope"))).call
      assert_match(/squeue could not run/, missing.message)
    end
  end
end

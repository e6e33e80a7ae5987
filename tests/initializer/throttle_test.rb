# frozen_string_literal: true

require_relative "test_helper"

class ThrottleTest < Minitest::Test
  def setup
    @dir = Dir.mktmpdir
    @now = 1_000_000.0
    @stamp = File.join(@dir, ".ood-mt", "refresh.stamp")
  end

  def teardown
    FileUtils.rm_rf(@dir)
  end

  def throttle
    MultiTenant::Throttle.new(stamp_path: @stamp, interval: 30, clock: -> { @now })
  end

  def test_runs_at_most_once_per_interval_in_one_process
    t = throttle
    runs = 0
    assert t.run { runs += 1 }
    @now += 29
    refute t.run { runs += 1 }
    @now += 2
    assert t.run { runs += 1 }
    assert_equal 2, runs
    assert_in_delta @now, File.mtime(@stamp).to_f, 1.0
  end

  def test_force_runs_anyway
    t = throttle
    runs = 0
    t.run { runs += 1 }
    t.run(force: true) { runs += 1 }
    assert_equal 2, runs
  end

  def test_a_refresh_in_progress_elsewhere_is_not_repeated
    FileUtils.mkdir_p(File.dirname(@stamp))
    runs = 0
    File.open(@stamp, File::RDWR | File::CREAT) do |held|
      held.flock(File::LOCK_EX)
      refute throttle.run { runs += 1 }
    end
    assert_equal 0, runs
  end

  def test_another_process_fresh_stamp_is_respected_once_this_one_has_results
    first = throttle
    second = throttle
    runs = 0
    first.run { runs += 1 }
    second.run { runs += 1 } # no results in this process yet: must run
    @now += 31
    first.run { runs += 1 }
    @now += 5
    refute second.run { runs += 1 }, "stamp is 5 s old: the other process just refreshed"
    assert_equal 3, runs
  end
end

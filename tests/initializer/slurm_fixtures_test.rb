# frozen_string_literal: true

require_relative "test_helper"

# The initializer's squeue parser (MultiTenant::Discovery.parse) on the listing as EVERY Slurm
# version the labs run printed it (tests/fixtures/slurm/<version>/, tests/fixtures/slurm/capture.py).
# The Python parser reads the same files in test_listing_versions.py.
class SlurmFixturesTest < Minitest::Test
  FIXTURES = File.join(REPO_ROOT, "tests/fixtures/slurm")
  VERSIONS = Dir.glob(File.join(FIXTURES, "*/manifest.json")).map { |p| File.basename(File.dirname(p)) }.sort

  def test_fixtures_of_two_versions_at_least
    assert_operator VERSIONS.size, :>=, 2, "fixtures under #{FIXTURES}: #{VERSIONS.inspect}"
  end

  def each_version
    VERSIONS.each do |version|
      manifest = JSON.parse(File.read(File.join(FIXTURES, version, "manifest.json")))
      yield version, manifest, ->(name) { File.binread(File.join(FIXTURES, version, name)) }
    end
  end

  def test_running_listing_keeps_the_share_jobs_whole
    each_version do |version, manifest, read|
      jobs = MultiTenant::Discovery.parse(read.call("squeue_listing_running.txt"), CONTRACT)
      refute_kind_of MultiTenant::Discovery::Failure, jobs, "#{version}: #{jobs.inspect[0, 300]}"
      by_id = jobs.to_h { |job| [job.jobid, job] }
      long = by_id.fetch(manifest["jobs"]["share_long"]["id"]) { flunk "#{version}: long share job not parsed" }
      assert_equal ["mtpub", "multitenant", "mt1:#{'L' * 1019}", "a comment | with bar"],
                   [long.owner, long.wckey, long.name, long.comment], version
      short = by_id.fetch(manifest["jobs"]["share_short"]["id"])
      assert_equal ["mt1:short", ""], [short.name, short.comment], "#{version}: (null) is no comment"
      refute by_id.key?(manifest["jobs"]["plain"]["id"]), "#{version}: a name without mt1: is no candidate"
    end
  end

  def test_one_job_listings
    each_version do |version, manifest, read|
      %w[squeue_listing_job.txt share_long squeue_listing_held.txt held_share].each_slice(2) do |file, label|
        jobs = MultiTenant::Discovery.parse(read.call(file), CONTRACT)
        assert_equal [manifest["jobs"][label]["id"]], jobs.map(&:jobid), "#{version}/#{file}"
      end
    end
  end
end

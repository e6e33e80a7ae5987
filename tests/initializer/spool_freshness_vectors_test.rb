# frozen_string_literal: true

require_relative "test_helper"

# The initializer's freshness rule against tests/vectors/spool_freshness.json, the cases
# every spool reader runs (docs/discovery.md "Freshness"): the rule on the text, then the
# same case through a real heartbeat file in a spool directory (MultiTenant::Spool#freshness).
class SpoolFreshnessVectorsTest < Minitest::Test
  include VectorsTestHelpers
  vectors "spool_freshness.json", { "stale_intervals" => MultiTenant::Spool::STALE_INTERVALS,
                                    "format" => MultiTenant::Spool::HEARTBEAT_FORMAT }, min_cases: 30

  def test_every_case_on_the_text
    VECTORS.fetch("cases").each do |c|
      got = MultiTenant::Spool.freshness(c.fetch("heartbeat"), c.fetch("now"))
      assert_equal c.fetch("fresh"), got.fresh, "#{c['name']}: #{got.why}"
      assert got.why.to_s.length.positive?, "#{c['name']}: a stale spool says why" unless got.fresh
    end
  end

  def test_every_case_through_a_heartbeat_file
    Dir.mktmpdir do |dir|
      VECTORS.fetch("cases").each_with_index do |c, i|
        spool_dir = File.join(dir, i.to_s)
        FileUtils.mkdir_p(spool_dir)
        File.binwrite(File.join(spool_dir, "heartbeat"), c["heartbeat"]) unless c["heartbeat"].nil?
        spool = MultiTenant::Spool.new(dir: spool_dir, contract: CONTRACT, user: "mtrecv", groups: ["mtclass"])
        assert_equal c.fetch("fresh"), spool.freshness(c.fetch("now")).fresh, c["name"]
      end
    end
  end
end

# frozen_string_literal: true

require_relative "test_helper"

# The initializer's hidden-shares reader against tests/vectors/hidden.json, the cases the
# CLI's reader runs too (docs/protocol.md "Hidden shares"), and the refresh honouring it:
# a hidden share has no card and no form entry; an existing card goes at the next refresh.
class HiddenVectorsTest < Minitest::Test
  include VectorsTestHelpers
  vectors "hidden.json", { "format" => MultiTenant::Hidden::FORMAT, "max_bytes" => MultiTenant::Hidden::MAX_BYTES },
          min_cases: 30

  def test_every_case_through_a_file
    Dir.mktmpdir do |dir|
      VECTORS.fetch("cases").each_with_index do |c, i|
        home = File.join(dir, i.to_s)
        path = MultiTenant::Hidden.path_for(home)
        unless c["file"].nil?
          FileUtils.mkdir_p(File.dirname(path))
          File.binwrite(path, c["file"])
        end
        got = MultiTenant::Hidden.load(home)
        assert_equal c.fetch("valid"), got.problem.nil?, "#{c['name']}: #{got.problem}"
        assert_equal c.fetch("hidden"), got.hides?(c.fetch("jobid"), c.fetch("created")), c["name"]
      end
    end
  end

  def test_size_and_utf8_beside_the_vectors
    good = JSON.generate({ "format" => 1, "hidden" => [{ "jobid" => "4711", "created" => 5 }] })
    assert_nil MultiTenant::Hidden.parse(good.b)[1]
    refute_nil MultiTenant::Hidden.parse(good.b.sub("}]", ", \"t\": \"\xff\"}]".b))[1]
    big = JSON.generate({ "format" => 1, "hidden" => [], "pad" => "x" * MultiTenant::Hidden::MAX_BYTES })
    assert_match(/larger than/, MultiTenant::Hidden.parse(big.b)[1])
  end

  def test_no_home_hides_nothing
    assert_nil MultiTenant::Hidden.load(nil).problem
    refute MultiTenant::Hidden.load(nil).hides?("1", 1)
  end
end

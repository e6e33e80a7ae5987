# frozen_string_literal: true

require_relative "test_helper"

# The initializer's hidden-shares writer (MultiTenant::Hidden.add, used when the receiver
# presses Delete on a received share's card) against tests/vectors/hidden_write.json, the
# cases the CLI's writer (`ood-mt hide`) runs too (docs/protocol.md "Hidden shares").
class HiddenWriteTest < Minitest::Test
  include VectorsTestHelpers
  vectors "hidden_write.json", { "format" => MultiTenant::Hidden::FORMAT, "max_entries" => MultiTenant::Hidden::MAX_ENTRIES },
          min_cases: 15

  C = 1_767_225_600

  # The synthetic entries a case's "fill" stands for (generate_hidden_write.fill).
  def fill(count) = Array.new(count) { |n| { "jobid" => (10_000 + n).to_s, "created" => C, "hidden_at" => C + n } }

  def before_text(c)
    return nil if c["file"].nil?
    return c["file"].b if c["fill"].zero?

    data = JSON.parse(c["file"])
    data["hidden"] = fill(c["fill"]) + data["hidden"]
    JSON.generate(data).b
  end

  def test_every_case_through_a_file
    Dir.mktmpdir do |dir|
      VECTORS.fetch("cases").each_with_index do |c, i|
        home = File.join(dir, i.to_s)
        path = MultiTenant::Hidden.path_for(home)
        text = before_text(c)
        unless text.nil?
          FileUtils.mkdir_p(File.dirname(path))
          File.binwrite(path, text)
        end
        begin
          written = MultiTenant::Hidden.add(home, c.fetch("add"))
        rescue MultiTenant::Hidden::Refused => e
          assert c.fetch("refused"), "#{c['name']}: refused: #{e.message}"
          assert_equal text, File.binread(path), "#{c['name']}: a refused file is left as it was"
          assert_match(/nothing is hidden until it is fixed; fix: repair it or move it aside/, e.message)
          next
        end
        refute c.fetch("refused"), c["name"]
        assert_equal c.fetch("written"), written, c["name"]
        expected = fill(c["fill"]).drop(c["fill_kept_from"]) + c.fetch("after")
        assert_equal({ "format" => 1, "hidden" => expected }, JSON.parse(File.read(path)), c["name"])
        next unless written

        assert_equal 0o600, File.stat(path).mode & 0o7777, c["name"]
        assert_equal 0o700, File.stat(File.dirname(path)).mode & 0o7777, c["name"]
        assert_equal [File.basename(path)], Dir.children(File.dirname(path)), "#{c['name']}: no temporary file left"
      end
    end
  end

  # What the CLI's reader makes of the file this writer wrote (the other direction of the pin).
  def test_the_cli_reads_what_this_writer_wrote
    Dir.mktmpdir do |home|
      entry = MultiTenant::Hidden.entry(jobid: "4711_2", created: C, app: "llm", title: "Llama \u00e9", publisher: "alice",
                                        now: C + 7)
      assert MultiTenant::Hidden.add(home, entry)
      script = "import json, sys; from pathlib import Path; from ood_mt import hidden; " \
               "h = hidden.load(Path(sys.argv[1])); print(json.dumps([h.problem, h.entries, h.hides('4711_2', #{C})]))"
      out, err, status = Open3.capture3(PYTHON_ENV, PYTHON, "-c", script, home)
      assert status.success?, err
      problem, entries, hides = JSON.parse(out)
      assert_nil problem
      assert_equal [entry], entries
      assert hides
    end
  end

  def test_an_unreadable_file_is_refused_and_kept
    Dir.mktmpdir do |home|
      path = MultiTenant::Hidden.path_for(home)
      FileUtils.mkdir_p(path) # a directory where the file should be: cannot be read
      error = assert_raises(MultiTenant::Hidden::Refused) { MultiTenant::Hidden.add(home, { "jobid" => "1", "created" => 1 }) }
      assert_match(/cannot be read/, error.message)
      assert File.directory?(path)
    end
  end
end

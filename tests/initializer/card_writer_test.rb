# frozen_string_literal: true

require_relative "test_helper"

# Records File.rename calls (source, destination) so the test can see where a card was
# built before it appeared in db/. Only observes: the real rename still happens.
module RenameRecorder
  class << self
    attr_accessor :calls
  end
  self.calls = []

  def rename(src, dst)
    RenameRecorder.calls << [src.to_s, dst.to_s]
    super
  end
end
File.singleton_class.prepend(RenameRecorder)

class CardWriterTest < Minitest::Test
  include InitializerTestHelpers

  HOSTILE_CONN = {
    "host" => "node-1.example", "port" => "8080",
    "password" => "p\"a'ss: word # not a comment",
    "note" => "line one\nline two\r\n\ttabbed",
    "yes_value" => "yes", "no_value" => "no", "null_value" => "null", "tilde" => "~",
    "date" => "2024-01-31", "time" => "2024-01-31 10:00:00 +00:00", "number" => "0x1F",
    "float" => "1e3", "symbol" => ":sym", "anchor" => "&a *a", "tag" => "!ruby/object:Object",
    "backslash" => "C:\\path\\n", "unicode" => "é 😀 \u2028 \u0085", "control" => "\u0001\u007f",
    "empty" => "", "spaces" => "  padded  ", "braces" => "{a: 1} [b]", "percent" => "%TAG"
  }.freeze

  def setup
    @root = Dir.mktmpdir
    @logs = []
    RenameRecorder.calls.clear
  end

  def teardown
    FileUtils.rm_rf(@root)
  end

  def writer(env = { "OOD_DATAROOT" => File.join(@root, "data") })
    MultiTenant::CardWriter.new(config: site_config, env: env, home: @root, clock: -> { 1_700_000_123 },
                                log: ->(l) { @logs << l })
  end

  def share(jobid, conn: { "host" => "n1", "port" => "1" }, token: "mt1:mtclass:1:tok#{jobid}")
    MultiTenant::Share.new(jobid: jobid.to_s, owner: "mtpub", group: "mtclass", token: token,
                           payload: sample_payload(conn: conn))
  end

  def test_db_file_has_exactly_the_ood_keys_and_types
    w = writer
    s = share(4711)
    w.sync([s])
    path = File.join(w.db_dir, s.card_id)
    record = JSON.parse(File.read(path))
    assert_equal %w[cache_completed cluster_id completed_at created_at id job_id script_type title token],
                 record.keys.sort
    assert_equal s.card_id, File.basename(path)
    assert_match(/\Amt-4711-[0-9a-f]{12}\z/, record["id"])
    assert_equal [s.card_id, "hostlab", "4711", "sys/mt_delivery_default", "basic", false, nil],
                 record.values_at("id", "cluster_id", "job_id", "token", "script_type", "cache_completed",
                                  "completed_at")
    assert_kind_of Integer, record["created_at"]
    assert_equal "Llama from mtpub (job 4711)", record["title"]
  end

  def test_db_file_is_built_outside_db_and_renamed_in
    w = writer
    s = share(4712)
    w.sync([s])
    into_db = RenameRecorder.calls.select { |_src, dst| File.dirname(dst) == w.db_dir }
    assert_equal 1, into_db.size, RenameRecorder.calls.inspect
    refute_equal w.db_dir, File.dirname(into_db.first[0]), "temp file must not be inside db/"
    assert_equal [s.card_id], Dir.children(w.db_dir), "no temp file may be left in db/"
  end

  def test_connection_yml_round_trips_through_safe_load_with_private_modes
    w = writer
    s = share(4713, conn: HOSTILE_CONN)
    w.sync([s])
    out = w.output_dir(s, s.card_id)
    file = File.join(out, "connection.yml")
    assert_equal HOSTILE_CONN.merge(s.card_metadata), YAML.safe_load(File.read(file))
    assert_equal 0o700, File.stat(out).mode & 0o777
    assert_equal 0o600, File.stat(file).mode & 0o777
    assert_equal File.join(@root, "data/batch_connect/sys/mt_delivery_default/output", s.card_id), out
    File.read(file).each_line do |line|
      assert_match(/\A"[^"\\]*(?:\\.[^"\\]*)*": "[^"\\]*(?:\\.[^"\\]*)*"\n\z/, line, "each line one quoted pair")
    end
  end

  def test_kit_metadata_overrides_publisher_fields_of_the_same_name
    w = writer
    s = share(4714, conn: { "host" => "h", "mt_checks" => "all checks passed (forged)", "mt_publisher" => "root" })
    w.sync([s])
    written = YAML.safe_load(File.read(File.join(w.output_dir(s, s.card_id), "connection.yml")))
    assert_equal s.owner, written["mt_publisher"]
    refute_includes written["mt_checks"], "forged"
    assert_equal "h", written["host"]
  end

  def test_removes_only_its_own_cards_when_shares_end
    w = writer
    a = share(1)
    b = share(2)
    w.sync([a, b])
    foreign_db = File.join(w.db_dir, "0b1c-foreign-session")
    File.write(foreign_db, "{}")
    lookalike = File.join(w.db_dir, "mt-3-aaaaaaaaaaaa")
    File.write(lookalike, "{}")
    foreign_out = File.join(w.batch_connect, "sys/mt_delivery_default/output/0b1c-foreign-session")
    FileUtils.mkdir_p(foreign_out)
    File.write(File.join(foreign_out, "connection.yml"), "host: x\n")

    w.sync([a])
    assert File.exist?(File.join(w.db_dir, a.card_id))
    refute File.exist?(File.join(w.db_dir, b.card_id)), "ended share's db file must go"
    refute Dir.exist?(w.output_dir(b, b.card_id)), "ended share's connection.yml (secrets) must go"
    assert File.exist?(foreign_db), "a card the kit did not write must stay"
    assert File.exist?(lookalike), "an mt- file the kit has no record of must stay"
    assert File.exist?(File.join(foreign_out, "connection.yml"))
    state = JSON.parse(File.read(w.state_path))
    assert_equal [a.card_id], state["cards"].keys

    w.sync([])
    assert_equal ["0b1c-foreign-session", "mt-3-aaaaaaaaaaaa"], Dir.children(w.db_dir).sort
  end

  def test_existing_db_file_is_left_to_the_dashboard_but_connection_is_updated
    w = writer
    s = share(5, conn: { "host" => "a" })
    w.sync([s])
    db = File.join(w.db_dir, s.card_id)
    File.write(db, File.read(db).sub('"cache_completed":false', '"cache_completed":null'))
    before = File.read(db)
    s2 = share(5, conn: { "host" => "b" })
    w.sync([s2])
    assert_equal before, File.read(db)
    assert_equal({ "host" => "b" }.merge(s2.card_metadata),
                 YAML.safe_load(File.read(File.join(w.output_dir(s2, s2.card_id), "connection.yml"))))
  end

  def test_dataroot_defaults_to_home_and_honours_per_cluster
    w = writer({})
    assert_equal File.join(@root, "ondemand/data/sys/dashboard"), w.dataroot
    pc = writer({ "OOD_DATAROOT" => "/x", "OOD_PER_CLUSTER_DATAROOT" => "true" })
    s = share(6)
    assert_equal "/x/batch_connect/hostlab/sys/mt_delivery_default/output/#{s.card_id}", pc.output_dir(s, s.card_id)
    assert_equal "/x/batch_connect/db", pc.db_dir
  end

  def test_a_corrupt_state_file_is_logged_and_replaced
    w = writer
    FileUtils.mkdir_p(w.state_dir)
    File.write(w.state_path, "{not json")
    w.sync([share(7)])
    assert_equal 1, @logs.grep(/state.json unreadable/).size
    assert_equal 1, JSON.parse(File.read(w.state_path))["cards"].size
  end
end

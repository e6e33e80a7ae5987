# frozen_string_literal: true

require_relative "test_helper"

# Refresher#hide_card: the receiver pressed Delete (or Cancel) on a card. Only a card the kit
# wrote for a received share (its state.json record) is hidden: the publication goes into
# ~/.config/ood-mt/hidden.json (Hidden.add, the CLI's rule) and the card is removed at once;
# any other id is left to OOD; a failure changes nothing and is one log line naming the job.
# The request side (OOD's routes, controller, CSRF) is tests/ood/test_ood_hide_card.py.
class CardHideTest < Minitest::Test
  include InitializerTestHelpers

  def setup
    @home = Dir.mktmpdir
    @lines = []
    me = MultiTenant::Identity.new(name: "mtrecv", uid: 4242, gid: 4242, home: @home, group_names: %w[mtrecv mtclass])
    @refresher = MultiTenant::Refresher.new(config: site_config, identity: me, env: { "OOD_DATAROOT" => File.join(@home, "data") },
                                            logger: ->(l) { @lines << l }, codec: Object.new, clock: -> { 1_700_000_500.25 })
    @share = MultiTenant::Share.new(jobid: "4711", owner: "mtpub", group: "mtclass", token: "mt1:mtclass:1:tok4711",
                                    payload: sample_payload(title: "Llama"))
    @refresher.cards.sync([@share])
  end

  def teardown = FileUtils.rm_rf(@home)

  def cards = @refresher.cards
  def hidden_path = MultiTenant::Hidden.path_for(@home)
  def db_file = File.join(cards.db_dir, @share.card_id)
  def output = cards.output_dir(@share, @share.card_id)

  def test_a_received_card_is_hidden_and_removed
    assert File.file?(db_file) && File.directory?(output)
    outcome = @refresher.hide_card(@share.card_id)
    assert_equal :hidden, outcome.status
    assert_equal "4711", outcome.jobid
    assert_equal "Hid Llama from mtpub (job 4711): its card and form entries are gone for you. The publisher's " \
                 "service keeps running. Undo: ood-mt hide --undo 4711", outcome.message
    data = JSON.parse(File.read(hidden_path))
    assert_equal [{ "jobid" => "4711", "created" => 1_700_000_000, "app" => "llm", "title" => "Llama",
                    "publisher" => "mtpub", "hidden_at" => 1_700_000_500 }], data["hidden"]
    refute File.exist?(db_file)
    refute File.exist?(output), "connection.yml (secrets) goes with the card"
    assert_equal({}, JSON.parse(File.read(cards.state_path))["cards"])
    assert_equal ["ood-mt: job 4711: hidden from its card #{@share.card_id} (#{hidden_path})"], @lines
    assert_nil @refresher.hide_card(@share.card_id), "a second press: no longer the kit's card, OOD's path"
  end

  def test_already_hidden_still_removes_the_card
    MultiTenant::Hidden.add(@home, { "jobid" => "4711", "created" => 1_700_000_000, "hidden_at" => 5 })
    before = File.read(hidden_path)
    assert_equal :already, @refresher.hide_card(@share.card_id).status
    assert_equal before, File.read(hidden_path)
    refute File.exist?(db_file)
  end

  def test_ids_the_kit_did_not_write_are_left_to_ood
    own = File.join(cards.db_dir, "0b1c2d3e-own-session")
    File.write(own, "{}")
    ["0b1c2d3e-own-session", "mt-4711-000000000000", "mt-4712-#{@share.card_id[-12..]}", "../db/#{@share.card_id}",
     "#{@share.card_id}\n", "", nil, 42].each do |id|
      assert_nil @refresher.hide_card(id), id.inspect
    end
    refute File.exist?(hidden_path)
    assert File.file?(db_file) && File.file?(own)
    assert_empty @lines
  end

  def test_a_damaged_hidden_file_changes_nothing
    FileUtils.mkdir_p(File.dirname(hidden_path))
    File.write(hidden_path, "{\"format\": 2, \"hidden\": []}")
    outcome = @refresher.hide_card(@share.card_id)
    assert_equal :failed, outcome.status
    assert_match(/\ACould not hide Llama from mtpub \(job 4711\): hidden shares file #{Regexp.escape(hidden_path)}: format is 2, not 1;/,
                 outcome.message)
    assert outcome.message.end_with?("Nothing was changed; the share's job was not touched. From a terminal: ood-mt hide 4711")
    assert_equal "{\"format\": 2, \"hidden\": []}", File.read(hidden_path)
    assert File.file?(db_file)
    assert_equal 1, @lines.size
    assert @lines[0].start_with?("ood-mt: job 4711: not hidden from its card: hidden shares file #{hidden_path}: format is 2")
  end

  def test_a_card_recorded_before_this_version_is_not_guessed
    state = JSON.parse(File.read(cards.state_path))
    state["cards"][@share.card_id].delete("created")
    File.write(cards.state_path, JSON.generate(state))
    outcome = @refresher.hide_card(@share.card_id)
    assert_equal :failed, outcome.status
    assert_match(/does not record which publication it shows/, outcome.message)
    refute File.exist?(hidden_path)
    assert File.file?(db_file)
  end

  def test_the_card_says_what_delete_does
    written = YAML.safe_load(File.read(File.join(output, "connection.yml")))
    assert_equal "Delete (or Cancel) on this card hides this share for you; it does not stop mtpub's service. " \
                 "Undo: ood-mt hide --undo 4711", written["mt_hide_note"]
  end
end

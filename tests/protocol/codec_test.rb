# frozen_string_literal: true

# Protocol v1, Ruby codec against the committed vectors (tests/vectors/v1.json).
# Run: ruby -Isrc/ood_mt/initializer/lib tests/protocol/codec_test.rb
require "minitest/autorun"
require "json"
require "codec"

VECTORS = JSON.parse(File.read(File.expand_path("../vectors/v1.json", __dir__)))

class CodecVectorTest < Minitest::Test
  Codec = MultiTenant::Codec

  def decode(c)
    Codec.decode(c["token"], group_key: [c["key_hex"]].pack("H*"), jobid: c["jobid"], owner: c["owner"])
  end

  VECTORS["tokens"].each_with_index do |c, i|
    if c["expect"] == "ok"
      define_method("test_ok_#{i}_decodes") do
        assert_equal c["payload"], decode(c), c["name"]
      end
      define_method("test_ok_#{i}_encodes") do
        token = Codec.encode(c["payload"], group_key: [c["key_hex"]].pack("H*"), aud: c["aud"], kv: c["kv"],
                                           jobid: c["jobid"], owner: c["owner"],
                                           nonce: [c["nonce_hex"]].pack("H*"),
                                           compressed: [c["compressed_hex"]].pack("H*"))
        assert_equal c["token"], token, c["name"]
      end
      define_method("test_ok_#{i}_transport") do
        assert_equal [c["job_name"], c["comment"]], Codec.split_transport(c["token"])
        assert_equal c["token"], Codec.join_transport(c["job_name"], c["comment"])
      end
    else
      define_method("test_bad_#{i}_#{c['expect'].tr('-', '_')}") do
        err = assert_raises(MultiTenant::Rejected, c["name"]) { decode(c) }
        assert_equal c["expect"], err.reason, "#{c['name']}: #{err.detail}"
      end
    end
  end

  VECTORS["users"].each_with_index do |c, i|
    define_method("test_users_#{i}") do
      if c["expect"] == "ok"
        assert_equal c["uids"], Codec.decode_users(c["encoded"]), c["name"]
      else
        err = assert_raises(MultiTenant::Rejected, c["name"]) { Codec.decode_users(c["encoded"]) }
        assert_equal c["expect"], err.reason
      end
    end
  end

  def test_parse_token_fields
    c = VECTORS["tokens"].find { |v| v["aud"] == "~alice" }
    t = Codec.parse_token(c["token"])
    assert_equal ["~alice", 1, c["nonce_hex"]], [t.aud, t.kv, t.nonce.unpack1("H*")]
    assert_equal 16, t.tag.bytesize
  end

  def test_not_a_string_is_rejected_not_raised
    [nil, 42, ["mt1:"], "mt1:\xff\xfe:1:AAAA".dup.force_encoding("UTF-8")].each do |bad|
      err = assert_raises(MultiTenant::Rejected) { Codec.decode(bad, group_key: "k" * 32, jobid: "1", owner: "o") }
      assert_includes %w[not-a-share bad-encoding], err.reason
    end
  end

  def test_wrong_key_length_is_rejected
    c = VECTORS["tokens"].first
    err = assert_raises(MultiTenant::Rejected) { Codec.decode(c["token"], group_key: "short", jobid: "1", owner: "o") }
    assert_equal "no-key", err.reason
  end

  def test_join_transport_needs_split_name
    assert_equal "mt1:g:1:AAAA", Codec.join_transport("mt1:g:1:AAAA", "mt1c:BBBB")
    assert_nil Codec.join_transport("sys/dashboard/sys/x", nil)
    long = "mt1:g:1:" + "A" * (Codec::NAME_MAX - 8)
    assert_equal long + "BB", Codec.join_transport(long, "mt1c:BB")
  end

  def test_ruby_encoder_roundtrips_through_itself
    payload = VECTORS["tokens"].first["payload"]
    token = Codec.encode(payload, group_key: "k" * 32, aud: "g", kv: 1, jobid: "9", owner: "o")
    assert_equal payload, Codec.decode(token, group_key: "k" * 32, jobid: "9", owner: "o")
  end
end

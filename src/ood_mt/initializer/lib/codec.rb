# frozen_string_literal: true

# Share protocol v1, Ruby side (the dashboard initializer decodes with it).
# Byte layout: docs/protocol.md; reference: src/ood_mt/codec.py; vectors:
# tests/vectors/v1.json. Plain stdlib (openssl, zlib, json, base64), Ruby 2.7+.
#
# Every failure leaves this module as MultiTenant::Rejected with a stable reason,
# never as an OpenSSL/Zlib/JSON/encoding exception: the tokens come from Slurm job
# names that any WCKey holder can write, and the initializer must not crash on them.

require "openssl"
require "zlib"
require "json"
require "base64"

module MultiTenant
  # A token that is not accepted. reason: a stable identifier (Codec::REASONS).
  class Rejected < StandardError
    attr_reader :reason, :detail

    def initialize(reason, detail = "")
      @reason = reason
      @detail = detail
      super(detail.empty? ? reason : "#{reason}: #{detail}")
    end
  end

  module Codec
    PREFIX = "mt1:"
    COMMENT_PREFIX = "mt1c:"
    NAME_MAX = 1023
    COMMENT_MAX = 1024
    TOKEN_MAX = NAME_MAX + COMMENT_MAX - COMMENT_PREFIX.length # 2042
    PLAINTEXT_MAX = 64 * 1024
    NONCE_LEN = 16
    TAG_LEN = 16
    KEY_LEN = 32
    USERS_MAX = 100_000
    RICE_K_MAX = 24
    UID_MAX = 2**32 - 1
    INFLATE_CHUNK = 512 # input bytes per inflate step: bounds memory against gzip bombs

    REASONS = %w[
      not-a-share bad-encoding wrong-wckey publisher-not-in-group no-key key-version-retired
      bad-tag bad-payload too-large not-in-audience job-not-running
      publisher-not-in-audience bad-field bad-conn-key too-many-shares stale-share
      secret-to-selected-users
    ].freeze

    TOKEN_RE = /\Amt1:(~?[A-Za-z0-9_.][A-Za-z0-9_.@-]{0,255}):([1-9][0-9]{0,8}):([A-Za-z0-9_-]*)\z/n.freeze
    AUD_RE = /\A~?[A-Za-z0-9_.][A-Za-z0-9_.@-]{0,255}\z/n.freeze
    STRING_FIELDS = %w[app title preset mode delivery session].freeze
    ALLOWED_FIELDS = (STRING_FIELDS + %w[v created conn users]).freeze

    # The parsed, not yet verified, fields of a token.
    Token = Struct.new(:aud, :kv, :nonce, :ct, :tag)

    module_function

    def reject(reason, detail = "")
      raise Rejected.new(reason, detail)
    end

    def hmac(key, msg)
      OpenSSL::HMAC.digest("SHA256", key, msg)
    end

    def subkeys(group_key)
      [hmac(group_key, "ood-mt/1 enc"), hmac(group_key, "ood-mt/1 mac")]
    end

    # AES-256-CTR keyed like `openssl enc -aes-256-ctr -pbkdf2 -iter 1 -md sha256 -nosalt -pass env:P`.
    def ctr(k_enc, nonce, data)
      password = hmac(k_enc, nonce).unpack1("H*")
      key_iv = OpenSSL::PKCS5.pbkdf2_hmac(password, "", 1, 48, OpenSSL::Digest.new("SHA256"))
      cipher = OpenSSL::Cipher.new("aes-256-ctr")
      cipher.encrypt
      cipher.key = key_iv[0, 32]
      cipher.iv = key_iv[32, 16]
      data.empty? ? "".b : (cipher.update(data) + cipher.final)
    end

    def aad(aud, kv, jobid, owner)
      "ood-mt/1\n#{aud}\n#{kv}\n#{jobid}\n#{owner}\n".b
    end

    def tag_for(k_mac, aad_bytes, nonce, ct)
      hmac(k_mac, aad_bytes + nonce + ct)[0, TAG_LEN]
    end

    def secure_equal?(a, b)
      return false unless a.bytesize == b.bytesize

      diff = 0
      a.bytes.zip(b.bytes) { |x, y| diff |= x ^ y }
      diff.zero?
    end

    def b64url(bytes)
      Base64.urlsafe_encode64(bytes).delete("=")
    end

    def check_context(jobid, owner)
      { "jobid" => jobid, "owner" => owner }.each do |label, value|
        unless value.is_a?(String) && !value.empty? && !value.include?("\n")
          reject("bad-encoding", "#{label} must be a non-empty string without newlines")
        end
      end
    end

    def check_key(group_key)
      reject("no-key", "audience key must be #{KEY_LEN} bytes") unless group_key.is_a?(String) && group_key.bytesize == KEY_LEN
    end

    # Split a token into its fields; nothing is verified yet.
    def parse_token(token)
      reject("not-a-share", "not a string") unless token.is_a?(String)
      raw = token.b
      reject("not-a-share", "does not start with mt1:") unless raw.start_with?(PREFIX)
      reject("too-large", "#{token.length} characters, limit #{TOKEN_MAX}") if token.length > TOKEN_MAX
      m = TOKEN_RE.match(raw)
      reject("bad-encoding", "expected mt1:<aud>:<kv>:<blob> with a group or ~user audience") unless m
      blob = m[3]
      reject("bad-encoding", "blob is not base64url") if blob.length % 4 == 1
      bytes = blob.tr("-_", "+/")
      bytes += "=" * ((4 - bytes.length % 4) % 4)
      decoded = bytes.unpack1("m0")
      reject("bad-encoding", "blob is not canonical base64url") unless b64url(decoded) == blob
      reject("bad-encoding", "blob shorter than nonce and tag") if decoded.bytesize < NONCE_LEN + TAG_LEN
      Token.new(m[1].dup.force_encoding(Encoding::UTF_8), Integer(m[2], 10),
                decoded.byteslice(0, NONCE_LEN),
                decoded.byteslice(NONCE_LEN, decoded.bytesize - NONCE_LEN - TAG_LEN),
                decoded.byteslice(decoded.bytesize - TAG_LEN, TAG_LEN))
    rescue Rejected
      raise
    rescue ArgumentError, EncodingError, TypeError => e
      reject("bad-encoding", e.class.name)
    end

    # The token a job carries in its name (+ comment), or nil when the job is not a share.
    # The comment counts only when the name is exactly NAME_MAX long, i.e. was split.
    def join_transport(name, comment)
      return nil unless name.is_a?(String) && name.b.start_with?(PREFIX)

      if name.length == NAME_MAX && comment.is_a?(String) && comment.b.start_with?(COMMENT_PREFIX)
        return name + comment[COMMENT_PREFIX.length..-1]
      end
      name
    rescue ArgumentError, EncodingError
      nil
    end

    def split_transport(token)
      return [token, nil] if token.length <= NAME_MAX
      reject("too-large", "token is #{token.length} characters; JobName+Comment hold #{TOKEN_MAX}") if token.length > TOKEN_MAX

      [token[0, NAME_MAX], COMMENT_PREFIX + token[NAME_MAX..-1]]
    end

    def gunzip_bounded(data)
      inflater = Zlib::Inflate.new(16 + Zlib::MAX_WBITS)
      out = "".b
      offset = 0
      while offset < data.bytesize && !inflater.finished?
        out << inflater.inflate(data.byteslice(offset, INFLATE_CHUNK))
        offset += INFLATE_CHUNK
        reject("too-large", "plaintext over #{PLAINTEXT_MAX} bytes") if out.bytesize > PLAINTEXT_MAX
      end
      unless inflater.finished? && inflater.total_in == data.bytesize
        reject("bad-payload", "gzip stream truncated or followed by extra data")
      end
      out
    rescue Zlib::Error => e
      reject("bad-payload", "not gzip data (#{e.class.name})")
      # No explicit close: closing an unfinished stream warns; the GC frees it quietly.
    end

    def validate_payload(payload)
      reject("bad-payload", "plaintext is not a JSON object") unless payload.is_a?(Hash)
      unknown = payload.keys - ALLOWED_FIELDS
      reject("bad-payload", "unknown fields #{unknown.sort.inspect}") unless unknown.empty?
      reject("bad-payload", "v is not 1") unless payload["v"].is_a?(Integer) && payload["v"] == 1
      STRING_FIELDS.each do |field|
        reject("bad-payload", "#{field} is missing or not a string") unless payload[field].is_a?(String)
      end
      reject("bad-payload", "created is missing or not an integer") unless payload["created"].is_a?(Integer)
      conn = payload["conn"]
      unless conn.is_a?(Hash) && conn.values.all? { |v| v.is_a?(String) }
        reject("bad-payload", "conn is not a flat object of strings")
      end
      reject("bad-payload", "users is not an object") if payload.key?("users") && !payload["users"].is_a?(Hash)
      payload
    end

    def parse_json(plain)
      text = plain.dup.force_encoding(Encoding::UTF_8)
      reject("bad-payload", "plaintext is not UTF-8") unless text.valid_encoding?
      JSON.parse(text, max_nesting: 100, allow_nan: false, create_additions: false)
    rescue JSON::ParserError, EncodingError, ArgumentError, SystemStackError => e
      reject("bad-payload", "plaintext is not JSON (#{e.class.name})")
    end

    # Verify and decrypt. jobid/owner come from Slurm, never from the message.
    def decode(token, group_key:, jobid:, owner:)
      parsed = parse_token(token)
      check_key(group_key)
      check_context(jobid, owner)
      k_enc, k_mac = subkeys(group_key.b)
      expected = tag_for(k_mac, aad(parsed.aud, parsed.kv, jobid, owner), parsed.nonce, parsed.ct)
      reject("bad-tag", "authentication failed (wrong key, job, owner or tampered)") unless secure_equal?(expected, parsed.tag)
      validate_payload(parse_json(gunzip_bounded(ctr(k_enc, parsed.nonce, parsed.ct))))
    rescue Rejected
      raise
    rescue OpenSSL::OpenSSLError, Zlib::Error, JSON::JSONError, ArgumentError, EncodingError, TypeError => e
      reject("bad-payload", e.class.name)
    end

    # Build a token (tests and tools; jobs publish with mt_share.sh).
    def encode(payload, group_key:, aud:, kv:, jobid:, owner:, nonce: nil, compressed: nil)
      check_key(group_key)
      check_context(jobid, owner)
      raise ArgumentError, "audience #{aud.inspect} is not a group name or ~user" unless aud.is_a?(String) && AUD_RE.match?(aud.b)
      raise ArgumentError, "key version must be 1..999999999" unless kv.is_a?(Integer) && kv.between?(1, 999_999_999)

      if compressed.nil?
        validate_payload(payload)
        compressed = Zlib.gzip(JSON.generate(payload), level: 9)
      end
      nonce ||= OpenSSL::Random.random_bytes(NONCE_LEN)
      raise ArgumentError, "nonce must be #{NONCE_LEN} bytes" unless nonce.bytesize == NONCE_LEN

      k_enc, k_mac = subkeys(group_key.b)
      ct = ctr(k_enc, nonce.b, compressed.b)
      tag = tag_for(k_mac, aad(aud, kv, jobid, owner), nonce.b, ct)
      token = "#{PREFIX}#{aud}:#{kv}:#{b64url(nonce.b + ct + tag)}"
      reject("too-large", "token is #{token.length} characters, limit #{TOKEN_MAX}") if token.length > TOKEN_MAX
      token
    end

    def int_field(users, name, low, high)
      value = users[name]
      reject("bad-payload", "users.#{name} must be an integer in #{low}..#{high}") unless value.is_a?(Integer) && value.between?(low, high)
      value
    end

    # Expand a users object ({"n","first","k","bits"}) to its sorted uid list.
    def decode_users(users)
      reject("bad-payload", "users is not an object") unless users.is_a?(Hash)
      n = int_field(users, "n", 1, USERS_MAX)
      first = int_field(users, "first", 0, UID_MAX)
      k = int_field(users, "k", 0, RICE_K_MAX)
      bits_text = users["bits"]
      reject("bad-payload", "users.bits is not a string") unless bits_text.is_a?(String)
      packed = begin
        bits_text.b.unpack1("m0")
      rescue ArgumentError
        reject("bad-payload", "users.bits is not base64")
      end
      bits = packed.unpack1("B*")
      pos = 0
      uids = [first]
      (n - 1).times do
        zero = bits.index("0", pos)
        reject("bad-payload", "users.bits ends inside a gap") if zero.nil? || zero + 1 + k > bits.length
        q = zero - pos
        rem = k.zero? ? 0 : bits[zero + 1, k].to_i(2)
        pos = zero + 1 + k
        uid = uids.last + 1 + ((q << k) | rem)
        reject("bad-payload", "uid out of range") if uid > UID_MAX
        uids << uid
      end
      if bits.length - pos >= 8 || bits[pos..-1].include?("1")
        reject("bad-payload", "users.bits holds more than n-1=#{n - 1} gaps")
      end
      uids
    end
  end
end

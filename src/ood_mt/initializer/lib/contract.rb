# frozen_string_literal: true

# ood-multitenant: what a share may carry, checked before anything is written or shown.
#
# Every field of a share is untrusted input from another user (docs/threat-model.md,
# "Hostile publisher"). The rules are DATA: src/ood_mt/share_contract.json, which
# `ood-mt build` inlines into the initializer (MultiTenant::Contract.new(hash)); the CLI
# applies the same file (src/ood_mt/share_contract.py) and tests/vectors/verdicts.json
# pins the two together. Plain Ruby stdlib; Rejected comes from codec.rb.

require "json"

module MultiTenant
  class Contract
    attr_reader :data

    def self.from_file(path)
      new(JSON.parse(File.read(path)))
    end

    def initialize(data)
      @data = data
      @patterns = {}
      @forbidden = data.fetch("text").fetch("forbidden_ranges").map { |lo, hi| (lo..hi) }
    end

    def limits = @data.fetch("limits")
    def listing = @data.fetch("listing")

    # Whole-value match, the same regular expressions the Python side uses.
    def matches?(pattern, value)
      re = (@patterns[pattern] ||= Regexp.new("\\A(?:#{pattern})\\z"))
      value.is_a?(String) && value.valid_encoding? && re.match?(value)
    end

    # The first code point free text may not hold, as U+XXXX, or nil.
    def forbidden_character(text)
      text.each_codepoint do |cp|
        return format("U+%04X", cp) if (cp & 0xFFFE) == 0xFFFE || @forbidden.any? { |r| r.cover?(cp) }
      end
      nil
    end

    # Raises Rejected unless PAYLOAD (a decrypted share) keeps the contract.
    def check_payload(payload, delivery_apps)
      raise Rejected.new("bad-payload", "payload is not an object") unless payload.is_a?(Hash)

      rules = @data.fetch("payload")
      raise Rejected.new("bad-payload", "mode #{payload['mode'].inspect}") unless rules.fetch("modes").include?(payload["mode"])

      conn = payload["conn"]
      unless conn.is_a?(Hash) && conn.all? { |k, v| k.is_a?(String) && v.is_a?(String) }
        raise Rejected.new("bad-payload", "conn must map names to strings")
      end
      delivery = payload["delivery"]
      unless delivery.is_a?(String) && delivery.start_with?("sys/") && delivery_apps.include?(delivery.delete_prefix("sys/"))
        raise Rejected.new("bad-payload", "delivery #{delivery.inspect} is not a delivery app of this site")
      end
      %w[title app].each do |field|
        raise Rejected.new("bad-payload", "#{field} missing") unless payload[field].is_a?(String)
      end
      title = payload["title"]
      raise Rejected.new("bad-field", "title: empty") if title.strip.empty?

      check_text("title", title, limits.fetch("title_chars"))
      %w[app preset session].each do |field|
        value = payload.fetch(field, "")
        unless matches?(rules.fetch(field), value)
          raise Rejected.new("bad-field", "#{field}: #{value.inspect} is not the form an #{field} has")
        end
      end
      created = payload["created"]
      unless created.is_a?(Integer) && created.between?(limits.fetch("created_min"), limits.fetch("created_max"))
        raise Rejected.new("bad-field", "created: #{created.inspect} is not a time between " \
                                        "#{limits.fetch('created_min')} and #{limits.fetch('created_max')}")
      end
      check_conn(conn)
    end

    # Each connection key from the contract's set (or x_<name>), each value to its rule.
    def check_conn(conn)
      rules = @data.fetch("conn")
      if conn.size > limits.fetch("conn_keys")
        raise Rejected.new("bad-conn-key", "#{conn.size} connection keys, limit #{limits.fetch('conn_keys')}")
      end

      conn.keys.sort.each do |key|
        value = conn[key]
        rule = rules.fetch("fields")[key]
        if rule.nil?
          unless matches?(rules.fetch("extension_key"), key)
            raise Rejected.new("bad-conn-key", "conn.#{key} is not a connection key receivers accept")
          end

          check_text("conn.#{key}", value, limits.fetch("text_chars"))
          next
        end
        check_text("conn.#{key}", value, rule.fetch("max_chars", limits.fetch("text_chars")))
        raise Rejected.new("bad-field", "conn.#{key}: not the form a #{key} has") unless matches?(rule.fetch("pattern"), value)
        if rule.key?("min") && !Integer(value, 10).between?(rule.fetch("min"), rule.fetch("max"))
          raise Rejected.new("bad-field", "conn.#{key}: #{value} is outside #{rule.fetch('min')}..#{rule.fetch('max')}")
        end
      end
    end

    private

    def check_text(field, value, max_chars)
      raise Rejected.new("bad-field", "#{field}: not valid UTF-8") unless value.valid_encoding?
      raise Rejected.new("bad-field", "#{field}: #{value.length} characters, limit #{max_chars}") if value.length > max_chars

      bad = forbidden_character(value)
      raise Rejected.new("bad-field", "#{field}: holds the control or invisible character #{bad}") if bad
    end
  end
end

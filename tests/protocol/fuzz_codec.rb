# frozen_string_literal: true

# Fuzzes MultiTenant::Codec.decode: mutated vector tokens and random strings must
# only ever raise MultiTenant::Rejected. Usage: ruby -Isrc/ood_mt/initializer/lib fuzz_codec.rb COUNT SEED
# Prints one JSON line {"count":..,"reasons":{..},"accepted":..}; exits 1 on any other exception.
require "json"
require "codec"

Codec_ = MultiTenant::Codec

count = Integer(ARGV.fetch(0, "10000"))
rng = Random.new(Integer(ARGV.fetch(1, "1")))
vectors = JSON.parse(File.read(File.expand_path("../vectors/v1.json", __dir__)))
valid = vectors["tokens"].select { |c| c["expect"] == "ok" }
alphabet = ("A".."Z").to_a + ("a".."z").to_a + ("0".."9").to_a + ["-", "_", ":", "~", "=", "+", "/", "!", "\n", "\0"]
unicode = ["é", "模", "🚀", "\u0000", "\u202e", "\xff".b, "\ud7ff"]

mutate = lambda do |tok|
  s = tok.dup
  case rng.rand(7)
  when 0 then (1 + rng.rand(4)).times { i = rng.rand(s.length); s[i] = alphabet.sample(random: rng) }
  when 1 then s = s[0, rng.rand(s.length + 1)]
  when 2 then i = rng.rand(s.length + 1); s = s[0, i] + alphabet.sample(random: rng) + s[i..-1].to_s
  when 3 then s = "mt1:" + Array.new(rng.rand(60)) { alphabet.sample(random: rng) }.join
  when 4 then i = rng.rand(s.length); s = s[0, i] + unicode.sample(random: rng).dup.force_encoding("UTF-8") + s[i..-1].to_s
  when 5 then s = s.b; i = rng.rand(s.bytesize); s.setbyte(i, rng.rand(256)); s.force_encoding("UTF-8")
  else s = s.sub(/:[0-9]+:/, ":#{rng.rand(5)}:")
  end
  s
end

# Valid tag, hostile plaintext: exercises everything after the tag check.
authenticated_garbage = lambda do |c|
  plain = JSON.generate(c["payload"])
  body = case rng.rand(4)
         when 0 then Random.bytes(rng.rand(200)) # not gzip
         when 1 then i = rng.rand(plain.length); Zlib.gzip(plain[0, i] + alphabet.sample(random: rng) + plain[i + 1..-1].to_s)
         when 2 then Zlib.gzip(plain)[0, rng.rand(60)] # truncated gzip
         else Zlib.gzip(("[" * rng.rand(5000)) + ("]" * rng.rand(5000)))
         end
  Codec_.encode(nil, group_key: [c["key_hex"]].pack("H*"), aud: c["aud"], kv: c["kv"], jobid: c["jobid"],
                     owner: c["owner"], compressed: body)
end

reasons = Hash.new(0)
accepted = 0
forged = 0 # a changed token that still verified: must stay 0
count.times do |n|
  c = valid.sample(random: rng)
  garbage = n % 10 == 5
  token = if n % 50 == 0 then c["token"]
          elsif garbage then authenticated_garbage.call(c)
          else mutate.call(c["token"])
          end
  begin
    MultiTenant::Codec.decode(token, group_key: [c["key_hex"]].pack("H*"), jobid: c["jobid"], owner: c["owner"])
    accepted += 1
    forged += 1 unless garbage || token.b == c["token"].b
  rescue MultiTenant::Rejected => e
    reasons[e.reason] += 1
  rescue Exception => e # rubocop:disable Lint/RescueException -- the point is to catch anything else
    warn "non-Rejected #{e.class}: #{e.message} for token #{token.inspect}"
    exit 1
  end
end
puts JSON.generate({ "count" => count, "reasons" => reasons, "accepted" => accepted, "forged" => forged })

# frozen_string_literal: true

# Shared setup of the initializer's minitest suite (run by test_initializer_minitest.py).
require "minitest/autorun"
require "fileutils"
require "json"
require "open3"
require "tmpdir"
require "yaml"

REPO_ROOT = File.expand_path("../..", __dir__)
CODEC_RB = File.join(REPO_ROOT, "initializer_src/lib/codec.rb")
require CODEC_RB if File.exist?(CODEC_RB)
require File.join(REPO_ROOT, "initializer_src/lib/contract.rb")
require File.join(REPO_ROOT, "initializer_src/lib/multitenant.rb")
# The one share contract (the rendered initializer inlines the same file).
CONTRACT_DATA = JSON.parse(File.read(File.join(REPO_ROOT, "src/ood_mt/share_contract.json"))).freeze
CONTRACT = MultiTenant::Contract.new(CONTRACT_DATA)

PYTHON = [File.join(REPO_ROOT, ".venv/bin/python"), "python3"].find { |p| p.include?("/") ? File.executable?(p) : true }

module InitializerTestHelpers
  # Skips a test that needs the Ruby codec (another engineer's file) while it is absent.
  def require_ruby_codec!
    skip("initializer_src/lib/codec.rb not present yet (the Ruby codec is built separately)") unless
      defined?(MultiTenant::Codec) && MultiTenant::Codec.respond_to?(:decode)
  end

  # One record exactly as squeue prints the contract's listing format
  # (`-O JobID:20|,UserName:40|,WCKey:70|,StartTime:20|,Name:1024|,Comment:1024|`; checked against Slurm
  # 22.05: every field padded with spaces by BYTES to its width, "(null)" for no comment,
  # newlines in names kept as they are).
  def squeue_row(jobid, user, wckey, name, comment = nil, start: "N/A")
    values = [jobid, user, wckey, start, name, comment || "(null)"]
    CONTRACT.listing.fetch("fields").each_with_index.map do |(_field, width), i|
      values[i].to_s.b.byteslice(0, width).ljust(width, " ") + "|"
    end.join.b + "\n"
  end

  # Encodes a token with the PYTHON reference encoder (ood_mt.codec): the Ruby side is
  # then checked against an independent implementation.
  def python_token(payload:, key:, aud:, kv:, jobid:, owner:)
    script = <<~PY
      import json, sys
      from ood_mt import codec
      a = json.load(sys.stdin)
      print(codec.encode(a["payload"], group_key=bytes.fromhex(a["key"]), aud=a["aud"], kv=a["kv"],
                         jobid=a["jobid"], owner=a["owner"]))
    PY
    input = JSON.generate(payload: payload, key: key.unpack1("H*"), aud: aud, kv: kv, jobid: jobid, owner: owner)
    out, err, status = Open3.capture3(PYTHON, "-c", script, stdin_data: input)
    raise "python encoder failed: #{err}" unless status.success?

    out.strip
  end

  def python_users(uids)
    out, err, status = Open3.capture3(PYTHON, "-c",
                                      "import json,sys; from ood_mt import codec; print(json.dumps(codec.encode_users(json.load(sys.stdin))))",
                                      stdin_data: JSON.generate(uids))
    raise "python encode_users failed: #{err}" unless status.success?

    JSON.parse(out)
  end

  def sample_payload(mode: "card", conn: { "host" => "node1", "port" => "8080", "password" => "s3cr#et:x{y}" },
                     delivery: "sys/mt_delivery_default", **extra)
    { "v" => 1, "app" => "llm", "title" => "Llama", "preset" => "api", "mode" => mode,
      "delivery" => delivery, "session" => "0f2c", "created" => 1_700_000_000, "conn" => conn }.merge(extra)
  end

  # Writes a key dir: <dir>/<group>/current and v<n>.key for each version.
  def write_keys(dir, group, current:, versions:)
    gdir = File.join(dir, group)
    FileUtils.mkdir_p(gdir)
    File.write(File.join(gdir, "current"), "#{current}\n")
    versions.to_h do |v|
      key = Random.new(v * 7919 + group.sum).bytes(32)
      File.write(File.join(gdir, "v#{v}.key"), key.unpack1("H*") + "\n")
      [v, key]
    end
  end

  def site_config(**over)
    MultiTenant::Config.from_hash({ "wckey" => "multitenant", "publisher_group" => "root",
                                    "tenant_groups" => ["mtclass"], "key_dir" => "/nonexistent",
                                    "cluster" => "hostlab", "refresh_seconds" => 30,
                                    "contract" => CONTRACT_DATA }.merge(over))
  end
end

# TEST DOUBLE of the squeue runner: returns canned output. Used where the thing under
# test is verification / logging / cards, not the Slurm call (that one is tested for
# real in the slurm-marked pytest suite).
class CannedSqueueRunnerDouble
  attr_reader :calls

  def initialize(stdout)
    @stdout = stdout
    @calls = 0
  end

  def run(_argv)
    @calls += 1
    status = Open3.capture3("true")[2]
    MultiTenant::CommandRunner::Result.new(status: status, stdout: @stdout, stderr: "", timed_out: false)
  end
end

# frozen_string_literal: true

# Shared setup of the initializer's minitest suite (run by test_initializer_minitest.py).
require "minitest/autorun"
require "fileutils"
require "json"
require "open3"
require "tmpdir"
require "yaml"

REPO_ROOT = File.expand_path("../..", __dir__)
# The libraries in the initializer's load order: the one list, ood_mt.render.INITIALIZER_LIBS.
# A library that is missing fails the load (LoadError), so the suite fails; it never skips.
INITIALIZER_LIBS = File.read(File.join(REPO_ROOT, "src/ood_mt/render.py"))[/^INITIALIZER_LIBS = \((.*?)^\)/m, 1]
                       .to_s.scan(/^\s*"([a-z_]+\.rb)"/).flatten.freeze
raise "tests: no INITIALIZER_LIBS found in src/ood_mt/render.py" if INITIALIZER_LIBS.empty?

INITIALIZER_LIBS.each { |name| require File.join(REPO_ROOT, "src/ood_mt/initializer/lib", name) }
# The one share contract (the rendered initializer inlines the same file).
CONTRACT_DATA = JSON.parse(File.read(File.join(REPO_ROOT, "src/ood_mt/share_contract.json"))).freeze
CONTRACT = MultiTenant::Contract.new(CONTRACT_DATA)

PYTHON = [ENV["OOD_MT_PYTHON"].to_s, File.join(REPO_ROOT, ".venv/bin/python"), "python3"]
         .find { |p| !p.empty? && (p.include?("/") ? File.executable?(p) : true) }
# This checkout's ood_mt first, whichever Python runs it.
PYTHON_ENV = { "PYTHONPATH" => [File.join(REPO_ROOT, "src"), ENV["PYTHONPATH"]].compact.join(":") }.freeze

# The lab site's site.json (SiteConfig.public_summary, format 3) as `ood-mt build` writes it:
# the tests' sites are this with a few fields changed, never a copy kept here.
def python_site_summary
  script = "import json; from ood_mt import config; " \
           "print(json.dumps(config.load_site('inventories/lab/group_vars/all/multitenant.yml').public_summary()))"
  out, err, status = Open3.capture3(PYTHON_ENV, PYTHON, "-c", script, chdir: REPO_ROOT)
  raise "python site summary failed (set PYTHONPATH to the checkout's src): #{err}" unless status.success?

  JSON.parse(out).freeze
end
SITE_SUMMARY = python_site_summary

module InitializerTestHelpers
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
    out, err, status = Open3.capture3(PYTHON_ENV, PYTHON, "-c", script, stdin_data: input)
    raise "python encoder failed: #{err}" unless status.success?

    out.strip
  end

  def python_users(uids)
    out, err, status = Open3.capture3(PYTHON_ENV, PYTHON, "-c",
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

  # The lab site's site.json with OVER changed (field names as in site.json).
  def site_config(over = {})
    MultiTenant::Config.new(SITE_SUMMARY.merge("publisher_group" => "root", "key_dir" => "/nonexistent",
                                               "spool_dir" => "/nonexistent/ood-mt-spool",
                                               "cluster" => "hostlab", "card_cluster" => "hostlab").merge(over), contract: CONTRACT_DATA)
  end
end

# TEST DOUBLE of the user and group directory (Etc's getgrnam/getpwnam), handed to
# MultiTenant::Verifier.membership_in: the verification policy is then tested on any machine,
# with no lab user created. LAB is lab/users.conf: mtusr 2001 (publishers), mtclass 2002
# (tenants); mtpub 2101 (mtusr, mtclass), mtrecv 2102 (mtclass), mtrecv2 2103 (PRIMARY group
# mtclass, not in its member list), mtout 2104 (no mt group).
class DirectoryDouble
  Group = Struct.new(:name, :gid, :mem)
  Passwd = Struct.new(:name, :uid, :gid)

  def self.lab
    new(users: { "mtpub" => [2101, 2101], "mtrecv" => [2102, 2102], "mtrecv2" => [2103, 2002], "mtout" => [2104, 2104] },
        groups: { "mtusr" => [2001, %w[mtpub]], "mtclass" => [2002, %w[mtpub mtrecv]] })
  end

  # USERS: {name => [uid, primary gid]}; GROUPS: {name => [gid, member names]}.
  def initialize(users:, groups:)
    @users = users.to_h { |name, (uid, gid)| [name, Passwd.new(name, uid, gid)] }
    @groups = groups.to_h { |name, (gid, mem)| [name, Group.new(name, gid, mem)] }
  end

  def getgrnam(name) = @groups.fetch(name) { raise ArgumentError, "can't find group for #{name}" }
  def getpwnam(name) = @users.fetch(name) { raise ArgumentError, "can't find user for #{name}" }

  # The groups a user's dashboard process has (MultiTenant::Identity#group_names).
  def group_names(name)
    gid = getpwnam(name).gid
    [name] + @groups.values.select { |g| g.mem.include?(name) || g.gid == gid }.map(&:name)
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

# A file of tests/vectors/ (the cases every implementation of a rule runs).
def vectors_file(name) = JSON.parse(File.read(File.join(REPO_ROOT, "tests/vectors", name)))

# `vectors NAME, CONSTANTS, min_cases:` in a test class: VECTORS is tests/vectors/NAME, and a
# test checks that this implementation keeps the file's CONSTANTS and that it holds cases.
module VectorsTestHelpers
  def self.included(base) = base.extend(ClassMethods)

  module ClassMethods
    def vectors(name, constants, min_cases:)
      const_set(:VECTORS, vectors_file(name))
      define_method(:test_this_implementation_keeps_the_vectors_constants) do
        constants.each { |key, value| assert_equal self.class::VECTORS.fetch(key), value, "constant #{key}" }
        assert_operator self.class::VECTORS.fetch("cases").size, :>=, min_cases
      end
    end
  end
end

# frozen_string_literal: true

require_relative "test_helper"

# The initializer's verifier against tests/vectors/verdicts.json, the cases the Python CLI's
# suite runs too (test_verdict_vectors.py): the listing through Discovery.parse, each job
# through Verifier#verify with the vectors' key files, receiver and group directory, then
# Refresher.limit_per_publisher. Same expected outcome per job.
class VerdictVectorsTest < Minitest::Test
  include InitializerTestHelpers

  VECTORS = JSON.parse(File.read(File.expand_path("../vectors/verdicts.json", __dir__)))

  def setup
    @root = Dir.mktmpdir
    @key_dir = File.join(@root, "keys")
    VECTORS.fetch("key_files").each do |rel, text|
      FileUtils.mkdir_p(File.dirname(File.join(@key_dir, rel)))
      File.write(File.join(@key_dir, rel), text)
    end
    VECTORS.fetch("user_key_files").each do |user, text|
      dir = File.join(@root, "homes", user, ".ood-mt")
      FileUtils.mkdir_p(dir, mode: 0o700)
      File.chmod(0o700, dir)
      File.write(File.join(dir, "user.key"), text)
      File.chmod(0o600, File.join(dir, "user.key"))
    end
    site = VECTORS.fetch("site")
    @config = site_config("wckey" => site.fetch("wckey"), "publisher_group" => site.fetch("publisher_group"),
                          "tenant_groups" => site.fetch("tenant_groups"), "delivery_apps" => site.fetch("delivery_apps"),
                          "key_dir" => @key_dir)
    directory = VECTORS.fetch("directory")
    @membership = ->(user, group) { directory.fetch(group, []).include?(user) }
  end

  def teardown
    FileUtils.rm_rf(@root) if @root
  end

  def test_this_implementation_keeps_the_vectors_limits_and_reasons
    limits = VECTORS.fetch("limits")
    fields = CONTRACT.listing.fetch("fields")
    assert_equal limits.fetch("record_bytes"), fields.sum { |_f, w| w + 1 } + 1
    assert_equal limits.fetch("squeue_format"), MultiTenant::Discovery.format(CONTRACT.listing)
    assert_equal [limits.fetch("token_max"), limits.fetch("plaintext_max")],
                 [MultiTenant::Codec::TOKEN_MAX, MultiTenant::Codec::PLAINTEXT_MAX]
    CONTRACT.limits.each { |name, value| assert_equal limits.fetch(name), value, name }
    assert_equal VECTORS.fetch("reasons"), MultiTenant::Codec::REASONS.sort
  end

  def outcome(vector_case)
    jobs = MultiTenant::Discovery.parse(vector_case.fetch("listing_b64").unpack1("m0"), @config.contract)
    return "listing-refused" if jobs.is_a?(MultiTenant::Discovery::Failure)

    me = vector_case.fetch("me")
    identity = MultiTenant::Identity.new(name: me.fetch("name"), uid: me.fetch("uid"), gid: me.fetch("uid"),
                                         home: File.join(@root, "homes", me.fetch("name")),
                                         group_names: me.fetch("groups"))
    verifier = MultiTenant::Verifier.new(config: @config, identity: identity, membership: @membership,
                                         keys: MultiTenant::KeyStore.new(key_dir: @key_dir, home: identity.home))
    verdicts = {}
    accepted = jobs.filter_map do |job|
      verifier.verify(job).tap { verdicts[job.jobid] = "accepted" }
    rescue MultiTenant::Rejected => e
      verdicts[job.jobid] = e.reason
      nil
    end
    limit = @config.contract.limits.fetch("shares_per_publisher")
    MultiTenant::Refresher.limit_per_publisher(accepted, limit) { |share, _detail| verdicts[share.jobid] = "too-many-shares" }
    verdicts
  end

  VECTORS.fetch("cases").each_with_index do |vector_case, index|
    define_method("test_case_#{index}_#{vector_case.fetch('name').gsub(/[^a-z0-9]+/i, '_')}") do
      assert_equal vector_case.fetch("expect"), outcome(vector_case), vector_case.fetch("name")
    end
  end
end

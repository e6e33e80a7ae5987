# frozen_string_literal: true

require_relative "test_helper"

# The site description the initializer reads at run time (site.json, format 3 of
# SiteConfig.public_summary): every value used comes from the file, and a file that cannot
# be used is one SiteFileError naming the file, what is wrong and the fix.
class ConfigTest < Minitest::Test
  def setup
    @dir = Dir.mktmpdir
    @path = File.join(@dir, "site.json")
  end

  def teardown
    FileUtils.rm_rf(@dir)
  end

  def load(data)
    File.write(@path, data.is_a?(String) ? data : JSON.generate(data))
    MultiTenant::Config.load(@path, contract: CONTRACT_DATA)
  end

  def assert_refused(data, pattern)
    error = assert_raises(MultiTenant::SiteFileError) { load(data) }
    assert error.message.start_with?("#{@path}: "), error.message
    assert_match pattern, error.message
    assert_match(/fix: /, error.message)
  end

  def test_every_value_comes_from_site_json
    data = SITE_SUMMARY.merge("wckey" => "MixedCase", "squeue" => "/opt/slurm/bin/squeue", "squeue_timeout_seconds" => 4,
                              "delivery_apps" => %w[mt_delivery_x], "tenant_group_pattern" => "lab[0-9]+",
                              "refresh_seconds" => 0)
    config = load(data)
    assert_equal ["mixedcase", "/opt/slurm/bin/squeue", 4.0, %w[mt_delivery_x], 0, "lab", "lab"],
                 [config.wckey, config.squeue, config.timeout_seconds, config.delivery_apps, config.refresh_seconds,
                  config.cluster, config.site]
    assert config.tenant_group?("mtclass")
    assert config.tenant_group?("lab12")
    refute config.tenant_group?("lab12x")
    assert_kind_of MultiTenant::Contract, config.contract
  end

  def test_an_unusable_file_names_itself_and_the_fix
    error = assert_raises(MultiTenant::SiteFileError) { MultiTenant::Config.load(@path, contract: CONTRACT_DATA) }
    assert_equal "#{@path}: missing; fix: run playbooks/site.yml (the ood_mt_keys role installs the build's " \
                 "etc/site.json there) or set OOD_MT_SITE_JSON", error.message
    assert_refused("{not json", /not valid JSON/)
    assert_refused("[]", /not a JSON object/)
    assert_refused(SITE_SUMMARY.merge("format" => 1), /format 1, this initializer reads format 3/)
    assert_refused(SITE_SUMMARY.reject { |k, _| k == "format" }, /field format is missing/)
    %w[site cluster wckey publisher_group tenant_groups tenant_group_pattern key_dir refresh_seconds squeue
       squeue_timeout_seconds delivery_apps].each do |name|
      assert_refused(SITE_SUMMARY.reject { |k, _| k == name }, /field #{name} is missing/)
    end
    { "wckey" => "", "tenant_groups" => "mtclass", "refresh_seconds" => -1,
      "squeue_timeout_seconds" => 0, "delivery_apps" => [], "squeue" => 3 }.each do |name, value|
      assert_refused(SITE_SUMMARY.merge(name => value), /field #{name} has an invalid value/)
    end
    assert_refused(SITE_SUMMARY.merge("tenant_group_pattern" => "("), /tenant_group_pattern is not a regular expression/)
  end

  def test_the_path_is_the_built_in_one_unless_the_variable_is_set
    assert_equal "/etc/ood-mt/site.json", MultiTenant::Config.site_json_path("/etc/ood-mt/site.json", {})
    assert_equal "/etc/ood-mt/site.json",
                 MultiTenant::Config.site_json_path("/etc/ood-mt/site.json", { "OOD_MT_SITE_JSON" => "" })
    assert_equal "/tmp/x.json", MultiTenant::Config.site_json_path("/etc/ood-mt/site.json", { "OOD_MT_SITE_JSON" => "/tmp/x.json" })
  end
end

# frozen_string_literal: true

# ood-multitenant: the site description, read at run time.
#
# Nothing about a site is baked into the initializer: it reads site.json (default
# /etc/ood-mt/site.json), which `ood-mt build` writes as OUT/etc/site.json (format 3 of
# SiteConfig.public_summary in src/ood_mt/config.py) and the ood_mt_keys role installs on
# OOD and compute hosts. Values derived from the site (squeue, its timeout, the delivery
# apps) are read there too, so no program keeps a copy of them.

require "json"

module MultiTenant
  # site.json cannot be used; the message names the file, what is wrong and the fix.
  class SiteFileError < StandardError; end

  # The site settings of one dashboard process.
  class Config
    FORMAT = 3
    # Overrides the site.json path (tests). Safe: the dashboard (PUN) runs as the user, so
    # another site.json only changes what that user is shown; it grants no key, file or
    # Slurm right the user does not already have.
    PATH_VARIABLE = "OOD_MT_SITE_JSON"
    REBUILD = "fix: rebuild it with `ood-mt build` and redeploy (the ood_mt_keys role installs OUT/etc/site.json)"

    attr_reader :source, :site, :wckey, :publisher_group, :tenant_groups, :tenant_group_pattern, :key_dir,
                :cluster, :card_cluster, :refresh_seconds, :discovery_interval_seconds, :spool_dir, :squeue, :timeout_seconds, :delivery_apps, :contract

    # The site.json to read: $OOD_MT_SITE_JSON when set, else DEFAULT (baked in by ood-mt build).
    def self.site_json_path(default, env = ENV)
      given = env[PATH_VARIABLE].to_s
      given.empty? ? default : given
    end

    # -> Config; raises SiteFileError naming PATH and the fix.
    def self.load(path, contract:)
      text = File.binread(path)
      data = JSON.parse(text.force_encoding(Encoding::UTF_8))
      new(data, contract: contract, source: path)
    rescue Errno::ENOENT
      raise SiteFileError, "#{path}: missing; fix: run playbooks/site.yml (the ood_mt_keys role installs the " \
                           "build's etc/site.json there) or set #{PATH_VARIABLE}"
    rescue SystemCallError, IOError => e
      raise SiteFileError, "#{path}: cannot be read (#{e.message}); fix: it must be a file root:root 0644, " \
                           "as the ood_mt_keys role installs it"
    rescue JSON::ParserError, EncodingError => e
      raise SiteFileError, "#{path}: not valid JSON (#{e.message.lines.first.to_s.strip}); #{REBUILD}"
    end

    # DATA: the parsed site.json; CONTRACT: src/ood_mt/share_contract.json (a Hash or a Contract).
    def initialize(data, contract:, source: "site.json")
      @source = source
      raise SiteFileError, "#{source}: not a JSON object; #{REBUILD}" unless data.is_a?(Hash)

      @data = data
      format = field("format") { |v| v.is_a?(Integer) }
      unless format == FORMAT
        raise SiteFileError, "#{source}: format #{format}, this initializer reads format #{FORMAT}; #{REBUILD}"
      end

      read_fields
      @contract = contract.is_a?(Contract) ? contract : Contract.new(contract)
    end

    def tenant_group?(group)
      tenant_groups.include?(group) || (!tenant_group_pattern.nil? && tenant_group_pattern.match?(group))
    end

    private

    def read_fields
      @site, @cluster, @card_cluster, @publisher_group, @key_dir, @squeue, @spool_dir =
        %w[site cluster card_cluster publisher_group key_dir squeue spool_dir].map do |name|
        field(name) { |v| v.is_a?(String) && !v.empty? }
      end
      @wckey = field("wckey") { |v| v.is_a?(String) && !v.empty? }.downcase
      @tenant_groups = field("tenant_groups") { |v| v.is_a?(Array) && v.all?(String) }.dup.freeze
      pattern = field("tenant_group_pattern") { |v| v.is_a?(String) }
      @tenant_group_pattern = pattern.empty? ? nil : Regexp.new("\\A(?:#{pattern})\\z")
      @refresh_seconds = field("refresh_seconds") { |v| v.is_a?(Integer) && v >= 0 }
      @discovery_interval_seconds = field("discovery_interval_seconds") { |v| v.is_a?(Integer) && v.positive? }
      @timeout_seconds = Float(field("squeue_timeout_seconds") { |v| v.is_a?(Numeric) && v.positive? })
      @delivery_apps = field("delivery_apps") { |v| v.is_a?(Array) && !v.empty? && v.all?(String) }.dup.freeze
    rescue RegexpError => e
      raise SiteFileError, "#{@source}: field tenant_group_pattern is not a regular expression (#{e.message}); " \
                           "fix: correct multitenant.tenant_group_pattern in the site file and rebuild"
    end

    def field(name)
      raise SiteFileError, "#{@source}: field #{name} is missing; #{REBUILD}" unless @data.key?(name)

      value = @data[name]
      raise SiteFileError, "#{@source}: field #{name} has an invalid value #{value.inspect[0, 80]}; #{REBUILD}" \
        unless yield(value)

      value
    end
  end
end

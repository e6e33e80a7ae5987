# frozen_string_literal: true

# OOD DASHBOARD HARNESS -- a test harness standing in for the Open OnDemand dashboard.
#
# It is NOT Open OnDemand. OOD (and its gems) cannot be installed here, so this script
# reproduces, from /work/shared/docs/ood-facts.md, exactly the parts of the dashboard the
# kit depends on, and nothing else:
#   * minimal Rails / Configuration / CurrentUser / OodAppkit / BatchConnect stubs, on top
#     of Debian's real ActiveSupport;
#   * loads the RENDERED initializer the way a PUN does: `load`, as the user this process
#     runs as (tests start it with runuser), then fires the boot hooks
#     (after_initialize, to_prepare) and the per-request before_action hooks;
#   * reads the sessions like the dashboard: every file in db/ is parsed (an unparsable one
#     is renamed <name>.bak and ignored for good), the exact key set is required,
#     connection.yml is read with YAML.safe_load (a failure breaks the whole page: reported
#     as page_error), squeue gives each job's state (Running only if squeue says RUNNING and
#     connection.yml exists; "not found" makes the card completed for good), and the
#     delivery app's view.html.erb is rendered with ERB.new(view, trim_mode: "-") in a
#     binding where every connection key is a bare name (a missing one is nil);
#   * --form APP renders APP/form.yml.erb with ERB (trim_mode "-") and no app binding, as
#     the dashboard does, after the form page's request hook.
# It prints one JSON document: cards, specs, form, hooks (how many of each the
# initializer registered), log lines, errors.
#
# Usage: ruby ood_dashboard_harness.rb --initializer PATH --apps-dir DIR [--form APP] [--sessions]
#        [--requests N]   (fire the request hooks N times; default 1)
# Environment: MULTITENANT_ENABLE (as in the dashboard env file), OOD_DATAROOT,
# OOD_PER_CLUSTER_DATAROOT, OOD_MT_HARNESS_SQUEUE (squeue binary; default "squeue").

require "active_support"
require "active_support/core_ext/object/blank"
require "erb"
require "etc"
require "json"
require "open3"
require "optparse"
require "ostruct"
require "pathname"
require "yaml"

# Captures what the initializer logs (Rails.logger stand-in).
class HarnessLogger
  attr_reader :lines

  def initialize
    @lines = []
  end

  %i[debug info warn error fatal unknown].each do |level|
    define_method(level) do |message = nil, &block|
      text = message || block&.call
      @lines << text.to_s
      true
    end
  end
end

# Rails stand-in: only what initializers touch.
module Rails
  # Collects boot hooks so the harness can fire them in the dashboard's order.
  class HarnessConfig
    attr_reader :after_initialize_hooks, :to_prepare_hooks

    def initialize
      @after_initialize_hooks = []
      @to_prepare_hooks = []
    end

    def after_initialize(&block)
      @after_initialize_hooks << block
    end

    def to_prepare(&block)
      @to_prepare_hooks << block
    end
  end

  # Rails.application stand-in.
  class HarnessApplication
    def config
      @config ||= HarnessConfig.new
    end
  end

  class << self
    attr_accessor :logger

    def application
      @application ||= HarnessApplication.new
    end

    def env
      ActiveSupport::StringInquirer.new("production")
    end

    def root
      Pathname.new(Dir.pwd)
    end
  end
end

# OOD's Configuration: the dataroot rule of the dashboard.
module Configuration
  def self.dataroot
    root = ENV["OOD_DATAROOT"].presence || File.join(Dir.home, "ondemand/data/sys/dashboard")
    Pathname.new(File.expand_path(root))
  end

  def self.config_root
    Pathname.new("/etc/ood/config")
  end

  def self.per_cluster_dataroot?
    ENV["OOD_PER_CLUSTER_DATAROOT"].to_s.downcase == "true"
  end
end

# OOD's CurrentUser, from the process's own identity (the PUN runs as the user).
module CurrentUser
  def self.pw = Etc.getpwuid(Process.uid)
  def self.name = pw.name
  def self.uid = pw.uid
  def self.gid = pw.gid
  def self.home = pw.dir

  def self.group_names
    ([gid] + Process.groups).uniq.filter_map do |g|
      Etc.getgrgid(g).name
    rescue ArgumentError
      nil
    end
  end

  def self.filtered_group_names = group_names
end

# OodAppkit stand-in (clusters only as ids).
module OodAppkit
  def self.dataroot = Configuration.dataroot
  def self.clusters = []
end

module BatchConnect
  # Records before_action blocks like an ActionController class; #fire runs them.
  class HarnessController
    class << self
      def before_actions
        @before_actions ||= []
      end

      def before_action(*_names, &block)
        before_actions << block if block
      end

      def fire
        before_actions.each { |hook| new.instance_exec(&hook) }
      end
    end
  end

  class SessionsController < HarnessController; end
  class SessionContextsController < HarnessController; end
end

# Reads the session cards the way the dashboard's sessions page does.
class HarnessSessionsPage
  DB_KEYS = %w[id cluster_id job_id created_at token title script_type cache_completed completed_at].freeze

  attr_reader :errors, :renamed

  def initialize(apps_dir:, squeue:)
    @apps_dir = apps_dir
    @squeue = squeue
    @errors = []
    @renamed = []
  end

  def db_dir = Configuration.dataroot.join("batch_connect", "db")

  def cards
    return [] unless db_dir.directory?

    db_dir.children.select(&:file?).sort.filter_map do |file|
      next if file.basename.to_s.end_with?(".bak")

      record = parse_db(file)
      next if record.nil?

      card(file, record)
    end
  end

  private

  def parse_db(file)
    record = JSON.parse(file.read)
    raise JSON::ParserError, "not an object" unless record.is_a?(Hash)

    record
  rescue JSON::ParserError
    file.rename("#{file}.bak")
    @renamed << file.basename.to_s
    nil
  end

  def check_record(file, record)
    keys = record.keys.sort
    @errors << "#{file.basename}: keys #{keys.inspect}, want #{DB_KEYS.sort.inspect}" unless keys == DB_KEYS.sort
    @errors << "#{file.basename}: id #{record['id'].inspect} differs from file name" unless record["id"] == file.basename.to_s
    @errors << "#{file.basename}: created_at is not an Integer" unless record["created_at"].is_a?(Integer)
    @errors << "#{file.basename}: job_id is not a String" unless record["job_id"].is_a?(String)
    @errors << "#{file.basename}: token #{record['token'].inspect}" unless record["token"].to_s.match?(%r{\Asys/[\w.-]+\z})
    @errors << "#{file.basename}: script_type #{record['script_type'].inspect}" unless record["script_type"] == "basic"
    return if [false, nil, true].include?(record["cache_completed"])

    @errors << "#{file.basename}: cache_completed #{record['cache_completed'].inspect}"
  end

  def output_dir(record)
    parts = [Configuration.dataroot, "batch_connect"]
    parts << record["cluster_id"].to_s if Configuration.per_cluster_dataroot?
    File.join(*parts.map(&:to_s), record["token"].to_s, "output", record["id"].to_s)
  end

  def card(file, record)
    check_record(file, record)
    conn_path = File.join(output_dir(record), "connection.yml")
    connection = read_connection(conn_path)
    status = status_of(file, record, File.exist?(conn_path))
    {
      "id" => record["id"], "job_id" => record["job_id"], "title" => record["title"],
      "token" => record["token"], "status" => status, "connection" => connection,
      "connection_path" => conn_path, "view_html" => (status == "running" ? render_view(record, connection) : nil)
    }
  end

  def read_connection(path)
    return nil unless File.exist?(path)

    data = YAML.safe_load(File.read(path))
    raise "connection.yml is not a flat mapping" unless data.is_a?(Hash)

    data
  rescue StandardError, Psych::Exception => e
    # In the dashboard this is a 500 for the whole sessions page.
    @errors << "page broken: #{path}: #{e.class}: #{e.message}"
    nil
  end

  def status_of(file, record, has_connection)
    return "completed" if record["cache_completed"] == true

    state = squeue_state(record["job_id"].to_s)
    if state.nil?
      # "not found" is sticky: the dashboard writes it into the db file.
      record["cache_completed"] = true
      record["completed_at"] = Time.now.to_i
      file.write(JSON.generate(record))
      return "completed"
    end
    return "running" if state == "RUNNING" && has_connection
    return "starting" if state == "RUNNING"

    state == "PENDING" ? "queued" : "completed"
  end

  def squeue_state(job_id)
    out, _err, status = Open3.capture3(@squeue, "--all", "--states=all", "--noheader", "-j", job_id, "-o", "%T")
    return nil unless status.success?

    out.split("\n").map(&:strip).reject(&:empty?).first
  end

  def render_view(record, connection)
    app = record["token"].to_s.delete_prefix("sys/")
    view = File.join(@apps_dir, app, "view.html.erb")
    return nil unless File.exist?(view)

    locals = OpenStruct.new(connection || {})
    ERB.new(File.read(view), trim_mode: "-").result(locals.instance_eval { binding })
  rescue StandardError => e
    @errors << "view of #{record['id']}: #{e.class}: #{e.message}"
    nil
  end
end

def harness_options(argv)
  opts = { requests: 1, sessions: false }
  OptionParser.new do |o|
    o.banner = "Usage: ood_dashboard_harness.rb --initializer PATH --apps-dir DIR [--form APP] [--sessions]"
    o.on("--initializer PATH") { |v| opts[:initializer] = v }
    o.on("--apps-dir DIR") { |v| opts[:apps_dir] = v }
    o.on("--form APP") { |v| opts[:form] = v }
    o.on("--sessions") { opts[:sessions] = true }
    o.on("--requests N", Integer) { |v| opts[:requests] = v }
  end.parse!(argv)
  %i[initializer apps_dir].each do |required|
    abort("ood_dashboard_harness: --#{required.to_s.tr('_', '-')} is required") unless opts[required]
  end
  opts
end

def harness_main(argv)
  opts = harness_options(argv)
  logger = HarnessLogger.new
  Rails.logger = logger
  result = { "user" => CurrentUser.name, "errors" => [] }

  # 1. PUN boot: initializers load, then after_initialize, then to_prepare.
  begin
    load File.expand_path(opts[:initializer])
    Rails.application.config.after_initialize_hooks.each(&:call)
    Rails.application.config.to_prepare_hooks.each(&:call)
  rescue Exception => e # rubocop:disable Lint/RescueException -- any escape here = broken dashboard
    result["errors"] << "dashboard boot broken: #{e.class}: #{e.message}"
  end

  # 2. Requests.
  page = HarnessSessionsPage.new(apps_dir: opts[:apps_dir], squeue: ENV.fetch("OOD_MT_HARNESS_SQUEUE", "squeue"))
  begin
    opts[:requests].times do
      BatchConnect::SessionsController.fire if opts[:sessions]
      BatchConnect::SessionContextsController.fire if opts[:form]
    end
  rescue Exception => e # rubocop:disable Lint/RescueException
    result["errors"] << "request hook broke the page: #{e.class}: #{e.message}"
  end

  result["cards"] = opts[:sessions] ? page.cards : []
  result["renamed"] = page.renamed
  result["errors"].concat(page.errors)
  result["specs"] = defined?(MultiTenant) && MultiTenant.respond_to?(:specs) ? MultiTenant.specs : nil
  if opts[:form]
    begin
      form_path = File.join(opts[:apps_dir], opts[:form], "form.yml.erb")
      text = ERB.new(File.read(form_path), trim_mode: "-").result
      result["form_yaml"] = text
      result["form"] = YAML.safe_load(text, aliases: true)
    rescue Exception => e # rubocop:disable Lint/RescueException
      result["errors"] << "form #{opts[:form]} broken: #{e.class}: #{e.message}"
    end
  end
  result["hooks"] = {
    "after_initialize" => Rails.application.config.after_initialize_hooks.size,
    "to_prepare" => Rails.application.config.to_prepare_hooks.size,
    "sessions_before_action" => BatchConnect::SessionsController.before_actions.size,
    "session_contexts_before_action" => BatchConnect::SessionContextsController.before_actions.size
  }
  result["log"] = logger.lines
  puts JSON.pretty_generate(result)
end

harness_main(ARGV.dup) if $PROGRAM_NAME == __FILE__

#!/usr/bin/env ruby
# frozen_string_literal: true

# Runs Open OnDemand's OWN dashboard code (not an imitation) outside Rails, as the Unix
# user who runs this script, the way that user's dashboard (PUN) would:
#
#   form     APP          BatchConnect::App#build_session_context renders APP's real
#                         form.yml.erb; prints the attributes (id, widget, label, options,
#                         value) and whether OOD considers the app valid.
#   launch   APP PARAMS   what SessionContextsController#create does: build the context,
#                         assign the permitted params (JSON object), BatchConnect::Session#save
#                         (stage, render template/*.erb in OOD's TemplateBinding, render
#                         submit.yml.erb, submit through ood_core's Slurm adapter to sbatch).
#   stage    APP PARAMS   the same as launch up to, not including, the submission: staging and
#                         OOD's own job script (ood_core's batch_connect template), written to
#                         the staged root as OOD does (job_script_content.sh), for tests that
#                         run a job outside Slurm.
#   view     APP CONN     a card body for the connection CONN (JSON object): APP's view.html.erb
#                         through _custom.html.erb, as a running session of APP renders.
#   sessions              what SessionsController#index does: Session.all, update_cache_completed!,
#                         each card's status from the adapter's real squeue, its connection, and
#                         its body rendered by OOD's connections/_custom.html.erb (view ERB in the
#                         connection's binding, then Markdown).
#   press ACTION ID TOKEN the user pressing a card's button: a real Rack request through OOD's
#                         routes (config/routes.rb) to OOD's BatchConnect::SessionsController,
#                         ACTION "destroy" (Delete: POST /batch_connect/sessions/ID with
#                         _method=delete, as OOD's button_to form sends it) or "cancel" (POST
#                         .../ID/cancel). TOKEN "button": the authenticity token of the form
#                         OOD's own SessionsHelper#delete/#cancel renders for session ID in this
#                         browser session; "session": this browser session's own token (an id
#                         with no card); "none": no token; "forged": another session's token. Prints status, Location, the flash the next page would show,
#                         and the exception class when Rails raised (a production dashboard
#                         answers that with an error page).
#
# APP is a system app name (a directory under --apps-dir). Output: one JSON document,
# {"result": <the command's result>, "boot": {what the site initializers registered: hook
# counts, before_action blocks per controller, and the kit's MultiTenant.specs job ids or
# null when the kit is not active}}.
#
# OOD's sources come from OOD_MT_OOD_SOURCE (default ../shared/ood next to the checkout),
# version from OOD_MT_OOD_VERSION (4.2.3 or 3.1.14); see docs/testing.md for the facts.
#
# What this file supplies because Rails and OOD's gems are not installed (stand-ins for
# the FRAMEWORK, not for OOD's logic, each named here):
#   Rails           logger, root, env, cache, application.config.after_initialize/to_prepare
#                   (recorded and fired in Rails' order: to_prepare first), routes.url_helpers
#   OodAppkit       dataroot, clusters (OodCore::Clusters.load_file of --clusters-dir),
#                   markdown (Redcarpet configured as the ood_appkit gem configures it)
#   Fog::OpenStack  an empty module (ood_core >= 0.26 requires it for an adapter not used here)
#   I18n            the dashboard's own config/locales/*.yml
#   render(partial:) inside _custom.html.erb: returns the error text (OOD renders _error)
#   the request    OOD's real controllers are loaded (Debian's ActionPack 6.1; OOD 4.2 uses
#                  Rails 7.2), so an initializer's to_prepare hook registers its before_action
#                  on them as in production. Before each command, the before_action blocks an
#                  initializer added (OOD's own callbacks are method names that need a real
#                  request) are run on an instance of the controller that serves that page:
#                  SessionsController for `sessions`, SessionContextsController otherwise.
#                  The page's own work is then OOD's code as listed above.
#   press          Rails' middleware for a session (ActionDispatch::Cookies, Session::CacheStore
#                  as OOD's config/initializers/session_store.rb chooses, a MemoryStore here),
#                  Rack::MethodOverride, a RouteSet drawn by OOD's own config/routes.rb, and the
#                  two forgery settings OOD gets from load_defaults (per-form tokens, origin
#                  check). Two helper endpoints under /__runner/ (not OOD's) render the card's
#                  button and read the flash inside the same browser session.
#   a later request The kit runs its own squeue (when the discovery spool is stale) in a
#                  background thread whose result the NEXT request uses. One run of this
#                  file is one request of a long-lived dashboard, so after the request
#                  hooks it waits (up to 60 s) for that thread and runs the hooks again,
#                  as the user's next request would; OOD_MT_RUNNER_SETTLE=0 skips that
#                  (a test of the first request alone). The boot report gives the time of
#                  each hook run ("request_seconds") and of the page's work ("page_seconds").

require "json"
require "optparse"
require "pathname"
require "logger"
require "securerandom"
require "ostruct"
require "cgi"

module OodDashboardRunner
  module_function

  def options(argv)
    opts = {
      source: ENV.fetch("OOD_MT_OOD_SOURCE", File.expand_path("../../../shared/ood", __dir__)),
      version: ENV.fetch("OOD_MT_OOD_VERSION", "4.2.3"),
      initializers: []
    }
    parser = OptionParser.new do |o|
      o.banner = "usage: ood_dashboard.rb [options] form APP | launch APP PARAMS.json | sessions"
      o.on("--apps-dir DIR", "system apps dir (SysRouter.base_path)") { |v| opts[:apps_dir] = v }
      o.on("--clusters-dir DIR", "clusters.d") { |v| opts[:clusters_dir] = v }
      o.on("--dataroot DIR", "OOD_DATAROOT (default: OOD's own default under ~/ondemand)") { |v| opts[:dataroot] = v }
      o.on("--initializer FILE", "a site initializer to load first (repeatable)") { |v| opts[:initializers] << v }
      o.on("--env-file FILE", "the dashboard's env file (dotenv), e.g. MULTITENANT_ENABLE=true") { |v| opts[:env_file] = v }
      o.on("--log FILE", "Rails.logger output (default stderr)") { |v| opts[:log] = v }
    end
    rest = parser.parse(argv)
    abort(parser.banner) if rest.empty?
    [opts, rest]
  end

  OOD_CORE_FOR = { "4.2.3" => "ood_core-0.31.1", "3.1.14" => "ood_core-0.25.0" }.freeze

  def boot(opts)
    source = Pathname(opts[:source])
    core = OOD_CORE_FOR.fetch(opts[:version]) { abort("OOD_MT_OOD_VERSION must be one of #{OOD_CORE_FOR.keys.join(', ')}") }
    dashboard = source.join("ondemand-#{opts[:version]}", "apps", "dashboard")
    abort("OOD sources not found at #{dashboard} (set OOD_MT_OOD_SOURCE)") unless dashboard.directory?

    stubs = Pathname(__dir__).join("load_path_stubs")
    $LOAD_PATH.unshift(source.join(core, "lib").to_s, source.join("ood_support-0.0.5", "lib").to_s, stubs.to_s)
    ENV["OOD_DATAROOT"] = opts[:dataroot] if opts[:dataroot]
    ENV["RAILS_ENV"] ||= "production"
    # What the per-user nginx (PUN) sets for the dashboard app (job names, data root).
    ENV["RAILS_RELATIVE_URL_ROOT"] ||= "/pun/sys/dashboard"
    ENV["APP_TOKEN"] ||= "sys/dashboard"
    # The dashboard reads its env file with dotenv; in production it is /etc/ood/config/apps/dashboard/env.
    require "dotenv"
    Dotenv.load(opts[:env_file]) if opts[:env_file]

    require "active_support"
    require "active_support/all"
    require "active_model"
    require "zeitwerk"
    require "redcarpet"
    require "climate_control"
    require "action_controller"
    require "ood_core"
    require "ood_support"

    define_rails(dashboard, opts)
    require dashboard.join("lib", "current_user.rb").to_s
    require dashboard.join("config", "configuration_singleton.rb").to_s
    Object.const_set(:Configuration, ConfigurationSingleton.new)
    define_ood_appkit(opts)
    require dashboard.join("config", "initializers", "open3_extensions.rb").to_s

    loader = Zeitwerk::Loader.new
    %w[app/apps app/models app/models/concerns app/helpers app/lib app/controllers app/controllers/concerns].each do |dir|
      path = dashboard.join(dir)
      next unless path.directory?

      loader.push_dir(path.to_s)
      $LOAD_PATH << path.to_s # Rails puts autoload paths on the load path too (`require "smart_attributes"`)
    end
    $LOAD_PATH << dashboard.join("lib").to_s
    loader.setup
    I18n.load_path += Dir[dashboard.join("config", "locales", "*.yml").to_s]
    I18n.enforce_available_locales = false

    apps_dir = Pathname(opts[:apps_dir] || "/var/www/ood/apps/sys")
    SysRouter.define_singleton_method(:base_path) { apps_dir }

    # Site initializers first, then Rails fires to_prepare, then after_initialize.
    opts[:initializers].each { |file| load file }
    Rails.application.config.fire!
    dashboard
  end

  def define_rails(dashboard, opts)
    logger = Logger.new(opts[:log] || $stderr)
    logger.formatter = proc { |sev, _t, _p, msg| "#{sev}: #{msg}\n" }
    config = Class.new do
      def initialize = (@prepare = []) && (@after = [])
      def to_prepare(&block) = @prepare << block
      def after_initialize(&block) = @after << block
      def fire! = (@prepare + @after).each(&:call)
      def prepare_count = @prepare.size
      def after_count = @after.size
    end.new
    application = Struct.new(:config, :routes).new(config, Struct.new(:url_helpers).new(Module.new)) # `press` draws real routes
    rails = Module.new
    rails.define_singleton_method(:logger) { logger }
    rails.define_singleton_method(:root) { dashboard }
    rails.define_singleton_method(:env) { ActiveSupport::StringInquirer.new(ENV.fetch("RAILS_ENV")) }
    cache = ActiveSupport::Cache::MemoryStore.new
    rails.define_singleton_method(:cache) { cache }
    rails.define_singleton_method(:application) { application }
    Object.const_set(:Rails, rails)
  end

  def define_ood_appkit(opts)
    clusters = OodCore::Clusters.load_file(opts[:clusters_dir] || "/etc/ood/config/clusters.d")
    markdown = Redcarpet::Markdown.new(Redcarpet::Render::HTML, autolink: true, tables: true, strikethrough: true,
                                                                 fenced_code_blocks: true, no_intra_emphasis: true)
    appkit = Module.new
    appkit.define_singleton_method(:dataroot) { Configuration.dataroot }
    appkit.define_singleton_method(:clusters) { clusters }
    appkit.define_singleton_method(:markdown) { markdown }
    Object.const_set(:OodAppkit, appkit)
  end

  def app_for(name)
    BatchConnect::App.from_token("sys/#{name}")
  end

  def form(name)
    app = app_for(name)
    ctx = app.valid? ? app.build_session_context : nil
    {
      "valid" => app.valid?,
      "reason" => app.valid? ? nil : app.validation_reason,
      "title" => app.title,
      "attributes" => (ctx ? ctx.map { |a| attribute_json(a) } : [])
    }
  end

  def attribute_json(attr)
    { "id" => attr.id.to_s, "widget" => attr.widget.to_s, "label" => attr.label.to_s,
      "help" => attr.help.to_s, "value" => attr.value, "options" => Array(attr.select_choices).map { |o| o.is_a?(Array) ? o.first(2) : o } }
  rescue StandardError => e
    { "id" => attr.id.to_s, "error" => "#{e.class}: #{e.message}" }
  end

  # The controller's part of a launch: the app's context with the permitted form params.
  def context_for(app, params_file)
    ctx = app.build_session_context
    params = JSON.parse(File.read(params_file))
    permitted = params.slice(*ctx.attributes.keys.map(&:to_s))
    ctx.attributes = permitted
    [ctx, params.keys - permitted.keys, app.clusters.empty? ? nil : app.clusters.first.job_config[:adapter]]
  end

  # Yields the app, its context, the ignored params and the render format; an invalid app
  # (OOD would not show its form) is a result of its own.
  def with_context(name, params_file)
    app = app_for(name)
    return { "ok" => false, "errors" => ["app invalid: #{app.validation_reason}"] } unless app.valid?

    yield(app, *context_for(app, params_file))
  end

  def launch(name, params_file)
    with_context(name, params_file) do |app, ctx, ignored, format|
      session = BatchConnect::Session.new
      ok = session.save(app: app, context: ctx, format: format)
      { "ok" => ok, "errors" => session.errors.full_messages, "ignored_params" => ignored, "session_id" => session.id,
        "job_id" => session.job_id, "staged_root" => (ok ? session.staged_root.to_s : nil) }
    end
  end

  # Session#save's own steps without its last one (adapter.submit).
  def stage(name, params_file)
    with_context(name, params_file) { |app, ctx, ignored, format| stage_session(app, ctx, ignored, format) }
  end

  def stage_session(app, ctx, ignored, format)
    session = BatchConnect::Session.new
    session.id = SecureRandom.uuid
    session.token = app.token
    session.title = app.title
    session.created_at = Time.now.to_i
    session.cluster_id = ctx.try(:cluster).to_s
    opts = app.submit_opts(ctx, fmt: format, staged_root: session.staged_root).to_h.deep_symbolize_keys
    ok = session.stage(app.root.join("template"), context: ctx)
    result = { "ok" => ok, "errors" => session.errors.full_messages, "ignored_params" => ignored,
               "session_id" => session.id, "staged_root" => session.staged_root.to_s }
    return result unless ok

    content = session.script_content(opts.fetch(:batch_connect, {}))
    session.job_script_content_file.write(content)
    # ood_core's own helper functions (find_port, wait_until_port_used, ...), alone, for
    # tests that source before.sh the way the job script does.
    helpers = session.staged_root.join("ood_core_helpers.sh")
    template = session.script_template(opts.fetch(:batch_connect, {}).merge(work_dir: session.staged_root))
    helpers.write(template.send(:bash_helpers))
    result.merge("job_script" => session.job_script_content_file.to_s, "helpers" => helpers.to_s,
                 "native" => Array(opts.dig(:script, :native)).map(&:to_s))
  end

  # The locals and the one helper _custom.html.erb uses; render(partial:) stands in for
  # ActionView rendering _error.html.erb.
  CardView = Struct.new(:view, :connect) do
    def render(partial:, locals:)
      "[OOD renders #{partial}: #{locals[:error].class}: #{locals[:error].message}]"
    end

    def get_binding = binding
  end

  # The card body exactly as connections/_custom.html.erb renders it.
  def card_body(dashboard, session)
    ERB.new(custom_partial(dashboard), trim_mode: "-")
       .result(CardView.new(session.app.session_view, session.connect).get_binding)
  end

  def custom_partial(dashboard)
    dashboard.join("app", "views", "batch_connect", "sessions", "connections", "_custom.html.erb").read
  end

  # A card body for a given connection (JSON object), the way the sessions page renders
  # a running session of APP: APP's view through _custom.html.erb.
  def view(dashboard, name, connection_file)
    conn = JSON.parse(File.read(connection_file))
    { "body" => ERB.new(custom_partial(dashboard), trim_mode: "-")
                   .result(CardView.new(app_for(name).session_view, OpenStruct.new(conn)).get_binding) }
  end

  def sessions(dashboard)
    list = BatchConnect::Session.all
    list.each(&:update_cache_completed!)
    list.map do |s|
      status = s.status.to_sym.to_s
      entry = { "id" => s.id, "job_id" => s.job_id, "token" => s.token, "title" => s.title, "status" => status,
                "cluster_id" => s.cluster_id, "completed" => s.completed? }
      if s.running?
        entry["connection_path"] = s.connect_file.to_s
        entry["connect"] = s.connect.to_h.transform_keys(&:to_s)
        entry["body"] = begin
          card_body(dashboard, s)
        rescue StandardError, ScriptError => e
          "[render error: #{e.class}: #{e.message}]"
        end
      end
      entry
    end
  end

  # OOD's routes, drawn by its own config/routes.rb into a real RouteSet; the url helpers
  # on every controller, as the Rails railtie does.
  def draw_routes(dashboard)
    routes = ActionDispatch::Routing::RouteSet.new
    Rails.application.routes = routes
    load dashboard.join("config", "routes.rb").to_s
    ActionController::Base.include(routes.url_helpers)
    ActionController::Base.per_form_csrf_tokens = true
    ActionController::Base.forgery_protection_origin_check = true
    routes
  end

  # The browser side of `press`, inside one browser session: OOD's button for the card
  # (its form's action and hidden fields), this session's own authenticity token (for an id
  # with no card, so no button), or the flash the next page would show.
  def runner_endpoint(env, button_for)
    request = ActionDispatch::Request.new(env)
    if request.path == "/__runner/flash"
      return [200, { "Content-Type" => "application/json" }, [JSON.generate(request.flash.to_hash)]]
    end

    controller = BatchConnect::SessionsController.new
    controller.set_request!(request)
    controller.set_response!(BatchConnect::SessionsController.make_response!(request))
    html = if request.path == "/__runner/token"
             %(<input type="hidden" name="authenticity_token" value="#{controller.send(:form_authenticity_token)}" />)
           else
             view = controller.view_context
             view.extend(ApplicationHelper, BatchConnect::SessionsHelper)
             session = BatchConnect::Session.find(button_for[:id])
             button_for[:action] == "cancel" ? view.cancel(session) : view.delete(session)
           end
    [200, { "Content-Type" => "text/html" }, [html.to_s]]
  end

  def press(dashboard, action, id, token)
    require "rack/test"
    require "action_dispatch/middleware/flash" # Rails loads it in its railtie
    routes = draw_routes(dashboard)
    button_for = { id: id, action: action }
    app = lambda do |env|
      env["PATH_INFO"].start_with?("/__runner/") ? runner_endpoint(env, button_for) : routes.call(env)
    end
    stack = Rack::Builder.new do
      use ActionDispatch::Cookies
      use ActionDispatch::Session::CacheStore, cache: ActiveSupport::Cache::MemoryStore.new, key: "_dashboard_session"
      use Rack::MethodOverride
      run app
    end.to_app
    browser = Rack::Test::Session.new(Rack::MockSession.new(stack, "ondemand.example"))
    source = case token
             when "button" then browser
             when "session", "none" then browser
             when "forged" then Rack::Test::Session.new(Rack::MockSession.new(stack, "ondemand.example"))
             else abort("press: TOKEN must be button, session, none or forged")
             end
    source.get(token == "button" ? "/__runner/button" : "/__runner/token")
    form = source.last_response.body
    fields = form.scan(/<input type="hidden" name="([^"]+)" value="([^"]*)"/).to_h { |k, v| [k, CGI.unescapeHTML(v)] }
    fields.delete("authenticity_token") if token == "none"
    path = action == "cancel" ? "/batch_connect/sessions/#{id}/cancel" : "/batch_connect/sessions/#{id}"
    fields["_method"] = "delete" if action == "destroy"
    result = { "button" => form, "path" => path }
    begin
      browser.post(path, fields, { "HTTP_REFERER" => "http://ondemand.example/batch_connect/sessions" })
      response = browser.last_response
      result.merge!("status" => response.status, "location" => response.headers["Location"])
    rescue StandardError => e
      result.merge!("status" => nil, "exception" => e.class.name, "message" => e.message.to_s.lines.first.to_s.strip)
    end
    browser.get("/__runner/flash")
    result.merge("flash" => JSON.parse(browser.last_response.body))
  end

  def boot_report
    config = Rails.application.config
    controllers = %w[BatchConnect::SessionsController BatchConnect::SessionContextsController]
    {
      "after_initialize" => config.after_count, "to_prepare" => config.prepare_count,
      "before_action_blocks" => controllers.to_h do |name|
        [name, Object.const_get(name)._process_action_callbacks.count { |c| callback_proc(c).is_a?(Proc) }]
      end,
      "multitenant_specs" => (defined?(::MultiTenant) && ::MultiTenant.respond_to?(:specs) ? ::MultiTenant.specs.keys : nil),
      "request_seconds" => @request_seconds, "page_seconds" => @page_seconds
    }
  end

  # The block a before_action was given: ActiveSupport 6.1 (Debian 12) keeps it in
  # Callback#raw_filter (#filter is a generated key there); 7.1 and later (Debian 13's 7.2)
  # dropped raw_filter and keep it in #filter.
  def callback_proc(callback)
    callback.respond_to?(:raw_filter) ? callback.raw_filter : callback.filter
  end

  PAGE_CONTROLLER = { "sessions" => "BatchConnect::SessionsController" }.freeze

  def monotonic = Process.clock_gettime(Process::CLOCK_MONOTONIC)

  # The request hooks, timed; then, unless OOD_MT_RUNNER_SETTLE=0, "a later request" (top of this file).
  def run_requests(command)
    @request_seconds = [run_request_hooks(command)]
    return if ENV["OOD_MT_RUNNER_SETTLE"] == "0"

    refresher = defined?(::MultiTenant) && ::MultiTenant.respond_to?(:refresher) ? ::MultiTenant.refresher : nil
    return unless refresher.respond_to?(:fallback_in_flight?) && refresher.fallback_in_flight?

    refresher.settle(60)
    @request_seconds << run_request_hooks(command)
  end

  # The request stand-in described at the top of this file; returns the hooks' seconds.
  def run_request_hooks(command)
    controller = Object.const_get(PAGE_CONTROLLER.fetch(command, "BatchConnect::SessionContextsController"))
    instance = controller.new
    started = monotonic # after the controller class is loaded (Rails loads it once, at boot)
    controller._process_action_callbacks.each do |callback|
      filter = callback_proc(callback)
      next unless callback.kind == :before && filter.is_a?(Proc)

      filter.arity == 1 ? filter.call(instance) : instance.instance_exec(&filter)
    end
    monotonic - started
  end

  def main(argv)
    opts, (command, *args) = options(argv)
    dashboard = boot(opts)
    run_requests(command)
    started = monotonic
    result = case command
             when "form" then form(args.fetch(0))
             when "launch" then launch(args.fetch(0), args.fetch(1))
             when "stage" then stage(args.fetch(0), args.fetch(1))
             when "view" then view(dashboard, args.fetch(0), args.fetch(1))
             when "sessions" then sessions(dashboard)
             when "press" then press(dashboard, args.fetch(0), args.fetch(1), args.fetch(2))
             else abort("unknown command #{command.inspect}")
             end
    @page_seconds = monotonic - started
    puts JSON.generate({ "result" => result, "boot" => boot_report })
  end
end

OodDashboardRunner.main(ARGV) if $PROGRAM_NAME == __FILE__

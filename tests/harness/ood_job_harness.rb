#!/usr/bin/env ruby
# frozen_string_literal: true

# HARNESS (test code, not part of the kit): does for one batch_connect app what the Open
# OnDemand dashboard and its `basic` batch_connect template do, so the kit's rendered apps
# can be run as real Slurm jobs without OOD installed (OOD cannot be installed here).
#
# What it does (facts: /work/shared/docs/ood-facts.md):
#   1. stages APP/template/ into SESSION_ROOT/<session id>/, rendering every *.erb with
#      ERB trim_mode '-' in a binding where the form values are bare names (the suffix
#      .erb is dropped, as OOD does);
#   2. renders APP/submit.yml.erb (form values and staged_root are bare names) and reports
#      its script.native arguments and batch_connect.conn_params;
#   3. writes SESSION/job_script.sh, the job the `basic` template would submit: it defines
#      the template's helpers (port_used, find_port, wait_until_port, random_number,
#      create_passwd), exports host, sources before.sh, writes connection.yml from host,
#      port, password and conn_params (every value a double-quoted YAML string, mode 0600),
#      starts script.sh in the background, sources after.sh and waits; SIGTERM is passed on
#      to script.sh and waited for (scancel / --signal).
#
# Harness stand-ins for OOD objects the templates may reference, named as such:
#   CurrentUser -> OodHarness::CurrentUserHarness (the real Unix user running the harness)
#   MultiTenant -> OodHarness::MultiTenantHarness (shares given with --shares FILE), only
#                  when --shares is given, so "no initializer" can be tested too.
#
# Usage:
#   ruby tests/harness/ood_job_harness.rb --app DIR --context FORM.json --session-root DIR
#        [--session-id ID] [--shares SHARES.json]
#   ruby tests/harness/ood_job_harness.rb --render-form DIR [--shares SHARES.json]
#   ruby tests/harness/ood_job_harness.rb --render-view FILE.html.erb --connection conn.json
# Stage mode prints one JSON object: {"session_dir", "job_script", "native", "conn_params"}.
# Then submit with:  sbatch <native...> --chdir SESSION SESSION/job_script.sh
# FORM.json: {"bc_num_hours": "1", "mt_cores": "1", ...} (values as the form submits them).
# SHARES.json: {"<jobid>": {"label": .., "app": .., "preset": .., "owner": .., "group": ..,
#               "mode": "form", "conn": {"k": "v"}}}.

require "erb"
require "etc"
require "fileutils"
require "json"
require "optparse"
require "pathname"
require "ostruct"
require "securerandom"
require "shellwords"
require "yaml"
require "base64"

module OodHarness
  # HARNESS stand-in for OOD's CurrentUser: the Unix user running this process.
  module CurrentUserHarness
    module_function

    def name = Etc.getpwuid(Process.uid).name
    def uid = Process.uid
    def gid = Process.gid
    def home = Etc.getpwuid(Process.uid).dir

    def group_names
      Process.groups.filter_map do |g|
        Etc.getgrgid(g).name
      rescue ArgumentError
        nil
      end.uniq
    end

    def filtered_group_names = group_names
  end

  # HARNESS stand-in for the kit initializer's MultiTenant API (form_options, share),
  # serving fixed shares from a JSON file.
  class MultiTenantHarness
    def initialize(shares)
      @shares = shares.transform_keys(&:to_s).transform_values do |s|
        s.transform_keys(&:to_sym).tap { |h| h[:conn] = (h[:conn] || {}).transform_keys(&:to_s) }
      end
    end

    def form_options(kind: nil)
      @shares.select { |_id, s| s[:mode].to_s == "form" && (kind.nil? || s[:app].to_s == kind.to_s) }
             .map { |id, s| [s[:label], id] }.sort
    end

    def share(jobid)
      @shares[jobid.to_s]
    end
  end

  def self.install_multitenant(shares_file)
    return if shares_file.nil?

    Object.const_set(:MultiTenant, MultiTenantHarness.new(JSON.parse(File.read(shares_file))))
  end

  # Form values as bare names, like OOD's session context; an unknown name is an error (as
  # in OOD, where a template naming a missing attribute fails to render).
  class FormContext
    def initialize(values)
      @values = values.transform_keys(&:to_s)
    end

    def method_missing(name, *args)
      key = name.to_s
      return @values[key] if @values.key?(key) && args.empty?

      super
    end

    def respond_to_missing?(name, include_private = false)
      @values.key?(name.to_s) || super
    end

    def get_binding = binding
  end

  def self.render_erb(text, context)
    ERB.new(text, trim_mode: "-").result(context.get_binding)
  end

  def self.stage(app_dir, form, session_dir)
    FileUtils.mkdir_p(session_dir, mode: 0o700)
    ctx = FormContext.new(form)
    src_root = File.join(app_dir, "template")
    Dir.glob("**/*", File::FNM_DOTMATCH, base: src_root).sort.each do |rel|
      next if rel.end_with?("/.", "/..") || rel == "."

      src = File.join(src_root, rel)
      dest = File.join(session_dir, rel.delete_suffix(".erb"))
      if File.directory?(src)
        FileUtils.mkdir_p(dest)
        next
      end
      FileUtils.mkdir_p(File.dirname(dest))
      text = File.read(src)
      text = render_erb(text, ctx) if rel.end_with?(".erb")
      File.write(dest, text)
      File.chmod(File.stat(src).mode & 0o777 | (rel.end_with?("script.sh.erb") ? 0o700 : 0), dest)
    end
  end

  def self.submit_options(app_dir, form, session_dir)
    path = File.join(app_dir, "submit.yml.erb")
    return { "native" => [], "conn_params" => [] } unless File.exist?(path)

    ctx = FormContext.new(form.merge("staged_root" => Pathname(session_dir)))
    doc = YAML.safe_load(render_erb(File.read(path), ctx)) || {}
    { "native" => Array(doc.dig("script", "native")).map(&:to_s),
      "conn_params" => Array(doc.dig("batch_connect", "conn_params")).map(&:to_s) }
  end

  # The job the `basic` template would run, as this harness's own bash (no OOD code).
  def self.job_script(conn_params, session_dir)
    keys = (%w[host port password] + conn_params).uniq
    yaml_lines = keys.map { |k| "  mt_harness_yaml_line #{k} \"${#{k}:-}\"" }.join("\n")
    <<~'BASH'.sub("@@YAML_LINES@@", yaml_lines).sub("@@SESSION_DIR@@", session_dir.to_s.shellescape)
      #!/usr/bin/env bash
      # HARNESS job script (tests/harness/ood_job_harness.rb): what OOD's `basic` template does.
      # Slurm runs a copy of this script from its spool dir: go to the session dir by name.
      cd @@SESSION_DIR@@ || exit 1
      host="$(hostname)"
      export host
      port_used() {
        local target="$1" h p
        if [[ "$target" == *:* ]]; then h="${target%:*}"; p="${target##*:}"; else h="${host}"; p="$target"; fi
        (exec 3<>"/dev/tcp/${h}/${p}") 2>/dev/null
      }
      random_number() { shuf -i "${1}-${2}" -n 1; }
      find_port() {
        local h="${1:-localhost}" p
        p="$(random_number "${2:-2000}" "${3:-65535}")"
        while port_used "${h}:${p}"; do p="$(random_number "${2:-2000}" "${3:-65535}")"; done
        echo "$p"
      }
      wait_until_port() {
        local p="$1" t="${2:-60}" i
        for ((i = 0; i < t * 2; i++)); do
          port_used "$p" && return 0
          sleep 0.5
        done
        echo "Timed out waiting for port $p" >&2
        return 1
      }
      create_passwd() { tr -cd 'a-zA-Z0-9' </dev/urandom 2>/dev/null | head -c "${1:-8}"; }
      mt_harness_yaml_line() {
        local v="$2"
        v="${v//\\/\\\\}"
        v="${v//\"/\\\"}"
        v="${v//$'\n'/\\n}"
        printf '%s: "%s"\n' "$1" "$v"
      }
      echo "harness: sourcing before.sh"
      # shellcheck source=/dev/null
      source ./before.sh
      (
        umask 077
        {
      @@YAML_LINES@@
        } >connection.yml.tmp
        mv -f connection.yml.tmp connection.yml
      )
      echo "harness: starting script.sh"
      ./script.sh &
      SCRIPT_PID=$!
      trap 'echo "harness: SIGTERM, passing it to script.sh"; kill -TERM "$SCRIPT_PID" 2>/dev/null; wait "$SCRIPT_PID"; exit 0' TERM
      if [[ -f ./after.sh ]]; then
        echo "harness: sourcing after.sh"
        # shellcheck source=/dev/null
        source ./after.sh
      fi
      wait "$SCRIPT_PID"
      echo "harness: script.sh exited with $?"
    BASH
  end

  def self.render_view(view_file, connection)
    conn = OpenStruct.new(connection)
    ERB.new(File.read(view_file), trim_mode: "-").result(conn.instance_eval { binding })
  end

  def self.main(argv)
    opts = {}
    OptionParser.new do |o|
      o.on("--app DIR") { |v| opts[:app] = v }
      o.on("--context FILE") { |v| opts[:context] = v }
      o.on("--session-root DIR") { |v| opts[:root] = v }
      o.on("--session-id ID") { |v| opts[:id] = v }
      o.on("--shares FILE") { |v| opts[:shares] = v }
      o.on("--render-form DIR") { |v| opts[:form] = v }
      o.on("--render-view FILE") { |v| opts[:view] = v }
      o.on("--connection FILE") { |v| opts[:connection] = v }
    end.parse!(argv)
    Object.const_set(:CurrentUser, CurrentUserHarness) unless Object.const_defined?(:CurrentUser)
    install_multitenant(opts[:shares])
    if opts[:form]
      puts render_erb(File.read(File.join(opts[:form], "form.yml.erb")), FormContext.new({}))
    elsif opts[:view]
      puts render_view(opts[:view], JSON.parse(File.read(opts[:connection])))
    else
      %i[app context root].each { |k| abort("ood_job_harness: --#{k} is required (see the usage at the top)") unless opts[k] }
      session_dir = File.join(File.expand_path(opts[:root]), opts[:id] || SecureRandom.uuid)
      form = JSON.parse(File.read(opts[:context]))
      stage(opts[:app], form, session_dir)
      sub = submit_options(opts[:app], form, session_dir)
      job = File.join(session_dir, "job_script.sh")
      File.write(job, job_script(sub["conn_params"], session_dir))
      File.chmod(0o700, job)
      puts JSON.generate({ "session_dir" => session_dir, "job_script" => job }.merge(sub))
    end
  end
end

OodHarness.main(ARGV) if $PROGRAM_NAME == __FILE__

# frozen_string_literal: true

# Renders one service app's ERB files the way OOD's dashboard does, with stand-ins for the
# dashboard (ood_mt.app_checks runs it at build time; plain Ruby stdlib, no Rails, no OOD):
#
#   form.yml.erb      top-level binding: CurrentUser (a user of the site's groups), OodAppkit
#   submit.yml.erb    an OpenStruct of the form's default values (bare names) + staged_root
#   template/*.erb    OOD's TemplateBinding(session, context): form values are context.<id>,
#                     a bare name fails as it fails in OOD
#   view.html.erb     an OpenStruct of sample connection values (host, port, ...)
#
# Usage: ruby erb_check.rb APP_DIR OUT_DIR GROUP...
# Writes the rendered template/ files (without .erb, the other files copied) into OUT_DIR and
# prints JSON {"problems": [{"file", "message"}], "native": [...], "cluster": "..."} on stdout.

require "base64"
require "erb"
require "fileutils"
require "json"
require "ostruct"
require "pathname"
require "yaml"

# Rails' blank?/present?, which ERB in OOD apps may use.
class Object
  def blank?
    respond_to?(:empty?) ? empty? : !self
  end

  def present?
    !blank?
  end
end

# Whatever the dashboard offers that this check does not model: every call answers "".
class Anything < BasicObject
  def method_missing(*)
    ""
  end

  def respond_to_missing?(*)
    true
  end
end

APP, OUT, *GROUPS = ARGV
CurrentUser = OpenStruct.new(name: "mtpub", group_names: GROUPS, groups: GROUPS.map { |g| OpenStruct.new(name: g) },
                             home: "/home/mtpub", uid: 10_000, gid: 10_000)
OodAppkit = Anything.new

PROBLEMS = []

def problem(file, exc)
  line = exc.backtrace.to_a.map { |l| l[/\A#{Regexp.escape(file)}:(\d+)/, 1] }.compact.first
  PROBLEMS << { "file" => file, "message" => "#{line ? "line #{line}: " : ''}#{exc.class}: #{exc.message}" }
  nil
end

def render(file, bind)
  erb = ERB.new(File.read(File.join(APP, file)), trim_mode: "-")
  erb.filename = file
  erb.result(bind)
rescue StandardError, ScriptError => e
  problem(file, e)
end

def yaml(file, text)
  data = YAML.safe_load(text, aliases: true)
  return data if data.is_a?(Hash)

  PROBLEMS << { "file" => file, "message" => "does not render to a YAML mapping (got #{data.class})", "yaml" => true }
  nil
rescue Psych::Exception => e
  PROBLEMS << { "file" => file, "message" => "renders to invalid YAML: #{e.message}", "yaml" => true }
  nil
end

# The value a form field starts with, as OOD passes it on (a string).
def default_value(attr)
  return "" unless attr.is_a?(Hash)
  return attr["value"].to_s if attr.key?("value")

  first = Array(attr["options"]).first
  (first.is_a?(Array) ? first[1] : first).to_s
end

# Form values as OOD's TemplateBinding offers them: context.<id>; anything else raises.
class Context
  def initialize(values)
    values.each { |id, value| define_singleton_method(id) { value } }
  end
end

# OOD's BatchConnect::TemplateBinding: `session` and `context`, nothing else.
class TemplateBinding
  attr_reader :session, :context

  def initialize(session, context)
    @session = session
    @context = context
  end

  def get_binding # rubocop:disable Naming/AccessorMethodName
    binding
  end
end

form_file = File.exist?(File.join(APP, "form.yml.erb")) ? "form.yml.erb" : "form.yml"
form_text = form_file == "form.yml" ? File.read(File.join(APP, form_file)) : render(form_file, TOPLEVEL_BINDING.dup)
form = form_text && yaml(form_file, form_text)
values = {}
if form
  attrs = form["attributes"].is_a?(Hash) ? form["attributes"] : {}
  Array(form["form"]).each { |id| values[id.to_s] = default_value(attrs[id.to_s]) }
  values["bc_num_hours"] = "1" if values["bc_num_hours"] == ""
end

result = { "native" => nil, "cluster" => form.is_a?(Hash) ? form["cluster"].to_s : "" }
# Without the form, the values the other files are rendered with are unknown: its problem is the one to fix.
unless form
  puts JSON.generate(result.merge("problems" => PROBLEMS))
  exit
end
submit_text = render("submit.yml.erb", OpenStruct.new(values.merge("staged_root" => Pathname.new(OUT)))
                                                 .instance_eval { binding })
submit = submit_text && yaml("submit.yml.erb", submit_text)
if submit
  native = submit.dig("script", "native")
  result["native"] = native.is_a?(Array) ? native.map(&:to_s) : []
end

session = OpenStruct.new(id: "00000000-0000-0000-0000-000000000000", staged_root: Pathname.new(OUT),
                         cluster_id: result["cluster"], job_id: "1")
bind = TemplateBinding.new(session, Context.new(values)).get_binding
FileUtils.mkdir_p(OUT)
Dir.glob("template/**/*", base: APP).sort.each do |rel|
  next if File.directory?(File.join(APP, rel))

  dest = File.join(OUT, rel.delete_prefix("template/"))
  FileUtils.mkdir_p(File.dirname(dest))
  if rel.end_with?(".erb")
    text = render(rel, bind)
    File.write(dest.delete_suffix(".erb"), text) if text
  else
    FileUtils.cp(File.join(APP, rel), dest)
  end
end

if File.exist?(File.join(APP, "view.html.erb"))
  connection = { "host" => "node1", "port" => "8000", "password" => "", "mt_share_status" => "shared with group g" }
  render("view.html.erb", OpenStruct.new(connection).instance_eval { binding })
end

puts JSON.generate(result.merge("problems" => PROBLEMS))

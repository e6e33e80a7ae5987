# Runs ood_core's OWN Slurm adapter (sources from OOD_MT_OOD_SOURCE, never copied here) with
# bin_overrides squeue = ARGV[1] and prints, as JSON, what `info` and `status` say of each job id.
# usage: ruby ood_core_info.rb OOD_CORE_DIR SQUEUE JOBID...
require "json"
require "pathname"
core = Pathname(ARGV.shift)
squeue = ARGV.shift
# tests/ood/load_path_stubs: the empty Fog::OpenStack the dashboard runner also supplies.
$LOAD_PATH.unshift(core.join("lib").to_s, core.parent.join("ood_support-0.0.5", "lib").to_s,
                   File.expand_path("../ood/load_path_stubs", __dir__))
require "active_support"
require "active_support/all" # what the dashboard loads first (ood_core uses Array.wrap, symbolize_keys)
require "ood_core"

# OOD_CORE_CLUSTER: the cluster file's `job.cluster` (ood_core then adds `-M <cluster>`).
config = { adapter: "slurm", bin_overrides: { "squeue" => squeue } }
config[:cluster] = ENV["OOD_CORE_CLUSTER"] unless ENV["OOD_CORE_CLUSTER"].to_s.empty?
adapter = OodCore::Job::Factory.build(config)
out = ARGV.to_h do |id|
  info = adapter.info(id)
  [id, { "status" => info.status.to_sym.to_s, "owner" => info.job_owner, "name" => info.job_name,
         "nodes" => info.allocated_nodes.size, "dispatch" => info.dispatch_time&.to_i,
         "wallclock" => info.wallclock_time, "native_wckey" => (info.native || {})[:wckey],
         "status_call" => adapter.status(id).to_sym.to_s }]
end
puts JSON.generate(out)

# frozen_string_literal: true

# ood-multitenant: discovery. ONE squeue call per refresh, its fixed-width listing parsed
# byte for byte (the share contract's listing; docs/architecture.md "Discovery").
# Plain Ruby stdlib; the squeue runner is injected so the parser is unit-tested without Slurm.

require "open3"

module MultiTenant
  # One line of squeue output that looks like a share candidate.
  # start_time: epoch seconds of Slurm's StartTime (local time), nil when not started.
  Job = Struct.new(:jobid, :owner, :wckey, :name, :comment, :start_time, keyword_init: true)

  # Runs a command with a hard timeout: the child gets its own process group, so
  # a hanging squeue (and anything it started) is killed, and no Ruby thread is
  # ever interrupted inside blocking IO (no Timeout.timeout).
  class CommandRunner
    Result = Struct.new(:status, :stdout, :stderr, :timed_out, keyword_init: true)

    def initialize(timeout_seconds:)
      @timeout_seconds = timeout_seconds
    end

    def run(argv)
      Open3.popen3(*argv, pgroup: true) do |stdin, stdout, stderr, waiter|
        stdin.close
        out_reader = Thread.new { stdout.binmode.read }
        err_reader = Thread.new { stderr.binmode.read }
        if waiter.join(@timeout_seconds).nil?
          kill_group(waiter.pid)
          waiter.join
          [out_reader, err_reader].each { |t| t.join(1) || t.kill }
          return Result.new(status: nil, stdout: "", stderr: "", timed_out: true)
        end
        Result.new(status: waiter.value, stdout: out_reader.value.to_s, stderr: err_reader.value.to_s,
                   timed_out: false)
      end
    end

    private

    def kill_group(pid)
      Process.kill("KILL", -pid)
    rescue Errno::ESRCH, Errno::EPERM
      begin
        Process.kill("KILL", pid)
      rescue Errno::ESRCH, Errno::EPERM
        nil
      end
    end
  end

  # ONE squeue call per refresh (docs/architecture.md "Discovery").
  class Discovery
    Failure = Struct.new(:message)

    def initialize(config:, runner: nil)
      @config = config
      @runner = runner || CommandRunner.new(timeout_seconds: config.timeout_seconds)
    end

    # squeue's -O format: every field fixed width, '|' after each (the share contract's listing).
    def self.format(listing)
      listing.fetch("fields").map { |name, width| "#{name}:#{width}|" }.join(",")
    end

    def argv
      [@config.squeue, "--noheader", "--states=RUNNING", "-O", self.class.format(@config.contract.listing)]
    end

    # Returns an Array of Job, or a Failure (never raises).
    def call
      result = @runner.run(argv)
      if result.timed_out
        return Failure.new("squeue timed out after #{format('%g', @config.timeout_seconds)} s")
      end
      unless result.status&.success?
        first = result.stderr.to_s.force_encoding(Encoding::BINARY).lines.first.to_s.strip
        return Failure.new("squeue failed (#{result.status&.exitstatus.inspect}): #{first.scrub}")
      end

      self.class.parse(result.stdout, @config.contract)
    rescue SystemCallError, IOError => e
      Failure.new("squeue could not run: #{e.message}")
    end

    # Parses squeue output into the Jobs whose name could be a share token, or a Failure.
    # Every record is exactly as long as its fixed-width fields with a '|' after each and a
    # newline at the end, so a job name or comment (which may hold '|' and newlines) can
    # neither create nor shift a record. Anything else, or a job id listed twice, means
    # the listing cannot be trusted: nothing from it is used.
    def self.parse(output, contract)
      listing = contract.listing
      fields = listing.fetch("fields")
      record_bytes = fields.sum { |_name, width| width + 1 } + 1
      data = output.to_s.b
      if (data.bytesize % record_bytes).nonzero?
        return Failure.new("squeue listing misaligned: #{data.bytesize} bytes is not a whole number of " \
                           "#{record_bytes}-byte records; nothing from it is used")
      end

      jobs = []
      seen = {}
      (data.bytesize / record_bytes).times do |index|
        record = data.byteslice(index * record_bytes, record_bytes)
        values = []
        pos = 0
        fields.each do |name, width|
          unless record.byteslice(pos + width, 1) == "|"
            return Failure.new("squeue listing misaligned: record #{index + 1} has no '|' after #{name}; " \
                               "nothing from it is used")
          end
          values << record.byteslice(pos, width).sub(/ +\z/, "")
          pos += width + 1
        end
        unless record.byteslice(pos, 1) == "\n"
          return Failure.new("squeue listing misaligned: record #{index + 1} does not end with a newline; " \
                             "nothing from it is used")
        end
        jobid, user, wckey, start, name, comment = values.map { |v| v.dup.force_encoding(Encoding::UTF_8) }
        unless contract.matches?(listing.fetch("jobid"), jobid) && contract.matches?(listing.fetch("user"), user) &&
               contract.matches?(listing.fetch("start_time"), start)
          return Failure.new("squeue listing misaligned: record #{index + 1} does not start with a job id and " \
                             "a user name; nothing from it is used")
        end
        return Failure.new("squeue listing lists job #{jobid} twice; nothing from it is used") if seen.key?(jobid)

        seen[jobid] = true
        comment = +"" if comment == "(null)" # squeue's text for "no comment"
        next unless name.b.start_with?("mt1:")

        jobs << Job.new(jobid: jobid, owner: user, wckey: wckey.scrub, name: name, comment: comment,
                        start_time: local_epoch(start))
      end
      jobs
    end

    # Slurm's StartTime (the squeue host's local time) as epoch seconds; nil if not started.
    def self.local_epoch(text)
      return nil unless text.match?(/\A\d/)

      Time.new(*text.scan(/\d+/).map(&:to_i)).to_i
    end
  end
end

# frozen_string_literal: true

# ood-multitenant: the discovery spool reader (docs/discovery.md). The root discovery
# service runs ONE squeue per interval for the whole site and writes, per audience, the
# records of the share contract's listing as squeue printed them; a dashboard reads only
# the files of its user's groups and its user's own file, parses each with
# Discovery.parse and verifies every share exactly as if squeue had printed it.
# Plain Ruby stdlib; every failure costs one file and is logged by the caller in one line.

require "json"

module MultiTenant
  # Reads <spool_dir>/heartbeat and the listing files one user may read.
  class Spool
    HEARTBEAT_FORMAT = 1
    # How many heartbeat intervals old the spool may be and still be fresh (exclusive).
    STALE_INTERVALS = 3
    # A POSIX group or user name as it may appear in a file name (no '/', no leading '.').
    NAME = /\A[A-Za-z0-9_][A-Za-z0-9_.-]*\z/.freeze

    # fresh: Boolean; age: seconds since the heartbeat was written (nil when unknown);
    # why: one phrase for the log when not fresh.
    Freshness = Struct.new(:fresh, :age, :why, keyword_init: true)

    # A listing file that could not be used: path and why (one log line each).
    Problem = Struct.new(:path, :why)

    # The freshness rule (docs/discovery.md "Freshness"; pinned by tests/vectors/spool_freshness.json).
    # TEXT: the heartbeat file's bytes, nil when it is missing; NOW: epoch seconds.
    def self.freshness(text, now)
      judge(parse_heartbeat(text), now)
    end

    # TEXT -> [written, interval] (numbers, interval > 0), or a String saying why not.
    def self.parse_heartbeat(text)
      return "no heartbeat file" if text.nil?

      beat = JSON.parse(text.to_s.dup.force_encoding(Encoding::UTF_8))
      return "heartbeat is not a JSON object" unless beat.is_a?(Hash)
      unless beat["format"].is_a?(Integer) && beat["format"] == HEARTBEAT_FORMAT
        return "heartbeat format #{beat['format'].inspect[0, 40]}, this reader reads format #{HEARTBEAT_FORMAT}"
      end

      written, interval = beat.values_at("written", "interval")
      return "heartbeat written/interval missing or not numbers" unless number?(written) && number?(interval)
      return "heartbeat interval #{interval} is not positive" unless interval.positive?

      [written, interval]
    rescue JSON::ParserError, EncodingError, TypeError
      "heartbeat is not valid JSON"
    end

    # PARSED (parse_heartbeat's answer) at NOW -> Freshness: fresh iff
    # -interval <= now - written < STALE_INTERVALS * interval.
    def self.judge(parsed, now)
      return Freshness.new(fresh: false, why: parsed) if parsed.is_a?(String)

      written, interval = parsed
      age = now - written
      return Freshness.new(fresh: true, age: age) if age < STALE_INTERVALS * interval && age >= -interval

      why = age.negative? ? "heartbeat written #{(-age).round} s in the future" : "heartbeat interval #{interval} s"
      Freshness.new(fresh: false, age: age, why: why)
    end

    def self.number?(value)
      (value.is_a?(Integer) || value.is_a?(Float)) && value.to_f.finite?
    end

    attr_reader :dir, :paths

    # DIR: spool_dir; USER: the dashboard's user; GROUPS: the audiences to read (the user's
    # tenant groups). READER: ->(path) { bytes } (File.binread; injectable for tests).
    def initialize(dir:, contract:, user:, groups:, reader: ->(path) { File.binread(path) })
      @dir = dir
      @contract = contract
      @reader = reader
      @heartbeat_path = File.join(dir, "heartbeat")
      names = groups.select { |g| NAME.match?(g.to_s) }.uniq.sort
      @paths = names.map { |g| File.join(dir, "group", "#{g}.listing") }
      @paths << File.join(dir, "user", "#{user}.listing") if NAME.match?(user.to_s)
      @paths.freeze
      @beat_stat = nil
      @beat = self.class.parse_heartbeat(nil)
    end

    # The heartbeat's Freshness at NOW. The file is read and parsed only when its stat
    # changed, so an unchanged heartbeat costs one stat.
    def freshness(now)
      stat = stat_of(@heartbeat_path)
      if stat != @beat_stat
        @beat = begin
          self.class.parse_heartbeat(stat && @reader.call(@heartbeat_path))
        rescue SystemCallError, IOError => e
          "heartbeat unreadable (#{e.message.sub(/ @ .*/, '')})"
        end
        @beat_stat = stat
      end
      self.class.judge(@beat, now)
    end

    # What says "nothing changed": [mtime ns, size, inode] of every listing path (nil when
    # missing), in a fixed order, so a new file changes it too.
    def signature
      @paths.map { |path| stat_of(path) }
    end

    # -> [jobs, problems]: the candidate Jobs of every listing file that exists and parses;
    # a file that cannot be read or is misaligned adds a Problem and no job. A missing
    # file means no shares for that audience. A job listed in two files is taken once.
    def read
      jobs = []
      problems = []
      seen = {}
      @paths.each do |path|
        data = begin
          @reader.call(path)
        rescue Errno::ENOENT
          next
        rescue SystemCallError, IOError => e
          problems << Problem.new(path, "unreadable (#{e.message.sub(/ @ .*/, '')})")
          next
        end
        parsed = Discovery.parse(data, @contract)
        if parsed.is_a?(Discovery::Failure)
          problems << Problem.new(path, parsed.message.sub(/\Asqueue listing/, "listing").sub(/; nothing from it is used\z/, ""))
          next
        end
        parsed.each do |job|
          next if seen.key?(job.jobid)

          seen[job.jobid] = true
          jobs << job
        end
      end
      [jobs, problems]
    end

    private

    def stat_of(path)
      st = File.stat(path)
      [st.mtime.tv_sec, st.mtime.tv_nsec, st.size, st.ino]
    rescue SystemCallError
      nil
    end
  end
end

# frozen_string_literal: true

# ood-multitenant: discovery, verification and session cards for the OOD dashboard.
#
# Plain Ruby stdlib (no Rails): every collaborator (squeue runner, clock, logger,
# identity, key store) is injected so the classes are unit-tested without OOD.
# The wire format itself lives in codec.rb (MultiTenant::Codec); this file decides
# WHICH shares a user may see and turns them into form choices and session cards.
# Contracts: docs/architecture.md ("Discovery", "Keys", "Card files").

require "digest"
require "etc"
require "fileutils"
require "json"
require "open3"
require "securerandom"

module MultiTenant
  # Site settings the initializer needs, built from the rendered site constants.
  class Config
    DEFAULTS = {
      "wckey" => "multitenant",
      "publisher_group" => nil,
      "tenant_groups" => [],
      "tenant_group_pattern" => "",
      "key_dir" => "/etc/ood-mt/keys",
      "cluster" => nil,
      "refresh_seconds" => 30,
      "squeue" => "squeue",
      "timeout_seconds" => 10,
      "delivery_apps" => %w[mt_delivery_default mt_delivery_debug mt_delivery_readfile],
      "contract" => nil
    }.freeze

    attr_reader :wckey, :publisher_group, :tenant_groups, :tenant_group_pattern, :key_dir,
                :cluster, :refresh_seconds, :squeue, :timeout_seconds, :delivery_apps, :contract

    def self.from_hash(hash)
      new(hash)
    end

    def initialize(hash)
      given = hash.each_with_object({}) { |(k, v), acc| acc[k.to_s] = v }
      unknown = given.keys - DEFAULTS.keys
      raise ArgumentError, "MultiTenant::Config: unknown setting(s) #{unknown.join(', ')}" unless unknown.empty?

      values = DEFAULTS.merge(given.compact)
      @wckey = values["wckey"].to_s.downcase
      @publisher_group = values["publisher_group"].to_s
      @tenant_groups = Array(values["tenant_groups"]).map(&:to_s).freeze
      pattern = values["tenant_group_pattern"].to_s
      @tenant_group_pattern = pattern.empty? ? nil : Regexp.new("\\A(?:#{pattern})\\z")
      @key_dir = values["key_dir"].to_s
      @cluster = values["cluster"].to_s
      @refresh_seconds = Integer(values["refresh_seconds"])
      @squeue = values["squeue"].to_s
      @timeout_seconds = Float(values["timeout_seconds"])
      @delivery_apps = Array(values["delivery_apps"]).map(&:to_s).freeze
      # src/ood_mt/share_contract.json, inlined by ood-mt build.
      raise ArgumentError, "MultiTenant::Config: contract (the share contract) is missing" unless values["contract"].is_a?(Hash)

      @contract = Contract.new(values["contract"])
      %w[wckey publisher_group cluster].each do |name|
        raise ArgumentError, "MultiTenant::Config: #{name} must not be empty" if send(name).empty?
      end
    end

    def tenant_group?(group)
      tenant_groups.include?(group) || (!tenant_group_pattern.nil? && tenant_group_pattern.match?(group))
    end
  end

  # The user the dashboard runs as. Group names include the primary group, which
  # /etc/group member lists omit (weakness 6 of the original framework).
  Identity = Struct.new(:name, :uid, :gid, :home, :group_names, keyword_init: true) do
    def self.current
      pw = Etc.getpwuid(Process.uid)
      gids = ([pw.gid] + Process.groups).uniq
      names = gids.filter_map do |gid|
        Etc.getgrgid(gid).name
      rescue ArgumentError
        nil
      end
      new(name: pw.name, uid: pw.uid, gid: pw.gid, home: pw.dir, group_names: names.freeze)
    end
  end

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

  # Reads group keys from the key dir and the per-user key from ~/.ood-mt.
  class KeyStore
    HEX_KEY = /\A[0-9a-f]{64}\n?\z/.freeze

    def initialize(key_dir:, home:)
      @key_dir = key_dir
      @home = home
    end

    # -> 32-byte key String; raises Rejected(no-key | key-version-retired).
    def group_key(group, version)
      dir = File.join(@key_dir, group)
      current = read_current(dir, group)
      accepted = [current]
      accepted << current - 1 if current > 1 && File.exist?(File.join(dir, "v#{current - 1}.key"))
      unless accepted.include?(version)
        raise Rejected.new("key-version-retired",
                           "key version #{version} of #{group}; accepted: #{accepted.join(', ')}")
      end

      read_key(File.join(dir, "v#{version}.key"), "#{group} v#{version}")
    end

    # The "my user only" key; created atomically (umask 077, rename) when missing.
    def user_key(create: true)
      path = File.join(@home, ".ood-mt", "user.key")
      create_user_key(path) if create && !File.exist?(path)
      check_private(File.dirname(path), :directory)
      check_private(path, :file)
      read_key(path, "user key")
    end

    private

    def read_current(dir, group)
      text = File.read(File.join(dir, "current"))
      Integer(text.strip, 10)
    rescue Errno::ENOENT, Errno::EACCES, Errno::ENOTDIR => e
      raise Rejected.new("no-key", "cannot read key of #{group}: #{e.class.name.split('::').last}")
    rescue ArgumentError
      raise Rejected.new("no-key", "#{File.join(dir, 'current')} is not a number")
    end

    def read_key(path, what)
      text = File.read(path)
      raise Rejected.new("no-key", "#{what}: #{path} is not 64 hex characters") unless HEX_KEY.match?(text)

      [text.strip].pack("H*")
    rescue Errno::ENOENT, Errno::EACCES, Errno::ENOTDIR => e
      raise Rejected.new("no-key", "#{what}: #{e.class.name.split('::').last}")
    end

    # A user key others can read or replace is no secret: refuse it (same rule as ood_mt.keys).
    def check_private(path, kind)
      st = File.lstat(path)
      ok_kind = kind == :directory ? st.directory? : st.file?
      raise Rejected.new("no-key", "#{path} is not a #{kind}") unless ok_kind
      raise Rejected.new("no-key", "#{path} is owned by uid #{st.uid}, not you") unless st.uid == Process.euid
      raise Rejected.new("no-key", format("%s has mode %o; fix: chmod go= %s", path, st.mode & 0o777, path)) \
        unless (st.mode & 0o077).zero?
    rescue Errno::ENOENT, Errno::EACCES => e
      raise Rejected.new("no-key", "user key: #{e.class.name.split('::').last}")
    end

    def create_user_key(path)
      dir = File.dirname(path)
      FileUtils.mkdir_p(dir, mode: 0o700)
      File.chmod(0o700, dir)
      tmp = File.join(dir, ".user.key.#{Process.pid}.#{SecureRandom.hex(4)}")
      File.open(tmp, File::WRONLY | File::CREAT | File::EXCL, 0o600) do |f|
        f.write(SecureRandom.hex(32) + "\n")
      end
      # link, not rename: if the job created the key meanwhile, keep the job's key.
      begin
        File.link(tmp, path)
      rescue Errno::EEXIST
        nil
      ensure
        File.unlink(tmp)
      end
    end
  end

  # One accepted share.
  Share = Struct.new(:jobid, :owner, :group, :token, :payload, keyword_init: true) do
    def mode = payload["mode"]
    def title = payload["title"].to_s
    def app = payload["app"].to_s
    def preset = payload["preset"].to_s
    def conn = payload["conn"]
    def delivery_app = payload["delivery"].to_s.delete_prefix("sys/")
    def label = "#{title} from #{owner} (job #{jobid})"
    def card_id = "mt-#{jobid}-#{Digest::SHA256.hexdigest(token)[0, 12]}"

    # What the kit itself vouches for, written beside the publisher's fields in the card's
    # connection.yml (the deliveries show them); these keys override any publisher field
    # of the same name, so a publisher cannot fake the checks.
    def card_metadata
      { "mt_preset" => preset, "mt_app" => app, "mt_title" => title, "mt_publisher" => owner,
        "mt_audience" => group, "mt_job_id" => jobid.to_s,
        "mt_checks" => "site WCKey; publisher #{owner} in the publisher group and in the audience; message " \
                       "authenticated for job #{jobid}, owner #{owner} and audience #{group}; every field within " \
                       "the share contract; you are in the audience" }
    end

    def to_spec
      { label: label, app: app, preset: preset, conn: conn.dup, owner: owner, group: group,
        mode: mode, title: title }
    end
  end

  # Decides, for one user, which candidate jobs are shares they may see.
  class Verifier
    GROUP_NAME = /\A[A-Za-z0-9_][A-Za-z0-9_.-]*\z/.freeze

    # Member of the group by /etc/group (or the directory) OR by primary gid.
    SYSTEM_MEMBERSHIP = lambda do |user, group_name|
      group = Etc.getgrnam(group_name)
      group.mem.include?(user) || Etc.getpwnam(user).gid == group.gid
    rescue ArgumentError
      false
    end

    # MEMBERSHIP: ->(user, group) { true if user is in group }; the system's by default.
    def initialize(config:, identity:, keys:, codec: MultiTenant::Codec, membership: SYSTEM_MEMBERSHIP)
      @config = config
      @me = identity
      @keys = keys
      @codec = codec
      @membership = membership
      @membership_cache = {}
    end

    # -> Share; raises Rejected with a stable reason.
    def verify(job)
      job_wckey = job.wckey.to_s.downcase.delete_prefix("*")
      unless job_wckey == @config.wckey
        raise Rejected.new("wrong-wckey", "job wckey #{job.wckey.inspect}, site wckey #{@config.wckey}")
      end
      unless publisher?(job.owner)
        raise Rejected.new("publisher-not-in-group", "#{job.owner} is not in #{@config.publisher_group}")
      end

      token = @codec.join_transport(job.name, job.comment.to_s.empty? ? nil : job.comment)
      raise Rejected.new("bad-encoding", "name/comment do not form a token") if token.nil?

      aud, kv = token_header(token)
      key, group = audience_key(aud, kv)
      check_owner_in_audience(job.owner, aud)
      payload = @codec.decode(token, group_key: key, jobid: job.jobid, owner: job.owner)
      @config.contract.check_payload(payload, @config.delivery_apps)
      check_fresh(job, payload)
      check_user_list(payload)
      Share.new(jobid: job.jobid, owner: job.owner, group: group, token: token, payload: payload)
    end

    private

    def token_header(token)
      parsed = @codec.parse_token(token)
      aud, kv =
        if parsed.respond_to?(:aud) then [parsed.aud, parsed.kv]
        elsif parsed.is_a?(Hash) then [parsed[:aud] || parsed["aud"], parsed[:kv] || parsed["kv"]]
        else parsed.to_a.first(2)
        end
      kv = Integer(kv.to_s, 10)
      [aud.to_s, kv]
    rescue ArgumentError, TypeError
      raise Rejected.new("bad-encoding", "key version #{kv.inspect} is not a number")
    end

    # Checks membership before keys so the log says "not-in-audience" rather than
    # the less helpful "no-key" for a user who is simply not in the group.
    def audience_key(aud, kv)
      if aud.start_with?("~")
        user = aud.delete_prefix("~")
        raise Rejected.new("not-in-audience", "share is for user #{user} only") unless user == @me.name
        raise Rejected.new("key-version-retired", "user keys have version 1, got #{kv}") unless kv == 1

        return [@keys.user_key, aud]
      end
      raise Rejected.new("bad-encoding", "audience #{aud.inspect} is not a group name") unless GROUP_NAME.match?(aud)
      raise Rejected.new("not-in-audience", "#{aud} is not a tenant group of this site") unless @config.tenant_group?(aud)
      raise Rejected.new("not-in-audience", "#{@me.name} is not in group #{aud}") unless @me.group_names.include?(aud)

      [@keys.group_key(aud, kv), aud]
    end

    # A share published before its job last started is left over from before a requeue:
    # its host and port may now belong to someone else.
    def check_fresh(job, payload)
      slack = @config.contract.limits.fetch("start_slack_seconds")
      return if job.start_time.nil? || payload["created"] >= job.start_time - slack

      raise Rejected.new("stale-share", "published at #{payload['created']}, before the job (re)started at " \
                                        "#{job.start_time}; the job has not republished yet")
    end

    # A publisher shares only with an audience they belong to: "my user only" is for the
    # owner alone, a group share needs the owner in that group. Otherwise a member of the
    # publisher group could address cards to any group whose key they hold.
    def check_owner_in_audience(owner, aud)
      if aud.start_with?("~")
        return if aud.delete_prefix("~") == owner

        raise Rejected.new("publisher-not-in-audience", "share for user #{aud.delete_prefix('~')} published by #{owner}")
      end
      raise Rejected.new("publisher-not-in-audience", "#{owner} is not in group #{aud}") unless member?(owner, aud)
    end

    def check_user_list(payload)
      return unless payload.key?("users")

      uids = @codec.decode_users(payload["users"])
      raise Rejected.new("not-in-audience", "uid #{@me.uid} not in the share's user list") unless uids.include?(@me.uid)
    end

    def publisher?(owner) = member?(owner, @config.publisher_group)

    def member?(user, group)
      @membership_cache.fetch([user, group]) { @membership_cache[[user, group]] = @membership.call(user, group) }
    end
  end

  # Writes and removes session cards (docs/architecture.md "Card files").
  class CardWriter
    DB_KEYS = %w[id cluster_id job_id created_at token title script_type cache_completed completed_at].freeze

    attr_reader :dataroot

    def initialize(config:, env: ENV, home: Dir.home, clock: -> { Time.now.to_i }, log: ->(_line) {})
      @config = config
      @dataroot = (env["OOD_DATAROOT"].to_s.empty? ? File.join(home, "ondemand/data/sys/dashboard") : env["OOD_DATAROOT"])
      @per_cluster = env["OOD_PER_CLUSTER_DATAROOT"].to_s.downcase == "true"
      @clock = clock
      @log = log
    end

    def batch_connect = File.join(@dataroot, "batch_connect")
    def db_dir = File.join(batch_connect, "db")
    def state_dir = File.join(batch_connect, ".ood-mt")
    def state_path = File.join(state_dir, "state.json")

    def output_dir(share_or_token, id)
      token = share_or_token.is_a?(String) ? share_or_token : "sys/#{share_or_token.delivery_app}"
      parts = [batch_connect]
      parts << @config.cluster if @per_cluster
      File.join(*parts, token, "output", id)
    end

    # Makes the kit's cards exactly `shares`: writes new/changed ones, removes
    # the ones the kit wrote earlier that are no longer visible.
    def sync(shares)
      state = read_state
      wanted = {}
      shares.each do |share|
        id = share.card_id
        begin
          write_card(share)
          wanted[id] = { "jobid" => share.jobid, "token" => "sys/#{share.delivery_app}",
                         "db" => File.join(db_dir, id), "output" => output_dir(share, id) }
        rescue SystemCallError, IOError => e
          @log.call("ood-mt: job #{share.jobid}: card not written: #{e.message}")
        end
      end
      (state.keys - wanted.keys).each { |id| remove_card(id, state[id]) }
      write_state(wanted)
      wanted.keys
    end

    def db_record(share)
      {
        "id" => share.card_id,
        "cluster_id" => @config.cluster,
        "job_id" => share.jobid.to_s,
        "created_at" => created_at(share),
        "token" => "sys/#{share.delivery_app}",
        "title" => share.label,
        "script_type" => "basic",
        "cache_completed" => false,
        "completed_at" => nil
      }
    end

    # YAML flow with every key and value a double-quoted scalar: safe_load gives
    # back exactly these Strings (no dates, booleans, nulls or symbols).
    def self.connection_yaml(conn)
      conn.sort.map { |k, v| "#{yaml_quote(k)}: #{yaml_quote(v)}\n" }.join
    end

    def self.yaml_quote(text)
      out = +'"'
      text.to_s.dup.force_encoding(Encoding::UTF_8).scrub("\uFFFD").each_char do |ch|
        code = ch.ord
        out << case ch
               when '"' then '\\"'
               when "\\" then "\\\\"
               when "\n" then "\\n"
               when "\t" then "\\t"
               when "\r" then "\\r"
               else
                 # Pure-ASCII output: control characters and everything beyond
                 # ASCII become YAML escapes, so no reader can misjudge them.
                 if code < 0x20 || code == 0x7f then format("\\x%02X", code)
                 elsif code > 0xffff then format("\\U%08X", code)
                 elsif code > 0x7e then format("\\u%04X", code)
                 else ch
                 end
               end
      end
      out << '"'
    end

    private

    def created_at(share)
      created = share.payload["created"]
      created.is_a?(Integer) && created.positive? ? created : Integer(@clock.call)
    end

    def write_card(share)
      id = share.card_id
      out = output_dir(share, id)
      FileUtils.mkdir_p(File.dirname(out))
      FileUtils.mkdir_p(out, mode: 0o700)
      File.chmod(0o700, out)
      atomic_write(File.join(out, "connection.yml"), self.class.connection_yaml(share.conn.merge(share.card_metadata)), 0o600)
      db_file = File.join(db_dir, id)
      # An existing db file is the dashboard's now (it may have cached a state in it).
      return if File.exist?(db_file)

      FileUtils.mkdir_p(db_dir)
      FileUtils.mkdir_p(state_dir, mode: 0o700)
      # Built outside db/ (the dashboard parses every file there) and renamed in.
      atomic_write(db_file, JSON.generate(db_record(share)), 0o600, tmp_dir: state_dir)
    end

    def remove_card(id, entry)
      return unless id.is_a?(String) && id.start_with?("mt-") && !id.include?("/")

      FileUtils.rm_f(File.join(db_dir, id))
      out = entry.is_a?(Hash) ? entry["output"].to_s : ""
      # Only a directory of ours: under batch_connect, ends with the card id.
      if out.start_with?("#{batch_connect}/") && File.basename(out) == id && !out.include?("/../")
        FileUtils.rm_rf(out)
      end
    rescue SystemCallError => e
      @log.call("ood-mt: card #{id}: not removed: #{e.message}")
    end

    def read_state
      data = JSON.parse(File.read(state_path))
      data.is_a?(Hash) && data["cards"].is_a?(Hash) ? data["cards"] : {}
    rescue Errno::ENOENT
      {}
    rescue JSON::ParserError, SystemCallError => e
      @log.call("ood-mt: #{state_path} unreadable (#{e.class}); starting a new one")
      {}
    end

    def write_state(cards)
      FileUtils.mkdir_p(state_dir, mode: 0o700)
      atomic_write(state_path, JSON.pretty_generate({ "format" => 1, "cards" => cards }) + "\n", 0o600)
    end

    def atomic_write(path, content, mode, tmp_dir: File.dirname(path))
      if File.exist?(path) && File.file?(path) && (File.read(path) == content rescue false)
        File.chmod(mode, path)
        return
      end
      tmp = File.join(tmp_dir, ".#{File.basename(path)}.#{Process.pid}.#{SecureRandom.hex(4)}.tmp")
      File.open(tmp, File::WRONLY | File::CREAT | File::EXCL, mode) { |f| f.write(content) }
      File.rename(tmp, path)
    rescue StandardError
      FileUtils.rm_f(tmp) if tmp
      raise
    end
  end

  # At most one refresh per refresh_seconds: an in-process memo plus an mtime
  # stamp under a non-blocking flock, so parallel requests of one dashboard (or
  # several dashboard processes of one user) do not each run squeue.
  class Throttle
    def initialize(stamp_path:, interval:, clock: -> { Time.now.to_f })
      @stamp_path = stamp_path
      @interval = interval
      @clock = clock
      @last = nil
    end

    # Yields when a refresh is due and this caller won the lock; returns true if it ran.
    def run(force: false)
      now = @clock.call
      return false if !force && @last && now - @last < @interval

      FileUtils.mkdir_p(File.dirname(@stamp_path), mode: 0o700)
      File.open(@stamp_path, File::RDWR | File::CREAT, 0o600) do |f|
        return false unless f.flock(File::LOCK_EX | File::LOCK_NB)

        stamp_age = now - f.mtime.to_f
        fresh = f.size.positive? && stamp_age >= 0 && stamp_age < @interval
        if !force && fresh && @last
          @last = now
          return false
        end
        yield
        @last = now
        f.truncate(0)
        f.write(now.to_s)
        f.flush
        File.utime(Time.at(now), Time.at(now), @stamp_path)
        true
      end
    end
  end

  # Wires the pieces for one dashboard process.
  class Refresher
    attr_reader :specs, :last_error

    def initialize(config:, identity: Identity.current, env: ENV, logger: nil, runner: nil,
                   codec: MultiTenant::Codec, clock: -> { Time.now.to_f })
      @config = config
      @identity = identity
      @log = logger || ->(line) { warn(line) }
      @discovery = Discovery.new(config: config, runner: runner)
      @keys = KeyStore.new(key_dir: config.key_dir, home: identity.home)
      @codec = codec
      @cards = CardWriter.new(config: config, env: env, home: identity.home, log: @log)
      @throttle = Throttle.new(stamp_path: File.join(@cards.state_dir, "refresh.stamp"),
                               interval: config.refresh_seconds, clock: clock)
      @specs = {}
      @shares = {}
      @logged = {}
      @last_error = nil
    end

    attr_reader :cards

    def shares = @shares

    # Never raises: the dashboard must keep working whatever Slurm or a job does.
    def refresh(force: false)
      @throttle.run(force: force) { refresh_now }
      @specs
    rescue StandardError => e
      log_once("error:#{e.class}", "ood-mt: refresh failed: #{e.class}: #{e.message}")
      @specs
    end

    private

    def refresh_now
      jobs = @discovery.call
      if jobs.is_a?(Discovery::Failure)
        @last_error = jobs.message
        # Keep the cards: a slow Slurm must not make every share vanish.
        log_once("discovery:#{jobs.message}", "ood-mt: discovery: #{jobs.message}")
        @specs = {}
        @shares = {}
        return
      end
      @last_error = nil
      verifier = Verifier.new(config: @config, identity: @identity, keys: @keys, codec: @codec)
      accepted = {}
      card_shares = []
      verified = jobs.filter_map { |job| verify_one(verifier, job) }
      self.class.limit_per_publisher(verified, @config.contract.limits.fetch("shares_per_publisher")) do |share, detail|
        log_rejection(share, share.token, "too-many-shares", detail)
      end.each do |share|
        # The publisher uses its own shares from client forms but gets no second card:
        # the dashboard already shows its own session.
        card_shares << share if share.mode == "card" && share.owner != @identity.name
        accepted[share.jobid] = share
      end
      @shares = accepted
      @specs = accepted.transform_values(&:to_spec)
      @cards.sync(card_shares)
    end

    # At most LIMIT shares per publisher: the newest (by created, then job id) stay; each
    # other one is yielded with the reason's detail. Returns the kept shares in input order.
    def self.limit_per_publisher(shares, limit)
      dropped = {}
      shares.group_by(&:owner).each do |owner, mine|
        ordered = mine.sort_by { |sh| [sh.payload["created"], sh.jobid.split(/[_+]/).map(&:to_i)] }.reverse
        ordered.drop(limit).each do |sh|
          dropped[sh.jobid] = true
          yield sh, "#{owner} publishes more than #{limit} shares to you"
        end
      end
      shares.reject { |sh| dropped.key?(sh.jobid) }
    end

    def verify_one(verifier, job)
      verifier.verify(job)
    rescue Rejected => e
      log_rejection(job, job.name, e.reason, e.detail)
      nil
    rescue StandardError => e
      # A codec bug must cost one share, not the page.
      log_rejection(job, job.name, "bad-encoding", "#{e.class}: #{e.message}")
      nil
    end

    # One line per (job, token, reason) per dashboard process: refreshes every
    # 30 s must not repeat the same rejection forever.
    def log_rejection(job, token, reason, detail)
      key = "#{job.jobid}:#{Digest::SHA256.hexdigest(token.to_s)[0, 16]}:#{reason}"
      line = +"ood-mt: job #{job.jobid}: rejected: #{reason}"
      line << " (#{detail})" if detail && !detail.to_s.empty?
      log_once(key, line)
    end

    def log_once(key, line)
      return if @logged.key?(key)

      @logged[key] = true
      @logged.shift if @logged.size > 10_000
      @log.call(line)
    end
  end

  class << self
    attr_accessor :refresher

    # {jobid => {label:, app:, preset:, conn:, owner:, group:, mode:, title:}} of the
    # shares this user may see (refreshed at most every refresh_seconds).
    def specs
      return {} if refresher.nil?

      refresher.refresh
    rescue StandardError
      {}
    end

    # [[label, jobid], ...] of the shares offered in client forms (both delivery modes:
    # "card" means card AND forms), optionally of one app kind.
    def form_options(kind: nil)
      specs.select { |_id, s| kind.nil? || s[:app] == kind.to_s }
           .map { |id, s| [s[:label], id] }
           .sort_by { |label, id| [label, id] }
    rescue StandardError
      []
    end

    def share(jobid)
      specs[jobid.to_s]
    rescue StandardError
      nil
    end
  end
end

# frozen_string_literal: true

# ood-multitenant: the refresh. Wires discovery, verification and cards for one dashboard
# process, at most once per refresh_seconds; every failure is rescued and logged in one
# line naming the job and why, so the dashboard keeps working whatever Slurm or a job does.

require "digest"
require "fileutils"

module MultiTenant
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
                   codec: MultiTenant::Codec, clock: -> { Time.now.to_f }, membership: Verifier::SYSTEM_MEMBERSHIP)
      @config = config
      @membership = membership
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
      verifier = Verifier.new(config: @config, identity: @identity, keys: @keys, codec: @codec, membership: @membership)
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

# frozen_string_literal: true

# ood-multitenant: the refresh. Wires discovery (the spool, or squeue off the request path),
# verification and cards for one dashboard process; every failure is rescued and logged in
# one line naming the job or file and why, so the dashboard keeps working whatever Slurm or
# a job does.

require "digest"
require "fileutils"

module MultiTenant
  # At most one fall-back squeue per refresh_seconds: an in-process memo plus an mtime
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

  # Wires the pieces for one dashboard process. Where the jobs come from
  # (docs/discovery.md "Readers"): the discovery spool while its heartbeat is fresh, read
  # on every call but skipped after a few stat calls when nothing changed; otherwise this
  # process's own squeue, throttled by refresh_seconds and run in a background thread (at
  # most one in flight) whose result the next call uses, so a request never waits on Slurm.
  class Refresher
    attr_reader :specs, :last_error, :cards, :spool, :source

    def initialize(config:, identity: Identity.current, env: ENV, logger: nil, runner: nil,
                   codec: MultiTenant::Codec, clock: -> { Time.now.to_f }, membership: Verifier::SYSTEM_MEMBERSHIP,
                   spool_reader: nil)
      @config = config
      @membership = membership
      @identity = identity
      @log = logger || ->(line) { warn(line) }
      @discovery = Discovery.new(config: config, runner: runner)
      @spool = Spool.new(dir: config.spool_dir, contract: config.contract, user: identity.name,
                         groups: identity.group_names.select { |g| config.tenant_group?(g) },
                         **(spool_reader ? { reader: spool_reader } : {}))
      @keys = KeyStore.new(key_dir: config.key_dir, home: identity.home)
      @codec = codec
      @clock = clock
      @cards = CardWriter.new(config: config, env: env, home: identity.home, log: @log)
      @throttle = Throttle.new(stamp_path: File.join(@cards.state_dir, "refresh.stamp"),
                               interval: config.refresh_seconds, clock: clock)
      @mutex = Mutex.new
      @inflight = nil # the fall-back squeue thread, at most one
      @source = nil # :spool or :squeue once decided
      @spool_signature = nil
      @specs = {}
      @shares = {}
      @logged = {}
      @last_error = nil
      @last_jobs = nil # the jobs last applied, re-applied when the hidden file changes
      @hidden_signature = nil
    end

    def shares = @shares

    # Never raises and never waits on Slurm: the dashboard must keep working whatever
    # Slurm or a job does. A call made while another thread of this process refreshes
    # returns the current specs at once.
    def refresh(force: false)
      return @specs unless @mutex.try_lock

      begin
        freshness = @spool.freshness(@clock.call)
        freshness.fresh ? from_spool(force) : from_squeue(force, freshness)
      ensure
        @mutex.unlock
      end
      @specs
    rescue StandardError => e
      log_once("error:#{e.class}", "ood-mt: refresh failed: #{e.class}: #{e.message}")
      @specs
    end

    # Waits up to TIMEOUT seconds for the fall-back squeue in flight; true when none is
    # left. For tools and tests (a later request then uses the result); never a request.
    def settle(timeout)
      thread = @inflight
      thread.nil? || !thread.join(timeout).nil?
    end

    def fallback_in_flight? = !@inflight.nil? && @inflight.alive?

    # What pressing Delete (or Cancel) on card ID did: status :hidden, :already or :failed,
    # and the message for the page (docs/user-guide.md "Hide a share").
    HideOutcome = Struct.new(:status, :jobid, :message, keyword_init: true)

    # The receiver pressed Delete (or Cancel) on card ID. nil when the kit did not write
    # that card (the user's own session, an unknown or forged id): OOD handles the request.
    # Otherwise the publication is added to the hidden file (Hidden.add, the CLI's rule) and
    # the card removed now; a failure changes nothing and is logged in one line naming the job.
    def hide_card(id)
      @mutex.synchronize do
        entry = @cards.card_entry(id)
        return nil if entry.nil?

        hide_entry(id, entry)
      end
    end

    private

    def hide_entry(id, entry)
      jobid = entry["jobid"]
      label = entry["label"].to_s.empty? ? "job #{jobid}" : entry["label"].to_s
      created = entry["created"]
      created = @shares[jobid]&.payload&.fetch("created", nil) if !created.is_a?(Integer) && @shares[jobid]&.card_id == id
      unless created.is_a?(Integer) && created.positive?
        return hide_failed(jobid, label, "the card does not record which publication it shows (a card written " \
                                         "before this version; it is rewritten at the next refresh)")
      end
      added = Hidden.entry(jobid: jobid, created: created, app: entry["app"], title: entry["title"],
                           publisher: entry["publisher"], now: @clock.call)
      status = Hidden.add(@identity.home, added) ? :hidden : :already
      @cards.forget(id)
      @log.call("ood-mt: job #{jobid}: hidden from its card #{id} (#{Hidden.path_for(@identity.home)})")
      HideOutcome.new(status: status, jobid: jobid,
                      message: "Hid #{label}: its card and form entries are gone for you. The publisher's service " \
                               "keeps running. Undo: ood-mt hide --undo #{jobid}")
    rescue Hidden::Refused, SystemCallError, IOError => e
      hide_failed(jobid, label, e.message.delete_prefix("ood-mt: "))
    end

    def hide_failed(jobid, label, why)
      @log.call("ood-mt: job #{jobid}: not hidden from its card: #{why}")
      HideOutcome.new(status: :failed, jobid: jobid,
                      message: "Could not hide #{label}: #{why}. Nothing was changed; the share's job was not " \
                               "touched. From a terminal: ood-mt hide #{jobid}")
    end

    def from_spool(force)
      if @source == :squeue
        @log.call("ood-mt: discovery spool #{@spool.dir} fresh again; reading it instead of querying Slurm")
      end
      @source = :spool
      take_fallback_result # a squeue answer still arriving is older than the spool: dropped
      signature = [@spool.signature, Hidden.signature(hidden_path)]
      return if !force && signature == @spool_signature

      jobs, problems = @spool.read
      problems.each do |problem|
        log_once("spool:#{problem.path}:#{problem.why}",
                 "ood-mt: discovery spool file #{problem.path}: #{problem.why}; no shares from it")
      end
      @spool_signature = signature
      apply(jobs)
    end

    def from_squeue(force, freshness)
      unless @source == :squeue
        age = freshness.age.nil? ? "unknown" : freshness.age.round.to_s
        @log.call("ood-mt: discovery spool #{@spool.dir} stale (age #{age} s) or missing; querying Slurm directly " \
                  "(#{freshness.why})")
      end
      @source = :squeue
      @spool_signature = nil
      result = take_fallback_result
      if !result.nil?
        apply_discovery(result)
      elsif !@last_jobs.nil? && Hidden.signature(hidden_path) != @hidden_signature
        apply(@last_jobs) # a share hidden or shown again goes at once, not at the next squeue
      end
      return if fallback_in_flight?

      @throttle.run(force: force) { start_fallback }
    end

    # The finished fall-back's result (Array of Job or Discovery::Failure), once; nil while
    # it runs or when there is none.
    def take_fallback_result
      return nil if @inflight.nil? || @inflight.alive?

      thread = @inflight
      @inflight = nil
      thread.value
    end

    def start_fallback
      discovery = @discovery
      @inflight = Thread.new do
        Thread.current.report_on_exception = false
        begin
          discovery.call
        rescue StandardError => e
          Discovery::Failure.new("squeue could not run: #{e.class}: #{e.message}")
        end
      end
    end

    def apply_discovery(jobs)
      if jobs.is_a?(Discovery::Failure)
        @last_error = jobs.message
        # Keep the cards: a slow Slurm must not make every share vanish.
        log_once("discovery:#{jobs.message}", "ood-mt: discovery: #{jobs.message}")
        @specs = {}
        @shares = {}
        return
      end
      apply(jobs)
    end

    def hidden_path = Hidden.path_for(@identity.home)

    # The user's hidden set (docs/protocol.md "Hidden shares"); a file breaking the rule is
    # logged once and hides nothing.
    def hidden_set
      @hidden_signature = Hidden.signature(hidden_path)
      hidden = Hidden.load(@identity.home)
      log_once("hidden:#{hidden.problem}:#{@hidden_signature}", hidden.message) if hidden.problem
      hidden
    end

    def apply(jobs)
      @last_error = nil
      @last_jobs = jobs
      hidden = hidden_set
      verifier = Verifier.new(config: @config, identity: @identity, keys: @keys, codec: @codec, membership: @membership)
      accepted = {}
      card_shares = []
      verified = jobs.filter_map { |job| verify_one(verifier, job) }
      self.class.limit_per_publisher(verified, @config.contract.limits.fetch("shares_per_publisher")) do |share, detail|
        log_rejection(share, share.token, "too-many-shares", detail)
      end.each do |share|
        next if hidden.hides?(share.jobid, share.payload["created"])

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
    # shares this user may see (the spool checked on every call, squeue at most every refresh_seconds).
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

    # The dashboard's Delete (or Cancel) on session ID: a Refresher::HideOutcome when ID is
    # a card the kit wrote for a received share, else nil (OOD's own path).
    def hide_card(id)
      refresher&.hide_card(id.to_s)
    end
  end
end

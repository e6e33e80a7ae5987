# frozen_string_literal: true

# ood-multitenant: verification. Decides, for the user the dashboard runs as, which
# candidate jobs are shares they may see (stable rejection reasons: docs/protocol.md);
# pinned with the CLI's verifier by tests/vectors/verdicts.json.

require "digest"
require "etc"

module MultiTenant
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
                       "the share contract; you are in the audience",
        "mt_hide_note" => "Delete (or Cancel) on this card hides this share for you; it does not stop #{owner}'s service. " \
                          "Undo: ood-mt hide --undo #{jobid}" }
    end

    def to_spec
      { label: label, app: app, preset: preset, conn: conn.dup, owner: owner, group: group,
        mode: mode, title: title }
    end
  end

  # Decides, for one user, which candidate jobs are shares they may see.
  class Verifier
    GROUP_NAME = /\A[A-Za-z0-9_][A-Za-z0-9_.-]*\z/.freeze

    # Membership as DIRECTORY (Etc, or anything with its getgrnam/getpwnam) says: a member
    # of the group by /etc/group (or the directory) OR by primary gid.
    def self.membership_in(directory)
      lambda do |user, group_name|
        group = directory.getgrnam(group_name)
        group.mem.include?(user) || directory.getpwnam(user).gid == group.gid
      rescue ArgumentError
        false
      end
    end

    SYSTEM_MEMBERSHIP = membership_in(Etc)

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
end

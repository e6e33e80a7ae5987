# frozen_string_literal: true

# ood-multitenant: session cards. Writes and removes the card files OOD's dashboard reads
# (db file, connection.yml) for the accepted shares (docs/architecture.md "Card files").

require "fileutils"
require "json"
require "securerandom"

module MultiTenant
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
      parts << @config.card_cluster if @per_cluster
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
                         "db" => File.join(db_dir, id), "output" => output_dir(share, id),
                         # What hiding the card from the dashboard records (Refresher#hide_card).
                         "created" => share.payload["created"], "app" => share.app, "title" => share.title,
                         "publisher" => share.owner, "label" => share.label }
        rescue SystemCallError, IOError => e
          @log.call("ood-mt: job #{share.jobid}: card not written: #{e.message}")
        end
      end
      (state.keys - wanted.keys).each { |id| remove_card(id, state[id]) }
      write_state(wanted)
      wanted.keys
    end

    CARD_ID = /\Amt-[0-9]+(?:[_+][0-9]+)?-[0-9a-f]{12}\z/

    # The state entry of card ID when the kit wrote that card (a received share), else nil:
    # the user's own sessions and any other id are never the kit's.
    def card_entry(id)
      return nil unless id.is_a?(String) && CARD_ID.match?(id)

      entry = read_state[id]
      entry.is_a?(Hash) && entry["jobid"].is_a?(String) ? entry : nil
    end

    # Removes card ID (db file, output directory) and its state entry now.
    def forget(id)
      state = read_state
      entry = state.delete(id)
      remove_card(id, entry)
      write_state(state)
    end

    def db_record(share)
      {
        "id" => share.card_id,
        "cluster_id" => @config.card_cluster,
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
end

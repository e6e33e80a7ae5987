# frozen_string_literal: true

# ood-multitenant: the receiver's hidden shares (docs/protocol.md "Hidden shares"). Reads
# ~/.config/ood-mt/hidden.json, written by `ood-mt hide` (src/ood_mt/hidden.py, the same
# rule, pinned by tests/vectors/hidden.json). An entry hides one publication: the pair
# (job id, the share's created). A file that breaks the rule hides nothing and is never
# written; the caller logs the problem once.
#
# Written here too, when the receiver presses Delete on a received share's card
# (Refresher#hide_card): the same writer rule as the CLI's hidden.save (0600 in a 0700
# directory, atomic, the oldest entries beyond MAX_ENTRIES dropped), pinned with it by
# tests/vectors/hidden_write.json.

require "fileutils"
require "json"
require "securerandom"

module MultiTenant
  # The hidden set of one user: keys [jobid, created]; problem is nil or why the file is refused.
  class Hidden
    FORMAT = 1
    RELPATH = ".config/ood-mt/hidden.json"
    MAX_BYTES = 1 << 20
    MAX_ENTRIES = 1000 # the writer drops the oldest entries beyond this (jobs long ended)
    JOBID = /\A[0-9]+(?:[_+][0-9]+)?\z/

    attr_reader :path, :keys, :problem

    def self.path_for(home) = home.to_s.empty? ? nil : File.join(home.to_s, RELPATH)

    # A file that breaks the rule, or cannot be read: nothing is written over it.
    class Refused < StandardError; end

    # -> [keys (Array of [jobid, created]), problem or nil] for TEXT (the file's bytes; nil: no file).
    def self.parse(text)
      entries, problem = entries_of(text)
      [entries.map { |e| [e["jobid"], e["created"]] }, problem]
    end

    # -> [entries (Array of Hash, as in the file), problem or nil] for TEXT.
    def self.entries_of(text)
      return [[], nil] if text.nil?
      return [[], "larger than #{MAX_BYTES} bytes"] if text.bytesize > MAX_BYTES

      utf8 = text.dup.force_encoding(Encoding::UTF_8)
      return [[], "not valid JSON (not UTF-8)"] unless utf8.valid_encoding?

      data = JSON.parse(utf8)
      return [[], "not a JSON object"] unless data.is_a?(Hash)
      return [[], "format is #{JSON.generate(data['format'])[0, 20]}, not #{FORMAT}"] unless data["format"] == FORMAT && data["format"].is_a?(Integer)

      entries = data["hidden"]
      return [[], "field hidden is not a list"] unless entries.is_a?(Array)

      entries.each_with_index do |entry, number|
        return [[], "entry #{number} is not an object"] unless entry.is_a?(Hash)
        return [[], "entry #{number}: jobid is not a Slurm job id string"] unless entry["jobid"].is_a?(String) && JOBID.match?(entry["jobid"])
        return [[], "entry #{number}: created is not a positive integer"] unless entry["created"].is_a?(Integer) && entry["created"].positive?
      end
      [entries, nil]
    rescue JSON::ParserError, EncodingError => e
      [[], "not valid JSON (#{e.message.lines.first.to_s.strip[0, 80]})"]
    end

    # The file's identity for change detection: [mtime, size, inode] or nil when absent.
    def self.signature(path)
      return nil if path.nil?

      st = File.stat(path)
      [st.mtime.to_f, st.size, st.ino]
    rescue SystemCallError
      nil
    end

    # -> [path, entries, problem or nil] of HOME's file.
    def self.read(home)
      path = path_for(home)
      return [path, [], nil] if path.nil?

      text = begin
        File.binread(path)
      rescue Errno::ENOENT
        nil
      rescue SystemCallError, IOError => e
        return [path, [], "cannot be read (#{e.message})"]
      end
      [path, *entries_of(text)]
    end

    def self.load(home)
      path, entries, problem = read(home)
      new(path, entries.map { |e| [e["jobid"], e["created"]] }, problem)
    end

    # The entry the CLI's hidden.entry writes for one publication.
    def self.entry(jobid:, created:, app:, title:, publisher:, now:)
      { "jobid" => jobid.to_s, "created" => created, "app" => app.to_s, "title" => title.to_s,
        "publisher" => publisher.to_s, "hidden_at" => Integer(now) }
    end

    # ENTRIES with ADDED appended unless its publication is there already.
    def self.with_entry(entries, added)
      entries.any? { |e| e["jobid"] == added["jobid"] && e["created"] == added["created"] } ? entries : entries + [added]
    end

    # What the writer keeps: oldest first by hidden_at (a missing or non-numeric one counts as
    # 0, ties keep their order), at most MAX_ENTRIES, the newest.
    def self.to_write(entries)
      entries.each_with_index.sort_by { |e, i| [order_of(e), i] }.map(&:first).last(MAX_ENTRIES)
    end

    def self.order_of(entry)
      value = entry["hidden_at"]
      value.is_a?(Integer) || value.is_a?(Float) ? value : 0
    end

    # Adds ADDED (from Hidden.entry) to HOME's file; -> true when written, false when already
    # hidden. Raises Refused (the file breaks the rule: left as it was) or SystemCallError.
    def self.add(home, added)
      path, entries, problem = read(home)
      raise Refused, "no home directory" if path.nil?
      raise Refused, new(path, [], problem).message if problem

      updated = with_entry(entries, added)
      return false if updated.equal?(entries)

      save(path, updated)
      true
    end

    # Writes ENTRIES to PATH: 0600 in a 0700 directory, through a temporary file renamed in.
    def self.save(path, entries)
      dir = File.dirname(path)
      FileUtils.mkdir_p(dir, mode: 0o700)
      File.chmod(0o700, dir)
      tmp = File.join(dir, ".hidden.#{SecureRandom.hex(6)}.tmp")
      File.open(tmp, File::WRONLY | File::CREAT | File::EXCL, 0o600) do |f|
        f.write(JSON.pretty_generate({ "format" => FORMAT, "hidden" => to_write(entries) }, ascii_only: true) + "\n")
      end
      File.chmod(0o600, tmp)
      File.rename(tmp, path)
    rescue StandardError
      FileUtils.rm_f(tmp) if tmp
      raise
    end

    def initialize(path, keys, problem)
      @path = path
      @keys = problem ? {} : keys.to_h { |k| [k, true] }
      @problem = problem
    end

    def hides?(jobid, created) = created.is_a?(Integer) && @keys.key?([jobid.to_s, created])

    def message
      "ood-mt: hidden shares file #{@path}: #{@problem}; nothing is hidden until it is fixed; fix: repair it or " \
        "move it aside (`mv #{@path} #{@path}.bad`), then hide again with `ood-mt hide JOBID`"
    end
  end
end

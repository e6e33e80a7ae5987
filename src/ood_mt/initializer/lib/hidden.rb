# frozen_string_literal: true

# ood-multitenant: the receiver's hidden shares (docs/protocol.md "Hidden shares"). Reads
# ~/.config/ood-mt/hidden.json, written by `ood-mt hide` (src/ood_mt/hidden.py, the same
# rule, pinned by tests/vectors/hidden.json). An entry hides one publication: the pair
# (job id, the share's created). A file that breaks the rule hides nothing and is never
# written here; the caller logs the problem once.

require "json"

module MultiTenant
  # The hidden set of one user: keys [jobid, created]; problem is nil or why the file is refused.
  class Hidden
    FORMAT = 1
    RELPATH = ".config/ood-mt/hidden.json"
    MAX_BYTES = 1 << 20
    JOBID = /\A[0-9]+(?:[_+][0-9]+)?\z/

    attr_reader :path, :keys, :problem

    def self.path_for(home) = home.to_s.empty? ? nil : File.join(home.to_s, RELPATH)

    # -> [keys (Array of [jobid, created]), problem or nil] for TEXT (the file's bytes; nil: no file).
    def self.parse(text)
      return [[], nil] if text.nil?
      return [[], "larger than #{MAX_BYTES} bytes"] if text.bytesize > MAX_BYTES

      utf8 = text.dup.force_encoding(Encoding::UTF_8)
      return [[], "not valid JSON (not UTF-8)"] unless utf8.valid_encoding?

      data = JSON.parse(utf8)
      return [[], "not a JSON object"] unless data.is_a?(Hash)
      return [[], "format is #{JSON.generate(data['format'])[0, 20]}, not #{FORMAT}"] unless data["format"] == FORMAT && data["format"].is_a?(Integer)

      entries = data["hidden"]
      return [[], "field hidden is not a list"] unless entries.is_a?(Array)

      keys = []
      entries.each_with_index do |entry, number|
        return [[], "entry #{number} is not an object"] unless entry.is_a?(Hash)
        return [[], "entry #{number}: jobid is not a Slurm job id string"] unless entry["jobid"].is_a?(String) && JOBID.match?(entry["jobid"])
        return [[], "entry #{number}: created is not a positive integer"] unless entry["created"].is_a?(Integer) && entry["created"].positive?

        keys << [entry["jobid"], entry["created"]]
      end
      [keys, nil]
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

    def self.load(home)
      path = path_for(home)
      return new(path, [], nil) if path.nil?

      text = begin
        File.binread(path)
      rescue Errno::ENOENT
        nil
      rescue SystemCallError, IOError => e
        return new(path, [], "cannot be read (#{e.message})")
      end
      keys, problem = parse(text)
      new(path, keys, problem)
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

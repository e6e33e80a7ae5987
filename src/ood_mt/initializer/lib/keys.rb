# frozen_string_literal: true

# ood-multitenant: key files. Group keys from the key dir, the per-user key from
# ~/.ood-mt (docs/architecture.md "Keys"). What a key file may hold is exactly what
# src/ood_mt/keys.py accepts; tests/vectors/key_files.json pins the two together.

require "fileutils"
require "securerandom"

module MultiTenant
  # What a key file may hold, exactly as src/ood_mt/keys.py reads it: ASCII text with
  # universal newlines (Python's read_text), then a whole-text match. Ruby's Integer()
  # would also take "+3", "0x1f", "1_0" or " 3": never used on a key file.
  module KeyFile
    VERSION_TEXT = /\A[1-9][0-9]{0,8}\n?\z/.freeze
    KEY_TEXT = /\A[0-9a-f]{64}\n?\z/.freeze

    module_function

    # The file's bytes as Python's Path.read_text(encoding="ascii") gives them; nil if not ASCII.
    def text(bytes)
      data = bytes.b
      data.ascii_only? ? data.gsub(/\r\n?/, "\n") : nil
    end

    # -> Integer >= 1, or nil when BYTES is not a key version file.
    def version(bytes)
      t = text(bytes)
      t && VERSION_TEXT.match?(t) ? t.to_i : nil
    end

    # -> 32-byte key String, or nil when BYTES is not a key file.
    def key(bytes)
      t = text(bytes)
      t && KEY_TEXT.match?(t) ? [t.chomp].pack("H*") : nil
    end
  end

  # Reads group keys from the key dir and the per-user key from ~/.ood-mt.
  class KeyStore
    def initialize(key_dir:, home:)
      @key_dir = key_dir
      @home = home
    end

    # -> 32-byte key String; raises Rejected(no-key | key-version-retired).
    def group_key(group, version)
      keys = group_keys(group)
      return keys.fetch(version) if keys.key?(version)

      raise Rejected.new("key-version-retired", "key version #{version} of #{group}; accepted: #{keys.keys.join(', ')}")
    end

    # {version => key} a receiver may use: current and, if its file exists, current - 1; as
    # ood_mt.keys.read_group_keys, every file present must be well-formed. Raises Rejected(no-key).
    def group_keys(group)
      dir = File.join(@key_dir, group)
      current_path = File.join(dir, "current")
      hint = "you are not in group #{group} or keys are not installed at #{@key_dir}"
      current = KeyFile.version(read_file(current_path, hint))
      unless current
        raise Rejected.new("no-key", "#{current_path}: malformed; expected a positive decimal version and a " \
                                     "newline (fix: re-run the ood_mt_keys role)")
      end

      keys = { current => read_key(File.join(dir, "v#{current}.key"), hint) }
      previous = File.join(dir, "v#{current - 1}.key")
      keys[current - 1] = read_key(previous, hint) if current > 1 && File.exist?(previous)
      keys
    end

    # The "my user only" key; created atomically (umask 077, rename) when missing.
    def user_key(create: true)
      path = File.join(@home, ".ood-mt", "user.key")
      create_user_key(path) if create && !File.exist?(path)
      check_private(File.dirname(path), :directory)
      check_private(path, :file)
      read_key(path, "fix: remove it to get a new key")
    end

    private

    # HINT: who can fix an unreadable file, and how.
    def read_file(path, hint)
      File.binread(path)
    rescue SystemCallError, IOError => e
      raise Rejected.new("no-key", "#{path}: cannot be read (#{e.class.name.split('::').last}); #{hint}")
    end

    def read_key(path, hint)
      KeyFile.key(read_file(path, hint)) or
        raise Rejected.new("no-key", "#{path}: malformed; expected 64 lowercase hex characters and a newline " \
                                     "(fix: re-run the ood_mt_keys role, or recreate the file)")
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
end

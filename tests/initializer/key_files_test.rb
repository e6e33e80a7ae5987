# frozen_string_literal: true

require_relative "test_helper"

# The initializer's key-file reader (MultiTenant::KeyStore, MultiTenant::KeyFile) against
# tests/vectors/key_files.json, the cases src/ood_mt/keys.py is checked with too
# (test_key_file_vectors.py): the same bytes in the same files give the same keys or no-key.
class KeyFileVectorsTest < Minitest::Test
  VECTORS = JSON.parse(File.read(File.expand_path("../vectors/key_files.json", __dir__)))
  GROUP = VECTORS.fetch("group")

  def setup
    @root = Dir.mktmpdir
  end

  def teardown
    FileUtils.rm_rf(@root) if @root
  end

  # {"version" => hex} the KeyStore reads from a group directory holding FILES, or "no-key";
  # every accepted version also through group_key, and the version below them retired.
  def outcome(files)
    dir = File.join(@root, "keys", GROUP)
    FileUtils.mkdir_p(dir)
    files.each { |name, data| File.binwrite(File.join(dir, name), data.unpack1("m0")) }
    store = MultiTenant::KeyStore.new(key_dir: File.join(@root, "keys"), home: @root)
    found = store.group_keys(GROUP)
    found.each { |version, key| assert_equal key, store.group_key(GROUP, version) }
    error = assert_raises(MultiTenant::Rejected) { store.group_key(GROUP, found.keys.min - 1) }
    assert_equal "key-version-retired", error.reason
    found.to_h { |version, key| [version.to_s, key.unpack1("H*")] }
  rescue MultiTenant::Rejected => e
    assert_equal "no-key", e.reason, e.message
    "no-key"
  end

  def user_outcome(data)
    own = File.join(@root, "home", ".ood-mt")
    FileUtils.mkdir_p(own, mode: 0o700)
    File.open(File.join(own, "user.key"), File::WRONLY | File::CREAT | File::EXCL, 0o600) { |f| f.write(data) }
    MultiTenant::KeyStore.new(key_dir: File.join(@root, "keys"), home: File.join(@root, "home")).user_key.unpack1("H*")
  rescue MultiTenant::Rejected => e
    assert_equal "no-key", e.reason, e.message
    "no-key"
  end

  VECTORS.fetch("group_cases").each_with_index do |vector_case, index|
    define_method("test_group_#{index}_#{vector_case.fetch('name').gsub(/[^a-z0-9]+/i, '_')}") do
      assert_equal vector_case.fetch("expect"), outcome(vector_case.fetch("files")), vector_case.fetch("name")
    end
  end

  VECTORS.fetch("user_cases").each_with_index do |vector_case, index|
    define_method("test_user_#{index}_#{vector_case.fetch('name').gsub(/[^a-z0-9]+/i, '_')}") do
      assert_equal vector_case.fetch("expect"), user_outcome(vector_case.fetch("file").unpack1("m0")),
                   vector_case.fetch("name")
    end
  end

  # What Ruby's Integer() would take is exactly what the vectors refuse.
  def test_the_parser_is_not_integer
    %w[+3 0x1f 1_0 0b11 03].each do |text|
      assert Integer(text, exception: false) || Integer(text, 10, exception: false), text
      assert_nil MultiTenant::KeyFile.version("#{text}\n"), text
    end
  end
end

# shellcheck shell=bash
# shellcheck disable=SC2034  # MT_ERROR is this file's error output, read by its callers (mt_publish.sh)
# ood-mt codec: the protocol v1 encoder in bash (pure functions: JSON strings, HMAC, the
# user-list encoding, the token). Byte layout and algorithms: docs/protocol.md; the Python
# reference (src/ood_mt/codec.py) and tests/vectors/v1.json define the expected bytes
# (tests/protocol/test_bash_codec.py). The publishing flow that uses it is mt_publish.sh;
# a service job gets both, in this order, as template/mt_share.sh.
# Needs bash >= 4.4, coreutils, gzip and openssl (1.1.1 or 3.x); nothing else.
#
# This file is included into templates through Jinja, so it must never contain
# Jinja delimiters (double braces, brace-percent, brace-hash); that is why string
# lengths are tested with substring expansion instead of the usual length syntax.
#
# Secrets: keys travel only in shell variables, through pipes (stdin) and, for
# `openssl enc`, in one process's environment (-pass env:); never in argv, never
# printed. Functions that handle keys switch xtrace off while they run.
#
# Errors: the functions return non-zero and leave "<why>; <fix>" in MT_ERROR.
#
# Test-only hook: MT_TEST_NONCE_HEX (32 hex chars) pins the nonce of
# mt_encode_token so tests can compare with the reference encoder. Never set it
# in a real job: a repeated nonce under one key leaks the XOR of two plaintexts.

# Run "$@" with xtrace off (restored afterwards), so `set -x` in a job never echoes keys.
mt__no_xtrace() {
  local mt_rc=0
  if [[ $- == *x* ]]; then
    set +x
    "$@" || mt_rc=$?
    set -x
    return "$mt_rc"
  fi
  "$@"
}

# Prints the printf format (\xHH...) for a hex string; pure bash, so secrets stay in-process.
mt__hex_fmt() {
  local hex="$1" fmt="" i=0
  while [[ -n "${hex:i:2}" ]]; do
    fmt+="\\x${hex:i:2}"
    i=$((i + 2))
  done
  printf '%s' "$fmt"
}

mt__bin_to_hex() {
  od -An -v -tx1 | tr -d ' \n'
}

# mt_json_string VALUE: prints VALUE as a JSON string literal (UTF-8 passed through).
mt_json_string() {
  local LC_ALL=C
  local s="$1" i hex ch
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  for ((i = 1; i < 32; i++)); do
    printf -v hex '%02x' "$i"
    # shellcheck disable=SC2059  # the format is the \xHH escape built just above
    printf -v ch "\\x$hex"
    s=${s//"$ch"/\\u00$hex}
  done
  printf '"%s"' "$s"
}

# mt_hmac_sha256_hex KEYHEX: HMAC-SHA256 of stdin, printed as hex. KEYHEX: 64 hex chars.
# RFC 2104 by hand, (K^opad || H((K^ipad) || m)), so the key goes to openssl on stdin only.
mt_hmac_sha256_hex() {
  mt__no_xtrace mt__hmac_sha256_hex "$@"
}
mt__hmac_sha256_hex() {
  local -
  set -o pipefail
  local keyhex="$1" ipad="" opad="" i byte
  if ! [[ $keyhex =~ ^[0-9a-f]{64}$ ]]; then
    MT_ERROR="HMAC key is not 64 lowercase hex characters; check the key file"
    return 1
  fi
  for ((i = 0; i < 64; i += 2)); do
    byte=$((16#${keyhex:i:2}))
    printf -v ipad '%s\\x%02x' "$ipad" $((byte ^ 0x36))
    printf -v opad '%s\\x%02x' "$opad" $((byte ^ 0x5c))
  done
  for ((i = 32; i < 64; i++)); do
    ipad+='\x36'
    opad+='\x5c'
  done
  # shellcheck disable=SC2059  # ipad/opad are \xHH formats built above, not data
  {
    printf "$opad"
    { printf "$ipad" && cat; } | openssl dgst -sha256 -binary
  } | openssl dgst -sha256 -binary | mt__bin_to_hex
}

# mt_encode_users UID...: prints the "users" JSON object (Rice-coded sorted unique uid gaps).
mt_encode_users() {
  local -
  set -o pipefail
  local uid
  for uid in "$@"; do
    if ! [[ $uid =~ ^[0-9]{1,10}$ ]] || ((uid > 4294967295)); then
      MT_ERROR="uid '$uid' is not a number in 0..4294967295; pass numeric uids"
      return 1
    fi
  done
  if (($# == 0)); then
    MT_ERROR="the user list is empty; name at least one user"
    return 1
  fi
  local sorted
  sorted=$(printf '%s\n' "$@" | sort -n -u) || return 1
  # shellcheck disable=SC2086  # intended: one positional parameter per uid (digits only)
  set -- $sorted
  local n=$# first=$1 last="${*: -1}" k=0 mean gap q bits="" nbits=0 ones fmt="" i
  if ((n > 100000)); then
    MT_ERROR="$n users is more than the 100000 a share may list; share with a group instead"
    return 1
  fi
  if ((n > 1)); then
    mean=$(((last - first - (n - 1)) / (n - 1)))
    while ((mean > 1 && k < 24)); do
      mean=$((mean >> 1))
      k=$((k + 1))
    done
  fi
  local prev=$first
  shift
  for uid in "$@"; do
    gap=$((uid - prev - 1))
    prev=$uid
    q=$((gap >> k))
    printf -v ones '%*s' "$q" ''
    bits+="${ones// /1}0"
    nbits=$((nbits + q + 1))
    for ((i = k - 1; i >= 0; i--)); do
      bits+=$(((gap >> i) & 1))
    done
    nbits=$((nbits + k))
  done
  while ((nbits % 8)); do
    bits+=0
    nbits=$((nbits + 1))
  done
  for ((i = 0; i < nbits; i += 8)); do
    printf -v fmt '%s\\x%02x' "$fmt" "$((2#${bits:i:8}))"
  done
  local b64
  # shellcheck disable=SC2059  # fmt is the \xHH escape string built above
  b64=$(printf "$fmt" | base64 -w0) || return 1
  printf '{"n":%d,"first":%d,"k":%d,"bits":"%s"}' "$n" "$first" "$k" "$b64"
}

# mt_encode_token AUD KV KEYHEX JOBID OWNER PLAINTEXT_FILE: prints the token.
mt_encode_token() {
  mt__no_xtrace mt__encode_token gzip "$@"
}
# mt_seal_gzipped AUD KV KEYHEX JOBID OWNER GZIP_FILE: the token of an already gzipped
# plaintext (what the shared vectors give: any valid gzip is allowed, docs/protocol.md).
mt_seal_gzipped() {
  mt__no_xtrace mt__encode_token cat "$@"
}
# mt__encode_token gzip|cat AUD KV KEYHEX JOBID OWNER FILE: gzip compresses FILE, cat takes it as is.
mt__encode_token() {
  local -
  set -o pipefail
  local -a compress=(gzip -n -9 -c)
  [[ $1 == cat ]] && compress=(cat)
  shift
  local aud="$1" kv="$2" keyhex="$3" jobid="$4" owner="$5" file="$6"
  local nonce_hex k_enc k_mac pass ct_hex tag_hex nonce_fmt ct_fmt blob
  if ! [[ $aud =~ ^~?[A-Za-z0-9_.][A-Za-z0-9_.@-]*$ ]] || [[ -n "${aud:257}" ]]; then
    MT_ERROR="audience '$aud' is not a group name or ~user; check --group"
    return 1
  fi
  if ! [[ $kv =~ ^[1-9][0-9]{0,8}$ ]]; then
    MT_ERROR="key version '$kv' is not a positive number; check the key dir's current file"
    return 1
  fi
  if [[ -z $jobid || -z $owner || $jobid == *$'\n'* || $owner == *$'\n'* ]]; then
    MT_ERROR="job id and owner must be non-empty single-line values; run inside a Slurm job"
    return 1
  fi
  if [[ ! -r $file ]]; then
    MT_ERROR="plaintext file $file is not readable"
    return 1
  fi
  nonce_hex=${MT_TEST_NONCE_HEX:-}
  if [[ -z $nonce_hex ]]; then
    nonce_hex=$(openssl rand -hex 16) || {
      MT_ERROR="openssl rand failed; check that openssl works on this node"
      return 1
    }
  fi
  if ! [[ $nonce_hex =~ ^[0-9a-f]{32}$ ]]; then
    MT_ERROR="nonce is not 32 hex characters (MT_TEST_NONCE_HEX is for tests only)"
    return 1
  fi
  k_enc=$(printf 'ood-mt/1 enc' | mt__hmac_sha256_hex "$keyhex") || return 1
  k_mac=$(printf 'ood-mt/1 mac' | mt__hmac_sha256_hex "$keyhex") || return 1
  nonce_fmt=$(mt__hex_fmt "$nonce_hex")
  # shellcheck disable=SC2059  # \xHH formats built by mt__hex_fmt
  pass=$(printf "$nonce_fmt" | mt__hmac_sha256_hex "$k_enc") || return 1
  if ! ct_hex=$("${compress[@]}" <"$file" |
    MT_ENC_PASS="$pass" openssl enc -aes-256-ctr -pbkdf2 -iter 1 -md sha256 -nosalt \
      -pass env:MT_ENC_PASS | mt__bin_to_hex); then
    MT_ERROR="gzip/openssl enc failed; check that gzip and openssl 1.1.1+ are installed on this node"
    return 1
  fi
  ct_fmt=$(mt__hex_fmt "$ct_hex")
  # shellcheck disable=SC2059  # \xHH formats built by mt__hex_fmt
  tag_hex=$({
    printf 'ood-mt/1\n%s\n%s\n%s\n%s\n' "$aud" "$kv" "$jobid" "$owner"
    printf "$nonce_fmt"
    printf "$ct_fmt"
  } | mt__hmac_sha256_hex "$k_mac") || return 1
  # shellcheck disable=SC2059  # \xHH formats built by mt__hex_fmt
  blob=$({
    printf "$nonce_fmt"
    printf "$ct_fmt"
    printf "$(mt__hex_fmt "${tag_hex:0:32}")"
  } | base64 -w0 | tr '+/' '-_' | tr -d '=') || return 1
  printf 'mt1:%s:%s:%s\n' "$aud" "$kv" "$blob"
}

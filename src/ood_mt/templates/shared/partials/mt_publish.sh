# shellcheck shell=bash
# ood-mt publishing flow: the step of a service job that puts its share into Slurm.
#
# Sourced by every multitenant service's after.sh on the compute node, once the
# service listens:   source "$PWD/mt_share.sh"; mt_publish --app ... --conn k=v ...
# (template/mt_share.sh is mt_codec.sh, the encoder this file uses, followed by this file.)
# Same rules as mt_codec.sh: no Jinja delimiters, keys never in argv or printed, xtrace off
# while keys are handled. Errors: mt_publish prints "<why>; <fix>" as one line to the job
# output and on the publisher's own card (mt_set_share_status).

MT_NAME_MAX=1023
MT_TOKEN_MAX=2042
MT_DEFAULT_KEY_DIR=/etc/ood-mt/keys

# mt_read_group_key KEYDIR GROUP: sets MT_KEY_HEX and MT_KEY_VERSION from the current key.
mt_read_group_key() {
  mt__no_xtrace mt__read_group_key "$@"
}
mt__read_group_key() {
  local key_dir="$1" group="$2" current=""
  local not_member="you are not in group $group or keys are not installed at $key_dir"
  if [[ -z $group || $group == */* || $group == . || $group == .. ]]; then
    MT_ERROR="'$group' is not a valid group name; choose one of your tenant groups"
    return 1
  fi
  if [[ ! -r "$key_dir/$group/current" ]]; then
    MT_ERROR="$not_member (cannot read $key_dir/$group/current); ask your admin to add you or run the ood_mt_keys role"
    return 1
  fi
  mt__key_file_value "$key_dir/$group/current" '[1-9][0-9]{0,8}' current
  if [[ -z $current ]]; then
    MT_ERROR="$key_dir/$group/current is malformed (expected a version number); re-run the ood_mt_keys role"
    return 1
  fi
  if [[ ! -r "$key_dir/$group/v$current.key" ]]; then
    MT_ERROR="$not_member (cannot read $key_dir/$group/v$current.key); ask your admin to add you or run the ood_mt_keys role"
    return 1
  fi
  # Receivers refuse a group whose previous key file is malformed (ood_mt.keys); so does this.
  local previous="$key_dir/$group/v$((current - 1)).key" previous_key=""
  if ((current > 1)) && [[ -e $previous ]]; then
    mt__key_file_value "$previous" '[0-9a-f]{64}' previous_key
    if [[ -z $previous_key ]]; then
      MT_ERROR="$previous is malformed (expected 64 hex characters); re-run the ood_mt_keys role"
      return 1
    fi
  fi
  mt__load_key "$key_dir/$group/v$current.key" "$current" "re-run the ood_mt_keys role"
}

# mt__key_file_value FILE PATTERN VAR: sets VAR to FILE's value when the whole file is PATTERN
# and at most one line end (\n, \r\n or \r), else to "": exactly what ood_mt.keys accepts
# (pinned by tests/vectors/key_files.json). Reads at most 100 bytes.
mt__key_file_value() {
  local text="" eol=$'(\n|\r\n|\r)?' length
  { IFS= read -r -d '' -n 100 text <"$1"; } 2>/dev/null || true
  # The size check catches what `read` cannot see: anything after a NUL byte.
  length=$(printf '%s' "$text" | wc -c)
  if [[ $text =~ ^($2)$eol$ ]] && [[ $(stat -L -c %s "$1" 2>/dev/null) == "$length" ]]; then
    printf -v "$3" '%s' "${BASH_REMATCH[1]}"
  else
    printf -v "$3" '%s' ""
  fi
}

# mt__load_key FILE VERSION FIX: sets MT_KEY_HEX from FILE (64 lowercase hex characters) and
# MT_KEY_VERSION to VERSION; otherwise MT_ERROR names FILE and ends with FIX.
mt__load_key() {
  local key=""
  mt__key_file_value "$1" '[0-9a-f]{64}' key
  if [[ -z $key ]]; then
    MT_ERROR="$1 is malformed (expected 64 hex characters); $3"
    return 1
  fi
  MT_KEY_HEX=$key
  MT_KEY_VERSION=$2
}

# mt_user_key: sets MT_KEY_HEX (and MT_KEY_VERSION=1) from ~/.ood-mt/user.key, creating it if missing.
mt_user_key() {
  mt__no_xtrace mt__user_key "$@"
}
mt__user_key() {
  local dir="${HOME:?}/.ood-mt" file tmp mode
  file="$dir/user.key"
  if [[ ! -d $dir ]]; then
    (umask 077 && mkdir -p "$dir") || {
      MT_ERROR="cannot create $dir; check that your home directory is writable"
      return 1
    }
  fi
  mode=$(stat -c '%a' "$dir") || return 1
  if [[ -L $dir || $((8#$mode & 8#077)) -ne 0 ]]; then
    MT_ERROR="$dir is accessible to others (mode $mode); run: chmod 700 $dir"
    return 1
  fi
  if [[ ! -e $file ]]; then
    tmp="$dir/.user.key.$$.$RANDOM"
    # The temp file is born 0600; `ln` fails if another process created the key first.
    (umask 077 && openssl rand -hex 32 >"$tmp") || {
      rm -f "$tmp"
      MT_ERROR="cannot write $tmp; check your home directory quota and openssl"
      return 1
    }
    ln "$tmp" "$file" 2>/dev/null || true
    rm -f "$tmp"
  fi
  mode=$(stat -c '%a' "$file" 2>/dev/null) || {
    MT_ERROR="cannot read $file; remove it to get a new key"
    return 1
  }
  if [[ -L $file || ! -f $file || $((8#$mode & 8#077)) -ne 0 ]]; then
    MT_ERROR="$file is accessible to others (mode $mode); delete it (shares made with it are exposed) to get a new one"
    return 1
  fi
  mt__load_key "$file" 1 "delete it to get a new key"
}

# mt_conn_param NAME VALUE: sets the shell variable NAME so that OOD's create_yml, which
# writes `echo -e "NAME: $NAME"` into connection.yml after after.sh returns, produces a
# YAML double-quoted string equal to VALUE: backslashes doubled for echo -e and again for
# YAML, double quotes escaped, control characters turned into spaces. NAME must be listed
# in the app's submit.yml.erb conn_params. Without this a value such as "not shared: x"
# would make connection.yml invalid YAML (and OOD's sessions page fail).
mt_conn_param() {
  local value="$2"
  value=${value//[[:cntrl:]]/ }
  value=${value//\\/\\\\\\\\}
  value=${value//\"/\\\"}
  printf -v "$1" '"%s"' "$value"
}

# mt_set_share_status TEXT: the sharing status line on the publisher's own card (the
# conn_param mt_share_status every service lists). The one writer of that line.
mt_set_share_status() {
  MT_SHARE_STATUS_TEXT=$1
  mt_conn_param mt_share_status "$1"
}

# mt__check_contract PLAINTEXT_FILE: the share contract's own checker, staged next to this
# file by `ood-mt build` (share_contract.py + share_contract.json), run on the plaintext so
# the publisher learns at once what receivers would refuse (and a secret sent to selected
# users, which only looks private). Prints the violation; returns 1.
# Without the checker (an app not built by ood-mt build) or python3, receivers still check.
mt__check_contract() {
  [[ -f ./share_contract.py && -f ./share_contract.json ]] || return 0
  command -v python3 >/dev/null 2>&1 || return 0
  { python3 ./share_contract.py "$1" >/dev/null; } 2>&1
}

mt__fail() {
  local why="$1"
  printf 'ood-mt: share not published: %s\n' "${why//$'\n'/ }" >&2
  mt_set_share_status "not shared: ${why//$'\n'/ }" || true
  return 1
}

# mt_publish --app APP --title TITLE --preset PRESET --mode card|form --delivery sys/APP
#            --audience none|user|group|users [--group G] [--users "u1,u2"] [--key-dir DIR]
#            --conn key=value [--conn key=value ...] [--created EPOCH]
# Encrypts the share and puts it in this job's name (and comment). Never cancels the job.
# --created: the publication's `created` (default: now). The share agent passes the current
# publication's to keep it (a status update), so a receiver's hide still applies; a new
# audience gets a new one. Sets MT_PUBLISHED_CREATED on success.
mt_publish() {
  mt__no_xtrace mt__publish "$@"
}
mt__publish() {
  local -
  set -o pipefail
  local app="" title="" preset="" mode="" delivery="" audience="" group="" users=""
  local key_dir=$MT_DEFAULT_KEY_DIR conn_json="" conn_keys="," arg key value created=""
  MT_ERROR=""
  while (($#)); do
    arg=$1
    if [[ $arg != --* ]]; then
      mt__fail "unexpected argument '$arg'; see the mt_publish usage in mt_share.sh"
      return 1
    fi
    if (($# < 2)); then
      mt__fail "option $arg needs a value; see the mt_publish usage in mt_share.sh"
      return 1
    fi
    value=$2
    shift 2
    case $arg in
    --app) app=$value ;;
    --title) title=$value ;;
    --preset) preset=$value ;;
    --mode) mode=$value ;;
    --delivery) delivery=$value ;;
    --audience) audience=$value ;;
    --group) group=$value ;;
    --users) users=$value ;;
    --key-dir) key_dir=$value ;;
    --created)
      if ! [[ $value =~ ^[1-9][0-9]{9}$ ]]; then
        mt__fail "--created '$value' is not a time in seconds since 1970 (10 digits); fix the caller"
        return 1
      fi
      created=$value
      ;;
    --conn)
      key=${value%%=*}
      if [[ $value != *=* ]] || ! [[ $key =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
        mt__fail "--conn '$key' is not key=value with a key of letters, digits and _; fix the service template"
        return 1
      fi
      if [[ $conn_keys == *",$key,"* ]]; then
        mt__fail "--conn $key given twice; pass each connection key once"
        return 1
      fi
      conn_keys+="$key,"
      conn_json+="${conn_json:+,}$(mt_json_string "$key"):$(mt_json_string "${value#*=}")"
      ;;
    *)
      mt__fail "unknown option $arg; see the mt_publish usage in mt_share.sh"
      return 1
      ;;
    esac
  done
  [[ -n $app ]] || { mt__fail "--app is missing; fix the service template"; return 1; }
  [[ $mode == card || $mode == form ]] || {
    mt__fail "--mode '$mode' is not card or form; pick one in the form"
    return 1
  }
  [[ $delivery == sys/?* ]] || {
    mt__fail "--delivery '$delivery' is not sys/<app>; fix the service template"
    return 1
  }
  case $audience in
  none)
    mt_set_share_status "not shared"
    return 0
    ;;
  user | group | users) ;;
  *)
    mt__fail "--audience '$audience' is not none, user, group or users; pick one in the form"
    return 1
    ;;
  esac
  if [[ -z ${SLURM_JOB_ID:-} ]]; then
    mt__fail "SLURM_JOB_ID is not set; mt_publish runs inside a Slurm job (after.sh)"
    return 1
  fi
  local owner aud status users_json="" n_users=0
  owner=$(id -un) || { mt__fail "cannot find your user name (id -un failed)"; return 1; }
  if [[ $audience == user ]]; then
    mt__user_key || { mt__fail "$MT_ERROR"; return 1; }
    aud="~$owner"
    status="shared with you only"
  else
    if [[ -z $group ]]; then
      mt__fail "--group is missing for audience $audience; choose a tenant group in the form"
      return 1
    fi
    mt__read_group_key "$key_dir" "$group" || { mt__fail "$MT_ERROR"; return 1; }
    aud=$group
    status="shared with group $group"
  fi
  if [[ $audience == users ]]; then
    local -a names=() uids=()
    local name found line uid
    IFS=', ' read -r -a names <<<"$users"
    if [[ -z ${names[0]:-} ]]; then
      mt__fail "no users listed; enter user names separated by commas"
      return 1
    fi
    for name in "${names[@]}"; do
      if ! [[ $name =~ ^[A-Za-z0-9_.][A-Za-z0-9_.@-]*$ ]]; then
        mt__fail "'$name' is not a valid user name; enter user names separated by commas"
        return 1
      fi
    done
    # One getent call for the whole list; its exit status only says "some were missing".
    found=$(getent passwd "${names[@]}") || true
    local -A uid_of=()
    while IFS=: read -r line _ uid _; do
      [[ -n $line ]] && uid_of[$line]=$uid
    done <<<"$found"
    local unknown=""
    for name in "${names[@]}"; do
      if [[ -n ${uid_of[$name]:-} ]]; then
        uids+=("${uid_of[$name]}")
      else
        unknown+="${unknown:+, }$name"
      fi
    done
    if [[ -n $unknown ]]; then
      mt__fail "unknown user(s): $unknown; check the spelling of the user names"
      return 1
    fi
    users_json=$(mt_encode_users "${uids[@]}") || { mt__fail "$MT_ERROR"; return 1; }
    n_users=$(printf '%s\n' "${uids[@]}" | sort -u | wc -l)
    status="shared with $n_users listed users of group $group"
  fi
  local work plaintext token name comment="" session out size
  [[ -n $created ]] || created=$(date +%s)
  session=$(basename "$PWD")
  work=$(umask 077 && mktemp -d "${TMPDIR:-/tmp}/ood-mt.XXXXXX") || {
    mt__fail "cannot create a private temp dir in ${TMPDIR:-/tmp}; check TMPDIR"
    return 1
  }
  plaintext="$work/plain.json"
  (
    umask 077
    printf '{"v":1,"app":%s,"title":%s,"preset":%s,"mode":%s,"delivery":%s,"session":%s,"created":%d,"conn":%s' \
      "$(mt_json_string "$app")" "$(mt_json_string "$title")" "$(mt_json_string "$preset")" \
      "$(mt_json_string "$mode")" "$(mt_json_string "$delivery")" "$(mt_json_string "$session")" \
      "$created" "{$conn_json}" >"$plaintext"
    if [[ -n $users_json ]]; then
      printf ',"users":%s' "$users_json" >>"$plaintext"
    fi
    printf '}' >>"$plaintext"
  ) || {
    rm -rf "$work"
    mt__fail "cannot write the share in $work; check TMPDIR"
    return 1
  }
  local broken
  if ! broken=$(mt__check_contract "$plaintext"); then
    rm -rf "$work"
    unset MT_KEY_HEX
    mt__fail "the share contract refuses this share ($broken); fix that value or the audience in the form or the service template"
    return 1
  fi
  if ! mt__encode_token gzip "$aud" "$MT_KEY_VERSION" "$MT_KEY_HEX" "$SLURM_JOB_ID" "$owner" "$plaintext" \
    >"$work/token"; then
    rm -rf "$work"
    unset MT_KEY_HEX
    mt__fail "${MT_ERROR:-encoding failed}"
    return 1
  fi
  unset MT_KEY_HEX
  token=$(<"$work/token")
  rm -rf "$work"
  if [[ -n ${token:MT_TOKEN_MAX} ]]; then
    size=$(printf '%s' "$token" | wc -c)
    mt__fail "the share is $size characters, Slurm's JobName + Comment hold $MT_TOKEN_MAX; shorten the title or connection values, or share with a group instead of a user list"
    return 1
  fi
  name=${token:0:MT_NAME_MAX}
  if [[ -n ${token:MT_NAME_MAX} ]]; then
    comment="mt1c:${token:MT_NAME_MAX}"
  fi
  local -a update=(update "JobId=$SLURM_JOB_ID" "JobName=$name")
  if [[ -n $comment ]]; then
    update+=("Comment=$comment")
  fi
  if ! out=$(scontrol "${update[@]}" 2>&1); then
    mt__fail "scontrol update failed: ${out:-no output}; check that slurmctld is reachable, then restart the session"
    return 1
  fi
  MT_PUBLISHED_CREATED=$created
  mt_set_share_status "$status"
}

# ---------------------------------------------------------------------------------------------
# The share agent (docs/architecture.md "Share agent"): a loop in the job, a child of the batch
# shell, that owns the share once it is published. Requests reach it as a file
# $PWD/mt_agent/request in the session directory (0700, the publisher's; the directory itself
# is 0700 too): only the publisher's own processes can write there (`ood-mt share` and
# `ood-mt unshare` do). The answer is $PWD/mt_agent/reply, one line. The share's current
# settings are $PWD/mt_agent/share (written by the agent only, read by mt_service_publish).
#
# A request (and the settings file) is at most 1024 bytes of `key=value` lines, each key once,
# from a fixed list, each value matching its pattern (mt__agent_pattern); anything else is
# refused and nothing changes. ood_mt.publisher_cli checks the same rule before sending;
# tests/vectors/agent_requests.json pins both.
#   request=unshare                   stop sharing (no other key)
#   request=share                     with one or more of:
#     audience=user|group|users  group=G  users=u1,u2  preset=P
#     until=<epoch seconds>|never     status=<text, may be empty>
MT_AGENT_MAX_BYTES=1024

# mt__agent_pattern KEY: sets REPLY to KEY's value pattern (whole value); 1 for an unknown key.
mt__agent_pattern() {
  case $1 in
  request) REPLY='share|unshare' ;;
  audience) REPLY='user|group|users' ;;
  group) REPLY='[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}' ;;
  users) REPLY='[A-Za-z0-9_.][A-Za-z0-9_.@-]{0,31}(,[A-Za-z0-9_.][A-Za-z0-9_.@-]{0,31}){0,49}' ;;
  preset) REPLY='[a-z0-9_-]{1,32}' ;;
  until) REPLY='never|[1-9][0-9]{9}' ;;
  status) REPLY="[A-Za-z0-9 .,:;!?()_/+@#%&'-]{0,200}" ;;
  created) REPLY='[1-9][0-9]{9}' ;;
  *) return 1 ;;
  esac
}

# mt__agent_parse FILE request|state: fills the global associative array MT_REQ from FILE, or
# returns 1 with MT_ERROR (one line). `request` files need request= and its rules; `state`
# files (the agent's own settings) hold no request= but may hold created=.
mt__agent_parse() {
  local LC_ALL=C file=$1 kind=$2 text="" size length line key value allowed n_keys=0
  unset MT_REQ
  declare -gA MT_REQ=()
  MT_ERROR=""
  if [[ $kind == request ]]; then
    allowed=" request audience group users preset until status "
  else
    allowed=" audience group users preset until status created "
  fi
  size=$(stat -c %s -- "$file" 2>/dev/null) || { MT_ERROR="cannot read the request"; return 1; }
  if ((size > MT_AGENT_MAX_BYTES)); then
    MT_ERROR="the request has $size bytes, at most $MT_AGENT_MAX_BYTES"
    return 1
  fi
  { IFS= read -r -d '' text <"$file"; } 2>/dev/null || true
  # Byte count with wc, not the length expansion: this file is included in Jinja templates,
  # where a brace followed by a hash opens a comment.
  length=$(printf '%s' "$text" | wc -c)
  if ((length != size)); then
    MT_ERROR="the request holds a NUL byte or is not plain text"
    return 1
  fi
  text=${text%$'\n'}
  if [[ -z $text ]]; then
    MT_ERROR="the request is empty"
    return 1
  fi
  while IFS= read -r line; do
    if ! [[ $line =~ ^([a-z]+)=(.*)$ ]]; then
      MT_ERROR="line ${line@Q} is not key=value"
      return 1
    fi
    key=${BASH_REMATCH[1]}
    value=${BASH_REMATCH[2]}
    if [[ $allowed != *" $key "* ]]; then
      MT_ERROR="unknown key ${key@Q}; keys:${allowed% }"
      return 1
    fi
    if [[ -n ${MT_REQ[$key]+set} ]]; then
      MT_ERROR="key $key given twice"
      return 1
    fi
    mt__agent_pattern "$key"
    if ! [[ $value =~ ^($REPLY)$ ]]; then
      MT_ERROR="$key: ${value@Q} does not match $REPLY"
      return 1
    fi
    MT_REQ[$key]=$value
    n_keys=$((n_keys + 1))
  done <<<"$text"
  [[ $kind == request ]] || return 0
  case ${MT_REQ[request]:-} in
  "") MT_ERROR="request= is missing (share or unshare)" ;;
  unshare) ((n_keys == 1)) || MT_ERROR="unshare takes no other key" ;;
  share)
    if ((n_keys == 1)); then
      MT_ERROR="share needs at least one of audience, group, users, preset, until, status"
    elif [[ -n ${MT_REQ[users]:-} && ${MT_REQ[audience]:-} != users ]]; then
      MT_ERROR="users= goes with audience=users only"
    elif [[ ${MT_REQ[audience]:-} == users && -z ${MT_REQ[users]:-} ]]; then
      MT_ERROR="audience=users needs users="
    elif [[ ${MT_REQ[audience]:-} == user && -n ${MT_REQ[group]:-} ]]; then
      MT_ERROR="group= does not go with audience=user"
    elif [[ -n ${MT_REQ[group]:-} && -z ${MT_REQ[audience]:-} ]]; then
      MT_ERROR="group= needs audience=group or audience=users"
    fi
    ;;
  esac
  [[ -z $MT_ERROR ]]
}

# mt_until_epoch TEXT NOW: sets MT_UNTIL_EPOCH to the epoch seconds TEXT names, or returns 1
# with MT_ERROR (no command substitution, so MT_ERROR reaches the caller).
# TEXT: a duration N followed by m, h or d (N of 1-9999), or a local time "YYYY-MM-DD HH:MM",
# and it must be after NOW. The same rule as ood_mt.publisher_cli.until_epoch (pinned by
# tests/vectors/agent_until.json). For the form's "Share until" field.
mt_until_epoch() {
  local LC_ALL=C text=$1 now=$2 epoch
  if [[ $text =~ ^([1-9][0-9]{0,3})([mhd])$ ]]; then
    case ${BASH_REMATCH[2]} in
    m) epoch=$((now + BASH_REMATCH[1] * 60)) ;;
    h) epoch=$((now + BASH_REMATCH[1] * 3600)) ;;
    d) epoch=$((now + BASH_REMATCH[1] * 86400)) ;;
    esac
  elif [[ $text =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}\ [0-9]{2}:[0-9]{2}$ ]] &&
    epoch=$(date -d "$text" +%s 2>/dev/null) && [[ $(date -d "@$epoch" '+%F %R') == "$text" ]]; then
    :
  else
    MT_ERROR="${text@Q} is neither a duration (30m, 2h, 7d) nor a time YYYY-MM-DD HH:MM"
    return 1
  fi
  if ((epoch <= now)); then
    MT_ERROR="${text@Q} is not in the future"
    return 1
  fi
  # shellcheck disable=SC2034 # the result, read by the caller (mt_service_publish)
  MT_UNTIL_EPOCH=$epoch
}

# mt__agent_write_state NAME: writes the associative array NAME as the settings file.
mt__agent_write_state() {
  local -n mt_state=$1
  local key text=""
  for key in audience group users preset until status created; do
    [[ -z ${mt_state[$key]:-} ]] || text+="$key=${mt_state[$key]}"$'\n'
  done
  printf '%s' "$text" >"$MT_AGENT_DIR/.share.tmp" && mv -f -- "$MT_AGENT_DIR/.share.tmp" "$MT_AGENT_DIR/share"
}

# mt_agent_start: once per job, after the first successful publication. Never fails the job.
# Records the first publication's settings (and the form's expiry, MT_SHARE_UNTIL_EPOCH).
# shellcheck disable=SC2034 # `first` is read through a name reference (mt__agent_write_state)
mt_agent_start() {
  [[ -z ${MT_AGENT_PID:-} ]] || return 0
  MT_AGENT_DIR="${PWD}/mt_agent"
  rm -rf -- "$MT_AGENT_DIR"
  if ! (umask 077 && mkdir -- "$MT_AGENT_DIR"); then
    echo "ood-mt: cannot create $MT_AGENT_DIR; \`ood-mt share\` and \`ood-mt unshare\` will not reach this job" >&2
    return 0
  fi
  local -A first=([audience]=$MT_SHARE_AUDIENCE [preset]=$MT_SHARE_PRESET [created]=${MT_PUBLISHED_CREATED:-}
    [until]=${MT_SHARE_UNTIL_EPOCH:-})
  [[ $MT_SHARE_AUDIENCE == user ]] || first[group]=$MT_SHARE_GROUP
  [[ $MT_SHARE_AUDIENCE != users ]] || first[users]=${MT_SHARE_USERS//[[:space:]]/}
  (umask 077 && mt__agent_write_state first)
  MT_AGENT_UNTIL=${MT_SHARE_UNTIL_EPOCH:-}
  MT_AGENT_BATCH_PID=$$
  mt__agent_loop </dev/null &
  MT_AGENT_PID=$!
  echo "ood-mt: share agent listening in $MT_AGENT_DIR (ood-mt share/unshare $SLURM_JOB_ID)"
}

# mt_agent_unshared: 0 when the share is ended (unshare, expiry) and not shared again.
mt_agent_unshared() {
  [[ -n ${MT_AGENT_DIR:-} && -e "$MT_AGENT_DIR/unshared" ]]
}

# mt_agent_settings: sets MT_REQ from the settings file; 1 when there is none (or it is damaged).
mt_agent_settings() {
  [[ -n ${MT_AGENT_DIR:-} && -f "$MT_AGENT_DIR/share" ]] && mt__agent_parse "$MT_AGENT_DIR/share" state
}

mt__agent_loop() {
  trap - USR1 TERM INT
  MT_AGENT_PID=$BASHPID
  local now
  while kill -0 "$MT_AGENT_BATCH_PID" 2>/dev/null; do
    [[ ! -e "$MT_AGENT_DIR/request" && ! -L "$MT_AGENT_DIR/request" ]] || mt__agent_handle
    printf -v now '%(%s)T' -1
    if [[ -n ${MT_AGENT_UNTIL:-} ]] && ((now >= MT_AGENT_UNTIL)) && ! mt_agent_unshared; then
      mt__agent_unshare "the share expired at $(date -d "@$MT_AGENT_UNTIL" '+%F %T')"
    fi
    sleep 1
  done
}

mt__agent_reply() {
  echo "ood-mt: share agent: $1"
  [[ ${MT_AGENT_QUIET:-} != quiet ]] || return 0
  printf '%s\n' "$1" >"$MT_AGENT_DIR/.reply.tmp" && mv -f -- "$MT_AGENT_DIR/.reply.tmp" "$MT_AGENT_DIR/reply"
}

mt__agent_handle() {
  local file="$MT_AGENT_DIR/request"
  if [[ -L $file || ! -f $file || $(stat -c %u -- "$file") != "$(id -u)" ]]; then
    rm -f -- "$file"
    mt__agent_reply "refused: the request is not a plain file of yours; write it with \`ood-mt share\` or \`ood-mt unshare\`"
    return 0
  fi
  if ! mt__agent_parse "$file" request; then
    rm -f -- "$file"
    mt__agent_reply "refused: ${MT_ERROR//$'\n'/ }; nothing was changed"
    return 0
  fi
  rm -f -- "$file"
  case ${MT_REQ[request]} in
  unshare) mt__agent_unshare "you unshared it" ;;
  share) mt__agent_share ;;
  esac
}

# mt__agent_rotate: new credentials, so holders of the current ones lose access: a new gate
# secret (the gate re-reads it on SIGHUP; the old one is refused at once) and, for a database,
# a new password (mt_db_rotate in the batch shell, which then publishes again if shared).
# Appends what happened to the caller's `outcome`.
mt__agent_rotate() {
  local out
  if [[ -n ${MT_GATE_DIR:-} && -s "$MT_GATE_DIR/gate.pid" ]]; then
    if rm -f -- "$MT_GATE_DIR/secret" &&
      out=$("${MT_GATE_PYTHON}" -m ood_mt.gate --write-secret "$MT_GATE_DIR/secret" 2>&1) &&
      kill -HUP "$(<"$MT_GATE_DIR/gate.pid")" 2>/dev/null; then
      mt_conn_param mt_gate_secret "$(mt_gate_secret)"
      outcome+="; the gate's secret was rotated (the old one is refused)"
    else
      outcome+="; the gate's secret could NOT be rotated (${out//$'\n'/ }): stop the session to cut off former receivers"
    fi
  fi
  if declare -F mt_db_rotate >/dev/null; then
    kill -USR1 "$MT_AGENT_BATCH_PID" 2>/dev/null || true
    outcome+="; the database password is being changed (see mt_db_rotate.status)"
  fi
}

# mt__agent_unshare WHY [quiet]: stop sharing, keep the service: a name that is not a share,
# new credentials (mt__agent_rotate), the publisher's card says WHY ("you unshared it", expiry).
# Replies unless told quiet.
mt__agent_unshare() {
  local out outcome at MT_AGENT_QUIET=${2:-}
  if mt_agent_unshared; then
    mt__agent_reply "already unshared: $(<"$MT_AGENT_DIR/unshared")"
    return 0
  fi
  at=$(date '+%F %T')
  printf '%s at %s\n' "$1" "$at" >"$MT_AGENT_DIR/unshared"
  if ! out=$(scontrol update "JobId=$SLURM_JOB_ID" "JobName=mt-unshared" "Comment=" 2>&1); then
    rm -f -- "$MT_AGENT_DIR/unshared"
    mt__agent_reply "failed: scontrol update failed: ${out:-no output}; the share is still published, try again"
    return 0
  fi
  MT_AGENT_UNTIL=""
  outcome="the job's name is no longer a share (receivers' cards and form entries go at their next refresh)"
  mt__agent_rotate
  mt_set_share_status "not shared: $1 at $at; the service keeps running"
  ! declare -F create_yml >/dev/null || create_yml >/dev/null 2>&1 || true
  mt__agent_reply "unshared at $at ($1): $outcome"
}

# mt__agent_republish: publish again with the current settings (mt_service_publish reads them):
# the service's own publishing function when it names one in MT_REPUBLISH (the database:
# mt_db_publish reads the current password), else the first publication's arguments with the
# gate's current secret. Sets MT_PUBLISH_OK.
mt__agent_republish() {
  if [[ -n ${MT_REPUBLISH:-} ]]; then
    "$MT_REPUBLISH"
    return 0
  fi
  local -a args=()
  local arg
  for arg in "${MT_PUBLISH_ARGS[@]}"; do
    [[ $arg != gate_secret=* ]] || arg="gate_secret=$(mt_gate_secret)"
    args+=("$arg")
  done
  mt_service_publish "${args[@]}"
}

# mt__agent_share: apply a share request (MT_REQ). A new audience (or sharing again after
# unshare/expiry) rotates the credentials FIRST and is a new publication (new `created`, so a
# receiver's earlier hide does not apply); a preset or status change keeps `created`; an expiry
# alone publishes nothing.
mt__agent_share() {
  local -A req=() cur=() new=()
  local key now outcome="" changed=0 was_unshared=0 out
  for key in "${!MT_REQ[@]}"; do req[$key]=${MT_REQ[$key]}; done
  if ! mt_agent_settings; then
    mt__agent_reply "failed: $MT_AGENT_DIR/share is missing or damaged (${MT_ERROR:-missing}); nothing was changed. Fix: stop the session and start it again"
    return 0
  fi
  for key in "${!MT_REQ[@]}"; do cur[$key]=${MT_REQ[$key]}; new[$key]=${MT_REQ[$key]}; done
  printf -v now '%(%s)T' -1
  if mt_agent_unshared; then
    was_unshared=1
    if [[ -z ${req[audience]:-} ]]; then
      mt__agent_reply "refused: this job is unshared; give --audience to share it again; nothing was changed"
      return 0
    fi
    unset 'new[until]'
  fi
  if [[ -n ${req[audience]:-} ]]; then
    new[audience]=${req[audience]}
    case ${req[audience]} in
    user) unset 'new[group]' 'new[users]' ;;
    group) unset 'new[users]' ;;
    esac
    [[ -z ${req[group]:-} ]] || new[group]=${req[group]}
    [[ -z ${req[users]:-} ]] || new[users]=${req[users]}
    if [[ ${new[audience]} != user && -z ${new[group]:-} ]]; then
      mt__agent_reply "refused: audience ${new[audience]} needs a group (--group); nothing was changed"
      return 0
    fi
  fi
  [[ -z ${req[preset]:-} ]] || new[preset]=${req[preset]}
  [[ -z ${req[status]+set} ]] || new[status]=${req[status]}
  if [[ -n ${req[until]:-} ]]; then
    if [[ ${req[until]} == never ]]; then
      unset 'new[until]'
    elif ((req[until] <= now)); then
      mt__agent_reply "refused: until $(date -d "@${req[until]}" '+%F %T') is not in the future; nothing was changed"
      return 0
    else
      new[until]=${req[until]}
    fi
  fi
  if ((was_unshared)) || [[ ${new[audience]:-} != "${cur[audience]:-}" || ${new[group]:-} != "${cur[group]:-}" ||
    ${new[users]:-} != "${cur[users]:-}" ]]; then
    changed=1
    new[created]=$now
    ((now > ${cur[created]:-0})) || new[created]=$((cur[created] + 1))
  fi
  mt__agent_write_state new
  MT_AGENT_UNTIL=${new[until]:-}
  if ((changed)); then
    rm -f -- "$MT_AGENT_DIR/unshared"
    outcome=""
    mt__agent_rotate
    if declare -F mt_db_rotate >/dev/null; then
      # The batch shell publishes for the new audience once the new password is set.
      mt__agent_reply "sharing again with ${new[audience]} ${new[group]:-}${new[users]:+ (${new[users]})} as a new publication$outcome; then the share is published (your card says so)"
      return 0
    fi
  elif [[ -z ${req[preset]:-} && -z ${req[status]+set} ]]; then
    mt_service_status "$MT_SHARE_BASE_STATUS"
    ! declare -F create_yml >/dev/null || create_yml >/dev/null 2>&1 || true
    mt__agent_reply "${new[until]:+expires at $(date -d "@${new[until]}" '+%F %T')}${new[until]:-no expiry}: $MT_SHARE_STATUS_TEXT"
    return 0
  fi
  mt__agent_republish
  if [[ ${MT_PUBLISH_OK:-0} != 1 ]]; then
    out=$MT_SHARE_STATUS_TEXT
    if ((changed)); then
      # The credentials changed already: end the old publication rather than leave it dangling.
      mt__agent_unshare "sharing with the new audience failed" quiet
      mt__agent_reply "failed: $out; the earlier publication was ended (the share is unshared)$outcome"
    else
      ! declare -F create_yml >/dev/null || create_yml >/dev/null 2>&1 || true
      mt__agent_reply "failed: $out; the earlier publication stays as it was"
    fi
    return 0
  fi
  ! declare -F create_yml >/dev/null || create_yml >/dev/null 2>&1 || true
  mt__agent_reply "shared: $MT_SHARE_STATUS_TEXT$( ((changed)) && printf '%s' "; a new publication$outcome")"
}

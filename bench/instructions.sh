#!/usr/bin/env bash
# Instructions per call, by callgrind: two runs of N and 2N calls, so that
# start-up cancels out. First the module's own code on a canned answer
# (bench/own_code.lua, no network), then the decode of a 1000-entry list
# page (bench/decode_page.lua), then a whole update through libcurl
# against the emulator (bench/module_bench.lua; the emulator's own work is
# in its own process and not counted).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${N:-2000}
lua=${LUA:-lua5.4}
export LUA_PATH='./lua/?.lua;./?.lua;;' LUA_CPATH="${LUA_CPATH:-./build/lua5.4/?.so;;}"
refs() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$lua" "$@" 2>&1 | sed -n 's/.*refs: *//p' | tr -d ,
}
a=$(refs bench/own_code.lua "$n")
b=$(refs bench/own_code.lua $((2 * n)))
echo "own code: $(( (b - a) / n )) instructions per update (validation, body, policy, decode of a 420-byte answer; callgrind, $n vs $((2 * n)) calls)"

a=$(refs bench/decode_page.lua 5)
b=$(refs bench/decode_page.lua 10)
echo "list page: $(( (b - a) / 5 )) instructions to check and decode one 1000-entry page (callgrind, 5 vs 10 pages)"

# the emulator, seeded with the entry the bench updates; gone when this script is
url_file=$(mktemp)
URL_FILE="$url_file" "$lua" -e '
  local emu = require("spec.support.emulator_process").start({ token = "bench-token", idle_exit = 120, outlive = true })
  emu.seed("023e105f4ecef8ad9ca31a8372d0c353", { { id = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415", name = "A",
    email = "a@example.com", is_email_regex = false } })
  local f = assert(io.open(os.getenv("URL_FILE"), "w")); f:write(emu.base_url, " ", emu.pid, "\n"); f:close()'
read -r url pid < "$url_file"
rm -f "$url_file"
trap 'kill "$pid" 2>/dev/null || true' EXIT
m=$((n / 4))
a=$(refs bench/module_bench.lua update "$url" "$m")
b=$(refs bench/module_bench.lua update "$url" $((2 * m)))
echo "whole update: $(( (b - a) / m )) instructions per call (the module and libcurl, HTTP/1.1 to the emulator on loopback; callgrind, $m vs $((2 * m)) calls)"

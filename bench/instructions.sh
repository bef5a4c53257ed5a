#!/usr/bin/env bash
# Instructions per call of the module's own code (bench/own_code.lua), by
# callgrind: two runs of N and 2N calls, so start-up cancels out.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${N:-2000}
lua=${LUA:-lua5.4}
export LUA_PATH='./lua/?.lua;./?.lua;;' LUA_CPATH="${LUA_CPATH:-./build/lua5.4/?.so;;}"
count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$lua" bench/own_code.lua "$1" 2>&1 |
    sed -n 's/.*refs: *//p' | tr -d ,
}
a=$(count "$n")
b=$(count $((2 * n)))
echo "own code: $(( (b - a) / n )) instructions per update (validation, body, policy, decode of a 420-byte answer; callgrind, $n vs $((2 * n)) calls)"

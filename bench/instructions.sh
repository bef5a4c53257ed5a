#!/usr/bin/env bash
# Instructions per call of the module and of the floor, by callgrind: see
# bench/instructions.lua.
set -euo pipefail
cd "$(dirname "$0")/.."
export LUA_PATH='./lua/?.lua;./?.lua;;' LUA_CPATH="${LUA_CPATH:-./build/lua5.4/?.so;;}"
exec "${LUA:-lua5.4}" bench/instructions.lua

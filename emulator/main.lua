#!/usr/bin/env lua5.4
-- A stateful emulator of Cloudflare's Email Security settings API, all eight
-- resources of it: a real HTTP/1.1 server on 127.0.0.1 for the specs, the
-- demo, the examples, the benchmarks, CI, and trying the client by hand
-- (`make emulator`). The client under test blocks inside libcurl, so this
-- runs as its own process; process.lua starts and stops it from Lua.
--
--   lua5.4 emulator/main.lua [--host 127.0.0.1] [--port 8787] [--port-file F]
--       [--token T] [--email E --key K] [--idle-exit SECONDS] [--max-log N] [--verbose]
--       [--latency READ_MS[,WRITE_MS]]  (every API request waits that long: GET, the
--                        other methods; one value is both; 0..60000; a reset keeps it)
--       [--banner]       (says how to point a client at it; make emulator)
--       [--parent PID]   (exits when that process is gone)
--
-- It is an oracle for the module, so it shares only data with it: each
-- resource's routes, bodies, entities and list parameters come from the
-- generated descriptions in lua/cloudflare/email_security/resources/, but
-- the checks of a request body are its own (checks.lua), never the
-- module's schema/ code. A mistake in the module's checks then meets an
-- independent check on the other side of the wire, instead of passing on
-- both sides and in every spec.
--
-- One file per job, each loaded as emulator.<name>:
--   main.lua       this command line
--   server.lua     the listening socket, one coroutine per connection, the scheduler
--   http.lua       HTTP/1.1 on the wire: requests in, replies out, the query string
--   api.lua        the API under /client/v4: routes, credentials, operations
--   lists.lua      a list's pages, search, order and filters
--   store.lua      entries per resource per account, the request log, server-made fields
--   checks.lua     its own checks of a body against a schema node
--   resources.lua  the descriptions, and what they cannot say (nouns, rules)
--   answers.lua    Cloudflare's success and error envelopes
--   faults.lua     injected faults: what each kind does, and when
--   latency.lua    the standing latency of every API request (--latency)
--   in_flight.lua  how many API requests are in flight at once, now and at most
--   control.lua    /__emulator/{reset,seed,state,requests,faults,latency,in_flight,shutdown}
--   json.lua       JSON that keeps empty lists and integers as they are
--   log.lua        --verbose lines on stderr
--   process.lua    (not loaded here) starts one from any Lua and drives its control routes
-- Its specs are in emulator/spec/.

-- The emulator's own files, found from this file's path, whatever the
-- current directory and whatever LUA_PATH says.
local HERE = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
package.path = HERE .. "../?.lua;" .. package.path

local USAGE = "usage: lua5.4 emulator/main.lua [--host 127.0.0.1] [--port N] [--port-file FILE] [--token T]"
  .. " [--email E --key K] [--idle-exit SECONDS] [--max-log N] [--latency READ_MS[,WRITE_MS]] [--verbose]"
  .. " [--banner] [--parent PID]"

local function die(message)
  io.stderr:write("emulator: ", message, "\n", USAGE, "\n")
  os.exit(2)
end

-- The kind of each option's value; "flag" takes none.
local OPTION_KINDS = { host = "string", port = "number", port_file = "string", token = "string",
                       email = "string", key = "string", idle_exit = "number", max_log = "number",
                       verbose = "flag", help = "flag", banner = "flag", parent = "number",
                       latency = "string" }

local opts = { host = "127.0.0.1", port = 8787, token = "test-token", email = "user@example.com",
               key = "test-key", idle_exit = 300, max_log = 20000 }
do
  local i = 1
  while i <= #arg do
    local name = arg[i]:match("^%-%-([%w%-]+)$")
    name = name and name:gsub("%-", "_")
    local kind = name and OPTION_KINDS[name]
    if not kind then die("unknown argument " .. arg[i]) end
    if kind == "flag" then
      opts[name] = true
      i = i + 1
    else
      local value = arg[i + 1]
      if value == nil then die("--" .. arg[i]:sub(3) .. " needs a value") end
      if kind == "number" then
        value = tonumber(value)
        if not value or value < 0 then die("--" .. arg[i]:sub(3) .. " needs a number >= 0") end
      end
      opts[name] = value
      i = i + 2
    end
  end
  if opts.help then
    io.stdout:write(USAGE, "\n")
    os.exit(0)
  end
  -- Its state and faults are open to anyone who can connect, so it must
  -- never be reachable from another machine.
  if opts.host ~= "127.0.0.1" then die("the emulator listens on 127.0.0.1 only, not " .. opts.host) end
  if opts.port ~= math.floor(opts.port) or opts.port > 65535 then die("--port must be 0..65535") end
  if opts.idle_exit <= 0 then die("--idle-exit must be above 0: the emulator never runs forever") end
  if opts.latency then
    local problem
    opts.latency, problem = require("emulator.latency").parse(opts.latency)
    if not opts.latency then die(problem) end
  end
end

-- before the other files load: api.lua logs as it builds its routes
require("emulator.log").verbose = opts.verbose or false
math.randomseed()
require("emulator.store").max_log = opts.max_log
require("emulator.api").setup(opts)
if opts.latency then require("emulator.latency").set_initial(opts.latency) end

local ok, problem = require("emulator.server").run(opts)
if not ok then die(problem) end

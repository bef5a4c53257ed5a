-- Sets up Lua 5.4's interactive prompt for the module: `make repl`, or
--   LUA_PATH='./lua/?.lua;./?.lua;;' LUA_CPATH='./build/lua5.4/?.so;;' lua5.4 -i examples/repl.lua
-- Globals: es (the module), cf (a client), reg (cf.impersonation_registry).
-- The client uses the environment's credentials when set, else a local
-- emulator started here and stopped when the prompt closes. Results print
-- as readable JSON-like text; an error prints as its one line.

-- luacheck: globals es cf reg _EMULATOR print help
es = require("cloudflare.email_security")
local pretty = require("cloudflare.email_security.pretty")
local words = require("cloudflare.email_security.help")

--- help() lists the resources and their calls; help(cf.domains) shows one
--- resource's fields with their types, limits and enums.
function help(what) io.write(words.text(what), "\n") end

local function set(name) local v = os.getenv(name) return v ~= nil and v ~= "" end

if set("CLOUDFLARE_ACCOUNT_ID") and (set("CLOUDFLARE_API_TOKEN")
                                     or (set("CLOUDFLARE_EMAIL") and set("CLOUDFLARE_API_KEY"))) then
  cf = es.new()
  print("cf: a client for account " .. cf.account_id .. " at " .. cf.base_url .. " (from the environment)")
else
  local emulator = require("emulator.process").start({ idle_exit = 3600 })
  cf = es.new({ account_id = "023e105f4ecef8ad9ca31a8372d0c353", api_token = emulator.token,
                base_url = emulator.base_url })
  -- stopped when the interpreter closes its state at the end of the session
  _EMULATOR = setmetatable({}, { __gc = function() emulator.stop() end })
  print("cf: a client of the local emulator at " .. emulator.base_url .. ", account " .. cf.account_id
    .. " (no credentials set)")
end
reg = cf.impersonation_registry
print = pretty.print
print('try: reg:create{ name = "Jane Roe", email = "jane@example.com", is_email_regex = false }')
print("help() lists the resources and their calls")

-- The module's own code for one update, with no network: validation, the
-- request body, the request loop, and the C decoder on a canned answer
-- (through core.decode, the decoder every transport uses). Run twice under
-- callgrind by bench/instructions.sh; the difference is instructions per
-- call, a figure that timing noise cannot move.
--   lua5.4 bench/own_code.lua CALLS
local es = require("cloudflare.email_security")
local core = require("cloudflare.email_security.core")
local internals = require("cloudflare.email_security.client").internals

local ANSWER = '{"success":true,"errors":[],"messages":[],"result":{"id":"f174e90a-fafe-4643-bbbc-4a0ed4fc8415",'
  .. '"name":"John Doe","email":"j@example.com","is_email_regex":false,"comments":null,"directory_id":null,'
  .. '"directory_node_id":null,"external_directory_node_id":null,"provenance":"A1S_INTERNAL",'
  .. '"created_at":"2026-01-01T00:00:00.000000Z","modified_at":"2026-01-01T00:00:00.000000Z",'
  .. '"last_modified":"2026-01-01T00:00:00.000000Z"}}'
local HEADERS = { ["content-type"] = "application/json", ["cf-ray"] = "8f1c2a3b4c5d6e7f-EMU" }

local cf = es.new({ account_id = "023e105f4ecef8ad9ca31a8372d0c353", api_token = "bench-token",
                    base_url = "http://127.0.0.1:1/client/v4" })
-- a transport that answers at once with the canned bytes
internals(cf).transport = {
  request = function() return core.decode(200, ANSWER, HEADERS) end,
  is_closed = function() return false end,
  close = function() end,
}
local reg = cf.impersonation_registry
local fields = { name = "John Doe", comments = es.null }
for _ = 1, tonumber(arg[1]) do
  assert(reg:update("f174e90a-fafe-4643-bbbc-4a0ed4fc8415", fields))
end

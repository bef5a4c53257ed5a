-- Decodes one answer of a 1000-entry list page N times, through the C
-- core (scan, lua-cjson, integer restore): bench/instructions.sh runs it
-- under callgrind at N and 2N.
--
--   lua5.4 bench/decode_page.lua N
local core = require("cloudflare.email_security.core")

local n = assert(tonumber(arg[1]), "N")
-- written by hand, in a fixed order: cjson.encode's order follows the
-- hash seed, which differs from process to process
local items = {}
for i = 1, 1000 do
  items[i] = ('{"id":"%08x-fafe-4643-bbbc-4a0ed4fc8415","name":"Person %d","email":"person%d@example.com",'
    .. '"is_email_regex":false,"comments":null,"directory_id":%d,"directory_node_id":null,'
    .. '"external_directory_node_id":null,"provenance":"A1S_INTERNAL","created_at":"2026-01-01T00:00:00.000000Z",'
    .. '"modified_at":"2026-01-01T00:00:00.000000Z","last_modified":"2026-01-01T00:00:00.000000Z"}'):format(i, i, i, i)
end
local body = '{"success":true,"errors":[],"messages":[],"result":[' .. table.concat(items, ",")
  .. '],"result_info":{"page":1,"per_page":1000,"count":1000,"total_count":1000}}'
for _ = 1, n do
  local result, err = core.decode(200, body)
  if not result then error(tostring(err)) end
end

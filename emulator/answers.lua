-- The API's answers as the emulator writes them: Cloudflare's envelope for
-- a success and for an error, and the errors every route shares. An answer
-- is { status, body, headers = {...}, json = false for a body that is not
-- JSON } (http.lua puts it on the wire).

local json = require("emulator.json")
local resources = require("emulator.resources")

local encode = json.encode

local answers = {}

function answers.ok(status, result, info)
  local body = '{"success":true,"errors":[],"messages":[],"result":' .. encode(result)
  if info then body = body .. ',"result_info":' .. encode(info) end
  return { status = status, body = body .. "}" }
end

function answers.error(status, code, message)
  return { status = status, body = '{"success":false,"errors":[' .. encode({ code = code, message = message })
    .. '],"messages":[],"result":null}' }
end

function answers.no_route() return answers.error(404, 7003, "No route for the URI") end
function answers.not_allowed() return answers.error(405, 7001, "Method not allowed") end
function answers.invalid(message) return answers.error(422, 1002, message) end

--- 404 code 1003 for an id the account does not have; `where` names the
--- item of a batch or a list that held it.
function answers.entry_not_found(res, where)
  local message = resources.noun_of(res) .. " not found"
  if where then message = message .. ": " .. where end
  return answers.error(404, 1003, message)
end

return answers

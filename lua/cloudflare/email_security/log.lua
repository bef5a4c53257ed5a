-- Debug logging: one line per request and one per response. Lines name the
-- method, path, attempt, status, time and ray id; never a header or a body,
-- so never a credential. What came from the network is escaped: a log line
-- can hold no control character for the terminal to obey.

local printable = require("cloudflare.email_security.errors").printable

local log = {}

local function to_stderr(line)
  io.stderr:write(line, "\n")
end

--- option: true or "debug" (to stderr), a function(line), false (off), or
--- nil (then CLOUDFLARE_LOG=debug turns it on). Returns a writer or nil.
function log.writer(option, getenv)
  if type(option) == "function" then return option end
  if option == true or option == "debug" then return to_stderr end
  if option == nil and (getenv or os.getenv)("CLOUDFLARE_LOG") == "debug" then return to_stderr end
  return nil
end

function log.request(write, method, path, attempt, body)
  write(("cloudflare.email_security: > %s %s (attempt %d, %d bytes)")
    :format(method, path, attempt, body and #body or 0))
end

function log.response(write, method, path, seconds, err)
  local outcome = "ok"
  if err then
    outcome = err.kind .. (err.status and (" " .. err.status) or "")
      .. (err.code and (" code " .. printable(err.code)) or "")
  end
  write(("cloudflare.email_security: < %s %s %s in %.1f ms%s")
    :format(method, path, outcome, seconds * 1000,
            err and err.ray_id and (" ray " .. printable(err.ray_id)) or ""))
end

return log

-- The error values every method returns as `nil, err`. An error is a plain
-- table (kind, status, code, message, errors, messages, ray_id, method, path,
-- field) whose tostring is one readable line.

local errors = {}

-- The C core makes this metatable and gives it to every error it makes;
-- errors.new gives it to those made in Lua: no error is ever a bare table.
local Error = require("cloudflare.email_security.core").error_metatable
Error.__index = Error
Error.__name = "cloudflare.email_security.error"

local function hex_escape(c)
  return ("\\x%02x"):format(c:byte())
end

-- A UTF-8 sequence of two or three bytes as \uNNNN.
local function unicode_escape(c)
  local b1, b2, b3 = c:byte(1, 3)
  local code = b3 and ((b1 % 16) * 4096 + (b2 % 64) * 64 + b3 % 64) or ((b1 % 32) * 64 + b2 % 64)
  return ("\\u%04x"):format(code)
end

-- The characters beyond ASCII that a terminal obeys or that reorder or
-- hide what it shows, as UTF-8: the C1 controls U+0080-U+009F (U+009B is
-- CSI), the Arabic letter mark U+061C, the zero-width and direction marks
-- U+200B-U+200F, the line and paragraph separators and direction embeddings
-- and overrides U+2028-U+202E, the invisible operators U+2060-U+2064, the
-- isolates and deprecated format controls U+2066-U+206F, and U+FEFF.
local UNICODE_CONTROLS = { "\194[\128-\159]", "\216\156", "\226\128[\139-\143\168-\174]",
  "\226\129[\160-\164\166-\175]", "\239\187\191" }

--- s with each of those characters written as \uNNNN (for a terminal, and
--- in JSON, where the escape loses nothing).
function errors.escape_unicode_controls(s)
  -- every one of them starts with one of these bytes, which only ever
  -- start a character: a match is always a whole character
  if not s:find("[\194\216\226\239]") then return s end
  for _, pattern in ipairs(UNICODE_CONTROLS) do s = s:gsub(pattern, unicode_escape) end
  return s
end

--- s as one line a terminal shows as it is: runs of line breaks and tabs
--- become one space, every other control character (an escape sequence the
--- server sent, say) is written as \xNN, and the characters above as
--- \uNNNN.
function errors.printable(s)
  return errors.escape_unicode_controls((tostring(s):gsub("[\t\n\r]+", " "):gsub("[%z\1-\31\127]", hex_escape)))
end
local one_line = errors.printable

function Error.__tostring(err)
  local parts = { err.kind or "unknown", " error" }
  if err.status then parts[#parts + 1] = ": HTTP " .. err.status end
  if err.code then
    parts[#parts + 1] = (err.status and ", code " or ": code ") .. err.code
  end
  parts[#parts + 1] = ": " .. one_line(err.message or "no message")
  local extra = type(err.errors) == "table" and #err.errors - 1 or 0
  if extra > 0 then parts[#parts + 1] = (" (+%d more)"):format(extra) end
  if err.retry_after then
    parts[#parts + 1] = (" (the API asks to retry after %.0f s, longer than max_retry_wait: not retried)")
      :format(math.min(err.retry_after, 1e15))
  end
  if type(err.attempts) == "number" and err.attempts > 1 then
    parts[#parts + 1] = (" (after %d tries)"):format(err.attempts)
  end
  if err.may_exist then
    parts[#parts + 1] = " (it may have been created all the same: list or get before sending it again)"
  end
  -- what a longer job (apply) had done when it stopped
  if err.note then parts[#parts + 1] = " (" .. one_line(err.note) .. ")" end
  if (err.status == 401 or err.status == 403) and err.credential then
    parts[#parts + 1] = (" (credential: %s%s)"):format(err.credential,
      err.permissions and ("; this call needs a token with " .. table.concat(err.permissions, " or ")) or "")
  end
  if err.method and err.path then
    -- what names the call: the resource and the id, below the account's
    -- settings (err.path keeps the whole path)
    local short = err.path:gsub("^/accounts/[^/]+/email%-security/settings/", "")
    parts[#parts + 1] = " [" .. err.method .. " " .. one_line(short)
    if err.ray_id then parts[#parts + 1] = ", ray " .. one_line(err.ray_id) end
    parts[#parts + 1] = "]"
  end
  return table.concat(parts)
end

--- Is `value` one of our error tables?
function errors.is_error(value)
  return getmetatable(value) == Error
end

--- A new error value: kind, message, empty errors and messages lists, and
--- the fields of extra (status, ray_id, ...) when given.
function errors.new(kind, message, extra)
  local err = setmetatable({ kind = kind, message = message, errors = {}, messages = {} }, Error)
  for k, v in pairs(extra or {}) do err[k] = v end
  return err
end

--- An error from a transport, given its request.
function errors.wrap(err, method, path)
  err.method, err.path = method, path
  return setmetatable(err, Error)
end

--- Refused before sending: `field` names the field or argument at fault,
--- `rule` the schema rule it broke.
function errors.invalid(field, rule, message, method, path)
  return setmetatable({
    kind = "invalid",
    field = field,
    rule = rule,
    message = field and (field .. ": " .. message) or message,
    errors = {},
    messages = {},
    method = method,
    path = path,
  }, Error)
end

return errors

-- Cloudflare's OpenAPI file, for the specs that check the project against
-- it. It lives outside the repository (../shared): where it is absent, those
-- specs are skipped with a reason, except in CI, where that is a failure.
local cjson = require("cjson")
local files = require("spec.support.files")

local openapi = {}

openapi.PATH = os.getenv("EMAIL_SECURITY_OPENAPI") or "../shared/openapi/email-security.openapi.json"

--- The decoded document, or nil and why it is not there.
function openapi.load()
  local text = files.read(openapi.PATH)
  if not text then return nil, openapi.PATH .. " is absent" end
  return cjson.decode(text)
end

--- Follows "$ref": "#/components/..." pointers.
function openapi.resolve(doc, node)
  while type(node) == "table" and node["$ref"] do
    local target = doc
    for part in node["$ref"]:gmatch("[^/#]+") do target = target[part] end
    node = target
  end
  return node
end

--- Skips the calling test when the file is absent outside CI, saying why
--- and what to do; fails it in CI. pending: busted's, from the spec file
--- (busted gives it to spec files only, not to the modules they require).
function openapi.require_or_skip(reason, pending)
  if os.getenv("CI") then
    error(reason .. " (CI must have ../shared beside the clone)")
  end
  pending(reason .. ": skipped; set EMAIL_SECURITY_OPENAPI to the path of Cloudflare's"
    .. " email-security OpenAPI file to run it")
end

return openapi

-- What the emulator knows of each resource: its generated description in
-- lua/cloudflare/email_security/resources/ (plain data: routes, bodies,
-- entities, list parameters) and the hand-written overlay beside it (the
-- noun of a 404), read by path from this checkout; and the facts of the
-- API that are the emulator's own: its rules beyond the schema, and the
-- resource a control call means when it names none. Only the data is
-- shared with the module, never its code.

local json = require("emulator.json")

local null = json.null

local resources = {}

-- The repository's lua/ directory, found from this file's own path, so the
-- emulator runs from any current directory.
local HERE = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
local RESOURCE_DIR = HERE .. "../lua/cloudflare/email_security/resources/"

--- name -> description
resources.by_name = {}
for _, name in ipairs(dofile(RESOURCE_DIR .. "names.lua")) do
  resources.by_name[name] = dofile(RESOURCE_DIR .. name .. ".lua")
end

-- The resource of a control call that names none: the one the emulator
-- served alone at first, so older specs keep working unchanged.
resources.DEFAULT = "impersonation_registry"

--- The field `name` of a schema node (an object's property), or nil.
function resources.property(node, name)
  for _, p in ipairs(node.properties or {}) do
    if p.name == name then return p end
  end
end

-- The facts of each resource that the OpenAPI file lacks, written by hand
-- beside the descriptions and shared with the module as they are: plain
-- data too (the module's code is never loaded here).
local OVERLAY = dofile(RESOURCE_DIR .. "overlay.lua")

-- The noun of a 404: the overlay's where the derived one ("Allow policy",
-- "Domain") is not what the API says.
function resources.noun_of(res)
  local facts = OVERLAY[res.name]
  if facts and facts.noun then return facts.noun end
  local words = res.name:gsub("_", " "):gsub("ies$", "y"):gsub("s$", "")
  return (words:gsub("^%l", string.upper))
end

-- Rules of the API beyond its schema, per resource: a function of the
-- stored entry that answers a refusal of any change to it, or nil. The
-- registry does not let a client change what a directory sync owns.
local function is_synced(e)
  return e.provenance ~= "A1S_INTERNAL" or (e.directory_id ~= nil and e.directory_id ~= null)
end
local CHANGE_RULES = {
  impersonation_registry = function(e)
    if is_synced(e) then return 400, 1010, "Directory-synced entries can't be updated" end
  end,
}

--- The resource's refusal of any change to the stored entry e: status,
--- code and message, or nil.
function resources.change_refusal(res, e)
  local rule = CHANGE_RULES[res.name]
  if rule then return rule(e) end
end

return resources

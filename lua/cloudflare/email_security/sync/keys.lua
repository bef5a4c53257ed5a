-- What identifies an entry of each resource for plan and apply: its
-- natural key, never the id the server made. Two entries with the same
-- key are the same entry; a key field marked `lower` compares without
-- regard to case (email addresses and domain names). Also which entries
-- a sync must leave alone (`skip`), and which deletes need an option of
-- their own (`guard`).

local keys = {}

-- JSON null is lua-cjson's light userdata, the one userdata an entry
-- holds: tested by type, so that the generator of the reference
-- (tools/gen_reference.lua) can read these keys without the C core.
local function present(v) return v ~= nil and type(v) ~= "userdata" end

-- Entries a directory keeps (Microsoft 365, Google): made and changed by
-- the sync with that directory, not by hand, and refused by the API.
local function directory_synced(e)
  if present(e.directory_id) or present(e.directory_node_id) then return "directory-synced" end
  if present(e.provenance) and e.provenance ~= "A1S_INTERNAL" then return "directory-synced" end
end

keys.RESOURCES = {
  allow_policies = { fields = { "pattern_type", "pattern", "is_regex" } },
  block_senders = { fields = { "pattern_type", "pattern", "is_regex" } },
  trusted_domains = { fields = { "pattern", "is_regex" } },
  impersonation_registry = { fields = { "email", "is_email_regex" }, lower = { email = true },
                             skip = directory_synced },
  sending_domain_restrictions = { fields = { "domain" }, lower = { domain = true } },
  -- deleting a domain stops its mail being scanned: only when asked by name
  domains = { fields = { "domain" }, lower = { domain = true }, guard = "delete_domains" },
  url_ignore_patterns = { fields = { "pattern" } },
  content_policies = { fields = { "name" } },
}

--- The key of a resource: { fields = {...}, lower = {...}, skip, guard },
--- with opts.key (a list of field names) in place of the usual fields.
function keys.of(name, override)
  local k = keys.RESOURCES[name]
  if not k then return nil end
  if override == nil then return k end
  return { fields = override, lower = k.lower or {}, skip = k.skip, guard = k.guard }
end

--- A number as text that is the same for 3 and 3.0 (a JSON file decoded
--- by lua-cjson gives floats; the API's answers and CSV cells integers).
function keys.number_text(v)
  if math.type and math.type(v) == "integer" then return ("%d"):format(v) end
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return ("%.0f"):format(v) end
  return ("%.17g"):format(v)
end

--- A key field's value as compared: lower-cased where the key says so.
function keys.normal(key, field, v)
  if type(v) == "string" and key.lower and key.lower[field] then return v:lower() end
  return v
end

--- The key of an entry as one string (for matching) and as text (for a
--- person), or nil and the first key field it lacks.
function keys.value(key, e)
  local parts, text = {}, {}
  for i, field in ipairs(key.fields) do
    local v = e[field]
    if not present(v) then return nil, field end
    v = keys.normal(key, field, v)
    -- the type is part of the key: "true" and true are not the same
    parts[i] = type(v) .. ":" .. (type(v) == "number" and keys.number_text(v) or tostring(v))
    text[i] = field .. "=" .. tostring(e[field])
  end
  return table.concat(parts, "\0"), table.concat(text, " ")
end

return keys

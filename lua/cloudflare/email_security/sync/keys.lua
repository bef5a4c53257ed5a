-- What identifies an entry of each resource for plan and apply: its
-- natural key, never the id the server made. Two entries with the same
-- key are the same entry. Also which entries a sync must leave alone
-- (`skip`), and which deletes need an option of their own (`guard`).
--
-- Which key fields compare without regard to case (`lower`), and why:
-- only those that hold a plain email address or domain name, which mail
-- itself compares so (domain names always; the part before the @ in
-- practice). They fold beyond ASCII (BÜCHER.example is bücher.example),
-- through core.lower_text. Never a regular expression: `\D` is not `\d`,
-- so the registry's email folds only where is_email_regex is false
-- (`lower.email` names that flag; an entry that lacks it does not fold). The patterns of allow policies, blocked
-- senders, trusted domains and URL ignore patterns are compared as
-- written: they may be regular expressions, and where they are not the API
-- says nothing of their case, so folding could merge two entries the
-- server keeps apart.

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
  impersonation_registry = { fields = { "email", "is_email_regex" }, lower = { email = "is_email_regex" },
                             skip = directory_synced },
  sending_domain_restrictions = { fields = { "domain" }, lower = { domain = true } },
  -- deleting a domain stops its mail being scanned: only when asked by name
  domains = { fields = { "domain" }, lower = { domain = true }, guard = "delete_domains" },
  url_ignore_patterns = { fields = { "pattern" } },
  content_policies = { fields = { "name" } },
}

--- The key of a resource: { fields = {...}, lower = {...}, skip, guard },
--- lower: field -> true (folds), or the name of the flag that makes the
--- field a regular expression when true (then it does not fold);
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

--- Does `field` of entry e compare without regard to case?
function keys.folds(key, field, e)
  local rule = key.lower and key.lower[field]
  if rule == true then return true end
  -- only where the entry says plainly that it is no regular expression:
  -- an entry that does not say (a key given without the flag) is compared
  -- as written, so that it can never match a regular expression folded
  return type(rule) == "string" and type(e) == "table" and e[rule] == false
end

--- A key field's value as compared: lower-cased (beyond ASCII) where the
--- key says so for entry e. Text that is not UTF-8 stays as it is: the
--- checks refuse it in what is sent, and only exact bytes match it.
function keys.normal(key, field, v, e)
  if type(v) == "string" and keys.folds(key, field, e) then
    return require("cloudflare.email_security.core").lower_text(v) or v
  end
  return v
end

--- The key of an entry as one string (for matching) and as text (for a
--- person), or nil and the first key field it lacks.
function keys.value(key, e)
  local parts, text = {}, {}
  for i, field in ipairs(key.fields) do
    local v = e[field]
    if not present(v) then return nil, field end
    v = keys.normal(key, field, v, e)
    -- the type is part of the key: "true" and true are not the same
    parts[i] = type(v) .. ":" .. (type(v) == "number" and keys.number_text(v) or tostring(v))
    text[i] = field .. "=" .. tostring(e[field])
  end
  return table.concat(parts, "\0"), table.concat(text, " ")
end

return keys

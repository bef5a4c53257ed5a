-- Written by hand, beside the descriptions that tools/gen_resources.lua
-- makes from Cloudflare's OpenAPI file: what a resource is that the file
-- does not say. Plan and apply (sync/keys.lua), the REPL's printer
-- (pretty.lua), the reference (tools/gen_reference.lua) and the emulator
-- read it. Plain Lua with no require, so that the tools and the emulator
-- load it without the C core.
--
-- key: the fields that identify an entry, its natural key; never the id
--   the server made. Two entries with the same key are the same entry.
-- lower: the key fields compared without regard to case: true, or the
--   name of the flag that makes the field a regular expression when true
--   (then it is compared as written). Only fields that hold a plain email
--   address or domain name fold, as mail itself compares them (domain
--   names always; the part before the @ in practice), beyond ASCII
--   (BÜCHER.example is bücher.example). Never a regular expression: `\D`
--   is not `\d`. The patterns of allow policies, blocked senders, trusted
--   domains and URL ignore patterns are compared as written: they may be
--   regular expressions, and where they are not the API says nothing of
--   their case, so folding could merge two entries the server keeps apart.
-- skip: the entries plan and apply leave alone: a function of an entry
--   that answers why, or nil.
-- guard: deletes of this resource need an option of that name.
-- noun: the API's word for one entry, in its 404 message, where the one
--   made from the resource's name ("Allow policy", "Domain") is not it.

-- JSON null is lua-cjson's light userdata, the one userdata an entry
-- holds: tested by type, since this file loads without the C core.
local function present(v) return v ~= nil and type(v) ~= "userdata" end

-- Entries a directory keeps (Microsoft 365, Google): made and changed by
-- the sync with that directory, not by hand, and refused by the API.
local function directory_synced(e)
  if present(e.directory_id) or present(e.directory_node_id) then return "directory-synced" end
  if present(e.provenance) and e.provenance ~= "A1S_INTERNAL" then return "directory-synced" end
end

return {
  allow_policies = { key = { "pattern_type", "pattern", "is_regex" } },
  block_senders = { key = { "pattern_type", "pattern", "is_regex" } },
  content_policies = { key = { "name" } },
  -- deleting a domain stops its mail being scanned: only when asked by name
  domains = { key = { "domain" }, lower = { domain = true }, guard = "delete_domains" },
  impersonation_registry = { key = { "email", "is_email_regex" }, lower = { email = "is_email_regex" },
                             skip = directory_synced, noun = "Impersonation registry entry" },
  sending_domain_restrictions = { key = { "domain" }, lower = { domain = true } },
  trusted_domains = { key = { "pattern", "is_regex" } },
  url_ignore_patterns = { key = { "pattern" }, noun = "URL ignore pattern" },
}

-- r:plan(desired, opts): what it takes to make a resource's entries equal
-- to a desired list, changing nothing. Entries are matched by their
-- natural key (sync/keys.lua); only the fields the desired entries give
-- are compared (opts.fields narrows them), read-only fields never, list
-- fields as sets. Everything is checked here, before apply sends a byte:
-- each desired entry against the description, keys present and unique on
-- both sides, and each change against the body that will carry it.
-- The plan also owns its safety thresholds, which apply asks it about;
-- sync/plan_text.lua shows it.

local core = require("cloudflare.email_security.core")
local array = require("cloudflare.email_security.array")
local errors = require("cloudflare.email_security.errors")
local resource_internals = require("cloudflare.email_security.resource").internals
local validate = require("cloudflare.email_security.schema.validate")
local snapshot = require("cloudflare.email_security.snapshot")
local keys = require("cloudflare.email_security.sync.keys")
local entries = require("cloudflare.email_security.sync.entries")
local plan_text = require("cloudflare.email_security.sync.plan_text")
local apply = require("cloudflare.email_security.sync.apply")

local null = core.null
local concat, format, type = table.concat, string.format, type

local plan = {}

local Plan = {}
Plan.__index = Plan

-- The create body without its required list: what every desired entry
-- must satisfy whether it is created or only compared.
local loose = setmetatable({}, { __mode = "k" })
local function loose_node(desc)
  local n = loose[desc]
  if n then return n end
  n = {}
  for k, v in pairs(desc.bodies.create) do n[k] = v end
  n.required = {}
  loose[desc] = n
  return n
end

local function collection(r)
  local _, path = resource_internals(r)
  return path
end

local function invalid(r, field, rule, message)
  return errors.invalid(field, rule, message, "PLAN", collection(r))
end

-- "desired[3]" and, for an entry from a file, where it is there.
local function where(i, e)
  local origin = entries.origin(e)
  return format("desired[%d]", i), origin and (" (" .. origin .. ")") or ""
end

local function absent(v) return v == nil or v == null end

-- Is the server's value what the desired entry asks for? e: the desired
-- entry (whether a key field is a regular expression, which never folds).
local function same(key, field, want, have, e)
  if absent(want) or absent(have) then return absent(want) and absent(have) end
  want, have = keys.normal(key, field, want, e), keys.normal(key, field, have, e)
  if type(want) ~= "table" or type(have) ~= "table" then return want == have end
  return keys.canonical(want) == keys.canonical(have)
end

-- The fields of an entry that a desired entry may hold but that are never
-- compared nor sent, and why: read-only, made by the server (in no body a
-- client sends), or retired past their end of life. A listing written
-- back (list --csv) holds them all.
local ignorable = setmetatable({}, { __mode = "k" })
local function ignored_fields(desc)
  -- what is retired changes with the date: kept per day
  local today = os.date("!%Y-%m-%d")
  local cached = ignorable[desc]
  if cached and cached.today == today then return cached.fields end
  local out = {}
  local create, update = desc.bodies.create.fields, desc.bodies.update and desc.bodies.update.fields or {}
  for name, f in pairs(desc.entry.fields) do
    if f.read_only then
      out[name] = "read-only"
    elseif not create[name] and not update[name] then
      out[name] = "made by the server"
    elseif f.deprecated and f.end_of_life and f.end_of_life <= today then
      out[name] = "retired" .. (f.replaced_by and (": use " .. f.replaced_by) or "")
    end
  end
  ignorable[desc] = { today = today, fields = out }
  return out
end

-- The fields a desired entry can manage, in the description's order.
local function usable_fields(desc)
  local out, ignored = {}, ignored_fields(desc)
  for _, name in ipairs(desc.entry.order) do
    if not ignored[name] then out[#out + 1] = name end
  end
  return out
end

-- The desired entries, typed, copied raw, without the fields that are
-- never compared, and each checked; or nil and an invalid error. Also
-- the retired fields it dropped, for the plan to say so.
local function desired_entries(r, desc, list)
  local count, other_key = array.length(list)
  if not count then
    return nil, invalid(r, "desired", "type", "must be a list of entries (keys 1 to n), not a table with key "
      .. errors.printable(tostring(other_key)) .. ": give { entry, ... }, even for one entry")
  end
  local typed, why = entries.typed(desc, list)
  if not typed then return nil, invalid(r, "desired", "file", why) end
  local node, out, ignored, retired = loose_node(desc), {}, ignored_fields(desc), {}
  for i, e in ipairs(typed) do
    local name, origin = where(i, list[i])
    if type(e) ~= "table" then
      return nil, invalid(r, name, "type", "must be a table of fields, got " .. type(e) .. origin)
    end
    local copy = snapshot(e)
    for field, value in pairs(e) do
      local reason = type(field) == "string" and ignored[field]
      if reason then
        copy[field] = nil
        if reason:find("^retired") then
          retired[field] = reason
          -- ignored, but not unchecked: a value of the wrong kind is a mistake
          local bad, rule, message = validate.value(desc.entry.fields[field], value, name .. "." .. field)
          if bad then return nil, invalid(r, bad, rule, message .. origin) end
        end
      end
    end
    local field, rule, message = validate.value(node, copy, name, desc.name)
    if field then return nil, invalid(r, field, rule, message .. origin) end
    -- what the stored entry cannot hold (a domain's transport null, which
    -- a create takes and the server replaces) would be planned again after
    -- every apply: refused here, so that a file that plans converges
    for f, value in next, copy do
      local stored, bad, stored_rule, stored_why = desc.entry.fields[f], nil, nil, nil
      if stored then bad, stored_rule, stored_why = validate.value(stored, value, name .. "." .. f) end
      if bad then
        return nil, invalid(r, bad, stored_rule, stored_why .. " in the entry the API stores, though a create "
          .. "takes it: the server would keep another value and every later plan would try to change it back; "
          .. "leave the field out (an empty cell) to take the server's" .. origin)
      end
    end
    out[i] = copy
  end
  return out, retired
end

-- The fields to compare: opts.fields, or every field some desired entry
-- gives; never a read-only one.
local function managed_fields(r, desc, desired, named)
  local out = {}
  if named ~= nil then
    if type(named) ~= "table" then return nil, invalid(r, "fields", "type", "must be a list of field names") end
    if #named == 0 then return nil, invalid(r, "fields", "min_items", "needs at least one field name") end
    for i, field in ipairs(named) do
      local f = type(field) == "string" and desc.entry.fields[field]
      if not f then
        return nil, invalid(r, ("fields[%d]"):format(i), "unknown", tostring(field) .. " is not a field of "
          .. desc.name .. validate.suggest(tostring(field), usable_fields(desc)))
      end
      local reason = ignored_fields(desc)[field]
      if reason then
        return nil, invalid(r, ("fields[%d]"):format(i), "read_only", field .. " is " .. reason
          .. ": it cannot be managed")
      end
      out[field] = true
    end
    return out
  end
  for _, e in ipairs(desired) do
    for field in pairs(e) do out[field] = true end
  end
  return out
end

-- The safety thresholds, after octoDNS and dnscontrol: a plan that would
-- update, or delete, more than this fraction of the existing entries is
-- applied only with force, once there are at least min_existing of them
-- (below that, a few changes are a large fraction and no sign of a
-- mistake). A file that lost its rows, or a key that no longer matches,
-- plans to delete or rewrite most of an account: this stops it.
plan.THRESHOLDS = { update = 0.3, delete = 0.3, min_existing = 10 }

-- opts.thresholds of plan or apply: { update = fraction, delete =
-- fraction, min_existing = n }, any of them.
local function check_thresholds(r, t)
  if t == nil then return nil end
  if type(t) ~= "table" then return invalid(r, "thresholds", "type", "must be a table, got " .. type(t)) end
  for name, v in next, t do
    local fraction = name == "update" or name == "delete"
    if not fraction and name ~= "min_existing" then
      return invalid(r, "thresholds." .. tostring(name), "unknown", "is not a threshold (there are: update, "
        .. "delete, min_existing)")
    end
    if type(v) ~= "number" or v ~= v or v < 0 or (fraction and v > 1) or (not fraction and v % 1 ~= 0) then
      return invalid(r, "thresholds." .. name, "type", fraction and "must be a fraction from 0 to 1"
        or "must be a whole number, at least 0")
    end
  end
end

-- Names people reach for that are spelled otherwise here.
local MEANT = { no_purge = "purge = false", nopurge = "purge = false", dry_run = "r:plan (it changes nothing)" }

--- An option name the call does not know, as an invalid error naming it
--- (with the name that was likely meant), or nil: a typo must never fall
--- back to the default, which for plan is to delete. allowed: the names.
function plan.check_options(opts, allowed, method, path)
  for name in next, opts do
    local known = false
    for _, a in ipairs(allowed) do
      if name == a then known = true break end
    end
    if not known then
      local text = errors.printable(tostring(name))
      local hint = MEANT[name] and (": did you mean `" .. MEANT[name] .. "`?")
        or validate.suggest(text, allowed)
      return errors.invalid(text, "unknown", "is not an option of " .. method:lower() .. hint, method, path)
    end
  end
end

local function check_key(r, desc, key_fields)
  for i, field in ipairs(key_fields) do
    if type(field) ~= "string" or not desc.entry.fields[field] then
      return invalid(r, ("key[%d]"):format(i), "unknown", tostring(field) .. " is not a field of " .. desc.name
        .. validate.suggest(tostring(field), usable_fields(desc)))
    end
    local reason = ignored_fields(desc)[field]
    if reason then
      return invalid(r, ("key[%d]"):format(i), "read_only", field .. " is " .. reason
        .. ": a key is made of fields the desired entries give (never the server's ids)")
    end
    local t = desc.entry.fields[field].type
    if t == "array" or t == "object" then
      return invalid(r, ("key[%d]"):format(i), "type", field .. " is a " .. (t == "array" and "list" or "table")
        .. ": a key is made of single values (text, numbers, booleans)")
    end
  end
  if #key_fields == 0 then return invalid(r, "key", "min_items", "needs at least one field name") end
end

-- How many times a listing that moved under the walk (an entry added or
-- removed between its pages, which shifts every later page) is walked
-- again before giving up.
local LISTING_TRIES = 3

--- Every entry (1000 a page): the desired state is compared with all of
--- them, or deletes could not be known. A listing that moved while it was
--- walked may have skipped or repeated an entry: it is walked again.
function plan.existing(r)
  local list, err
  for _ = 1, LISTING_TRIES do
    list, err = r:all({ per_page = 1000 })
    if list or not err.listing_moved then return list, err end
  end
  err.note = ("the listing moved while it was walked, %d times in a row: try again when the entries "
    .. "change less"):format(LISTING_TRIES)
  return nil, err
end
local existing_entries = plan.existing

--- Every entry of the plan's resource now: apply lists again (see
--- plan.existing).
function Plan:listing()
  return existing_entries(self.resource)
end

--- Whether apply may send this plan, as the plan's thresholds say: nil, or
--- an invalid error (nothing is to be sent). thresholds: apply's own
--- (checked here, as plan checks its own), else the plan's; force: apply's,
--- else the plan's.
function Plan:past_thresholds(thresholds, force)
  local err = check_thresholds(self.resource, thresholds)
  if err then return err end
  if force or self.force then return nil end
  local t = thresholds or self.thresholds or {}
  local existing = self.existing
  if existing < (t.min_existing or plan.THRESHOLDS.min_existing) then return nil end
  for _, kind in ipairs({ "update", "delete" }) do
    local count = #self[kind .. "s"]
    local limit = t[kind] or plan.THRESHOLDS[kind]
    if count > limit * existing then
      return errors.invalid("plan", "threshold", format("would %s %d of the %d existing entries (%.0f%%, more "
        .. "than %.0f%%): nothing was sent. Check the plan, then apply with force = true (--force) if it is "
        .. "meant", kind, count, existing, 100 * count / existing, 100 * limit), "APPLY", collection(self.resource))
    end
  end
end

--- plan.check_options for apply's options, which the plan is asked for
--- so that apply needs nothing of this file but the plan it is given.
function Plan:check_options(opts, allowed, method)
  return plan.check_options(opts, allowed, method, collection(self.resource))
end

--- See the module's comment. opts: key (field names), fields (field
--- names), purge (false: never delete), delete_domains (domains only),
--- force (past the thresholds), thresholds { update, delete, min_existing }
--- (any of them; plan.THRESHOLDS holds the defaults).
function plan.make(r, desired, opts)
  local desc = resource_internals(r)
  local name = desc.name
  opts = opts and snapshot(opts) or {}
  if not desc.has.plan then
    return nil, invalid(r, "plan", "unsupported", name .. " has no create, update, delete and list to plan with")
  end
  local usual = keys.of(name)
  local allowed = { "key", "fields", "purge", "force", "thresholds" }
  if usual and usual.guard then allowed[#allowed + 1] = usual.guard end
  local err = plan.check_options(opts, allowed, "PLAN", collection(r))
  if err then return nil, err end
  if opts.key ~= nil and type(opts.key) ~= "table" then
    return nil, invalid(r, "key", "type", "must be a list of field names")
  end
  local key = keys.of(name, opts.key)
  if not key then return nil, invalid(r, "plan", "unsupported", name .. " has no natural key: give opts.key") end
  err = check_key(r, desc, key.fields)
  if err then return nil, err end

  for _, flag in ipairs({ "purge", "force", key.guard }) do
    if opts[flag] ~= nil and type(opts[flag]) ~= "boolean" then
      return nil, invalid(r, flag, "type", "must be true or false, got " .. type(opts[flag]))
    end
  end
  err = check_thresholds(r, opts.thresholds)
  if err then return nil, err end

  local wanted, retired
  wanted, retired = desired_entries(r, desc, desired)
  if not wanted then return nil, retired end
  local managed
  managed, err = managed_fields(r, desc, wanted, opts.fields)
  if not managed then return nil, err end

  -- A directory's entry in the desired list (a listing written back holds
  -- them) is the directory's: never created, changed, nor matched.
  local skipped_desired = {}
  if key.skip then
    local kept = {}
    for i, e in ipairs(wanted) do
      local reason = key.skip(e)
      if reason then
        local _, text = keys.value(key, e)
        skipped_desired[#skipped_desired + 1] = { key = text, reason = reason
          .. " in the desired list: left to the directory" }
        kept[i] = false
      else
        kept[i] = e
      end
    end
    wanted = kept
  end

  -- the desired keys: present, and each once
  local by_key, key_text, first_at = {}, {}, {}
  for i, e in ipairs(wanted) do if e then
    local k, text = keys.value(key, e)
    local where_i, origin = where(i, desired[i])
    if not k then
      return nil, invalid(r, where_i .. "." .. text, "key", format("is missing: %s entries are matched by %s%s",
        name, concat(key.fields, ", "), origin))
    end
    if by_key[k] then
      local where_j, origin_j = where(first_at[k], desired[first_at[k]])
      return nil, invalid(r, where_i, "duplicate", format("has the same key (%s) as %s%s%s: each entry must be "
        .. "listed once", text, where_j, origin_j, origin))
    end
    by_key[k], key_text[k], first_at[k] = e, text, i
  end end

  local current
  current, err = existing_entries(r)
  if not current then return nil, err end

  local p = setmetatable({
    resource = r, name = name, key = key.fields, key_rule = key, retired = retired,
    creates = {}, updates = {}, deletes = {}, unchanged = {}, skipped = {}, kept = {},
    existing = 0, listed = #current, thresholds = opts.thresholds, force = opts.force,
  }, Plan)
  local on_server = {}
  local purge = opts.purge ~= false and (not key.guard or opts[key.guard] == true)
  local update_node = desc.bodies.update

  for i, e in ipairs(current) do
    if type(e) ~= "table" then
      return nil, errors.wrap(errors.new("http", ("the list's entry %d is not an object (a %s)"):format(i, type(e))),
                              "GET", collection(r))
    end
    local k, text = keys.value(key, e)
    local reason = key.skip and key.skip(e)
    if reason then
      p.skipped[#p.skipped + 1] = { key = text, id = e.id, reason = reason }
      if k and on_server[k] == nil then on_server[k] = "skipped" end
    elseif not k then
      -- an entry the key cannot name is never matched, so never touched
      p.skipped[#p.skipped + 1] = { key = "(no " .. text .. ")", id = e.id, reason = "has no " .. text }
    else
      p.existing = p.existing + 1
      if type(on_server[k]) == "table" then
        return nil, invalid(r, "existing", "duplicate", format("entries %s and %s on the server have the same key "
          .. "(%s): delete one of them, or plan with a key that tells them apart (opts.key)",
          tostring(on_server[k].id), tostring(e.id), text))
      end
      on_server[k] = e
      local want = by_key[k]
      if want then
        local fields, changes = {}, {}
        for _, field in ipairs(array.sorted_keys(want)) do
          if managed[field] and not same(key, field, want[field], e[field], want) then
            fields[field] = want[field]
            changes[#changes + 1] = { field = field, old = e[field], new = want[field] }
          end
        end
        if #changes > 0 then
          local bad, rule, message = validate.value(update_node, fields, "desired[" .. first_at[k] .. "]", name)
          if bad then
            local _, origin = where(first_at[k], desired[first_at[k]])
            return nil, invalid(r, bad, rule, message .. " (an update of " .. tostring(e.id) .. ")" .. origin)
          end
          p.updates[#p.updates + 1] = { key = text, id = e.id, fields = fields, changes = changes }
        else
          p.unchanged[#p.unchanged + 1] = { key = text, id = e.id }
        end
      elseif purge then
        p.deletes[#p.deletes + 1] = { key = text, id = e.id, entry = e }
      else
        p.kept[#p.kept + 1] = { key = text, id = e.id,
                                reason = opts.purge == false and "purge off" or ("needs " .. tostring(key.guard)) }
      end
    end
  end

  for _, item in ipairs(skipped_desired) do p.skipped[#p.skipped + 1] = item end
  -- the desired entries the server lacks, in the order given
  for i, e in ipairs(wanted) do
    local k = e and keys.value(key, e)
    local there = k and on_server[k]
    -- one the directory keeps is already among the skipped
    if e and there == nil then
      local where_i, origin = where(i, desired[i])
      local bad, rule, message = validate.value(desc.bodies.create, e, where_i, name)
      if bad then return nil, invalid(r, bad, rule, message .. " (to create it)" .. origin) end
      p.creates[#p.creates + 1] = { key = key_text[k], fields = e }
    end
  end
  return p
end

--- One line per change, then the counts (sync/plan_text.lua).
function Plan:lines()
  return plan_text.lines(self)
end

function Plan:__tostring()
  return plan_text.text(self)
end

--- Has the plan anything to do?
function Plan:changes()
  return #self.creates + #self.updates + #self.deletes
end

--- The requests apply would send (the listing, made already, not counted).
function Plan:requests()
  return apply.requests(self)
end

function Plan:apply(opts)
  return apply.apply(self, opts)
end

return plan

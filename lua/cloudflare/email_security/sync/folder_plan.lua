-- A plan of a folder (sync/folder.lua) against one account or several:
-- one plan per account and resource that has a file (sync/plan.lua makes
-- each), held as one value with one text, one JSON, one apply and one
-- saved form.
--
-- Made once, checked once: each resource's safety thresholds are asked
-- when the plan is made, and the plan says which resource apply will
-- refuse; apply then changes nothing anywhere while any is over them
-- (unless forced). Warnings (sync/warnings.lua) are said with the file
-- and line; with strict they are errors, and apply sends nothing.
--
-- Apply goes account by account in the order given, resource by resource
-- in the module's order, and stops at the first failure: its error says
-- which accounts are done, which one stopped half-way (its resources'
-- done, not done and in doubt) and which were not started.
--
-- Saved (fp:save()), a plan holds what it will send and a fingerprint of
-- each listing it was made against (sync/fingerprint.lua); applied from
-- there (folder_plan.load), it lists every resource again first and
-- sends nothing if any moved, or if an update or delete is not the entry
-- its id names as the plan shows it (a hand edit). Its thresholds are
-- then taken of that listing, and only the caller's force passes them:
-- the file's own "force" and counts are never trusted. It holds no
-- credential.
--
-- Its JSON (fp:json(), the saved form, and fp:apply_json() of what apply
-- did) writes each change's key as an object of the key's fields
-- (sync/plan_text.lua). Version 2 of the saved form does so; version 1
-- (the first, whose keys were the text a person reads) is still read: its
-- keys are read back into fields.

local core = require("cloudflare.email_security.core")
local errors = require("cloudflare.email_security.errors")
local resource_internals = require("cloudflare.email_security.resource").internals
local json = require("cloudflare.email_security.schema.body").json
local numbers = require("cloudflare.email_security.numbers")
local entries = require("cloudflare.email_security.sync.entries")
local plan = require("cloudflare.email_security.sync.plan")
local plan_text = require("cloudflare.email_security.sync.plan_text")
local fingerprint = require("cloudflare.email_security.sync.fingerprint")
local keys = require("cloudflare.email_security.sync.keys")
local warnings = require("cloudflare.email_security.sync.warnings")

local json_decode = core.json_decode
local concat, format = table.concat, string.format
local printable = errors.printable

local folder_plan = {}

local FolderPlan = {}
FolderPlan.__index = FolderPlan

local RESOURCE_SET = {}
for _, name in ipairs(require("cloudflare.email_security.resources.names")) do RESOURCE_SET[name] = true end

-- the version written, and each version read: true when its keys are text
local SAVED_FORMAT, SAVED_VERSION = "cloudflare-email-security plan", 2
local READS = { [1] = true, [2] = false }

local function plural(n, one, many) return format("%d %s", n, n == 1 and one or (many or one .. "s")) end

local function account_label(a)
  return a.account_id .. (a.name and (" (" .. a.name .. ")") or "")
end

-- the error of one account's resource: which, in its note
local function annotate(err, a, name)
  if type(err) ~= "table" then err = errors.new("invalid", tostring(err)) end
  err.account_id, err.resource = a.account_id, name
  local where = format("account %s, %s", account_label(a), name)
  err.note = err.note and (where .. ": " .. err.note) or where
  return err
end

--- The warnings (sync/warnings.lua) of a resource's desired entries, each
--- { where = "file line 3", field, code, message }; path names the list
--- where its entries were not read from a file. today: "YYYY-MM-DD".
function folder_plan.warnings(resource, list, path, today)
  local out = {}
  for i, e in ipairs(list) do
    if type(e) == "table" then
      for _, w in ipairs(warnings.check(resource, e, today)) do
        out[#out + 1] = { where = entries.origin(e) or format("%s entry %d", path, i), field = w.field,
                          code = w.code, message = w.message }
      end
    end
  end
  return out
end

--- accounts: { { client = cf, name = "..." (optional) }, ... }, in the
--- order apply takes them; source: folder.read's value; opts: purge
--- (false: never delete, in every resource), delete_domains, strict,
--- force, today ("YYYY-MM-DD", for warnings about dates). Lists every
--- resource that has a file, in every account. nil and an error (naming
--- the account and resource) when one cannot be planned.
function folder_plan.make(accounts, source, opts)
  opts = opts or {}
  local today = opts.today or os.date("!%Y-%m-%d")
  local fp = setmetatable({ accounts = {}, strict = opts.strict, force = opts.force, warnings = {} }, FolderPlan)
  for _, file in ipairs(source.files) do
    for _, w in ipairs(folder_plan.warnings(file.resource, file.entries, file.path, today)) do
      fp.warnings[#fp.warnings + 1] = w
    end
  end
  for _, acct in ipairs(accounts) do
    local cf = acct.client
    local a = { account_id = cf.account_id, name = acct.name, base_url = cf.base_url, client = cf, resources = {} }
    fp.base_url = fp.base_url or cf.base_url
    fp.accounts[#fp.accounts + 1] = a
    for _, file in ipairs(source.files) do
      local name = file.resource
      local settings = source.settings[name] or {}
      local popts = {}
      if opts.purge == false or settings.purge == false then popts.purge = false end
      if name == "domains" and opts.delete_domains then popts.delete_domains = true end
      local p, err = plan.make(cf[name], file.entries, popts, { fingerprint = true })
      if not p then return nil, annotate(err, a, name) end
      a.resources[#a.resources + 1] = { resource = name, path = file.path, plan = p,
                                        over = p:past_thresholds(nil, opts.force), fingerprint = p.fingerprint }
    end
  end
  return fp
end

--- Has the plan anything to do, anywhere?
function FolderPlan:changes()
  local n = 0
  for _, a in ipairs(self.accounts) do
    for _, item in ipairs(a.resources) do n = n + item.plan:changes() end
  end
  return n
end

--- The resources apply would refuse (past their thresholds, not forced):
--- a list of { account, resource, err }.
function FolderPlan:refusals()
  local out = {}
  for _, a in ipairs(self.accounts) do
    for _, item in ipairs(a.resources) do
      if item.over and not self.force then
        out[#out + 1] = { account = a, resource = item.resource, err = item.over }
      end
    end
  end
  return out
end

local function counts_line(c)
  local line = format("%d to create, %d to update, %d to delete, %d unchanged", c.creates, c.updates, c.deletes,
                      c.unchanged)
  if c.skipped > 0 then line = line .. ", " .. c.skipped .. " skipped" end
  return line
end

local function add_counts(into, p)
  into.creates = into.creates + #p.creates
  into.updates = into.updates + #p.updates
  into.deletes = into.deletes + #p.deletes
  into.unchanged = into.unchanged + p:unchanged_count()
  into.skipped = into.skipped + #p.skipped
end

local function zero() return { creates = 0, updates = 0, deletes = 0, unchanged = 0, skipped = 0 } end

--- The plan as lines a person reads: per account (named, with the API it
--- is at), per resource (its file), each change, then the counts; what
--- apply will refuse; the warnings; one summary per account and one
--- overall.
function FolderPlan:lines()
  local out, total = {}, zero()
  for _, a in ipairs(self.accounts) do
    out[#out + 1] = printable(format("account %s at %s", account_label(a), a.base_url))
    local sum = zero()
    for _, item in ipairs(a.resources) do
      out[#out + 1] = printable(format("  %s (%s):", item.resource, item.path))
      for _, line in ipairs(plan_text.lines(item.plan)) do out[#out + 1] = "    " .. line end
      if item.over and not self.force then
        out[#out + 1] = "    ! " .. printable(item.over.message:gsub("^plan: ", ""):gsub(": nothing was sent.*$", ""))
          .. ": apply refuses this without --force (force = true)"
      end
      add_counts(sum, item.plan)
    end
    for k, v in pairs(sum) do total[k] = total[k] + v end
    out[#out + 1] = "  account " .. a.account_id .. ": " .. counts_line(sum)
  end
  for _, w in ipairs(self.warnings) do
    out[#out + 1] = printable(format("%s: %s: %s", self.strict and "error" or "warning", w.where, w.message))
  end
  if #self.accounts > 1 then
    out[#out + 1] = format("all %d accounts: %s", #self.accounts, counts_line(total))
  end
  return out
end

function FolderPlan:__tostring()
  return concat(self:lines(), "\n")
end

-- '"warnings":[...],"strict":b', as the plan's JSON and apply's say them.
local function warnings_json(self)
  local list = {}
  for i, w in ipairs(self.warnings) do
    list[i] = "{" .. concat({ '"where":' .. json(w.where), '"field":' .. json(w.field), '"code":' .. json(w.code),
      '"message":' .. json(w.message) }, ",") .. "}"
  end
  return '"warnings":[' .. concat(list, ",") .. '],"strict":' .. tostring(self.strict == true)
end

-- The plan as JSON: { accounts = [ { account_id, name, base_url,
-- resources = [ { resource, file, fingerprint, refused, plan } ] } ],
-- warnings, strict }. saved: with what apply from a file needs.
local KEY_NODE = { type = "array", items = { type = "string" } }
local function as_json(self, saved)
  local accounts = {}
  for i, a in ipairs(self.accounts) do
    local resources = {}
    for j, item in ipairs(a.resources) do
      local desc = resource_internals(item.plan.resource)
      local parts = {
        '"resource":' .. json(item.resource), '"file":' .. json(item.path),
        '"fingerprint":' .. json(item.fingerprint),
        '"refused":' .. ((item.over and not self.force) and json(item.over.message) or "null"),
        '"existing":' .. item.plan.existing, '"listed":' .. item.plan.listed,
        '"key":' .. json(item.plan.key, KEY_NODE),
        '"plan":' .. plan_text.json_object(item.plan, desc.entry),
      }
      resources[j] = "{" .. concat(parts, ",") .. "}"
    end
    accounts[i] = "{" .. concat({ '"account_id":' .. json(a.account_id),
      '"name":' .. (a.name and json(a.name) or "null"), '"base_url":' .. json(a.base_url),
      '"resources":[' .. concat(resources, ",") .. "]" }, ",") .. "}"
  end
  local head = saved and ('"format":' .. json(SAVED_FORMAT) .. ',"version":' .. SAVED_VERSION
    .. ',"force":' .. tostring(self.force == true) .. ",") or ""
  return "{" .. head .. '"accounts":[' .. concat(accounts, ",") .. "]," .. warnings_json(self) .. "}\n"
end

--- The plan as one line of JSON (the tool's plan --json).
function FolderPlan:json()
  return as_json(self, false)
end

--- The plan as a file to apply later (folder_plan.load): what apply will
--- send, and the fingerprint of each listing it was made against. No
--- credential is in it.
function FolderPlan:save()
  return as_json(self, true)
end

---------------------------------------------------------------------------
-- Apply
---------------------------------------------------------------------------

local function report_line(entry)
  local parts = {}
  for _, r in ipairs(entry.resources) do
    if r.summary then
      parts[#parts + 1] = format("%s %d created, %d updated, %d deleted", r.resource, r.summary.created,
                                 r.summary.updated, r.summary.deleted)
    elseif r.applied then
      local done, left, doubt = r.applied, r.remaining, r.in_doubt
      parts[#parts + 1] = format("%s stopped: %d created, %d updated, %d deleted; not done %d creates, %d updates, "
        .. "%d deletes; in doubt %d creates, %d updates, %d deletes", r.resource,
        done.created, done.updated, done.deleted, left.creates, left.updates, left.deletes,
        doubt.creates, doubt.updates, doubt.deletes)
    else
      parts[#parts + 1] = r.resource .. " not started"
    end
  end
  return concat(parts, "; ")
end

local Report = {}
Report.__index = Report

function Report:__tostring()
  local out = {}
  for _, entry in ipairs(self.accounts) do
    out[#out + 1] = printable(format("account %s: %s%s", account_label(entry), entry.state,
      #entry.resources > 0 and (" (" .. report_line(entry) .. ")") or ""))
  end
  return concat(out, "\n")
end

-- A saved resource's listing now, walked a page at a time (as plan walks
-- it: never held whole): its fingerprint, how many entries it has, and
-- the plan's check of it (Plan:saved_check); a listing that moved while
-- it was walked is walked again.
local function listing_now(item)
  local acc, n, check
  local err = plan.walk(item.plan.resource, function()
    acc, n, check = fingerprint.new(), 0, item.plan:saved_check()
  end, function(e)
    acc.add(e)
    check.add(e)
    n = n + 1
  end)
  if err then return nil, err end
  return acc.result(), n, check
end

--- For a saved plan (folder_plan.load): lists every resource again and
--- compares it with what the plan saw: nil, or an error naming the
--- account and resource that moved, or whose update or delete is not the
--- entry its id names (nothing was sent). Each resource's count of
--- existing entries, which its thresholds are taken of, is then the
--- listing's, never the file's (see Plan:saved_check), and whether apply
--- refuses it is asked again. apply asks it first.
function FolderPlan:moved()
  for _, a in ipairs(self.accounts) do
    for _, item in ipairs(a.resources) do
      local seen, n, check = listing_now(item)
      if not seen then
        -- (n is the walk's error then)
        local err = annotate(n, a, item.resource)
        err.note = err.note .. ": listing again to check the saved plan: nothing was sent"
        return err
      end
      if seen ~= item.fingerprint then
        return errors.invalid("plan", "stale", format("account %s, %s changed since the plan was made (%d "
          .. "entries then, %d now; fingerprint %s, now %s): nothing was sent anywhere. Plan again",
          account_label(a), item.resource, item.plan.listed, n, tostring(item.fingerprint), seen), "APPLY",
          a.account_id .. "/" .. item.resource)
      end
      local existing, why = check.result()
      if why then
        return errors.invalid("plan", "mismatch", printable(format("account %s, %s: %s: nothing was sent "
          .. "anywhere. Plan again", account_label(a), item.resource, why)), "APPLY",
          a.account_id .. "/" .. item.resource)
      end
      item.plan.existing = existing
      item.over = item.plan:past_thresholds(nil, self.force)
    end
  end
end

--- Applies every account's plans (see the module's comment). opts: force,
--- progress(done, total) across everything. Answers a report
--- (tostring: a line per account), or nil and the error of the first
--- failure with err.report (tostring: as the report's) and err.accounts
--- (its list: each account's state, "done", "stopped" or "not started",
--- and its resources') and err.applied,
--- err.remaining, err.in_doubt by account id and resource.
function FolderPlan:apply(opts)
  opts = opts or {}
  local force = opts.force or self.force
  if self.applied then
    return nil, errors.invalid("plan", "applied", "this plan was applied already: make a new plan to see what is left")
  end
  -- a saved plan's listings first: its thresholds are taken of the
  -- entries listed now (moved recounts them), not of the file's count
  if self.from_file then
    local err = self:moved()
    if err then return nil, err end
  end
  if not force then
    local refused = self:refusals()
    if #refused > 0 then
      local names = {}
      for i, r in ipairs(refused) do names[i] = format("account %s, %s", account_label(r.account), r.resource) end
      return nil, errors.invalid("plan", "threshold", format("past the safety thresholds in %s (%s): nothing was "
        .. "sent anywhere. Check the plan, then apply with --force (force = true) if it is meant",
        concat(names, "; "), printable(refused[1].err.message:gsub("^plan: ", ""):gsub(": nothing was sent.*$", ""))),
        "APPLY")
    end
  end
  if self.strict and #self.warnings > 0 then
    return nil, errors.invalid("plan", "strict", format("%s (strict: warnings are errors): nothing was sent. "
      .. "First: %s: %s", plural(#self.warnings, "warning"), self.warnings[1].where, self.warnings[1].message),
      "APPLY")
  end
  self.applied = true

  local total, done = self:changes(), 0
  local report = setmetatable({ accounts = {} }, Report)
  for _, a in ipairs(self.accounts) do
    report.accounts[#report.accounts + 1] = { account_id = a.account_id, name = a.name, state = "not started",
                                              resources = {} }
  end
  for i, a in ipairs(self.accounts) do
    local entry = report.accounts[i]
    entry.state = "stopped"
    for _, item in ipairs(a.resources) do
      local r = { resource = item.resource }
      entry.resources[#entry.resources + 1] = r
      local before = done
      local summary, err = item.plan:apply({
        force = force,
        progress = opts.progress and function(n) opts.progress(before + n, total) end or nil,
      })
      if not summary then
        -- this resource's counts (the error's own, by kind), before the
        -- error takes the whole plan's (by account and resource)
        local zero_applied = { created = 0, updated = 0, deleted = 0 }
        local zero_left = { creates = 0, updates = 0, deletes = 0 }
        r.applied = err.applied or zero_applied
        r.remaining = err.remaining or { creates = #item.plan.creates, updates = #item.plan.updates,
                                         deletes = #item.plan.deletes }
        r.in_doubt = err.in_doubt or zero_left
        err = annotate(err, a, item.resource)
        -- the resources after it in this account were not started
        for _, later in ipairs(a.resources) do
          local listed = false
          for _, seen in ipairs(entry.resources) do listed = listed or seen.resource == later.resource end
          if not listed then entry.resources[#entry.resources + 1] = { resource = later.resource } end
        end
        err.accounts, err.report = report.accounts, report
        err.applied, err.remaining, err.in_doubt = {}, {}, {}
        for _, e in ipairs(report.accounts) do
          for _, res in ipairs(e.resources) do
            local applied = res.summary and { created = res.summary.created, updated = res.summary.updated,
              deleted = res.summary.deleted } or res.applied
            if applied then
              err.applied[e.account_id] = err.applied[e.account_id] or {}
              err.applied[e.account_id][res.resource] = applied
            end
          end
        end
        err.in_doubt[a.account_id] = { [item.resource] = r.in_doubt }
        -- what is left: the failed resource's, and the whole plan of
        -- every resource not started, here and in the later accounts
        local function left_of(account, resource, counts)
          err.remaining[account.account_id] = err.remaining[account.account_id] or {}
          err.remaining[account.account_id][resource] = counts
        end
        local after = false
        for j = i, #self.accounts do
          for _, later in ipairs(self.accounts[j].resources) do
            if later == item then
              left_of(a, item.resource, r.remaining)
              after = true
            elseif after then
              local lp = later.plan
              left_of(self.accounts[j], later.resource, { creates = #lp.creates, updates = #lp.updates,
                                                          deletes = #lp.deletes })
            end
          end
        end
        local states = {}
        for _, e in ipairs(report.accounts) do states[#states + 1] = account_label(e) .. " " .. e.state end
        local again = err.note:find("plan and apply again to finish", 1, true) and ""
          or ": plan and apply again to finish"
        err.note = err.note .. "; accounts: " .. concat(states, ", ") .. again
        return nil, err
      end
      r.summary = summary
      done = done + summary.created + summary.updated + summary.deleted
    end
    entry.state = "done"
  end
  return report
end

--- What apply did, as one line of JSON (the tool's apply --json): {
--- error, counts (every resource's, added), accounts = [ { account_id,
--- name, base_url, state, resources = [ { resource, file, state,
--- refused, then what plan_text.apply_json says of one resource: error,
--- counts, created, updated, deleted, in_doubt, remaining, plan } ] } ],
--- warnings, strict }. A state is "done", "stopped" (where the error
--- stopped it: the error is that resource's too) or "not started".
--- result: apply's report; or the error that stopped it, or refused it
--- before anything was sent (an error, or the tool's message); nil: apply
--- was not called, as there was nothing to do.
function FolderPlan:apply_json(result)
  local failed = type(result) == "string" or errors.is_error(result)
  -- each account's entry of the report, when apply ran (on a failure the
  -- error holds it); without one, nothing was sent
  local report = type(result) == "table" and type(result.accounts) == "table" and result.accounts or nil
  local unsent = (failed or self:changes() > 0) and "not started" or "done"
  local total = { created = 0, updated = 0, deleted = 0, unchanged = 0, skipped = 0 }
  local accounts = {}
  for i, a in ipairs(self.accounts) do
    local entry = report and report[i]
    local by_name = {}
    for _, r in ipairs(entry and entry.resources or {}) do by_name[r.resource] = r end
    local resources = {}
    for j, item in ipairs(a.resources) do
      local r = by_name[item.resource]
      local state = not report and unsent or (r and r.summary and "done")
        or (r and r.applied and "stopped") or "not started"
      local desc = resource_internals(item.plan.resource)
      resources[j] = plan_text.apply_object(item.plan, state == "stopped" and result or nil, desc.entry, {
        { "resource", json(item.resource) }, { "file", json(item.path) }, { "state", json(state) },
        { "refused", (item.over and not self.force) and json(item.over.message) or "null" },
      })
      for k, v in pairs(plan_text.apply_counts(item.plan)) do total[k] = total[k] + v end
    end
    accounts[i] = "{" .. concat({ '"account_id":' .. json(a.account_id),
      '"name":' .. (a.name and json(a.name) or "null"), '"base_url":' .. json(a.base_url),
      '"state":' .. json(entry and entry.state or unsent),
      '"resources":[' .. concat(resources, ",") .. "]" }, ",") .. "}"
  end
  return "{" .. concat({ '"error":' .. plan_text.error_json(result), '"counts":' .. plan_text.counts_json(total),
    '"accounts":[' .. concat(accounts, ",") .. "]", warnings_json(self) }, ",") .. "}\n"
end

---------------------------------------------------------------------------
-- A saved plan
---------------------------------------------------------------------------

-- A value of a saved plan where a name or a number belongs, for a
-- message: a number as JSON writes it (3, not the 3.0 a decoded float
-- prints), null and a list or an object by their kind (never the address
-- tostring gives a table), a text as it is or quoted.
local function said(v, quoted)
  if type(v) == "string" then return printable(quoted and format("%q", v) or v) end
  if type(v) == "number" then return numbers.text(v) end
  if v == nil then return "(none)" end
  if v == core.null then return "null" end
  if type(v) == "table" then return "(a list or an object)" end
  return tostring(v)
end

--- The plan saved in text (FolderPlan:save), to apply: client_for(account_id)
--- -> the client of that account (the caller's credential). Checks that
--- the plan was made against the same API as the clients talk to. nil and
--- a message when the text is no saved plan.
function folder_plan.load(text, client_for, path)
  path = path or "plan"
  local ok, saved = pcall(json_decode, text)
  if not ok or type(saved) ~= "table" or saved.format ~= SAVED_FORMAT then
    return nil, path .. ": is not a plan saved by plan --out"
  end
  local text_keys = READS[saved.version]
  if text_keys == nil then
    -- (a text quoted: "2" is no version 2, and unquoted the message would
    -- read as if it were)
    return nil, format("%s: a saved plan of version %s; this tool reads versions 1 and %d: plan again",
                       path, said(saved.version, true), SAVED_VERSION)
  end
  -- The file's "force" is never read: only the command line's --force
  -- (apply's opts.force) lets apply past the thresholds, so that a plan
  -- saved with --force, or a file edited to say so, is refused again
  -- without it. (save writes it still, for a person reading the file.)
  local fp = setmetatable({ accounts = {}, strict = saved.strict == true, force = false,
                            warnings = {}, from_file = true }, FolderPlan)
  -- A hand-edited file may hold anything where a list or an object
  -- belongs: each is checked before it is read, and a wrong one refuses
  -- the file with where it is, instead of failing on it half-way.
  local function list(v, where)
    if v == nil then return {} end
    if type(v) ~= "table" or (next(v) ~= nil and v[1] == nil) then
      error({ why = where .. " must be a list" }, 0)
    end
    for i, item in ipairs(v) do
      if type(item) ~= "table" then error({ why = format("%s[%d] must be an object", where, i) }, 0) end
    end
    return v
  end
  local loaded, done, message = pcall(function()
    for _, w in ipairs(list(saved.warnings, "warnings")) do
      fp.warnings[#fp.warnings + 1] = { where = tostring(w.where), field = w.field, code = w.code,
                                        message = tostring(w.message) }
    end
    -- each account once, each resource once in it: plan makes no other
    -- (the command line refuses an account given twice), and one repeated
    -- would be shown, and applied, twice
    local account_at = {}
    for i, sa in ipairs(list(saved.accounts, "accounts")) do
      if type(sa.account_id) ~= "string" then
        error({ why = format("accounts[%d].account_id must be a text", i) }, 0)
      end
      if account_at[sa.account_id] then
        error({ why = format("accounts[%d].account_id: the same account as accounts[%d] (%s): a plan names each "
          .. "account once", i, account_at[sa.account_id], printable(sa.account_id)) }, 0)
      end
      account_at[sa.account_id] = i
      -- (shown with the id, and written again: concatenated, a table would be a traceback)
      if sa.name ~= nil and sa.name ~= core.null and type(sa.name) ~= "string" then
        error({ why = format("accounts[%d].name must be a text or null", i) }, 0)
      end
      local cf, why = client_for(sa.account_id)
      if not cf then return nil, why end
      if cf.base_url ~= sa.base_url then
        return nil, format("%s: the plan was made against %s, and this is %s: plan again there",
                           path, printable(tostring(sa.base_url)), printable(cf.base_url))
      end
      local a = { account_id = cf.account_id, name = sa.name ~= core.null and sa.name or nil, base_url = cf.base_url,
                  client = cf, resources = {} }
      fp.base_url = fp.base_url or cf.base_url
      fp.accounts[#fp.accounts + 1] = a
      local resource_at = {}
      for j, item in ipairs(list(sa.resources, format("accounts[%d].resources", i))) do
        local name = item.resource
        if type(name) ~= "string" or not RESOURCE_SET[name] then
          return nil, format("%s: %s is not a resource", path, said(name))
        end
        local at = format("accounts[%d].resources[%d]", i, j)
        if resource_at[name] then
          error({ why = format("%s.resource: the same resource as %s (%s): a plan has each resource of an account "
            .. "once", at, resource_at[name], name) }, 0)
        end
        resource_at[name] = at
        -- the file the resource was planned from, which the plan shows:
        -- plan always has one (a folder's file)
        if type(item.file) ~= "string" then error({ why = at .. ".file must be a text" }, 0) end
        -- the resource's own key, the one plan makes every folder plan
        -- with: another would name other entries (or none, as skipped),
        -- and lower the count the thresholds are taken of
        local natural = (keys.of(name) or { fields = {} }).fields
        local same_key = type(item.key) == "table" and #item.key == #natural
        for k, field in ipairs(natural) do same_key = same_key and item.key[k] == field end
        if not same_key then
          return nil, format("%s: account %s, %s: the plan's key is not %s's (%s): plan again", path, a.account_id,
                             name, name, concat(natural, ", "))
        end
        -- the fingerprint says how many entries the listing had: the
        -- counts the plan gives cannot be more
        local listed = type(item.fingerprint) == "string" and tonumber(item.fingerprint:match("^%x+%-%x+%-(%d+)$"))
        if not listed then
          return nil, format("%s: account %s, %s: the plan has no fingerprint of its listing: plan again", path,
                             a.account_id, name)
        end
        if item.listed ~= listed then
          return nil, format("%s: account %s, %s: listed %s, and the fingerprint says %d: plan again", path,
                             a.account_id, name, printable(tostring(item.listed)), listed)
        end
        local p, err = plan.restore(cf[name], item, text_keys)
        if not p then return nil, format("%s: account %s, %s: %s", path, a.account_id, name, tostring(err)) end
        a.resources[#a.resources + 1] = { resource = name, path = item.file, plan = p, fingerprint = item.fingerprint,
          over = p:past_thresholds(nil, fp.force) }
      end
    end
    return true
  end)
  if not loaded then
    if type(done) == "table" and done.why then return nil, path .. ": " .. done.why end
    error(done, 0)
  end
  if not done then return nil, message end
  return fp
end

return folder_plan

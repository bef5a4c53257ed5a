-- plan:apply(opts): sends what a plan (sync/plan.lua) found, in as few
-- requests as the resource allows: where it has a batch endpoint, up to
-- 1000 items of each kind in one request (creates as posts, updates as
-- patches, deletes), else one request per change. Creates go first, then
-- updates, then deletes; within each, the client's `concurrency` requests
-- are in flight at once (concurrent.lua), and after a failure nothing more
-- starts while those in flight finish.
--
-- Refused, with nothing sent, past the plan's thresholds unless
-- opts.force. On a failure it stops and answers nil and an error that says
-- what was done and what was not (err.applied, err.remaining); planning
-- again and applying finishes the job: entries are matched by their keys,
-- so what was created is found, and what was deleted is gone.
--
-- What became of each change is kept on the plan, for apply --json to
-- say change by change (sync/plan_text.lua): p.outcome[item] is "done" or
-- "in doubt" (absent: not done), p.new_ids[item] a create's new id where
-- the answer gave it. The counts above are the same facts, counted.
--
-- What apply shares with plan (the listing, the option check, the
-- thresholds) it asks of the plan it is given: p:listing(),
-- p:check_options(), p:past_thresholds(). sync/plan.lua loads this file,
-- never the other way round.

local concurrent = require("cloudflare.email_security.concurrent")
local errors = require("cloudflare.email_security.errors")
local resource_internals = require("cloudflare.email_security.resource").internals
local retry = require("cloudflare.email_security.retry")
local snapshot = require("cloudflare.email_security.snapshot")
local keys = require("cloudflare.email_security.sync.keys")

local format, min, ceil, type = string.format, math.min, math.ceil, type

-- a 404 for the entry itself, not for an unknown route or account (which
-- did nothing)
local is_gone = require("cloudflare.email_security.request").is_gone

local Summary = {}
Summary.__index = Summary
function Summary:__tostring()
  return format("%d created, %d updated, %d deleted, %d unchanged%s (%d request%s)",
    self.created, self.updated, self.deleted, self.unchanged,
    self.skipped > 0 and (", " .. self.skipped .. " skipped") or "", self.requests,
    self.requests == 1 and "" or "s")
end

local function collection(p)
  local _, path = resource_internals(p.resource)
  return path
end

local function invalid(p, rule, message)
  return errors.invalid("plan", rule, message, "APPLY", collection(p))
end

--- How many requests sending a plan takes, without the listing: with a
--- batch endpoint, ceil(largest kind / 1000) (the kinds the endpoint
--- lacks one each), else one per change.
local function batch_kinds(r)
  local desc = resource_internals(r)
  local node = desc.bodies.batch
  if not (desc.ops.batch and node) then return {} end
  local kinds = {}
  for kind, array in pairs({ creates = "posts", updates = "patches", deletes = "deletes" }) do
    local f = node.fields[array]
    if f then kinds[kind] = { array = array, size = f.max_items or 1000 } end
  end
  return kinds
end

-- The requests a listing of n entries takes, 1000 a page.
local function listing_requests(n)
  return math.max(1, ceil(n / 1000))
end

-- Before any create goes out, the keys it creates are looked for again:
-- an entry made by someone else since the plan was listed (or while a
-- person read it) would otherwise be created a second time, and every
-- later plan refused for the duplicate key. Answers the requests it made,
-- and an error when the plan is stale (nothing sent).
local function still_absent(p)
  local now, err = p:listing()
  if not now then
    err.note = (err.note and err.note .. "; " or "") .. "listing again before the creates: nothing was sent"
    return 1, err
  end
  local there = {}
  for _, e in ipairs(now) do
    local k = type(e) == "table" and keys.value(p.key_rule, e)
    if k then there[k] = e end
  end
  for _, item in ipairs(p.creates) do
    local e = there[keys.value(p.key_rule, item.fields)]
    if e then
      return listing_requests(#now), invalid(p, "stale", format("%s exists on the server now (%s), made since "
        .. "the plan was listed: nothing was sent. Plan again", errors.printable(item.key),
        errors.printable(tostring(e.id))))
    end
  end
  return listing_requests(#now)
end

local function request_count(p)
  local kinds, batches, singles = batch_kinds(p.resource), 0, 0
  -- creates are preceded by a listing (still_absent)
  if #p.creates > 0 then singles = listing_requests(p.listed) end
  for _, kind in ipairs({ "creates", "updates", "deletes" }) do
    if kinds[kind] then
      batches = math.max(batches, ceil(#p[kind] / kinds[kind].size))
    else
      singles = singles + #p[kind]
    end
  end
  return batches + singles
end

local apply = { requests = request_count }

function apply.apply(p, opts)
  if type(opts) ~= "table" and opts ~= nil then
    error("bad argument #1 to 'apply' (table expected, got " .. type(opts) .. ")", 2)
  end
  opts = opts and snapshot(opts) or {}
  local unknown = p:check_options(opts, { "force", "thresholds", "progress" }, "APPLY")
  if unknown then return nil, unknown end
  if opts.progress ~= nil and type(opts.progress) ~= "function" then
    error("bad argument #1 to 'apply' (progress must be a function)", 2)
  end
  if p.applied then
    return nil, invalid(p, "applied", "this plan was applied already: make a new plan to see what is left")
  end
  if opts.force ~= nil and type(opts.force) ~= "boolean" then
    return nil, errors.invalid("force", "type", "must be true or false, got " .. type(opts.force), "APPLY",
                               collection(p))
  end
  local past = p:past_thresholds(opts.thresholds, opts.force)
  if past then return nil, past end
  local r = p.resource
  local _, _, state = resource_internals(r)
  local requests = 0
  if #p.creates > 0 then
    local pages, err = still_absent(p)
    requests = pages
    if err then return nil, err end
  end
  p.applied = true
  local outcome, new_ids = {}, {}
  p.outcome, p.new_ids = outcome, new_ids

  local done = { created = 0, updated = 0, deleted = 0 }
  local COUNT = { creates = "created", updates = "updated", deletes = "deleted" }
  -- a change done: counted, and marked on the plan
  local function did(kind, item)
    outcome[item] = "done"
    done[COUNT[kind]] = done[COUNT[kind]] + 1
  end
  local total = #p.creates + #p.updates + #p.deletes
  local progress = opts.progress

  -- after each request, with `done` already counting it
  local function step()
    requests = requests + 1
    if progress then progress(done.created + done.updated + done.deleted, total) end
  end

  -- What was done, what was not, and what is in doubt, on the error (the
  -- first failure, in the plan's order). failures: every request that
  -- failed, each { err = , carried = { creates = { item, ... }, ... } (the
  -- changes it carried), acted_before = } : what it carried is in doubt
  -- when it may have acted, on its last try (a 5xx, a cut answer, a timeout
  -- after sending) or an earlier one, else not done.
  local function stopped(at, failures)
    local doubt = { creates = 0, updates = 0, deletes = 0 }
    for _, f in ipairs(failures) do
      local e = f.err
      if f.acted_before or e.may_exist or e.acted_before or retry.may_have_acted(e) then
        for kind, items in pairs(f.carried) do
          doubt[kind] = doubt[kind] + #items
          for _, item in ipairs(items) do outcome[item] = "in doubt" end
        end
      end
    end
    local err = failures[1].err
    local left = {
      creates = #p.creates - done.created - doubt.creates,
      updates = #p.updates - done.updated - doubt.updates,
      deletes = #p.deletes - done.deleted - doubt.deletes,
    }
    err.applied = { created = done.created, updated = done.updated, deleted = done.deleted }
    err.remaining = left
    err.in_doubt = doubt
    if #failures > 1 then err.failed_requests = #failures end
    local in_doubt = doubt.creates + doubt.updates + doubt.deletes > 0
      and format("; %d creates, %d updates, %d deletes in doubt (a failed request may have acted)",
                 doubt.creates, doubt.updates, doubt.deletes) or ""
    local others = #failures > 1 and format(" (and %d more requests in flight then failed)", #failures - 1) or ""
    err.note = format("apply stopped at %s%s: %d created, %d updated, %d deleted%s; %d creates, "
      .. "%d updates, %d deletes not done: plan and apply again to finish", at, others, done.created,
      done.updated, done.deleted, in_doubt, left.creates, left.updates, left.deletes)
    return nil, err
  end

  -- n requests, `concurrency` at a time (concurrent.lua); send(i) -> nil,
  -- or the failure (see stopped) and where. After the first failure nothing
  -- more starts, what is in flight finishes, and the failures come back in
  -- the plan's order.
  local function send_all(n, send)
    local results = concurrent.map(state, n, send, function(_, failure) return failure ~= nil end)
    local failures, at = {}, nil
    for i = 1, #results do
      local failure, where = results[i][1], results[i][2]
      if failure then
        failures[#failures + 1] = failure
        at = at or where
      end
    end
    if #failures > 0 then return at, failures end
  end

  local kinds = batch_kinds(r)

  -- one request per change, for the kinds without a batch list
  local SINGLE = {
    { kind = "creates", doing = "creating",
      send = function(item) return r:create(item.fields) end },
    { kind = "updates", doing = "updating",
      send = function(item) return r:update(item.id, item.fields) end },
    -- a delete whose entry is gone already did what the plan wanted
    { kind = "deletes", doing = "deleting", done_if = is_gone,
      send = function(item) return r:delete(item.id) end },
  }
  for _, single in ipairs(SINGLE) do
    local list = p[single.kind]
    if not kinds[single.kind] and #list > 0 then
      local at, failures = send_all(#list, function(i)
        local item = list[i]
        local answer, err = single.send(item)
        if err and not (single.done_if and single.done_if(err)) then
          return { err = err, carried = { [single.kind] = { item } } }, single.doing .. " " .. item.key
        end
        if single.kind == "creates" and type(answer) == "table" then new_ids[item] = answer.id end
        did(single.kind, item)
        step()
      end)
      if at then return stopped(at, failures) end
    end
  end

  -- the batches: chunk i of every kind in request i
  local chunks = 0
  for kind, k in pairs(kinds) do chunks = math.max(chunks, ceil(#p[kind] / k.size)) end
  -- The ids of the entries a batch created, by the keys of the creates it
  -- carried: matched by key, not by place, which nothing promises (the
  -- answer is a list of the entries made, each with its key). A key
  -- carried more than once (a plan changed in Lua after it was made: plan
  -- refuses a key twice in the desired list, and so does a saved plan
  -- read back) has a list of ids, in the order the answer gives them,
  -- handed out one to a create in the plan's order: no id is given twice
  -- nor lost, and none goes to a create of another key, whatever order
  -- the keys come back in. Only the order within one key is taken from
  -- the answer, where nothing else tells two entries of that key apart.
  local function note_new_ids(answer, creates)
    local posts = type(answer) == "table" and answer.posts
    if type(posts) ~= "table" or #creates == 0 then return end
    local ids_of = {}
    for _, e in ipairs(posts) do
      local k = type(e) == "table" and keys.value(p.key_rule, e)
      if k then
        local ids = ids_of[k]
        if not ids then
          ids = { n = 0, given = 0 }
          ids_of[k] = ids
        end
        -- (n counted apart: an entry answered without an id keeps its place)
        ids.n = ids.n + 1
        ids[ids.n] = e.id
      end
    end
    for _, item in ipairs(creates) do
      local k = keys.value(p.key_rule, item.fields)
      local ids = k and ids_of[k]
      if ids and ids.given < ids.n then
        ids.given = ids.given + 1
        new_ids[item] = ids[ids.given]
      end
    end
  end

  local function send_chunk(chunk)
    local at = format("batch %d of %d", chunk, chunks)
    -- carried: the plan's changes in this request, by kind, in the order
    -- of the lists sent
    local spec, carried = {}, {}
    for kind, k in pairs(kinds) do
      local list, items, first = {}, {}, (chunk - 1) * k.size + 1
      for i = first, min(#p[kind], chunk * k.size) do
        local item = p[kind][i]
        items[#items + 1] = item
        if kind == "creates" then
          list[#list + 1] = item.fields
        elseif kind == "updates" then
          local patch = snapshot(item.fields)
          patch.id = item.id
          list[#list + 1] = patch
        else
          list[#list + 1] = { id = item.id }
        end
      end
      spec[k.array], carried[kind] = list, items
    end
    local answer, err = r:batch(spec)
    -- an earlier try of this batch may have acted (a 500 after doing it),
    -- whatever its last try met: then what it carried is in doubt
    local earlier = err and err.acted_before
    if err and is_gone(err) and #(spec.deletes or {}) > 0 then
      -- A 404 refuses the whole batch: this try did nothing (a 4xx never
      -- acts, and a batch holding creates is retried only while no try can
      -- have acted). An entry it deletes went since the plan was made, or
      -- by an earlier try: those deletes are done, and the rest is sent
      -- again, once.
      local now, list_err = p:listing()
      requests = requests + listing_requests(#(now or {}))
      if not now then
        return { err = list_err, carried = earlier and carried or {}, acted_before = earlier }, at
      end
      local there = {}
      for _, e in ipairs(now) do there[e.id] = true end
      local left, left_items = {}, {}
      for j, d in ipairs(spec.deletes) do
        if there[d.id] then
          left[#left + 1], left_items[#left_items + 1] = d, carried.deletes[j]
        else
          -- the deletes whose entries went are done, whatever comes next
          did("deletes", carried.deletes[j])
        end
      end
      spec.deletes, carried.deletes = left, left_items
      local pending = #left + #(spec.posts or {}) + #(spec.patches or {})
      if pending == 0 then
        err = nil
      else
        requests = requests + 1
        answer, err = r:batch(spec)
      end
    end
    if err then return { err = err, carried = carried, acted_before = earlier }, at end
    note_new_ids(answer, carried.creates or {})
    for kind, items in pairs(carried) do
      for _, item in ipairs(items) do did(kind, item) end
    end
    step()
  end
  if chunks > 0 then
    local at, failures = send_all(chunks, send_chunk)
    if at then return stopped(at, failures) end
  end

  return setmetatable({
    created = done.created, updated = done.updated, deleted = done.deleted,
    unchanged = p:unchanged_count(), skipped = #p.skipped, requests = requests,
  }, Summary)
end

return apply

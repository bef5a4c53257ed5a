-- Sets up Lua 5.4's interactive prompt for the module: `make repl`, or
--   LUA_PATH='./lua/?.lua;./?.lua;;' LUA_CPATH='./build/lua5.4/?.so;;' lua5.4 -i examples/repl.lua
-- Globals: es (the module), cf (a client), reg (cf.impersonation_registry).
-- The client uses the environment's credentials when set, else a local
-- emulator started here and stopped when the prompt closes. Results print
-- as readable JSON-like text; an error prints as its one line.
--
-- Against anything but that emulator, a plan's apply asks first, as the
-- tool's apply does: p:apply() on what r:plan(...) or es.plan_folder(...)
-- returns (or on a plan a folder plan holds, applied by itself) says
-- which account and API and how many changes, and sends nothing unless
-- the answer is yes (else nil and an error value);
-- p:apply{ yes = true } does not ask. The library is not changed: the
-- clients the prompt has (cf, cf:account(id), es.new(...)) and
-- es.plan_folder are wrapped here.

-- luacheck: globals es cf reg _EMULATOR print help
local module = require("cloudflare.email_security")
local pretty = require("cloudflare.email_security.pretty")
local words = require("cloudflare.email_security.help")
local errors = require("cloudflare.email_security.errors")

--- help() lists the resources and their calls; help(cf.domains) shows one
--- resource's fields with their types, limits and enums.
function help(what) io.write(words.text(what), "\n") end

local function set(name) local v = os.getenv(name) return v ~= nil and v ~= "" end

---------------------------------------------------------------------------
-- apply asks, against a real account
---------------------------------------------------------------------------

-- The API of the emulator started here (nil when the environment's
-- credentials are used): a plan against it is applied without a question,
-- as nothing there is real.
local emulator_url

-- The question, as the tool asks it (on stderr, the answer a line of
-- stdin). targets: { { account_id, base_url }, ... }; what: the changes,
-- in words. true when the answer is yes.
local function confirmed(targets, what)
  io.stdout:flush()
  for _, t in ipairs(targets) do
    io.stderr:write(errors.printable(("account %s at %s"):format(t.account_id, t.base_url)), "\n")
  end
  io.stderr:write(what, "\n", "Apply these changes? Type yes to go on: ")
  io.stderr:flush()
  return io.read("*l") == "yes"
end

-- An apply that asks first: apply(p, opts) is the plan's own; about:
-- targets(p) (the accounts, each { account_id, base_url }), count(p) (the
-- changes), what(p) (them in words), refused(p, opts) (apply will refuse
-- it, sending nothing: it is asked no question, as the tool refuses before
-- it asks). opts.yes = true skips the question; it is taken out before
-- apply sees opts, as a plan's apply refuses an option it does not know.
-- Nothing to send, or every target the emulator: no question.
local function asking(apply, about)
  return function(p, opts)
    if type(opts) == "table" and opts.yes ~= nil then
      if type(opts.yes) ~= "boolean" then
        error("bad argument #1 to 'apply' (yes must be true or false, got " .. type(opts.yes) .. ")", 2)
      end
      local yes, rest = opts.yes, {}
      for k, v in pairs(opts) do if k ~= "yes" then rest[k] = v end end
      if yes then return apply(p, rest) end
      opts = rest
    end
    local real = false
    for _, t in ipairs(about.targets(p)) do real = real or t.base_url ~= emulator_url end
    if real and about.count(p) > 0 and not about.refused(p, opts)
       and not confirmed(about.targets(p), about.what(p)) then
      return nil, errors.invalid(nil, "not_confirmed", "not applied: the answer was not yes "
        .. "(p:apply{ yes = true } applies without asking)")
    end
    return apply(p, opts)
  end
end

local function plural(n, word) return ("%d %s%s"):format(n, word, n == 1 and "" or "s") end

-- A resource plan's apply, for the client cf it was made with (or a
-- folder plan's account: its account_id and base_url). applying_with:
-- for a plan a folder plan holds, a function true while that folder
-- plan's own apply runs, which asked already (or was told yes) for all
-- it holds: the plan is then applied as it is, without a second question.
local function guard_plan(p, cf, applying_with)
  local target = { { account_id = cf.account_id, base_url = cf.base_url } }
  local own = p.apply
  -- the instance's own field: the plan's class (and so every other plan)
  -- is not touched
  local guarded = asking(own, {
    targets = function() return target end,
    count = function(q) return q:changes() end,
    what = function(q)
      return ("%s: %s (%d to create, %d to update, %d to delete)"):format(q.name or "plan",
        plural(q:changes(), "change"), #q.creates, #q.updates, #q.deletes)
    end,
    -- applied already, or past the thresholds (apply's own, else the
    -- plan's); options apply cannot read it refuses itself
    refused = function(q, o)
      if o ~= nil and type(o) ~= "table" then return true end
      return q.applied or q:past_thresholds(o and o.thresholds, o and o.force) ~= nil
    end,
  })
  rawset(p, "apply", function(q, opts)
    if applying_with and applying_with() then return own(q, opts) end
    return guarded(q, opts)
  end)
  return p
end

-- A client whose resources' plans ask before they are applied, as do
-- those of the clients cf:account(id) gives. Each resource is made now
-- (the client makes them on first use) and given a plan of its own that
-- wraps the resource's.
local function guarded(cf)
  for _, name in ipairs(module.resources) do
    local r = cf[name]
    local plan = r.plan
    if plan then
      rawset(r, "plan", function(self, ...)
        local p, err = plan(self, ...)
        if p then guard_plan(p, cf) end
        return p, err
      end)
    end
  end
  local account = cf.account
  rawset(cf, "account", function(self, ...) return guarded(account(self, ...)) end)
  return cf
end

-- es for the prompt: the module's own values, but es.new's clients are
-- guarded, and es.plan_folder's plans ask before they are applied (for
-- every account they hold, in one question), as do the plans they hold
-- (fp.accounts[i].resources[j].plan) when applied by themselves.
es = {}
for k, v in pairs(module) do es[k] = v end
function es.new(...) return guarded(module.new(...)) end
function es.plan_folder(...)
  local fp, err = module.plan_folder(...)
  if fp then
    -- true while the folder plan's own apply runs: it applies the plans
    -- it holds through their apply, which must not ask again
    local applying = false
    local function folder_applying() return applying end
    for _, a in ipairs(fp.accounts) do
      for _, item in ipairs(a.resources) do guard_plan(item.plan, a, folder_applying) end
    end
    local own = fp.apply
    -- the flag is put back even when apply raises an error (a bad
    -- argument): else the plans inside would never ask again
    local function apply_all(q, opts)
      applying = true
      local ok, summary, why = pcall(own, q, opts)
      applying = false
      if not ok then error(summary, 0) end
      return summary, why
    end
    rawset(fp, "apply", asking(apply_all, {
      targets = function(q) return q.accounts end,
      count = function(q) return q:changes() end,
      what = function(q) return ("%s in %s"):format(plural(q:changes(), "change"), plural(#q.accounts, "account")) end,
      -- applied already, past a threshold not forced, strict with warnings
      refused = function(q, o)
        if o ~= nil and type(o) ~= "table" then return true end
        local force = (o and o.force) or q.force
        return q.applied or (not force and #q:refusals() > 0) or (q.strict and #q.warnings > 0) or false
      end,
    }))
  end
  return fp, err
end
-- `require "cloudflare.email_security"` at the prompt (as the README's
-- examples begin) gives this es too, so that a client made so is guarded
-- as well. (Its parts, required one by one, are the library's own: the
-- question is a courtesy at the prompt, not a lock.)
package.loaded["cloudflare.email_security"] = es

---------------------------------------------------------------------------
-- The client
---------------------------------------------------------------------------

if set("CLOUDFLARE_ACCOUNT_ID") and (set("CLOUDFLARE_API_TOKEN")
                                     or (set("CLOUDFLARE_EMAIL") and set("CLOUDFLARE_API_KEY"))) then
  cf = es.new()
  print("cf: a client for account " .. cf.account_id .. " at " .. cf.base_url .. " (from the environment)")
  print("p:apply() on a plan asks before it sends anything (p:apply{ yes = true } does not)")
else
  local emulator = require("emulator.process").start({ idle_exit = 3600 })
  cf = es.new({ account_id = "023e105f4ecef8ad9ca31a8372d0c353", api_token = emulator.token,
                base_url = emulator.base_url })
  -- as the client holds it (the address its plans are compared by)
  emulator_url = cf.base_url
  -- stopped when the interpreter closes its state at the end of the session
  _EMULATOR = setmetatable({}, { __gc = function() emulator.stop() end })
  print("cf: a client of the local emulator at " .. emulator.base_url .. ", account " .. cf.account_id
    .. " (no credentials set)")
  print("p:apply() on a plan against it does not ask (nothing there is real)")
end
reg = cf.impersonation_registry
print = pretty.print
print('try: reg:create{ name = "Jane Roe", email = "jane@example.com", is_email_regex = false }')
print("help() lists the resources and their calls")

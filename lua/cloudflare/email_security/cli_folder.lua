-- The command-line tool's commands for a whole account, or many: export
-- DIR, plan DIR, apply DIR and apply PLAN.json (sync/folder.lua,
-- sync/folder_plan.lua). cli.lua builds the parser and calls these.
--
-- Accounts: --account-id, given once or more, and --accounts FILE (an id
-- a line, optionally followed by white space and a name; blank lines and
-- # comments ignored), in that order; with neither, CLOUDFLARE_ACCOUNT_ID.
-- The credential is the environment's, one for all: the accounts share
-- one connection and one pacer (cf:account), since the API's request
-- budget is the token's.
--
-- plan --json and apply --json write one JSON object on stdout, each
-- change's key an object of the key's fields (sync/plan_text.lua); apply's
-- is what it did (FolderPlan:apply_json), written once a plan is made
-- whatever comes next, exit 1 included, so that a script reads what was
-- done, in doubt and not done from stdout. The question, and the plan it
-- is about, go to stderr then.

local es = require("cloudflare.email_security")
local config = require("cloudflare.email_security.config")
local client = require("cloudflare.email_security.client")
local core = require("cloudflare.email_security.core")
local printable = require("cloudflare.email_security.errors").printable
-- loaded when a folder command runs, not for every command
local function folder() return require("cloudflare.email_security.sync.folder") end
local function folder_plan() return require("cloudflare.email_security.sync.folder_plan") end
local output = require("cloudflare.email_security.cli_output")
local words = require("cloudflare.email_security.cli_words")
local plan_text = require("cloudflare.email_security.sync.plan_text")

local concat, format = table.concat, string.format

local cli_folder = {}

local FORMATS = { csv = true, json = true, dashboard = true }

--- Adds export, plan and apply (of a folder or a saved plan) to parser.
function cli_folder.add_commands(parser)
  local export = parser:command("export", "Writes the account's settings into a folder: a file per resource "
    .. "(key fields first, sorted, no server-made field), for git.")
  export:argument("dir", "The folder (made when missing).")
  export:option("--format", "csv (default), json, or dashboard (the dashboard's own CSV columns where it has "
    .. "them).")
    :argname("<format>")
    :convert(function(v)
      if not FORMATS[v] then return nil, "--format: csv, json or dashboard, got '" .. v .. "'" end
      return v
    end)

  local function sync_options(cmd)
    cmd:flag("--no-purge", "Never delete entries a file does not list (settings.json may say so for one "
      .. "resource).")
    cmd:flag("--strict", "Warnings are errors: nothing is applied.")
    cmd:flag("--delete-domains", "Delete domains the domains file does not list (without it, none is deleted).")
  end
  local plan = parser:command("plan", "What apply DIR would change in every account, changing nothing "
    .. "(exit 0: nothing, 2: changes).")
  plan:argument("dir", "The folder: one file per resource (allow_policies.csv, ...); a resource without a "
    .. "file is not touched.")
  sync_options(plan)
  plan:option("--out", "Also save the plan to this file, to apply exactly it later (apply FILE).")
    :argname("<file>")

  local apply = parser:command("apply", "Makes every account's entries equal to the folder's, or applies a "
    .. "saved plan (asks first; --json: what it did, as one JSON object).")
  apply:argument("source", "A folder, or a plan saved by plan --out (it lists again, and applies only if "
    .. "nothing moved).")
  sync_options(apply)
  apply:flag("-y --yes", "Apply without asking.")
  apply:flag("--force", "Apply past the safety thresholds.")
end

--- The accounts the command line names: a list of { id, name }, or nil
--- and a usage message; an empty list: the environment's.
function cli_folder.accounts(args)
  local out, seen = {}, {}
  local function add(id, name, where)
    if seen[id] then return format("%saccount %s is given twice", where, id) end
    seen[id] = true
    out[#out + 1] = { id = id, name = name }
  end
  for _, id in ipairs(args.account_id or {}) do
    local why = add(id, nil, "")
    if why then return nil, why end
  end
  if args.accounts then
    local f, why = io.open(args.accounts, "rb")
    if not f then return nil, "--accounts: " .. tostring(why) end
    local text = f:read("*a")
    f:close()
    if not text then return nil, "--accounts: " .. args.accounts .. " cannot be read" end
    local n = 0
    for line in (text .. "\n"):gmatch("([^\n]*)\n") do
      n = n + 1
      line = line:gsub("\r$", "")
      if not line:find("^%s*$") and not line:find("^%s*#") then
        local id, name = line:match("^%s*(%S+)%s*(.-)%s*$")
        local bad = config.check_account_id(id, format("--accounts: %s line %d: the account id", args.accounts, n))
        if bad then return nil, bad end
        why = add(id, name ~= "" and name or nil, format("--accounts: %s line %d: ", args.accounts, n))
        if why then return nil, why end
      end
    end
    -- never the environment's account in place of a list that names none
    if #out == 0 then return nil, "--accounts: " .. args.accounts .. " names no account" end
  end
  return out
end

-- The client options the command line gave (cli.client_options), for
-- one account (nil: the environment's).
local function with_account(client_opts, id)
  local out = {}
  for k, v in pairs(client_opts) do out[k] = v end
  out.account_id = id
  return out
end

-- One client per account, sharing the first one's connection and pacer:
-- { { client, name }, ... }, the first client (to close), or nil and
-- why. accounts: { { id, name } } (empty: the environment's).
local function clients(accounts, opts)
  local made, cf = pcall(es.new, with_account(opts.client, accounts[1] and accounts[1].id))
  if not made then return nil, tostring(cf):gsub("^[^:]*:%d+: ", "") end
  local out = { { client = cf, name = accounts[1] and accounts[1].name } }
  for i = 2, #accounts do out[i] = { client = cf:account(accounts[i].id), name = accounts[i].name } end
  return out, cf
end

-- The tool's text (stderr) for a wait for the API's request budget.
local function on_wait(io_)
  return function(seconds)
    io_.err:write(format("waiting %.0f s for the request budget (the API allows 1,200 requests per 5 minutes "
      .. "a token, shared with the dashboard)\n", seconds))
    io_.err:flush()
  end
end

local function prepare(io_, cf, own_process)
  local state = client.internals(cf)
  if own_process and core.catch_interrupt() then state.interrupted = core.interrupted end
  if output.is_terminal(2) then state.on_wait = on_wait(io_) end
end

local function say_notes(io_, source)
  for _, file in ipairs(source.files) do
    for _, note in ipairs(file.assumed or {}) do
      io_.err:write(printable(format("%s: read as the dashboard's %s file: %s", file.path, file.resource, note))
        .. "\n")
    end
  end
end

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

--- export DIR: (io_, args, accounts, opts) -> exit code, or nil and an error.
function cli_folder.export(io_, args, accounts, opts)
  if #accounts > 1 then return nil, "usage", "export writes one account: give one --account-id" end
  local list, cf = clients(accounts, opts)
  if not list then return nil, list == nil and cf end
  prepare(io_, cf, opts.own_process)
  io_.err:write(printable(format("account %s at %s\n", cf.account_id, cf.base_url)))
  local ok = os.execute("mkdir -p -- " .. quote(args.dir))
  if not (ok == true or ok == 0) then
    cf:close()
    return nil, args.dir .. ": cannot make this folder"
  end
  local written, err = folder().export(cf, args.dir, { format = args.format,
    say = function(line) io_.err:write(printable(line) .. "\n") end })
  cf:close()
  if not written then return nil, err end
  for _, w in ipairs(written) do
    io_.err:write(printable(format("%s: %d %s", w.path, w.count, w.count == 1 and "entry" or "entries")) .. "\n")
  end
  return 0
end

-- Files in the folder that look meant for it but are no resource's
-- (allow_policy.csv, Trusted_Domains.csv): said, since their entries
-- would otherwise be left out without a word.
local function say_strays(io_, dir)
  local names = {}
  for _, name in ipairs(require("cloudflare.email_security.resources.names")) do
    names[name .. ".csv"], names[name .. ".json"] = true, true
  end
  names[folder().SETTINGS] = true
  local listing = io.popen("ls -1A -- " .. quote(dir) .. " 2>/dev/null")
  if not listing then return end
  for file in listing:lines() do
    local lower = file:lower()
    if (lower:find("%.csv$") or lower:find("%.json$")) and not names[file] then
      io_.err:write(printable(format("%s: not read: no resource is named so (they are: %s, each .csv or .json)",
        dir:gsub("/$", "") .. "/" .. file, table.concat(require("cloudflare.email_security.resources.names"), ", ")))
        .. "\n")
    end
  end
  listing:close()
end

local function make_plan(io_, args, accounts, opts)
  local source, why = folder().read(args.dir or args.source)
  if not source then return nil, why end
  say_strays(io_, source.dir)
  say_notes(io_, source)
  local list, cf = clients(accounts, opts)
  if not list then return nil, cf end
  prepare(io_, cf, opts.own_process)
  local fp, err = folder_plan().make(list, source, { purge = args.no_purge and false or nil,
    delete_domains = args.delete_domains, strict = args.strict, force = args.force })
  if not fp then
    cf:close()
    return nil, err
  end
  return fp, cf
end

--- plan DIR: exit 0 (no change), 2 (changes) or 1 (strict and warnings).
function cli_folder.plan(io_, args, accounts, opts)
  local fp, cf = make_plan(io_, args, accounts, opts)
  if not fp then return nil, cf end
  cf:close()
  if args.json then io_.out:write(fp:json()) else io_.say_plan(tostring(fp)) end
  io_.out:flush()
  if args.out then
    local ok, why = folder().write_file(args.out, fp:save())
    if not ok then return nil, "--out: " .. tostring(why) end
    io_.err:write(printable("saved to " .. args.out .. ": apply it with `apply " .. args.out .. "`") .. "\n")
  end
  if args.strict and #fp.warnings > 0 then
    return nil, format("%d warnings, and --strict: this plan will not be applied", #fp.warnings)
  end
  return fp:changes() > 0 and 2 or 0
end

-- The text of a file, or nil (a folder, or nothing there).
local function file_text(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  return text
end

--- apply DIR or apply PLAN.json.
function cli_folder.apply(io_, args, accounts, opts, confirm)
  local fp, cf
  -- no plan, so no result but the error: with --json, stdout is still one object
  local function no_plan(err)
    if args.json then
      io_.out:write('{"error":' .. plan_text.error_json(err) .. "}\n")
    end
    return nil, err
  end
  local text = file_text(args.source)
  if text then
    -- what the plan will do was settled when it was made
    if #accounts > 0 then
      return nil, "usage", "a saved plan names its accounts: give no --account-id or --accounts with it"
    end
    for _, flag in ipairs({ "no_purge", "delete_domains" }) do
      if args[flag] then
        return nil, "usage", format("--%s: a saved plan is applied as it was made: plan again with it",
                                    flag:gsub("_", "-"))
      end
    end
    local why
    -- the first account's client is made for it (the environment's
    -- CLOUDFLARE_ACCOUNT_ID is not needed); the others share it
    fp, why = folder_plan().load(text, function(id)
      if cf then
        local ok, other = pcall(cf.account, cf, id)
        if not ok then return nil, tostring(other):gsub("^[^:]*:%d+: ", "") end
        return other
      end
      local made, main = pcall(es.new, with_account(opts.client, id))
      if not made then return nil, (tostring(main):gsub("^[^:]*:%d+: ", "")) end
      cf = main
      prepare(io_, cf, opts.own_process)
      return cf
    end, args.source)
    if not fp then
      if cf then cf:close() end
      return no_plan(why)
    end
    if not cf then return no_plan(args.source .. ": the saved plan names no account") end
  else
    fp, cf = make_plan(io_, { source = args.source, no_purge = args.no_purge, strict = args.strict,
                              force = args.force, delete_domains = args.delete_domains }, accounts, opts)
    if not fp then return no_plan(cf) end
  end
  -- With --json, stdout carries one thing: the result's JSON
  -- (fp:apply_json), once the plan is made, whatever comes of it (applied,
  -- stopped half-way, refused, not confirmed), for a script to read also
  -- when the exit is 1; the error's line, the question, and the plan the
  -- question is about go to stderr.
  local function finish(code, err, result)
    if args.json then
      io_.out:write(fp:apply_json(result == nil and err or result))
      io_.out:flush()
    end
    cf:close()
    return code, err
  end
  if not args.json then io_.say_plan(tostring(fp)) end
  -- a saved plan is checked against the accounts now, also when it
  -- changes nothing: the account it describes may be gone
  if fp.from_file then
    local moved = fp:moved()
    if moved then return finish(nil, moved) end
  end
  if fp:changes() == 0 then
    if not args.json then io_.out:write("nothing to do\n") end
    return finish(0)
  end
  -- refused before the question, not after "yes"
  local refused = fp:refusals()
  if #refused > 0 and not args.force then
    local names = {}
    for i, r in ipairs(refused) do names[i] = r.account.account_id .. " " .. r.resource end
    return finish(nil, "not applied: past the safety thresholds in " .. concat(names, ", ")
      .. ": check the plan, then apply with --force if it is meant")
  end
  if (args.strict or fp.strict) and #fp.warnings > 0 then
    return finish(nil, format("not applied: %d warnings, and --strict", #fp.warnings))
  end
  if not args.yes then
    if not output.is_terminal(0) then
      return finish(nil, "not applied: give --yes to apply without a terminal to ask on")
    end
    -- the question is about the plan: with --json, shown where the question is
    if args.json then io_.err:write(words.of_plan(tostring(fp)) .. "\n") end
    if not confirm(io_) then return finish(nil, "not applied: the answer was not yes") end
  end
  local show = output.is_terminal(2)
  local report, err = fp:apply({ force = args.force, progress = show and function(done, total)
    io_.err:write(format("\rapplying: %d of %d changes", done, total))
  end or nil })
  if show then io_.err:write("\r\27[K") end
  if not report then
    if not args.json and type(err) == "table" and err.report then io_.out:write(tostring(err.report) .. "\n") end
    return finish(nil, err)
  end
  if not args.json then io_.out:write(tostring(report) .. "\n") end
  return finish(0, nil, report)
end

return cli_folder

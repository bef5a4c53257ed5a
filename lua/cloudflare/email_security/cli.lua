-- The command-line tool, bin/cloudflare-email-security: every resource's
-- list, get, create, update, delete, and plan/apply of a CSV or JSON
-- file. Arguments are parsed by lua-argparse, built from the resource
-- descriptions. Credentials come only from the environment
-- (CLOUDFLARE_API_TOKEN, or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY;
-- CLOUDFLARE_ACCOUNT_ID; CLOUDFLARE_BASE_URL for another API), never from
-- the command line, which other users of the machine can read.
--
-- Exit codes: 0 done (plan: nothing to change), 1 an error, 2 plan found
-- changes, 64 a usage error.

local argparse = require("argparse")
local es = require("cloudflare.email_security")
local compile = require("cloudflare.email_security.schema.compile")
local entries = require("cloudflare.email_security.sync.entries")
local keys = require("cloudflare.email_security.sync.keys")
local help = require("cloudflare.email_security.help")
local output = require("cloudflare.email_security.cli_output")

local concat, format = table.concat, string.format

local PROGRAM = "cloudflare-email-security"
local EXIT = { ok = 0, error = 1, changes = 2, usage = 64 }

local cli = {}

local function description(name)
  return require("cloudflare.email_security.resources." .. name)
end

---------------------------------------------------------------------------
-- The parser
---------------------------------------------------------------------------

local EPILOG = [[
Credentials come from the environment only: CLOUDFLARE_API_TOKEN (or
CLOUDFLARE_EMAIL with CLOUDFLARE_API_KEY) and CLOUDFLARE_ACCOUNT_ID;
CLOUDFLARE_BASE_URL points it at another API (the local emulator).
Exit codes: 0 done (plan: no change), 1 error, 2 plan found changes,
64 usage error.]]

local function dashed(name) return (name:gsub("_", "-")) end

local function add_sync_options(cmd, name)
  cmd:argument("file", "A .csv (header row of field names) or .json (array of objects) file.")
  cmd:option("--key", "Fields that identify an entry, comma-separated (default: "
    .. concat(keys.RESOURCES[name].fields, ",") .. ").")
  cmd:option("--fields", "Only compare these fields, comma-separated (default: those the file gives).")
  cmd:flag("--no-purge", "Never delete entries the file does not list.")
  if keys.RESOURCES[name].guard then
    cmd:flag("--" .. dashed(keys.RESOURCES[name].guard), "Delete " .. name .. " the file does not list "
      .. "(without it, none is deleted).")
  end
end

local function build_parser()
  local parser = argparse(PROGRAM, "Cloudflare Email Security settings from the shell.", EPILOG)
    :command_target("resource")
  parser:flag("--json", "Output as JSON.")
  parser:flag("--csv", "Output as CSV (reads back with plan and apply).")
  for _, name in ipairs(es.resources) do
    local d = description(name)
    local r = parser:command(name):summary("Calls: " .. concat(cli.actions(d), ", ") .. ".")
      :description(help.text(name) .. "\nplan and apply match entries by "
        .. concat(keys.RESOURCES[name].fields, ", ") .. " (--key changes it).")
      :command_target("action")
    if d.ops.list then
      local list = r:command("list", "Every entry (all pages, 1000 a page; --page for one page).")
      for _, p in ipairs(d.list_params or {}) do
        list:option("--" .. dashed(p.name), help.describe(p))
      end
    end
    if d.ops.get then r:command("get", "One entry."):argument("id") end
    if d.ops.create then
      r:command("create", "A new entry from field=value pairs (null clears; lists as a;b).")
        :argument("fields", "field=value"):args("+")
    end
    if d.ops.update then
      local update = r:command("update", "Changes the given fields (field=value, null clears).")
      update:argument("id")
      update:argument("fields", "field=value"):args("+")
    end
    if d.ops.delete then r:command("delete", "Removes entries by id."):argument("ids"):args("+") end
    if d.ops.verification then r:command("verification", "The TXT record that verifies a domain."):argument("id") end
    if d.ops.list and d.ops.create and d.ops.update and d.ops.delete then
      add_sync_options(r:command("plan", "What apply would change, changing nothing "
        .. "(exit 0: nothing, 2: changes)."), name)
      local apply = r:command("apply", "Makes the entries equal to the file's (asks first).")
      add_sync_options(apply, name)
      apply:flag("--yes", "Apply without asking.")
      apply:flag("--force", "Apply past the safety thresholds (30% of entries updated or deleted).")
    end
  end
  return parser
end

--- The actions a resource has on the command line.
function cli.actions(d)
  local out = {}
  for _, a in ipairs({ "list", "get", "create", "update", "delete", "verification" }) do
    if d.ops[a] then out[#out + 1] = a end
  end
  if d.ops.list and d.ops.create and d.ops.update and d.ops.delete then
    out[#out + 1] = "plan"
    out[#out + 1] = "apply"
  end
  return out
end

---------------------------------------------------------------------------
-- Output
---------------------------------------------------------------------------

---------------------------------------------------------------------------
-- The actions
---------------------------------------------------------------------------

local function split_names(s)
  local out = {}
  for name in s:gmatch("[^,%s]+") do out[#out + 1] = name end
  return out
end

-- field=value arguments as a table of fields, typed by the description.
local function fields_from(c, args)
  local out = {}
  for _, a in ipairs(args) do
    local name, text = a:match("^([%a_][%w_]*)=(.*)$")
    if not name then return nil, format("'%s' is not field=value", a) end
    local node = c.entry.fields[name]
    -- empty is the empty text (or list), not "absent": it was written
    local v, why = entries.value(node, text, text == "")
    if why then return nil, name .. ": " .. why end
    out[name] = v
  end
  return out
end

local function sync_opts(args, name)
  local opts = {}
  if args.key then opts.key = split_names(args.key) end
  if args.fields then opts.fields = split_names(args.fields) end
  if args.no_purge then opts.purge = false end
  local guard = keys.RESOURCES[name].guard
  if guard and args[guard] then opts[guard] = true end
  if args.force then opts.force = true end
  return opts
end

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- A plan as one line of JSON, each value written by its field's node (so
-- that an empty list is [] and not {}).
local function plan_json(p, c)
  local json, field_node = output.json, function(name) return c.entry.fields[name] end
  local function list_of(items, shape)
    local out = {}
    for i, item in ipairs(items) do out[i] = shape(item) end
    return "[" .. concat(out, ",") .. "]"
  end
  local function object(pairs_)
    local out = {}
    for i, kv in ipairs(pairs_) do out[i] = json(kv[1]) .. ":" .. kv[2] end
    return "{" .. concat(out, ",") .. "}"
  end
  local function id_item(i)
    return object({ { "key", json(i.key) }, { "id", json(i.id) }, i.reason and { "reason", json(i.reason) } or nil })
  end
  return object({
    { "creates", list_of(p.creates, function(i)
        return object({ { "key", json(i.key) }, { "fields", json(i.fields, c.entry) } })
      end) },
    { "updates", list_of(p.updates, function(i)
        return object({ { "key", json(i.key) }, { "id", json(i.id) }, { "changes", list_of(i.changes, function(ch)
          return object({ { "field", json(ch.field) }, { "old", json(ch.old, field_node(ch.field)) },
                          { "new", json(ch.new, field_node(ch.field)) } })
        end) } })
      end) },
    { "deletes", list_of(p.deletes, id_item) },
    { "skipped", list_of(p.skipped, id_item) },
    { "kept", list_of(p.kept, id_item) },
    { "unchanged", json(#p.unchanged) },
    { "ignored", list_of(sorted_keys(p.retired or {}), function(field)
        return object({ { "field", json(field) }, { "reason", json(p.retired[field]) } })
      end) },
  }) .. "\n"
end

local function confirm(err_out)
  err_out:write("Apply these changes? Type yes to go on: ")
  err_out:flush()
  local answer = io.read("*l")
  return answer == "yes"
end

-- Each action: (io, args, cf, r, c) -> exit code, or nil and an error.
local ACTIONS = {}

function ACTIONS.list(io_, args, _, r, c)
  local params = {}
  for _, p in ipairs(c.param_order) do
    local given = args[p]
    if given ~= nil then
      local v, why = entries.value(c.params[p], given, given == "")
      if why then return nil, "--" .. dashed(p) .. ": " .. why end
      params[p] = v
    end
  end
  local list, err
  if params.page then
    list, err = r:list(params)
  else
    params.per_page = params.per_page or 1000
    list = {}
    local show = io_.progress and output.is_terminal(2)
    for e, e_err in r:each(params) do
      if not e then
        err = e_err
        break
      end
      list[#list + 1] = e
      if show and #list % params.per_page == 0 then io_.err:write(format("\rlisting: %d entries", #list)) end
    end
    if show and #list >= params.per_page then io_.err:write("\r\27[K") end
  end
  if not list then return nil, err end
  if err then return nil, err end
  if args.json then
    io_.out:write(output.json_text(list, output.LIST, c.entry))
  elseif args.csv then
    io_.out:write(entries.csv(list, output.columns(c)))
  else
    io_.out:write(output.table_text(list, output.columns(c, true)))
  end
  return EXIT.ok
end

local function show_entry(io_, args, c, e)
  if args.json then io_.out:write(output.json_text(e, c.entry))
  elseif args.csv then io_.out:write(entries.csv({ e }, output.columns(c)))
  else io_.out:write(output.entry_text(e, output.columns(c))) end
  return EXIT.ok
end

function ACTIONS.get(io_, args, _, r, c)
  local e, err = r:get(args.id)
  if not e then return nil, err end
  return show_entry(io_, args, c, e)
end

function ACTIONS.verification(io_, args, _, r)
  local v, err = r:verification(args.id)
  if not v then return nil, err end
  if args.json then io_.out:write(output.json_text(v)) else io_.out:write(output.entry_text(v, { "verified", "status",
    "txt_record_name", "txt_record_value", "last_checked_at" })) end
  return EXIT.ok
end

function ACTIONS.create(io_, args, _, r, c)
  local fields, why = fields_from(c, args.fields)
  if not fields then return nil, why end
  local e, err = r:create(fields)
  if not e then return nil, err end
  return show_entry(io_, args, c, e)
end

function ACTIONS.update(io_, args, _, r, c)
  local fields, why = fields_from(c, args.fields)
  if not fields then return nil, why end
  local e, err = r:update(args.id, fields)
  if not e then return nil, err end
  return show_entry(io_, args, c, e)
end

function ACTIONS.delete(io_, args, _, r)
  local gone, err = {}, nil
  for _, id in ipairs(args.ids) do
    local result
    result, err = r:delete(id)
    if not result then break end
    gone[#gone + 1] = result.id or id
    err = nil
  end
  -- what was deleted is said, also when a later one failed: nothing is lost
  if args.json then
    local out = {}
    for i, id in ipairs(gone) do out[i] = { id = id } end
    io_.out:write(output.json_text(out, output.LIST))
  else
    for _, id in ipairs(gone) do io_.out:write("deleted " .. output.text_of(id) .. "\n") end
  end
  if err then return nil, err end
  return EXIT.ok
end

local function make_plan(args, r, c, name)
  local desired, why = entries.read(args.file, c)
  if not desired then return nil, why end
  return r:plan(desired, sync_opts(args, name))
end

function ACTIONS.plan(io_, args, _, r, c, name)
  local p, err = make_plan(args, r, c, name)
  if not p then return nil, err end
  if args.json then io_.out:write(plan_json(p, c)) else io_.out:write(tostring(p) .. "\n") end
  return p:changes() > 0 and EXIT.changes or EXIT.ok
end

function ACTIONS.apply(io_, args, _, r, c, name)
  local p, err = make_plan(args, r, c, name)
  if not p then return nil, err end
  io_.out:write(tostring(p) .. "\n")
  if p:changes() == 0 then
    io_.out:write("nothing to do\n")
    return EXIT.ok
  end
  if not args.yes then
    if not output.is_terminal(0) then
      return nil, "not applied: give --yes to apply without a terminal to ask on"
    end
    if not confirm(io_.err) then return nil, "not applied: the answer was not yes" end
  end
  local show = output.is_terminal(2)
  local summary
  summary, err = p:apply({
    force = args.force,
    progress = show and function(done, total)
      io_.err:write(format("\rapplying: %d of %d changes", done, total))
    end or nil,
  })
  if show then io_.err:write("\r\27[K") end
  if not summary then return nil, err end
  io_.out:write(tostring(summary) .. "\n")
  return EXIT.ok
end

--- Runs the tool on a list of arguments; answers the exit code. io_: {
--- out, err } (files), default stdout and stderr.
function cli.main(argv, io_)
  io_ = io_ or { out = io.stdout, err = io.stderr, progress = true }
  local parser = build_parser()
  local ok, args = parser:pparse(argv)
  if not ok then
    io_.err:write(parser:get_usage() .. "\n\n" .. PROGRAM .. ": " .. tostring(args) .. "\n")
    return EXIT.usage
  end
  if args.json and args.csv then
    io_.err:write(PROGRAM .. ": --json and --csv: give one of them\n")
    return EXIT.usage
  end
  local name, action = args.resource, args.action
  local made, cf = pcall(es.new, { user_agent = "cli" })
  if not made then
    io_.err:write(PROGRAM .. ": " .. tostring(cf):gsub("^[^:]*:%d+: ", "") .. "\n")
    return EXIT.error
  end
  local r = cf[name]
  local c = compile.resource(description(name))
  local code, err = ACTIONS[action](io_, args, cf, r, c, name)
  cf:close()
  if code == nil then
    -- an error value is one printable line already; a message may quote a file
    io_.err:write(require("cloudflare.email_security.errors").printable(tostring(err)) .. "\n")
    return EXIT.error
  end
  return code
end

return cli

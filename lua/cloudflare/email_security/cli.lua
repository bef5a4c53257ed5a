-- The command-line tool, bin/cloudflare-email-security: every resource's
-- calls in the order schema/compile.lua gives them (list, create, get,
-- update, delete, ...), and plan/apply of a CSV or JSON
-- file. Arguments are parsed by lua-argparse, built from the resource
-- descriptions. Credentials come only from the environment
-- (CLOUDFLARE_API_TOKEN, or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY;
-- CLOUDFLARE_ACCOUNT_ID; CLOUDFLARE_BASE_URL for another API), never from
-- the command line, which other users of the machine can read.
--
-- Exit codes: 0 done (plan: nothing to change), 1 an error, 2 plan found
-- changes, 64 a usage error, 130 stopped by Ctrl-C (what was done said).

local argparse = require("argparse")
local es = require("cloudflare.email_security")
local compile = require("cloudflare.email_security.schema.compile")
local entries = require("cloudflare.email_security.sync.entries")
local keys = require("cloudflare.email_security.sync.keys")
local plan_text = require("cloudflare.email_security.sync.plan_text")
local THRESHOLDS = require("cloudflare.email_security.sync.plan").THRESHOLDS
local help = require("cloudflare.email_security.help")
local output = require("cloudflare.email_security.cli_output")
local printable = require("cloudflare.email_security.errors").printable
local config = require("cloudflare.email_security.config")
local client = require("cloudflare.email_security.client")
local core = require("cloudflare.email_security.core")
local cli_folder = require("cloudflare.email_security.cli_folder")
local words = require("cloudflare.email_security.cli_words")
local colour = require("cloudflare.email_security.cli_colour")

local concat, format = table.concat, string.format

local PROGRAM = "cloudflare-email-security"
-- the Lua that runs the tool: LuaJIT says which it is
local LUA_NAME = type(rawget(_G, "jit")) == "table" and rawget(_G, "jit").version or _VERSION
-- interrupted: 128 + SIGINT, as a shell reports a command Ctrl-C ended
local EXIT = { ok = 0, error = 1, changes = 2, usage = 64, interrupted = 130 }

local cli = {}

-- The actions whose output, prompt or effect concerns the account as a
-- whole or changes it: the tool names the account and the API first.
local NAMES_ACCOUNT = { plan = true, apply = true, create = true, update = true, replace = true,
                        delete = true }

-- The compiled description of a resource (schema/compile.lua), which
-- says what the command line offers for it: its calls, fields and list
-- parameters.
local function described(name)
  return compile.resource(require("cloudflare.email_security.resources." .. name))
end

---------------------------------------------------------------------------
-- The parser
---------------------------------------------------------------------------

local EPILOG = [[
Credentials come from the environment only: CLOUDFLARE_API_TOKEN (or
CLOUDFLARE_EMAIL with CLOUDFLARE_API_KEY) and CLOUDFLARE_ACCOUNT_ID;
CLOUDFLARE_BASE_URL points it at another API (the local emulator).
Exit codes: 0 done (plan: no change), 1 error, 2 plan found changes,
64 usage error, 130 stopped by Ctrl-C.]]

local function dashed(name) return (name:gsub("_", "-")) end

-- The output formats each action writes (-o, and --json and --csv for
-- -o json and -o csv). They are the parser's own options, so that they may
-- stand before the resource or after the action; main refuses a format an
-- action does not write instead of ignoring it. "table" is the text a
-- person reads (a plan's lines, for plan and apply).
local ENTRIES = { table = true, wide = true, json = true, yaml = true, csv = true }
local OUTPUTS = {
  list = ENTRIES, get = ENTRIES, create = ENTRIES, update = ENTRIES,
  delete = { table = true, json = true }, verification = { table = true, json = true, yaml = true },
  plan = { table = true, json = true }, apply = { table = true, json = true },
}
local FORMATS = "table, wide, json, yaml or csv"

-- The actions that send more than one request at a time (--concurrency
-- means something to them alone).
local BULK = { list = true, plan = true, apply = true }

local function add_sync_options(cmd, name)
  local key = keys.of(name)
  cmd:argument("file", "A .csv (header row of field names) or .json (array of objects) file; - reads"
    .. " standard input (with --format).")
  cmd:option("--format", "csv or json: how to read the file, whatever its name says (needed for -).")
    :argname("<format>")
    :convert(function(v)
      if v ~= "csv" and v ~= "json" then return nil, "--format: csv or json, got '" .. v .. "'" end
      return v
    end)
  cmd:option("--key", "Fields that identify an entry, comma-separated (default: "
    .. concat(key.fields, ",") .. ").")
  cmd:option("--fields", "Only compare these fields, comma-separated (default: those the file gives).")
  cmd:flag("--no-purge", "Never delete entries the file does not list.")
  cmd:flag("--strict", "Warnings are errors: nothing is applied.")
  if key.guard then
    cmd:flag("--" .. dashed(key.guard), "Delete " .. name .. " the file does not list "
      .. "(without it, none is deleted).")
  end
end

-- The subcommand of each action: (r, desc, name) adds it to the
-- resource's command r. An action is the call of the same name, but for
-- apply, which comes with plan.
local COMMANDS = {}

-- --fields and --no-headers: what an entry's output shows, in any format.
local function add_output_options(cmd)
  cmd:option("--fields", "Only these fields, in this order, comma-separated (any -o).")
    :target("show_fields")
  cmd:flag("--no-headers", "No header row (table, wide and csv).")
  return cmd
end

function COMMANDS.list(r, desc)
  local list = add_output_options(r:command("list", "Every entry (all pages, 1000 a page; --page for one page)."))
  for _, p in ipairs(desc.param_order) do
    list:option("--" .. dashed(p), help.describe(desc.params[p]))
  end
end

function COMMANDS.get(r) add_output_options(r:command("get", "One entry.")):argument("id") end

-- The fields a body takes, a line each, in the description's order:
-- what `create --help` and `update --help` list.
local function fields_text(node)
  local lines, required = { "Fields:" }, {}
  for _, name in ipairs(node.required or {}) do required[name] = true end
  for _, name in ipairs(node.order) do
    local f = node.fields[name]
    if not f.read_only and not f.deprecated then
      lines[#lines + 1] = format("  %-28s %s%s", name, required[name] and "required; " or "", help.describe(f))
    end
  end
  return concat(lines, "\n")
end

function COMMANDS.create(r, desc)
  add_output_options(r:command("create", "A new entry from field=value pairs (null clears; lists as a;b)."))
    :epilog(fields_text(desc.bodies.create))
    :argument("fields", "field=value"):args("+"):target("assignments")
end

function COMMANDS.update(r, desc)
  local update = add_output_options(r:command("update", "Changes the given fields (field=value, null clears)."))
  if desc.bodies.update then update:epilog(fields_text(desc.bodies.update)) end
  update:argument("id")
  update:argument("fields", "field=value"):args("+"):target("assignments")
end

function COMMANDS.delete(r) r:command("delete", "Removes entries by id."):argument("ids"):args("+") end

function COMMANDS.verification(r)
  r:command("verification", "The TXT record that verifies a domain."):argument("id")
end

function COMMANDS.plan(r, _, name)
  add_sync_options(r:command("plan", "What apply would change, changing nothing "
    .. "(exit 0: nothing, 2: changes)."), name)
end

function COMMANDS.apply(r, _, name)
  local apply = r:command("apply", "Makes the entries equal to the file's (asks first).")
  add_sync_options(apply, name)
  apply:flag("-y --yes", "Apply without asking.")
  apply:flag("--force", format("Apply past the safety thresholds (%.0f%% of entries updated or deleted).",
    100 * THRESHOLDS.update))
end

--- The actions a resource has on the command line: its calls (desc.calls,
--- in their order) that the command line offers, and apply after plan.
function cli.actions(desc)
  local out = {}
  for _, call in ipairs(desc.calls) do
    if COMMANDS[call] then out[#out + 1] = call end
    if call == "plan" then out[#out + 1] = "apply" end
  end
  return out
end

-- An option that takes a number: ok(n) says whether n will do, want (for
-- the usage error) what will.
local function number_option(parser, flag, description, argname, ok, want)
  return parser:option(flag, description):argname(argname):convert(function(v)
    local n = tonumber(v)
    if not n or n ~= n or not ok(n) then return nil, ("%s: %s, got '%s'"):format(flag, want, v) end
    return n
  end)
end

-- The tool's own options: lua-argparse takes a parser's options after its
-- commands too, so they may stand before the resource or after the
-- action, as gh and kubectl allow; each command's --help says so.
local GLOBAL_NOTE = "The tool's own options (-o, --json, --csv, -v, --account-id, --no-color,\n"
  .. "--max-retries, --max-retry-wait, --timeout, --rate-limit, --concurrency) go\n"
  .. "here too, or before the resource: cloudflare-email-security --help says them."

local function build_parser()
  local parser = argparse(PROGRAM, "Cloudflare Email Security settings from the shell.", EPILOG)
    :command_target("resource")
  parser:flag("--version", "Print the versions of the tool, its Lua and libcurl, and exit.")
    :action(function()
      io.stdout:write(("%s %s (%s, libcurl %s)\n"):format(PROGRAM, es.VERSION, LUA_NAME, core.libcurl_version))
      io.stdout:flush()
      os.exit(0)
    end)
  parser:option("--account-id", "The account to work on, instead of CLOUDFLARE_ACCOUNT_ID (the"
    .. " credential comes from the environment only); export, plan and apply of a folder take it more than once.")
    :argname("<id>")
    :count("*")
    :convert(function(v)
      if #v < 1 or #v > 32 or v:find("[^A-Za-z0-9_%-]") then
        return nil, "--account-id: 1 to 32 letters, digits, '-' or '_' (a Cloudflare account id is 32 hex"
          .. " digits), got '" .. v .. "'"
      end
      return v
    end)
  parser:option("--accounts", "A file of accounts for plan and apply of a folder: an id a line, then"
    .. " optionally its name; blank lines and # comments ignored.")
    :argname("<file>")
  parser:flag("-v --debug", "Log each request and answer on stderr (method, path, status, time; never a"
    .. " credential), as CLOUDFLARE_LOG=debug does.")
  parser:option("-o --output", "How to show what a command answers: table (the default), wide (every column,"
    .. " nothing cut), json (indented on a terminal), yaml or csv (reads back with plan and apply); plan and"
    .. " apply: table or json.")
    :argname("<format>")
    :convert(function(v)
      if not ENTRIES[v] then return nil, ("-o: %s, got '%s'"):format(FORMATS, v) end
      return v
    end)
  parser:flag("--json", "-o json.")
  parser:flag("--csv", "-o csv.")
  parser:flag("--no-color", "No colour in a plan (also when NO_COLOR is set); there is none off a terminal.")
  local function whole(low, high) return function(n) return n % 1 == 0 and n >= low and n <= high end end
  local function seconds(above_zero)
    return function(n) return n < math.huge and (n > 0 or not above_zero and n == 0) end
  end
  number_option(parser, "--max-retries", "How many times a failed request is tried again (0 to 100, default 3).",
                "<n>", whole(0, 100), "a whole number from 0 to 100")
  number_option(parser, "--max-retry-wait", "The longest wait before a try again, in seconds (default 60).",
                "<seconds>", seconds(false), "a number of seconds, 0 or more")
  number_option(parser, "--timeout", "How long one request may take, in seconds.", "<seconds>", seconds(true),
                "a number of seconds above 0")
  parser:option("--rate-limit", "At most N requests per S seconds, as N/S (e.g. 600/300); bulk work keeps to"
    .. " 1000/300 by default.")
    :argname("<n/s>")
    :convert(function(v)
      local n, per = v:match("^(%d+)/(%d+%.?%d*)$")
      n, per = tonumber(n), tonumber(per)
      if not n or n < 1 or not per or per <= 0 then
        return nil, "--rate-limit: N/S, requests per seconds (e.g. 600/300), got '" .. v .. "'"
      end
      return { requests = n, per = per }
    end)
  number_option(parser, "--concurrency", ("Requests in flight at once in a listing or an apply, 1 to %d (default"
    .. " %d)."):format(config.MAX_CONCURRENCY, config.DEFAULT_CONCURRENCY), "<n>", whole(1, config.MAX_CONCURRENCY),
    ("give a whole number from 1 to %d"):format(config.MAX_CONCURRENCY))
  for _, name in ipairs(es.resources) do
    local desc = described(name)
    local actions = cli.actions(desc)
    local key = keys.of(name)
    local r = parser:command(name):summary("Calls: " .. concat(actions, ", ") .. ".")
      :description(help.tool_text(name) .. (key and ("\nplan and apply match entries by "
        .. concat(key.fields, ", ") .. " (--key changes it).") or ""))
      :command_target("action")
    for _, action in ipairs(actions) do COMMANDS[action](r, desc, name) end
  end
  cli_folder.add_commands(parser)
  -- each command's --help says that the tool's own options go with it
  -- too (lua-argparse keeps a parser's commands and epilog in fields of
  -- its own; without them, only the tool's --help says so)
  local function note_globals(cmd)
    local subs = rawget(cmd, "_commands") or {}
    if #subs == 0 and cmd ~= parser then
      local epilog = rawget(cmd, "_epilog")
      cmd:epilog((epilog and epilog .. "\n\n" or "") .. GLOBAL_NOTE)
    end
    for _, sub in ipairs(subs) do note_globals(sub) end
  end
  note_globals(parser)
  -- `completion bash|zsh|fish`: lua-argparse writes the script
  parser:add_complete_command({ name = "completion", description = "Print a completion script for"
    .. " bash, zsh or fish: source it, e.g. `source <(cloudflare-email-security completion bash)`." })
  return parser
end

---------------------------------------------------------------------------
-- The actions
---------------------------------------------------------------------------

local function split_names(s)
  local out = {}
  for name in s:gmatch("[^,%s]+") do out[#out + 1] = name end
  return out
end

-- field=value arguments as a table of fields, typed by the description;
-- or nil and why not (a usage error: the API was not asked).
local function fields_from(desc, args)
  local out = {}
  for _, a in ipairs(args) do
    local name, text = a:match("^([%a_][%w_]*)=(.*)$")
    if not name then return nil, format("'%s' is not field=value", a) end
    -- the later one would win unseen
    if out[name] ~= nil then return nil, name .. " is given twice" end
    local node = desc.entry.fields[name]
    -- empty is the empty text (or list), not "absent": it was written
    local v, why = entries.value(node, text, text == "")
    if why then return nil, name .. ": " .. why end
    out[name] = v
  end
  return out
end

-- list's --options as list parameters, typed by the description; or nil
-- and why not.
local function params_from(desc, args)
  local params = {}
  for _, p in ipairs(desc.param_order) do
    local given = args[p]
    if given ~= nil then
      local v, why = entries.value(desc.params[p], given, given == "")
      if why then return nil, "--" .. dashed(p) .. ": " .. why end
      params[p] = v
    end
  end
  return params
end

-- What an action takes from the command line typed before the client is
-- made, so that a mistake there is a usage error found without a request
-- or a credential: (args, desc) -> the values, or nil and why not.
local VALUES = {
  list = function(args, desc) return params_from(desc, args) end,
  create = function(args, desc)
    local fields, why = fields_from(desc, args.assignments)
    if not fields then return nil, why end
    -- every required field missing, named at once, in the description's
    -- order (a field it does not know is the module's to name, with the
    -- one likely meant)
    local node, required, missing = desc.bodies.create, {}, {}
    for name in pairs(fields) do if not node.fields[name] then return fields end end
    for _, name in ipairs(node.required or {}) do required[name] = true end
    for _, name in ipairs(node.order) do
      if required[name] and fields[name] == nil then missing[#missing + 1] = name end
    end
    if #missing > 0 then
      return nil, format("%d required field%s missing: %s (create --help lists the fields)", #missing,
                         #missing == 1 and " is" or "s are", concat(missing, ", "))
    end
    return fields
  end,
  update = function(args, desc) return fields_from(desc, args.assignments) end,
}

local function sync_opts(args, name)
  local opts = {}
  if args.key then opts.key = split_names(args.key) end
  if args.fields then opts.fields = split_names(args.fields) end
  if args.no_purge then opts.purge = false end
  local guard = keys.of(name).guard
  if guard and args[guard] then opts[guard] = true end
  if args.force then opts.force = true end
  return opts
end

-- The plan went to stdout, the question goes to stderr: stdout is flushed
-- first, since on a pipe (apply | tee log) its buffer would otherwise
-- reach the screen after the question it is the subject of.
local function confirm(io_)
  io_.out:flush()
  io_.err:write("Apply these changes? Type yes to go on: ")
  io_.err:flush()
  local answer = io.read("*l")
  return answer == "yes"
end

-- CSV is written byte for byte, so that it reads back; to a terminal it
-- is escaped, since a cell could hold an escape sequence it would obey.
local function write_csv(io_, text)
  if io_.out == io.stdout and output.is_terminal(1) then text = output.for_terminal(text) end
  io_.out:write(text)
end

-- What an action answers, as -o asks: rendered by cli_output.lua (--fields
-- and --no-headers with it), JSON indented and a table fitted to the
-- terminal's width when stdout is one, a list paged there when it is
-- longer than the terminal ($PAGER, as gh and git do). how: { desc } or
-- { node } for what the entries are; list: data is a list, not one entry.
local function show(io_, args, how, data, list)
  local on_terminal = io_.out == io.stdout and output.is_terminal(1)
  local width, height
  if on_terminal then width, height = output.terminal_size({ terminal = true }) end
  how.format, how.fields, how.no_headers = args.output, args.show_fields, args.no_headers
  how.one, how.indent, how.width = not list, on_terminal, width
  local text, why = output.render(data, how)
  if not text then return nil, why end
  if args.output == "csv" then
    write_csv(io_, text)
  elseif list and on_terminal then
    output.page(text, io_.out, { terminal = true, height = height, pager = os.getenv("PAGER") })
  else
    io_.out:write(text)
  end
  return EXIT.ok
end

-- Each action: (io, args, values, r, desc, name) -> exit code, or nil and
-- an error; values: what VALUES made of its arguments; r: the client's
-- resource; desc: its compiled description.
local ACTIONS = {}

function ACTIONS.list(io_, args, params, r, desc)
  local list, err
  if params.page then
    list, err = r:list(params)
  else
    params.per_page = params.per_page or 1000
    list = {}
    local counting = io_.progress and output.is_terminal(2)
    for e, e_err in r:each(params) do
      if not e then
        err = e_err
        break
      end
      list[#list + 1] = e
      if counting and #list % params.per_page == 0 then io_.err:write(format("\rlisting: %d entries", #list)) end
    end
    if counting and #list >= params.per_page then io_.err:write("\r\27[K") end
  end
  if not list then return nil, err end
  if err then return nil, err end
  return show(io_, args, { desc = desc }, list, true)
end

function ACTIONS.get(io_, args, _, r, desc)
  local e, err = r:get(args.id)
  if not e then return nil, err end
  return show(io_, args, { desc = desc }, e)
end

function ACTIONS.verification(io_, args, _, r, desc)
  local v, err = r:verification(args.id)
  if not v then return nil, err end
  return show(io_, args, { node = desc.verification, name = "verification" }, v)
end

function ACTIONS.create(io_, args, fields, r, desc)
  local e, err = r:create(fields)
  if not e then return nil, err end
  io_.say_account()
  return show(io_, args, { desc = desc }, e)
end

function ACTIONS.update(io_, args, fields, r, desc)
  local e, err = r:update(args.id, fields)
  if not e then return nil, err end
  io_.say_account()
  return show(io_, args, { desc = desc }, e)
end

-- Every id is tried, whichever failed before it (as rm does): what was
-- deleted is said on stdout, each failure on stderr with its id, and the
-- exit is 1 if any failed. Ctrl-C stops it: what is left is not tried.
function ACTIONS.delete(io_, args, _, r)
  local gone, failed, last = {}, 0, nil
  for _, id in ipairs(args.ids) do
    local result, err = r:delete(id)
    io_.say_account()
    if result then
      gone[#gone + 1] = result.id or id
    else
      failed, last = failed + 1, err
      if type(err) == "table" and err.kind == "interrupted" then break end
      io_.out:flush()
      io_.err:write(printable("not deleted " .. tostring(id) .. ": " .. tostring(err)) .. "\n")
      io_.err:flush()
    end
  end
  -- what was deleted is said, also when another one failed: nothing is lost
  if args.json then
    local out = {}
    for i, id in ipairs(gone) do out[i] = { id = id } end
    io_.out:write(output.json_text(out, output.LIST))
  else
    for _, id in ipairs(gone) do io_.out:write("deleted " .. output.text_of(id) .. "\n") end
  end
  if type(last) == "table" and last.kind == "interrupted" then return nil, last end
  if failed > 0 then
    return nil, format("%d of %d not deleted (each said above)", failed, #args.ids)
  end
  return EXIT.ok
end

-- The plan of the file, its warnings (sync/warnings.lua, each with its
-- line), and what apply would refuse (the thresholds), all known now.
local function make_plan(io_, args, r, desc, name)
  local desired, why
  if args.file == "-" then
    desired, why = entries.parse(io.stdin:read("*a"), args.format, desc, "stdin")
  else
    desired, why = entries.read(args.file, desc, args.format)
  end
  if not desired then return nil, why end
  local read_as = entries.format(desired)
  for _, note in ipairs(read_as and read_as.assumed or {}) do
    io_.err:write(printable(format("%s: read as %s: %s", args.file, read_as.title, note)) .. "\n")
  end
  local p, err = r:plan(desired, sync_opts(args, name))
  if not p then return nil, err end
  local found = require("cloudflare.email_security.sync.folder_plan").warnings(name, desired, args.file,
                                                                                os.date("!%Y-%m-%d"))
  return p, nil, found, p:past_thresholds(nil, args.force)
end

-- The warnings after the plan; with --strict, an error.
local function say_warnings(io_, args, found)
  for _, w in ipairs(found) do
    local line = printable(format("%s: %s: %s", args.strict and "error" or "warning", w.where, w.message))
    -- with -o json, stdout is the JSON alone
    if args.json then io_.err:write(line .. "\n") else io_.say_plan(line) end
  end
  if args.strict and #found > 0 then
    return format("%d warning%s, and --strict: nothing is applied", #found, #found == 1 and "" or "s")
  end
end

function ACTIONS.plan(io_, args, _, r, desc, name)
  local p, err, found, over = make_plan(io_, args, r, desc, name)
  if p then io_.say_account() end
  if not p then return nil, err end
  local refusal = over and ("! " .. printable(over.message:gsub("^plan: ", ""):gsub(": nothing was sent.*$", ""))
    .. ": apply refuses this without --force")
  if args.json then
    io_.out:write(plan_text.json(p, desc.entry))
    -- the refusal to come and the warnings on stderr: stdout is the JSON
    if refusal then io_.err:write(refusal .. "\n") end
  else
    io_.say_plan(tostring(p))
    if refusal then io_.say_plan(refusal) end
  end
  say_warnings(io_, args, found)
  if args.strict and #found > 0 then
    return nil, format("%d warning%s, and --strict: this plan will not be applied", #found, #found == 1 and "" or "s")
  end
  return p:changes() > 0 and EXIT.changes or EXIT.ok
end

-- With -o json, stdout holds one result object (plan_text.apply_json:
-- what was done, in doubt and left, and the error), also when apply stops
-- or is refused; the plan, the question and progress go to stderr.
function ACTIONS.apply(io_, args, _, r, desc, name)
  local p, err, found, over = make_plan(io_, args, r, desc, name)
  if p then io_.say_account() end
  if not p then
    -- no plan, so no result but the error: stdout is still one object
    if args.json then io_.out:write('{"error":' .. plan_text.error_json(err) .. "}\n") end
    return nil, err
  end
  local function finish(code, why, summary)
    if args.json then
      io_.out:write(plan_text.apply_json(p, summary or why, desc.entry))
      io_.out:flush()
    end
    return code, why
  end
  if not args.json then io_.say_plan(tostring(p)) end
  local strict = say_warnings(io_, args, found)
  if p:changes() == 0 then
    if not args.json then io_.out:write("nothing to do\n") end
    return finish(EXIT.ok)
  end
  -- refused before the question, not after "yes"
  if over then return finish(nil, over) end
  if strict then return finish(nil, strict) end
  if not args.yes then
    if not output.is_terminal(0) then
      return finish(nil, "not applied: give --yes to apply without a terminal to ask on")
    end
    if args.json then io_.err:write(words.of_plan(tostring(p)) .. "\n") end
    if not confirm(io_) then return finish(nil, "not applied: the answer was not yes") end
  end
  local counting = output.is_terminal(2)
  local summary
  summary, err = p:apply({
    force = args.force,
    progress = counting and function(done, total)
      io_.err:write(format("\rapplying: %d of %d changes", done, total))
    end or nil,
  })
  if counting then io_.err:write("\r\27[K") end
  if not summary then return finish(nil, err) end
  if not args.json then io_.out:write(tostring(summary) .. "\n") end
  return finish(EXIT.ok, nil, summary)
end

-- An error as the tool prints it, in its own words: an error value is one
-- line; a message may be several (every bad cell of a file, each
-- escaped by the reader already), each line kept printable on its own.
local function error_lines(err)
  if type(err) == "string" then return (words.of(err):gsub("[^\n]+", printable)) end
  return printable(words.of(err))
end

-- The command parser args reached (its resource's action, or a folder
-- command), for the usage a refusal after parsing shows. lua-argparse
-- keeps a parser's commands in _commands; without them, the whole tool's.
local function command_parser(parser, args)
  local found = parser
  for _, name in ipairs({ args.resource, args.action }) do
    local next_one
    for _, cmd in ipairs(rawget(found, "_commands") or {}) do
      if cmd._name == name then next_one = cmd end
    end
    if not next_one then return found end
    found = next_one
  end
  return found
end

-- The output format asked for: -o, --json or --csv (one of them), else
-- table; or nil and why not.
local function output_format(args)
  local given = {}
  if args.output then given[#given + 1] = "-o " .. args.output end
  if args.json then given[#given + 1] = "--json" end
  if args.csv then given[#given + 1] = "--csv" end
  if #given > 1 then return nil, concat(given, " and ") .. ": give one of them" end
  return args.output or (args.json and "json") or (args.csv and "csv") or "table", given[1]
end

-- A set's names as "a, b or c", in FORMATS' order.
local function listed(set)
  local out = {}
  for _, f in ipairs({ "table", "wide", "json", "yaml", "csv" }) do if set[f] then out[#out + 1] = f end end
  if #out == 1 then return out[1] .. " only" end
  return concat(out, ", ", 1, #out - 1) .. " or " .. out[#out]
end

-- export, plan and apply of a folder (cli_folder.lua): the command's
-- outputs, as OUTPUTS says them for a resource's actions.
local FOLDER_COMMANDS = { export = { table = true }, plan = { table = true, json = true },
                          apply = { table = true, json = true } }

local function folder_command(io_, args, name, usage, own_process)
  if not FOLDER_COMMANDS[name][args.output] then
    if name == "export" then
      return usage(format("%s: export writes files, not an output (--format says theirs)", args.output_given))
    end
    return usage(format("%s: %s writes %s", args.output_given, name, listed(FOLDER_COMMANDS[name])))
  end
  local accounts, why = cli_folder.accounts(args)
  if not accounts then return usage(why) end
  local opts = { client = cli.client_options(args), own_process = own_process }
  local code, err, message = cli_folder[name](io_, args, accounts, opts, confirm)
  if code then return code end
  if err == "usage" then return usage(message) end
  io_.out:flush()
  io_.err:write(error_lines(err) .. "\n")
  if type(err) == "table" and err.kind == "interrupted" then return EXIT.interrupted end
  return EXIT.error
end

--- The options of es.new the command line gives (its own user agent,
--- --concurrency, --debug, --max-retries, --max-retry-wait, --timeout,
--- --rate-limit), with those of extra.
function cli.client_options(args, extra)
  local opts = { user_agent = "cli", concurrency = args.concurrency, log = args.debug and "debug" or nil,
                 max_retries = args.max_retries, max_retry_wait = args.max_retry_wait, timeout = args.timeout,
                 rate_limit = args.rate_limit }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return opts
end

--- Runs the tool on a list of arguments; answers the exit code. io_: {
--- out, err } (files), default stdout and stderr.
function cli.main(argv, io_)
  -- the tool's own process (not a caller's io): Ctrl-C stops what has not
  -- started, and the error says what was done
  local own_process = io_ == nil
  -- a line at a time: in a log of stdout and stderr together (2>&1), an
  -- error lands between lines, never inside one
  if own_process then io.stdout:setvbuf("line") end
  io_ = io_ or { out = io.stdout, err = io.stderr, progress = true }
  local parser = build_parser()
  -- the parser of the command a usage error is about (lua-argparse hands
  -- its error handler the parser it had reached): `get A B` shows get's
  -- usage, not the whole tool's
  local failed_in = parser
  parser.error = function(reached, message)
    failed_in = reached
    error({ usage_error = message }, 0)
  end
  -- why may quote an argument as given, which may hold anything: it never
  -- reaches the terminal raw
  local function usage(why)
    io_.err:write(failed_in:get_usage() .. "\n\n" .. PROGRAM .. ": " .. printable(why) .. "\n")
    return EXIT.usage
  end
  local ok, args = pcall(parser.parse, parser, argv)
  if not ok then
    if type(args) ~= "table" or not args.usage_error then error(args, 0) end
    return usage(args.usage_error)
  end
  failed_in = command_parser(parser, args)
  -- how_why: the output as the user asked for it, for a refusal to quote
  local how, how_why = output_format(args)
  if not how then return usage(how_why) end
  args.output_given = how_why
  -- the actions and cli_folder.lua ask args.json and args.csv
  args.output, args.json, args.csv = how, how == "json", how == "csv"
  -- a plan's lines (made printable already): in the tool's words, and in
  -- colour on a terminal unless NO_COLOR or --no-color says not
  local in_colour = colour.wanted(args.no_color, io_.out == io.stdout and output.is_terminal(1))
  io_.say_plan = function(text)
    text = words.of_plan(text)
    io_.out:write((in_colour and colour.lines(text) or text) .. "\n")
  end
  local name, action = args.resource, args.action
  if FOLDER_COMMANDS[name] then return folder_command(io_, args, name, usage, own_process) end
  if #(args.account_id or {}) > 1 or args.accounts then
    return usage(name .. " " .. action .. " works on one account: give --account-id once, and --accounts only"
      .. " to export, plan or apply")
  end
  args.account_id = args.account_id and args.account_id[1]
  if not OUTPUTS[action][how] then
    return usage(format("%s: %s %s writes %s", args.output_given, name, action, listed(OUTPUTS[action])))
  end
  -- only a table of many entries and CSV have a header row
  if args.no_headers and not (how == "csv" or (action == "list" and (how == "table" or how == "wide"))) then
    return usage(format("--no-headers: %s %s %s has no header row", name, action, args.output_given or "-o table"))
  end
  if args.concurrency and not BULK[action] then
    return usage(format("--concurrency: %s %s sends one request at a time", name, action))
  end
  if args.file == "-" and not args.format then
    return usage(format("%s %s -: give --format csv or --format json to read standard input", name, action))
  end
  local desc = described(name)
  -- --fields names fields of what the action answers: a mistake is a usage
  -- error, found before any request
  if args.show_fields then
    local picked, why = output.pick(action == "verification" and desc.verification or desc.entry, args.show_fields)
    if not picked then return usage("--fields: " .. why) end
  end
  local values, why
  if VALUES[action] then
    values, why = VALUES[action](args, desc)
    -- the message may quote the argument as typed
    if not values then return usage(why) end
  end
  local made, cf = pcall(es.new, cli.client_options(args, { account_id = args.account_id }))
  if not made then
    io_.err:write(PROGRAM .. ": " .. tostring(cf):gsub("^[^:]*:%d+: ", "") .. "\n")
    return EXIT.error
  end
  if own_process and core.catch_interrupt() then client.internals(cf).interrupted = core.interrupted end
  -- which account, and which API: said (once, on stderr, so that stdout
  -- stays the output itself) above a plan, the question, a change's result,
  -- and an error from the API; not above a refusal that sent nothing
  local said = not NAMES_ACCOUNT[action]
  io_.say_account = function()
    if said then return end
    said = true
    io_.err:write(("account %s at %s\n"):format(printable(cf.account_id), printable(cf.base_url)))
    io_.err:flush()
  end
  local code, err = ACTIONS[action](io_, args, values, cf[name], desc, name)
  cf:close()
  if code == nil and type(err) == "table" and err.kind ~= "invalid" then io_.say_account() end
  if code == nil then
    -- what stdout holds yet is older than the error: in a log of both, in order
    io_.out:flush()
    -- an error value is one printable line already; a message may quote a file
    io_.err:write(error_lines(err) .. "\n")
    if type(err) == "table" and err.kind == "interrupted" then return EXIT.interrupted end
    return EXIT.error
  end
  return code
end

return cli

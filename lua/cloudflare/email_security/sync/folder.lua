-- A folder is an account's settings: one file per resource, named after
-- it (allow_policies.csv, block_senders.json, ...), in our CSV, JSON, or
-- the dashboard's own CSV columns (sync/dashboard.lua; known by the
-- header). A resource without a file is not touched: nothing is ever
-- deleted because a file is missing. An optional settings.json says what
-- differs for one resource, for now whether plan may delete there:
--
--   { "impersonation_registry": { "purge": false } }
--
-- folder.read(dir) reads it; folder.export(cf, dir, opts) writes an
-- account into one, in a form made for git (stable order, key fields
-- first, no field the server makes, LF line ends).

local core = require("cloudflare.email_security.core")
local compile = require("cloudflare.email_security.schema.compile")
local body = require("cloudflare.email_security.schema.body")
local array = require("cloudflare.email_security.array")
local errors = require("cloudflare.email_security.errors")
local entries = require("cloudflare.email_security.sync.entries")
local keys = require("cloudflare.email_security.sync.keys")
local dashboard = require("cloudflare.email_security.sync.dashboard")

local json_decode = core.json_decode
local concat, format, sort = table.concat, string.format, table.sort
local printable = errors.printable

local folder = {}

folder.SETTINGS = "settings.json"
-- what settings.json may say of a resource
local SETTINGS_OPTIONS = { purge = "boolean" }

local RESOURCES = require("cloudflare.email_security.resources.names")
local KNOWN = {}
for _, name in ipairs(RESOURCES) do KNOWN[name] = true end

local function described(name)
  return compile.resource(require("cloudflare.email_security.resources." .. name))
end

local function join(dir, name)
  if dir:sub(-1) == "/" then return dir .. name end
  return dir .. "/" .. name
end

-- The text of a file, nil when there is none, or false and why when it
-- is there but cannot be read.
local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  if not text then return false, path .. ": cannot be read (is it a directory?)" end
  return text
end

local function read_settings(dir)
  local path = join(dir, folder.SETTINGS)
  local text, why = slurp(path)
  if text == false then return nil, why end
  if text == nil then return {} end
  local ok, value = pcall(json_decode, text)
  if not ok or type(value) ~= "table" or array.kind(value) == "array" then
    return nil, path .. ": must hold a JSON object of resources, e.g. "
      .. '{ "impersonation_registry": { "purge": false } }'
  end
  local out = {}
  for name, opts in pairs(value) do
    if not KNOWN[name] then
      return nil, format("%s: %s is not a resource (they are: %s)", path, printable(tostring(name)),
                         concat(RESOURCES, ", "))
    end
    if type(opts) ~= "table" or array.kind(opts) == "array" then
      return nil, format("%s: %s must be an object of options, e.g. { \"purge\": false }", path, name)
    end
    for option, v in pairs(opts) do
      local want = SETTINGS_OPTIONS[option]
      if not want then
        return nil, format("%s: %s.%s is not a setting (there is: purge)", path, name, printable(tostring(option)))
      end
      if type(v) ~= want then
        return nil, format("%s: %s.%s must be true or false", path, name, option)
      end
    end
    out[name] = opts
  end
  return out
end

--- The folder's files: { dir, settings = { [resource] = { purge } },
--- files = { { resource, path, entries, format = "csv"|"json"|"dashboard",
--- assumed = { sentences } }, ... } in the module's resource order }; or
--- nil and why (a file that cannot be read names its line and column).
function folder.read(dir)
  local settings, why = read_settings(dir)
  if not settings then return nil, why end
  local out = { dir = dir, settings = settings, files = {} }
  for _, name in ipairs(RESOURCES) do
    local found
    for _, ext in ipairs({ "csv", "json" }) do
      local path = join(dir, name .. "." .. ext)
      local text, err = slurp(path)
      if text == false then return nil, err end
      if text then
        if found then
          return nil, format("%s and %s: one file per resource, please", found.path, path)
        end
        local desc = described(name)
        local list, err2 = entries.parse(text, ext, desc, path)
        if not list then return nil, err2 end
        local read_as = entries.format(list)
        found = { resource = name, path = path, entries = list, format = read_as and read_as.format or ext,
                  assumed = read_as and read_as.assumed or {} }
      end
    end
    if found then out.files[#out.files + 1] = found end
  end
  if #out.files == 0 then
    return nil, format("%s holds no file named after a resource (%s.csv or .json, ...): nothing to plan",
                       dir, RESOURCES[1])
  end
  return out
end

---------------------------------------------------------------------------
-- Export
---------------------------------------------------------------------------

-- The fields a file holds for a resource: the key first, then the
-- description's order; never one the server makes (ids, time stamps),
-- one that is read-only, nor a deprecated one.
function folder.fields(desc, key)
  local out, seen = {}, {}
  local create = desc.bodies.create and desc.bodies.create.fields or {}
  local update = desc.bodies.update and desc.bodies.update.fields or {}
  local function usable(name)
    local f = desc.entry.fields[name]
    return f and not f.read_only and not f.deprecated and (create[name] or update[name])
  end
  for _, name in ipairs(key.fields) do
    if usable(name) then out[#out + 1], seen[name] = name, true end
  end
  for _, name in ipairs(desc.entry.order) do
    if not seen[name] and usable(name) then out[#out + 1], seen[name] = name, true end
  end
  return out
end

-- The entries of a listing as the folder keeps them: the directory's
-- left out (counted), the rest sorted by natural key; and the fields the
-- file holds: every one a client may set, also where no entry has a
-- value (null), so that the folder manages it (a value someone gives it
-- later on the server is planned away).
local function kept_entries(list, desc, key)
  local kept, left_out = {}, 0
  for _, e in ipairs(list) do
    if key.skip and key.skip(e) then
      left_out = left_out + 1
    else
      kept[#kept + 1] = e
    end
  end
  local sort_key = {}
  for _, e in ipairs(kept) do
    local k, text = keys.value(key, e)
    sort_key[e] = (k or "") .. "\1" .. text
  end
  sort(kept, function(a, b) return sort_key[a] < sort_key[b] end)
  return kept, folder.fields(desc, key), left_out
end

local function csv_text(list, fields)
  local out = { concat(fields, ",") }
  for _, e in ipairs(list) do
    local row = {}
    for i, name in ipairs(fields) do row[i] = entries.cell(e[name]) end
    out[#out + 1] = concat(row, ",")
  end
  return concat(out, "\n") .. "\n"
end

local function json_text(list, fields, desc)
  local out = {}
  for i, e in ipairs(list) do
    local parts = {}
    for _, name in ipairs(fields) do
      if e[name] ~= nil then
        parts[#parts + 1] = body.json(name) .. ": " .. body.json(e[name], desc.entry.fields[name])
      end
    end
    out[i] = "  {" .. concat(parts, ", ") .. "}"
  end
  if #out == 0 then return "[]\n" end
  return "[\n" .. concat(out, ",\n") .. "\n]\n"
end

local function dashboard_text(name, list)
  local out = { concat(dashboard.header(name), ",") }
  for _, e in ipairs(list) do
    local row, why = dashboard.row(name, e)
    if not row then return nil, why end
    for i, cell in ipairs(row) do
      if cell:find('[",\r\n]') or cell ~= cell:match("^%s*(.-)%s*$") then
        row[i] = '"' .. cell:gsub('"', '""') .. '"'
      end
    end
    out[#out + 1] = concat(row, ",")
  end
  return concat(out, "\n") .. "\n"
end

--- Writes text to path through a file beside it, renamed over it: a
--- reader never sees half a file. true, or nil and why.
local function write_file(path, text)
  local tmp = path .. ".tmp"
  local f, why = io.open(tmp, "wb")
  if not f then return nil, why end
  local ok, err = f:write(text)
  local closed, close_err = f:close()
  if not ok or not closed then
    os.remove(tmp)
    return nil, tmp .. ": " .. tostring(err or close_err)
  end
  local renamed, rename_err = os.rename(tmp, path)
  if not renamed then
    os.remove(tmp)
    return nil, rename_err
  end
  return true
end

--- Writes the account of client cf into dir (which exists): a file per
--- resource that has entries; a file of ours for a resource with none
--- is removed, so that the folder is the account. opts.format: "csv"
--- (default), "json" or "dashboard" (the dashboard's columns where it has
--- them, else CSV); opts.say(line): told what is left out and why.
--- Returns a list of { resource, path, count, left_out }, or nil and an
--- error (the API's, or a file's).
function folder.export(cf, dir, opts)
  opts = opts or {}
  local format_ = opts.format or "csv"
  local say = opts.say or function() end
  local plan_existing = require("cloudflare.email_security.sync.plan").existing
  local written = {}
  for _, name in ipairs(RESOURCES) do
    local desc = described(name)
    if desc.has.list then
      local list, err = plan_existing(cf[name])
      if not list then return nil, err end
      local key = keys.of(name)
      local kept, fields, left_out = kept_entries(list, desc, key)
      if left_out > 0 then
        say(format("%s: %d directory-synced %s left out: the directory manages them", name, left_out,
                   left_out == 1 and "entry" or "entries"))
      end
      local ext = format_ == "json" and "json" or "csv"
      local path = join(dir, name .. "." .. ext)
      if #kept == 0 then
        -- in either format: a file left behind would be planned again
        for _, gone in ipairs({ join(dir, name .. ".csv"), join(dir, name .. ".json") }) do
          if os.remove(gone) then say(format("%s: removed (the account has no %s)", gone, name)) end
        end
      else
        local text, why
        if format_ == "json" then
          text = json_text(kept, fields, desc)
        elseif format_ == "dashboard" and dashboard.header(name) then
          -- what the dashboard's columns cannot hold (a regular
          -- expression where it has no regex column) is kept in our CSV
          -- rather than lost
          text, why = dashboard_text(name, kept)
          if not text then
            say(format("%s: written in this tool's CSV, not the dashboard's: %s", path, why))
            text = csv_text(kept, fields)
          end
        else
          text = csv_text(kept, fields)
        end
        local ok, write_err = write_file(path, text)
        if not ok then return nil, write_err end
        -- the other format's file would make two for one resource
        local other = join(dir, name .. "." .. (ext == "csv" and "json" or "csv"))
        if os.remove(other) then say(format("%s: removed (now in %s)", other, path)) end
        written[#written + 1] = { resource = name, path = path, count = #kept, left_out = left_out }
      end
    end
  end
  return written
end

folder.write_file = write_file

return folder

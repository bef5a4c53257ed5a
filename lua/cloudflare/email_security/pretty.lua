-- Renders values as readable, JSON-like text for people: entries and lists
-- as indented objects and arrays (long lists cut short), JSON null as null,
-- errors as their one line. The REPL setup prints every result with it.

local errors = require("cloudflare.email_security.errors")
local array = require("cloudflare.email_security.array")
local null = require("cloudflare.email_security.core").null

local MAX_ITEMS = 20     -- a page of 1000 entries is not read at a prompt
local MAX_DEPTH = 8

local pretty = {}

local function quote(s)
  local escaped = s:gsub('[%c"\\]', function(c)
    local named = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
    return named[c] or ("\\u%04x"):format(c:byte())
  end)
  -- and what a terminal would also obey: C1 controls, direction overrides
  return '"' .. errors.printable(escaped) .. '"'
end


local function render(v, indent, depth, seen, out)
  local t = type(v)
  if v == null then out[#out + 1] = "null" return end
  if t == "string" then out[#out + 1] = quote(v) return end
  if t ~= "table" then out[#out + 1] = tostring(v) return end
  if errors.is_error(v) then out[#out + 1] = tostring(v) return end
  -- a client, a resource, a plan: what it says of itself, not its insides
  local mt = getmetatable(v)
  if type(mt) == "table" and rawget(mt, "__tostring") then out[#out + 1] = tostring(v) return end
  if seen[v] or depth > MAX_DEPTH then out[#out + 1] = "..." return end
  seen[v] = true
  local inner = indent .. "  "
  -- what is printed may be any table a person made at the prompt: its
  -- items counted and read raw, as array.length counts them (a __len or
  -- __index of its own would show items it does not hold)
  local n = array.length(v)
  if n then
    if n == 0 then out[#out + 1] = "[]" seen[v] = nil return end
    out[#out + 1] = "[\n"
    for i = 1, math.min(n, MAX_ITEMS) do
      out[#out + 1] = inner
      render(rawget(v, i), inner, depth + 1, seen, out)
      out[#out + 1] = i < n and ",\n" or "\n"
    end
    if n > MAX_ITEMS then out[#out + 1] = ("%s... (%d more)\n"):format(inner, n - MAX_ITEMS) end
    out[#out + 1] = indent .. "]"
  else
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    out[#out + 1] = "{\n"
    for i, k in ipairs(keys) do
      out[#out + 1] = inner .. quote(tostring(k)) .. ": "
      render(v[k], inner, depth + 1, seen, out)
      out[#out + 1] = i < #keys and ",\n" or "\n"
    end
    out[#out + 1] = indent .. "}"
  end
  seen[v] = nil
end

--- The text of one value.
function pretty.render(v)
  local out = {}
  render(v, "", 1, {}, out)
  return table.concat(out)
end

-- The fields that tell entries apart, shown for each entry of a list: a
-- line cannot know its entry's resource, so the fields of every
-- resource's natural key (resources/overlay.lua), a name first, where an
-- entry has one, since it says most to a person.
local KEY_FIELDS = { "name" }
do
  local overlay = require("cloudflare.email_security.resources.overlay")
  local seen = { name = true }
  for _, resource in ipairs(require("cloudflare.email_security.resources.names")) do
    for _, field in ipairs(overlay[resource] and overlay[resource].key or {}) do
      if not seen[field] then KEY_FIELDS[#KEY_FIELDS + 1], seen[field] = field, true end
    end
  end
end
local MAX_LINES = 50

-- A list of entries (tables with an id): printed a line each.
local function is_entry_list(v)
  return type(v) == "table" and getmetatable(v) == nil and #v > 0 and type(v[1]) == "table" and v[1].id ~= nil
    and array.length(v) ~= nil
end

--- One entry as one line: its id and the fields that tell it apart.
function pretty.entry_line(e)
  local parts = { errors.printable(tostring(e.id)) }
  for _, name in ipairs(KEY_FIELDS) do
    local value = e[name]
    if value ~= nil and value ~= null then
      parts[#parts + 1] = name .. "=" .. (type(value) == "string" and quote(value)
        or type(value) == "table" and pretty.render(value):gsub("%s+", " ") or tostring(value))
    end
  end
  return table.concat(parts, "  ")
end

-- A list of entries, a line each, the first MAX_LINES of them.
local function entry_lines(list)
  local out = {}
  for i = 1, math.min(#list, MAX_LINES) do out[i] = ("[%d] %s"):format(i, pretty.entry_line(list[i])) end
  if #list > MAX_LINES then out[#out + 1] = ("... %d more"):format(#list - MAX_LINES) end
  out[#out + 1] = "-- an entry printed alone shows all its fields: x = r:list(); x[1]"
  return table.concat(out, "\n")
end

local function render_top(v)
  if is_entry_list(v) then return entry_lines(v) end
  return pretty.render(v)
end

--- A print that renders tables: put it in place of the global print in a
--- REPL, which prints every result through `print`. A list of entries
--- prints a line per entry; anything else as readable, JSON-like text.
function pretty.print(...)
  local n = select("#", ...)
  local first, err, envelope = ...
  -- a method's success, `result, nil, envelope`: the result, and of the
  -- envelope only its paging, which is what a person looks for
  if n == 3 and first ~= nil and err == nil and type(envelope) == "table" and envelope.success ~= nil then
    local info = envelope.result_info
    io.stdout:write(render_top(first), "\n")
    if type(info) == "table" then
      io.stdout:write(errors.printable(("-- page %s, %s entries of %s"):format(tostring(info.page),
        tostring(info.count), tostring(info.total_count))), "\n")
    end
    return
  end
  -- a method's failure, `nil, err, envelope`: the error's one line (the
  -- envelope stays in the third value, and err.errors holds its errors)
  if n == 3 and first == nil and errors.is_error(err) then
    io.stdout:write("nil\t", tostring(err), "\n")
    return
  end
  local parts = {}
  for i = 1, n do
    local v = select(i, ...)
    parts[i] = type(v) == "table" and render_top(v) or tostring(v)
  end
  io.stdout:write(table.concat(parts, "\t"), "\n")
end

return pretty

-- JSON written as a schema node leads, the module's one JSON writer: the
-- body of a request (body.write) and what the command line prints
-- (body.json). lua-cjson cannot be it: it writes an empty table as {}, so
-- an empty list would go out as an object, and the node says which it is;
-- it prints 14 significant digits, so a larger integer would be rounded
-- (numbers.lua writes them exactly); and its order of an object's fields
-- changes from run to run, where the node gives them one (stable
-- requests, stable logs of them, stable output). Strings that need
-- escaping go through lua-cjson.
--
-- The two differ only where they must. A request body has been checked
-- against its node (every key of an object is one of its fields, every
-- number finite) and goes on the wire as lua-cjson writes its strings.
-- Output is of anything an answer held, with or without a node, and
-- reaches a terminal: every control character is escaped (the C1 ones
-- and the direction overrides as \uNNNN too, which loses nothing).

-- lua-cjson through the C core, which loads it once per Lua state under
-- its lock (lua-cjson sets a process-wide static as it loads)
local core = require("cloudflare.email_security.core")
local array = require("cloudflare.email_security.array")
local errors = require("cloudflare.email_security.errors")
local numbers = require("cloudflare.email_security.numbers")

local encode_string, text_flags = core.json_encode, core.text_flags
local escape_unicode_controls = errors.escape_unicode_controls
local number_text = numbers.text

local concat, next, sort, tostring, type = table.concat, next, table.sort, tostring, type
local huge = math.huge

local body = {}

-- A string as a request carries it. Nothing to escape (no control byte,
-- quote, backslash or non-ASCII; asked in C, where a Lua pattern costs
-- much more per byte): written as it is, without lua-cjson.
local function wire_string(s)
  local _, _, needs_escape = text_flags(s)
  if not needs_escape then return '"' .. s .. '"' end
  return encode_string(s)
end

-- A string as output shows it: lua-cjson escapes the C0 controls and
-- DEL, and writes the rest as it is; the others are escaped here.
local function shown_string(s)
  return escape_unicode_controls(encode_string(s))
end

-- "name": for every field name of a request, encoded once
local wire_keys = setmetatable({}, { __mode = "k" })
local function wire_key(name)
  local k = wire_keys[name]
  if not k then
    k = encode_string(name) .. ":"
    wire_keys[name] = k
  end
  return k
end

local function shown_key(name)
  return shown_string(tostring(name)) .. ":"
end

local NO_NODE = { fields = {}, position = {} }

-- The writer, made once for each way of writing strings and an object's
-- keys (text, key): one code, two closures, so that neither pays for the
-- other at each value.
local function writer(text, key)
  local write

  -- An object's fields in the node's order, then any the node lacks (only
  -- in output: a request's were checked), sorted. The node's names are put
  -- in place one by one (insertion by position), so that the work follows
  -- the fields given, not the fields the schema has.
  local function object(n, v)
    local position, fields = n.position, n.fields
    local names, count, rest = {}, 0, nil
    for name in next, v do
      local at = position[name]
      if at then
        local i = count
        while i > 0 and position[names[i]] > at do
          names[i + 1] = names[i]
          i = i - 1
        end
        names[i + 1] = name
        count = count + 1
      else
        rest = rest or {}
        rest[#rest + 1] = name
      end
    end
    if rest then
      sort(rest, function(a, b) return tostring(a) < tostring(b) end)
      for _, name in ipairs(rest) do
        count = count + 1
        names[count] = name
      end
    end
    for i = 1, count do
      local name = names[i]
      names[i] = key(name) .. write(fields[name], v[name])
    end
    return "{" .. concat(names, ",", 1, count) .. "}"
  end

  -- v as JSON; n: its node, or nil where there is none.
  function write(n, v)
    local t = type(v)
    if t == "string" then return text(v) end
    if t == "table" then
      -- without a node, lua-cjson left no trace of which an empty table
      -- was: a list, since an entry's fields hold lists far more often
      -- than objects
      if (n and n.type == "array") or (not n and array.kind(v) ~= "object") then
        local items, parts = n and n.items, {}
        for i = 1, #v do parts[i] = write(items, v[i]) end
        return "[" .. concat(parts, ",") .. "]"
      end
      return object(n and n.fields and n or NO_NODE, v)
    end
    if t == "number" then
      -- JSON has no NaN or infinity (a request's numbers were checked)
      if v ~= v or v == huge or v == -huge then return "null" end
      return number_text(v)
    end
    if t == "boolean" then return v and "true" or "false" end
    -- null, and in output what JSON has no value for (nil, a function)
    return "null"
  end

  return write
end

local write_wire, write_shown = writer(wire_string, wire_key), writer(shown_string, shown_key)

--- body.write(n, v): a request's body. n: a compiled schema node; v: a
--- value validate.body accepted against it.
body.write = write_wire

--- v as JSON that drives no terminal; n (optional): its schema node, which
--- tells an empty list from an empty object and orders an object's fields.
function body.json(v, n)
  return write_shown(n, v)
end

return body

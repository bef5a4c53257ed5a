-- Desired entries from files, and entries written as CSV.
--
-- CSV (RFC 4180): a header row of field names, then one entry per row;
-- cells separated by commas, a cell in double quotes may hold commas,
-- quotes (doubled) and line breaks; CRLF or LF line ends; UTF-8, a leading
-- byte order mark skipped. What a cell means:
--   empty, unquoted      the field is absent (not compared, not sent)
--   null, unquoted       JSON null (es.null): clear the field
--   true / false         a boolean, for a boolean field
--   a;b;c                a list, for an array field ("" quoted: empty list;
--                        ["a;b", "c"]: JSON, for items that hold ";")
--   {...}                JSON, for an object field
--   anything else        text; a quoted cell is always text ("" is the
--                        empty string, "null" the word)
-- With a resource (its compiled description, desc), cells are typed by it
-- at once; without
-- one, true/false/null are read as such and the rest stays text, and plan
-- types them by the resource it plans for.
-- JSON: an array of objects, as lua-cjson decodes them.

local core = require("cloudflare.email_security.core")
local array = require("cloudflare.email_security.array")
local validate = require("cloudflare.email_security.schema.validate")
local errors = require("cloudflare.email_security.errors")
local number_text = require("cloudflare.email_security.numbers").text

-- JSON through the C core's own lua-cjson instance, as answers are read:
-- the host's `cjson` may have been set otherwise (an OpenResty host sets
-- what it likes), and a file must read the same in every host.
local null, json_decode = core.null, core.json_decode
-- JSON in cells is written with an object's keys sorted (lua-cjson follows
-- the hash order, which changes from run to run): a file written twice from
-- the same entries is the same file
local write_json = require("cloudflare.email_security.schema.body").write
local function json_encode(v) return write_json(nil, v) end
local concat, format, type = table.concat, string.format, type

local entries = {}

-- Where each entry read from a file came from (for messages), and its
-- cells as written, so that plan can type them by its description.
local origins = setmetatable({}, { __mode = "k" })

--- "partners.csv line 4" for an entry read from a file, else nil.
function entries.origin(e)
  local o = origins[e]
  if not o then return nil end
  if o.line then return format("%s line %d", o.path, o.line) end
  return format("%s entry %d", o.path, o.index)
end

-- what a file holds may be anything: the message never carries a
-- terminal's control sequence
local function fail(path, line, column, message)
  return nil, errors.printable(format("%s:%d:%d: %s", path, line, column, message))
end

---------------------------------------------------------------------------
-- CSV cells to values
---------------------------------------------------------------------------

local function split_list(text)
  local items = {}
  for item in (text .. ";"):gmatch("(.-);") do items[#items + 1] = item end
  return items
end

-- One cell as the value for a field node, or nil and why not.
local function typed(node, text, quoted)
  if not quoted then
    if text == "" then return nil end
    if text == "null" then return null end
  end
  local t = node and node.type
  if t == "boolean" then
    if text == "true" then return true elseif text == "false" then return false end
    return nil, "must be true or false, got '" .. text .. "'"
  elseif t == "integer" or t == "number" then
    local digits = text:find("^%-?%d+$")
    local n = digits and math.tointeger and math.tointeger(tonumber(text)) or tonumber(text)
    if n == nil or (t == "integer" and not digits) then
      return nil, format("must be %s, got '%s'", t == "integer" and "an integer" or "a number", text)
    end
    -- a whole number a double cannot hold exactly (Lua 5.1 and LuaJIT read
    -- 9007199254740993 as ...992) is refused, never rounded
    if digits and math.abs(n) >= 2 ^ 53
       and format("%.0f", n) ~= text:gsub("^(%-?)0+(%d)", "%1%2"):gsub("^%-0$", "0") then
      return nil, format("must be at most 2^53 (9007199254740992) in size: %s cannot be held exactly", text)
    end
    return n
  elseif t == "array" then
    if text == "" then return {} end
    -- a list the ";" form cannot hold, as the writer writes it: JSON
    if text:find("^%[") then
      local ok, v = pcall(json_decode, text)
      if ok and type(v) == "table" then
        for i, item in ipairs(v) do
          local why = item == null and "must not be null"
            or (node.items.type == "string" and type(item) ~= "string" and "must be text")
          if why then return nil, format("item %d %s", i, why) end
        end
        return v
      end
    end
    local list = split_list(text)
    for i, item in ipairs(list) do
      local v, why = typed(node.items, item, true)
      if why then return nil, format("item %d %s", i, why) end
      list[i] = v
    end
    return list
  elseif t == "object" then
    -- an empty table is written as "" (it cannot tell an empty list from it)
    if text == "" then return {} end
    local ok, v = pcall(json_decode, text)
    if not ok or type(v) ~= "table" then return nil, "must be a JSON object, got '" .. text .. "'" end
    return v
  end
  -- text, or a field the description does not know (validation names it)
  if not node and not quoted and (text == "true" or text == "false") then return text == "true" end
  return text
end

--- One cell (or a command line's field=value) as the value for a field
--- node: value, or nil and why not. quoted: a cell in quotes (always
--- text, never absent or null).
entries.value = typed

--- Types the cells of entries read from a CSV file without a resource,
--- by the compiled description desc: a new list, or nil and a message naming
--- the line and column. The entry as the caller holds it now is what
--- counts: a field changed, added or removed since the file was read keeps
--- the caller's value (or absence); only a value still as read is typed
--- again from its cell. Entries not from a CSV file are kept as they are.
function entries.typed(desc, list)
  local out = {}
  for i, e in ipairs(list) do
    local o = origins[e]
    if o and o.cells and desc.entry then
      local fields = {}
      -- raw, as every read of a caller's table is (one view of it)
      for name, now in next, e do
        local cell = o.cells[name]
        if cell and rawequal(now, o.read[name]) then
          local v, why = typed(desc.entry.fields[name], cell.text, cell.quoted)
          if why then return fail(o.path, cell.line, cell.column, name .. ": " .. why) end
          fields[name] = v
        else
          fields[name] = now
        end
      end
      origins[fields] = { path = o.path, line = o.line }
      e = fields
    end
    out[i] = e
  end
  return out
end

---------------------------------------------------------------------------
-- Reading CSV
---------------------------------------------------------------------------

-- The records of a CSV text: a list of rows, each a list of
-- { text, quoted, line, column }; or nil and a message.
local function records(path, s)
  local rows, row = {}, {}
  local i, n, line, line_start = 1, #s, 1, 1
  if s:sub(1, 3) == "\239\187\191" then i, line_start = 4, 4 end
  while i <= n + 1 do
    local column = i - line_start + 1
    local cell = { line = line, column = column }
    local c = s:sub(i, i)
    if c == '"' then
      local parts, j = {}, i + 1
      while true do
        local q = s:find('"', j, true)
        if not q then return fail(path, cell.line, column, "a quoted cell is not closed") end
        parts[#parts + 1] = s:sub(j, q - 1)
        if s:sub(q + 1, q + 1) == '"' then
          parts[#parts + 1] = '"'
          j = q + 2
        else
          j = q + 1
          break
        end
      end
      -- line breaks inside the quotes move the line count on
      local inside = s:sub(i, j - 1)
      local _, breaks = inside:gsub("\n", "")
      if breaks > 0 then
        line = line + breaks
        line_start = i + #inside:match("^.*\n")
      end
      cell.text, cell.quoted = concat(parts), true
      i = j
      local after = s:sub(i, i)
      if after ~= "," and after ~= "\n" and after ~= "\r" and after ~= "" then
        return fail(path, line, i - line_start + 1, "text after a quoted cell's closing quote")
      end
    else
      local stop = s:find("[,\r\n]", i) or n + 1
      cell.text = s:sub(i, stop - 1)
      if cell.text:find('"', 1, true) then
        return fail(path, line, column + (cell.text:find('"', 1, true) - 1),
                    "a quote inside a cell that does not start with one (quote the whole cell)")
      end
      i = stop
    end
    row[#row + 1] = cell
    local sep = s:sub(i, i)
    if sep == "," then
      i = i + 1
    else
      -- the end of a record: CRLF, LF or the end of the text
      if sep == "\r" then
        if s:sub(i + 1, i + 1) ~= "\n" then return fail(path, line, i - line_start + 1, "a CR without LF") end
        i = i + 1
      end
      -- a blank line is no record
      if not (#row == 1 and row[1].text == "" and not row[1].quoted) then rows[#rows + 1] = row end
      row = {}
      i = i + 1
      line = line + 1
      line_start = i
      if i > n then break end
    end
  end
  return rows
end

local function read_csv(path, text, desc)
  if not validate.utf8_length(text) then return nil, path .. ": is not valid UTF-8" end
  local rows, err = records(path, text)
  if not rows then return nil, err end
  if #rows == 0 then return nil, path .. ": is empty: it needs a header row of field names" end
  local header, seen = rows[1], {}
  for k, cell in ipairs(header) do
    local name = cell.text
    if not name:find("^[%a_][%w_]*$") then
      return fail(path, cell.line, cell.column, format("header cell %d ('%s') is not a field name", k, name))
    end
    if seen[name] then return fail(path, cell.line, cell.column, "field " .. name .. " appears twice in the header") end
    seen[name] = true
  end
  local list = {}
  for r = 2, #rows do
    local row = rows[r]
    if #row ~= #header then
      return fail(path, row[1].line, 1, format("has %d cells where the header has %d", #row, #header))
    end
    local e, cells = {}, {}
    for k, cell in ipairs(row) do
      local name = header[k].text
      local node = desc and desc.entry and desc.entry.fields[name]
      local v, why = typed(node, cell.text, cell.quoted)
      if why then return fail(path, cell.line, cell.column, name .. ": " .. why) end
      e[name] = v
      cells[name] = cell
    end
    local read
    if not desc then
      -- the values as read, to tell later which ones the caller changed
      read = {}
      for name, v in pairs(e) do read[name] = v end
    end
    origins[e] = { path = path, line = row[1].line, cells = not desc and cells or nil, read = read }
    list[#list + 1] = e
  end
  return list
end

---------------------------------------------------------------------------
-- Reading JSON
---------------------------------------------------------------------------

local function line_and_column(text, offset)
  local before = text:sub(1, offset - 1)
  local _, breaks = before:gsub("\n", "")
  local last = before:match(".*\n()") or 1
  return breaks + 1, offset - last + 1
end

local function read_json(path, text)
  -- a UTF-8 byte order mark, as some editors write, is no part of the JSON
  if text:sub(1, 3) == "\239\187\191" then text = text:sub(4) end
  -- lua-cjson decodes {} and [] alike: only an array is a list of entries
  if not text:find("^[ \t\r\n]*%[") then return nil, path .. ": must hold a JSON array of entries (objects)" end
  local ok, value = pcall(json_decode, text)
  if not ok then
    local at = tonumber(tostring(value):match("at character (%d+)"))
    local reason = tostring(value):gsub("^.-: ", "")
    if at then
      local line, column = line_and_column(text, at)
      return fail(path, line, column, reason)
    end
    return nil, path .. ": " .. reason
  end
  if type(value) ~= "table" or array.kind(value) == "object" then
    return nil, path .. ": must hold a JSON array of entries (objects)"
  end
  for i, e in ipairs(value) do
    if type(e) ~= "table" or array.kind(e) == "array" then
      return nil, format("%s: entry %d is not an object", path, i)
    end
    origins[e] = { path = path, index = i }
  end
  return value
end

--- The entries a file holds, by its name's ending (.csv or .json); desc,
--- the compiled description, types CSV cells (optional). nil and a
--- message on a bad file.
function entries.read(path, desc)
  local f, why = io.open(path, "rb")
  if not f then return nil, why end
  local text = f:read("*a")
  f:close()
  -- a directory opens, and reads as nothing
  if not text then return nil, path .. ": cannot be read (is it a directory?)" end
  if path:lower():find("%.json$") then return read_json(path, text) end
  if path:lower():find("%.csv$") then return read_csv(path, text, desc) end
  return nil, path .. ": neither .csv nor .json: say which by the file's name"
end

--- The same for a text in memory; kind: "csv" or "json".
function entries.parse(text, kind, desc, name)
  if kind == "json" then return read_json(name or "json", text) end
  return read_csv(name or "csv", text, desc)
end

---------------------------------------------------------------------------
-- Writing CSV
---------------------------------------------------------------------------

local function quote(s)
  return '"' .. s:gsub('"', '""') .. '"'
end

-- One value as a cell that reads back as the same value.
local function cell_of(v)
  if v == nil then return "" end
  if v == null then return "null" end
  local t = type(v)
  if t == "boolean" then return tostring(v) end
  if t == "number" then return number_text(v) end
  if t == "table" then
    -- a list (an empty table is taken for one: objects are never empty
    -- here): its items as they are, joined by ";", the whole cell quoted
    -- where it needs to be; as a JSON array when that would not read back
    -- the same (an item holding ";", one empty item, a leading "[")
    if array.kind(v) ~= "object" then
      local items, plain = {}, true
      for i, item in ipairs(v) do
        items[i] = type(item) == "string" and item or cell_of(item)
        if type(item) == "string" and item:find(";", 1, true) then plain = false end
      end
      local text = concat(items, ";")
      if not plain or (#v == 1 and v[1] == "") or text:find("^%[") then text = json_encode(v) end
      if text == "" or text:find('[",\r\n]') or text == "null" then return quote(text) end
      return text
    end
    return quote(json_encode(v))
  end
  -- text that would read back as something else is quoted
  if v == "" or v == "null" or v:find('[",\r\n]') then return quote(v) end
  return v
end
entries.cell = cell_of

--- CSV text: a header of the given field names, then a row per entry.
function entries.csv(list, fields)
  local out = {}
  local header = {}
  for i, name in ipairs(fields) do header[i] = name end
  out[1] = concat(header, ",")
  for _, e in ipairs(list) do
    local row = {}
    for i, name in ipairs(fields) do row[i] = cell_of(e[name]) end
    out[#out + 1] = concat(row, ",")
  end
  return concat(out, "\r\n") .. "\r\n"
end

return entries

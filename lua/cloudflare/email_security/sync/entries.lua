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
local dashboard = require("cloudflare.email_security.sync.dashboard")
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

-- Where each entry read from a file came from (for messages), kept
-- small, as a file may hold a hundred thousand entries: the file (one
-- table for all its entries: its path, and whether entries are counted by
-- line or by index), the entry's line (CSV) or index (JSON), and for a CSV
-- file read without a resource the record's own text, so that plan can
-- type its cells by its description (they are read from it again). Each
-- weak by the entry: an entry let go takes its origin with it.
local weak = { __mode = "k" }
local origin_file = setmetatable({}, weak)
local origin_at = setmetatable({}, weak)
local origin_record = setmetatable({}, weak)

-- How a list read from a file was read, where it was not this tool's own
-- CSV or JSON: { format = "dashboard", resource, title, assumed }.
local read_as = setmetatable({}, weak)

--- How the entries of list were read (the dashboard's CSV, say), or nil
--- for this tool's own CSV and JSON.
function entries.format(list)
  return read_as[list]
end

--- "partners.csv line 4" for an entry read from a file, else nil.
function entries.origin(e)
  local file = origin_file[e]
  if not file then return nil end
  return format(file.by_index and "%s entry %d" or "%s line %d", file.path, origin_at[e])
end

-- A file this large (some 10,000 entries) is read as large work (below).
local LARGE_FILE = 1024 * 1024

--- For work on many entries that leaves much garbage behind (the cells
--- of a large file, the pages of a listing): tidy(n), called with a
--- running count, makes a full collection every 1000th call once the
--- heap has grown by a twelfth of what was in use after the last one (at
--- least 4 MiB). What such work leaves is garbage at once, but the
--- collector lets the heap grow to twice what is in use before it takes
--- it back. A collection costs about what is in use: it waits for a share
--- of that to be left behind. large: the work is large enough to begin
--- with one (what was let go before it is not counted as in use).
function entries.tidier(large)
  if large then collectgarbage() end
  local live = collectgarbage("count")
  return function(n)
    if n % 1000 ~= 0 then return end
    local now = collectgarbage("count")
    if now > live + math.max(4 * 1024, live / 12) then
      collectgarbage()
      live = collectgarbage("count")
    end
  end
end

-- what a file holds may be anything: the message never carries a
-- terminal's control sequence
local function placed(path, line, column, message)
  return errors.printable(format("%s:%d:%d: %s", path, line, column, message))
end
local function fail(path, line, column, message)
  return nil, placed(path, line, column, message)
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
    local record = origin_record[e]
    if record and desc.entry then
      local file = origin_file[e]
      local cells, err = file.cells(record, origin_at[e])
      if not cells then return nil, err end
      local fields = {}
      -- raw, as every read of a caller's table is (one view of it)
      for name, now in next, e do
        local k = cells.at[name]
        -- the value as read: the same cell typed without a description
        if k and rawequal(now, (typed(nil, cells.texts[k], cells.quoted[k]))) then
          local v, why = typed(desc.entry.fields[name], cells.texts[k], cells.quoted[k])
          if why then return fail(file.path, cells.lines[k], cells.columns[k], name .. ": " .. why) end
          fields[name] = v
        else
          fields[name] = now
        end
      end
      origin_file[fields], origin_at[fields] = file, origin_at[e]
      e = fields
    end
    out[i] = e
  end
  return out
end

---------------------------------------------------------------------------
-- Reading CSV
---------------------------------------------------------------------------

-- The records of a CSV text, one at a time, as they are read: each is
-- given to on_row(count, texts, quoted, lines, columns, first, last): its
-- cells' text, whether each was quoted, each one's line and column (lists
-- the next record reuses), and where the record is in s (without its line
-- end). Blank lines are no records. first_line: the line s starts on;
-- bom: skip a leading byte order mark. true and the line after the last
-- record, or nil and a message.
local function records(path, s, on_row, first_line, bom)
  local texts, quoted, lines, columns, count = {}, {}, {}, {}, 0
  local i, n, line, line_start = 1, #s, first_line, 1
  if bom and s:sub(1, 3) == "\239\187\191" then i, line_start = 4, 4 end
  local first = i
  local find, sub = string.find, string.sub
  while i <= n + 1 do
    local column, cell_line = i - line_start + 1, line
    local text, is_quoted
    if sub(s, i, i) == '"' then
      local parts, j = nil, i + 1
      while true do
        local q = find(s, '"', j, true)
        if not q then return fail(path, cell_line, column, "a quoted cell is not closed") end
        if sub(s, q + 1, q + 1) == '"' then
          parts = parts or {}
          parts[#parts + 1] = sub(s, j, q)
          j = q + 2
        else
          if parts then
            parts[#parts + 1] = sub(s, j, q - 1)
            text = concat(parts)
          else
            text = sub(s, j, q - 1)
          end
          j = q + 1
          break
        end
      end
      -- line breaks inside the quotes move the line count on
      local nl = find(s, "\n", i, true)
      while nl and nl < j do
        line, line_start = line + 1, nl + 1
        nl = find(s, "\n", nl + 1, true)
      end
      is_quoted = true
      i = j
      local after = sub(s, i, i)
      if after ~= "," and after ~= "\n" and after ~= "\r" and after ~= "" then
        return fail(path, line, i - line_start + 1, "text after a quoted cell's closing quote")
      end
    else
      local stop = find(s, "[,\r\n]", i) or n + 1
      text = sub(s, i, stop - 1)
      local q = find(text, '"', 1, true)
      if q then
        return fail(path, line, column + (q - 1), "a quote inside a cell that does not start with one (quote the "
          .. "whole cell)")
      end
      is_quoted = false
      i = stop
    end
    count = count + 1
    texts[count], quoted[count], lines[count], columns[count] = text, is_quoted, cell_line, column
    local sep = sub(s, i, i)
    if sep == "," then
      i = i + 1
    else
      -- the end of a record: CRLF, LF or the end of the text
      local last = i - 1
      if sep == "\r" then
        if sub(s, i + 1, i + 1) ~= "\n" then return fail(path, line, i - line_start + 1, "a CR without LF") end
        i = i + 1
      end
      -- a blank line is no record
      if not (count == 1 and text == "" and not is_quoted) then
        on_row(count, texts, quoted, lines, columns, first, last)
      end
      count = 0
      i = i + 1
      line = line + 1
      line_start = i
      first = i
      if i > n then break end
    end
  end
  return true, line
end

-- The cells of one record read again from its own text (a CSV entry read
-- without a resource, typed later): { texts, quoted, lines, columns, at =
-- { [field] = k } }, or nil and a message. names: the header's.
local function cells_again(path, names, record, line)
  local cells
  local ok, err = records(path, record, function(count, texts, quoted, lines, columns)
    cells = { texts = {}, quoted = {}, lines = {}, columns = {}, at = {} }
    for k = 1, count do
      cells.texts[k], cells.quoted[k], cells.lines[k], cells.columns[k] = texts[k], quoted[k], lines[k], columns[k]
      cells.at[names[k]] = k
    end
  end, line, false)
  if not ok then return nil, err end
  return cells
end

-- Where a text may be cut into pieces that each hold whole records: at
-- the last line break outside quotes (an even count of quotes since the
-- piece began: quoted: whether the text begins inside quotes). The
-- position of that line break (nil: none), and whether the text ends
-- inside quotes.
local function last_cut(s, quoted)
  local cut, at = nil, 1
  while true do
    local k = s:find('[\n"]', at)
    if not k then return cut, quoted end
    if s:byte(k) == 34 then quoted = not quoted elseif not quoted then cut = k end
    at = k + 1
  end
end

-- The pieces of a CSV file, read CHUNK bytes at a time, each cut after a
-- line break outside quotes: a function that gives the next piece, nil
-- after the last, or false and why the file cannot be read.
local CHUNK = 64 * 1024
local function pieces_of(f)
  local carry, quoted, done = "", false, false
  return function()
    while not done do
      local chunk, why = f:read(CHUNK)
      if chunk == nil and why then return false, why end
      if chunk == nil then
        done = true
        return carry
      end
      -- the carry ends inside quotes when it is not empty (it holds no
      -- line break outside them): only the new chunk is read for quotes
      local cut, ends_quoted = last_cut(chunk, quoted)
      quoted = ends_quoted
      if cut then
        local piece = carry .. chunk:sub(1, cut)
        carry = chunk:sub(cut + 1)
        return piece
      end
      carry = carry .. chunk
    end
    return nil
  end
end

-- The entries are made as the records are read, piece by piece: neither
-- the file's text nor its records are held beside them. What is wrong is
-- said as a whole reading would: text that is not UTF-8 (anywhere), then
-- the first record that cannot be read (anywhere), then the first entry
-- that is wrong. next_piece: gives the text in pieces of whole records (a
-- piece, nil after the last, or false and why it cannot be read: then nil,
-- why and true); large: begin with a collection (entries.tidier).
local function read_csv(path, next_piece, desc, large)
  local fields = desc and desc.entry and desc.entry.fields
  local file = { path = path }
  local header, width, list, wrong, broken = nil, 0, {}, nil, nil
  local dashboard_format, unnamed = nil, {}
  local tidy = entries.tidier(large)
  local piece
  local function on_row(count, texts, quoted, lines, columns, first, last)
    if wrong then return end
    tidy(#list + 1)
    if not header then
      header = {}
      -- the dashboard's own columns (sync/dashboard.lua), known by the
      -- header: its rows are read as the dashboard means them
      local names = {}
      for k = 1, count do names[k] = texts[k] end
      dashboard_format = dashboard.recognise(names)
      if dashboard_format then
        -- the columns with no name: nothing may be written under them
        for k = 1, count do if not texts[k]:find("%S") then unnamed[k] = true end end
        if desc and desc.name and dashboard_format.resource ~= desc.name then
          wrong = placed(path, lines[1], 1, format("this is %s's file, for %s, not %s", dashboard_format.title,
            dashboard_format.resource, desc.name))
        end
        width = count
        return
      end
      local seen = {}
      for k = 1, count do
        local name = texts[k]
        if not name:find("^[%a_][%w_]*$") then
          wrong = placed(path, lines[k], columns[k], format("header cell %d ('%s') is not a field name", k, name))
          return
        end
        if seen[name] then
          wrong = placed(path, lines[k], columns[k], "field " .. name .. " appears twice in the header")
          return
        end
        seen[name] = true
        header[k] = name
      end
      width = count
      return
    end
    if dashboard_format then
      local cells = {}
      for k = 1, count do
        if (unnamed[k] or k > width) and texts[k]:find("%S") then
          wrong = placed(path, lines[k], columns[k], format("'%s' is in a column with no name in the header: "
            .. "the dashboard's file has no such column", texts[k]))
          return
        end
        cells[k] = texts[k]
      end
      local e, why = dashboard.entry(dashboard_format, cells)
      if not e then
        -- the cell the message names, where it names one
        local at = 1
        for k, col in ipairs(dashboard_format.columns) do
          if col and k <= count and why:sub(1, #col.name + 1) == col.name .. ":" then at = k end
        end
        wrong = placed(path, lines[at], columns[at], why)
        return
      end
      origin_file[e], origin_at[e] = file, lines[1]
      list[#list + 1] = e
      return
    end
    if count ~= width then
      wrong = placed(path, lines[1], 1, format("has %d cells where the header has %d", count, width))
      return
    end
    local e = {}
    for k = 1, count do
      local name = header[k]
      local v, why = typed(fields and fields[name], texts[k], quoted[k])
      if why then
        wrong = placed(path, lines[k], columns[k], name .. ": " .. why)
        return
      end
      e[name] = v
    end
    origin_file[e], origin_at[e] = file, lines[1]
    -- without a resource, plan types the cells later: the record's text
    if not desc then origin_record[e] = piece:sub(first, last) end
    list[#list + 1] = e
  end
  local line, first = 1, true
  while true do
    local why
    piece, why = next_piece()
    if piece == false then return nil, why, true end
    if piece == nil then break end
    if not validate.utf8_length(piece) then return nil, path .. ": is not valid UTF-8" end
    -- past a record that cannot be read, the rest is only read for UTF-8
    if not broken then
      local ok, after = records(path, piece, on_row, line, first)
      if ok then line = after else broken = after end
    end
    first = false
  end
  piece = nil
  if broken then return nil, broken end
  if wrong then return nil, wrong end
  if not header then return nil, path .. ": is empty: it needs a header row of field names" end
  if dashboard_format then
    read_as[list] = { format = "dashboard", resource = dashboard_format.resource, title = dashboard_format.title,
                      assumed = dashboard_format.assumed }
  elseif not desc then
    function file.cells(record, at) return cells_again(path, header, record, at) end
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
  local file = { path = path, by_index = true }
  for i, e in ipairs(value) do
    if type(e) ~= "table" or array.kind(e) == "array" then
      return nil, format("%s: entry %d is not an object", path, i)
    end
    origin_file[e], origin_at[e] = file, i
  end
  return value
end

--- The entries a file holds, read as kind says ("csv" or "json"), else
--- by its name's ending (.csv or .json); desc, the compiled description,
--- types CSV cells (optional). nil and a message on a bad file.
function entries.read(path, desc, kind)
  kind = kind or (path:lower():find("%.csv$") and "csv") or (path:lower():find("%.json$") and "json")
  local f, why = io.open(path, "rb")
  if not f then return nil, why end
  -- a large file: what was let go before is taken back first, not held
  -- beside the file and its entries
  local size = f:seek("end")
  f:seek("set")
  local large = size and size >= LARGE_FILE
  if kind == "csv" then
    local list, unreadable
    list, why, unreadable = read_csv(path, pieces_of(f), desc, large)
    f:close()
    -- a directory opens, and reads as nothing
    if unreadable then return nil, path .. ": cannot be read (is it a directory?)" end
    return list, why
  end
  if large then collectgarbage() end
  local text = f:read("*a")
  f:close()
  if not text then return nil, path .. ": cannot be read (is it a directory?)" end
  if kind == "json" then return read_json(path, text) end
  return nil, path .. ": neither .csv nor .json: say which by the file's name"
end

--- The same for a text in memory; kind: "csv" or "json".
function entries.parse(text, kind, desc, name)
  if kind == "json" then return read_json(name or "json", text) end
  local given = text
  local function whole()
    local piece = given
    given = nil
    return piece
  end
  return read_csv(name or "csv", whole, desc, #text >= LARGE_FILE)
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

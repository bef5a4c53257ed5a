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
--
-- A bad file is said whole, not one problem a run: every bad cell (or
-- JSON entry), a line each, in file order, up to SHOWN of them and then
-- how many more (see Problems below); the first line is the first problem.

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
-- What is wrong with a file: every problem, not the first
---------------------------------------------------------------------------

-- A file with ten bad cells is fixed in one pass when all ten are named:
-- reading goes on past a bad cell and gathers each problem. The message
-- is a line per problem, in file order, the first line the first problem
-- (as when one was all that was said); past SHOWN of them the rest are
-- counted, not written ("... and 80 more"): a column of the wrong kind in
-- a file of 100,000 rows is said in a screenful. A problem at a line and
-- column is PATH:LINE:COLUMN: message, LINE the physical line the cell
-- starts on, COLUMN the character (byte) column it starts at, as an
-- editor's jump to FILE:LINE:COLUMN takes it; the message names the
-- cell's field (its header) where it has one.
local SHOWN = 20
-- how many a message writes out, for whoever counts its lines
entries.SHOWN = SHOWN

local Problems = {}
Problems.__index = Problems

local function problems_of(path)
  return setmetatable({ path = path, count = 0, shown = {}, pending = {} }, Problems)
end

--- One problem, written whole (no line and column: a JSON entry's, say).
function Problems:say(text)
  self.count = self.count + 1
  if self.count <= SHOWN then self.shown[self.count] = errors.printable(text) end
end

--- One problem at a line and column of path (self.path when nil): held
--- until flush, as a record's are found in two passes (its syntax while
--- it is read, then its cells) and are said in the order they stand in.
function Problems:at(line, column, message, path)
  local pending = self.pending
  pending[#pending + 1] = { line, column, message, path or self.path }
end

local function in_file_order(a, b)
  return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2])
end

--- Says the problems held, in file order.
function Problems:flush()
  local pending = self.pending
  local n = #pending
  if n == 0 then return end
  if n > 1 then table.sort(pending, in_file_order) end
  for i = 1, n do
    local p = pending[i]
    self.count = self.count + 1
    -- past SHOWN no text is made: a bad column of a large file is counted
    if self.count <= SHOWN then self.shown[self.count] = placed(p[4], p[1], p[2], p[3]) end
    pending[i] = nil
  end
end

--- Has nothing been found (said or held)?
function Problems:none()
  return self.count == 0 and #self.pending == 0
end

--- The message: a line per problem said, then how many more; nil when
--- there are none.
function Problems:message()
  self:flush()
  if self.count == 0 then return nil end
  local text = concat(self.shown, "\n")
  if self.count > SHOWN then text = text .. format("\n... and %d more", self.count - SHOWN) end
  return text
end

---------------------------------------------------------------------------
-- Values against the resource
---------------------------------------------------------------------------

-- The fields of a create body a caller may write, for a suggestion.
local function writable(node)
  local out = {}
  for _, name in ipairs(node.order or {}) do
    local f = node.fields[name]
    if not f.read_only and not f.deprecated then out[#out + 1] = name end
  end
  return out
end

-- Per description, what each field's value is checked against: its node
-- in the create body, false for a field left to plan (below); a field not
-- in the table is one the resource does not have. Made once per
-- description: reading checks every cell.
local checks = setmetatable({}, { __mode = "k" })
local function checks_of(desc)
  local t = checks[desc]
  if t then return t end
  t = {}
  local update = desc.bodies.update
  for name in pairs(desc.entry.fields) do t[name] = false end
  for name in pairs(update and update.fields or {}) do t[name] = false end
  for name, f in pairs(desc.bodies.create.fields) do t[name] = not (f.read_only or f.deprecated) and f end
  checks[desc] = t
  return t
end

-- Why a value read from a file for field `name` cannot be planned for
-- desc (a compiled description): what is wrong ("regions[2]"), why, and
-- true for a field the resource does not have; or nil. Plan checks every
-- desired entry against the create body (sync/plan.lua): checked here as
-- it checks, the whole file is said at once where plan stops at the first
-- entry. Only what plan refuses in every case is refused here: a field of
-- the stored entry or of an update, which plan leaves out or names
-- itself, and a read-only or deprecated one, are left to it.
local validate_value = validate.value
local function refused(desc, name, v)
  local f = checks_of(desc)[name]
  if f then
    -- without a path first, as plan does: no text for the values that pass
    local _, rule = validate_value(f, v)
    if not rule then return nil end
    local path, _, why = validate_value(f, v, name)
    return path, why
  end
  if f == false then return nil end
  return name, "is not a field of " .. desc.name .. validate.suggest(name, writable(desc.bodies.create)), true
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
--- the line and column of every cell that is not of its field's kind (see
--- Problems). The entry as the caller holds it now is what
--- counts: a field changed, added or removed since the file was read keeps
--- the caller's value (or absence); only a value still as read is typed
--- again from its cell. Entries not from a CSV file are kept as they are.
--- Only the kind is checked here, not the rest of what plan checks (an
--- enum, a field the resource lacks): the caller may have changed the
--- entry since, and plan names such a field by the entry (desired[3].x).
function entries.typed(desc, list)
  local out, problems = {}, problems_of()
  for i, e in ipairs(list) do
    local record = origin_record[e]
    if record and desc.entry then
      local file = origin_file[e]
      local cells, err = file.cells(record, origin_at[e])
      if not cells then
        problems:say(err)
      else
        local fields = {}
        -- raw, as every read of a caller's table is (one view of it)
        for name, now in next, e do
          local k = cells.at[name]
          -- the value as read: the same cell typed without a description
          if k and rawequal(now, (typed(nil, cells.texts[k], cells.quoted[k]))) then
            local v, why = typed(desc.entry.fields[name], cells.texts[k], cells.quoted[k])
            if why then problems:at(cells.lines[k], cells.columns[k], name .. ": " .. why, file.path) end
            fields[name] = v
          else
            fields[name] = now
          end
        end
        -- this entry's, in the order of its cells (its fields came in the
        -- table's order)
        problems:flush()
        origin_file[fields], origin_at[fields] = file, origin_at[e]
        e = fields
      end
    end
    out[i] = e
  end
  if not problems:none() then return nil, problems:message() end
  return out
end

---------------------------------------------------------------------------
-- Reading CSV
---------------------------------------------------------------------------

-- The records of a CSV text, one at a time, as they are read: each is
-- given to on_row(count, texts, quoted, lines, columns, first, last,
-- flawed): its cells' text, whether each was quoted, each one's line and
-- column, whether each broke the quoting rules (said already: its text is
-- not read further), all lists the next record reuses; and where the
-- record is in s (without its line end). Blank lines are no records.
-- first_line: the line s starts on; bom: skip a leading byte order mark.
-- What breaks the rules goes to problems (see Problems) and reading goes
-- on, each cell to its next comma or line end, so that the cells after it
-- are read as they stand: text after a quoted cell's closing quote, a
-- quote inside a cell that does not start with one, a CR that ends no line
-- (kept in its cell). A quoted cell that is never closed holds the rest of
-- the text: no record after it can be told, and reading stops. names
-- (optional): the header's name of each column, once it is known, to name
-- a cell's problem by. The line after the last record, or nil when
-- reading stopped.
local BOM = "\239\187\191"
local function records(problems, s, on_row, first_line, bom, names)
  local texts, quoted, lines, columns, flawed, count = {}, {}, {}, {}, {}, 0
  local i, n, line, line_start = 1, #s, first_line, 1
  local find, sub = string.find, string.sub
  if bom and sub(s, 1, 3) == BOM then i, line_start = 4, 4 end
  local first = i
  -- a problem of the cell being read (the record's count + 1st), named by
  -- its column where the header has named it
  local function flaw(at_line, at_column, message)
    local name = names and names[count + 1]
    problems:at(at_line, at_column, name and (name .. ": " .. message) or message)
  end
  local byte, pending = string.byte, problems.pending
  -- Where the cell that goes on at `from` ends (its comma or line end),
  -- and whether it held a CR that ends no line (said here). The common
  -- case, a comma, an LF or a CRLF, costs one find and one byte.
  local function cell_end(from)
    local stop, lone_cr = find(s, "[,\r\n]", from) or n + 1, false
    while byte(s, stop) == 13 and byte(s, stop + 1) ~= 10 do
      flaw(line, stop - line_start + 1, "a CR without LF")
      lone_cr = true
      stop = find(s, "[,\r\n]", stop + 1) or n + 1
    end
    return stop, lone_cr
  end
  while i <= n + 1 do
    local column, cell_line = i - line_start + 1, line
    local text, is_quoted, bad
    if sub(s, i, i) == '"' then
      local parts, j = nil, i + 1
      while true do
        local q = find(s, '"', j, true)
        if not q then
          flaw(cell_line, column, "a quoted cell is not closed")
          problems:flush()
          return nil
        end
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
      if after ~= "," and after ~= "\n" and after ~= "" then
        if after ~= "\r" then
          flaw(line, i - line_start + 1, "text after a quoted cell's closing quote")
          bad = true
        end
        -- on to the cell's end: past that text, or past a CR that ends no line
        local lone_cr
        i, lone_cr = cell_end(i)
        bad = bad or lone_cr
      end
    else
      -- cell_end, inlined for the cell that holds no CR alone: most are
      local stop, lone_cr = find(s, "[,\r\n]", i) or n + 1, false
      if byte(s, stop) == 13 and byte(s, stop + 1) ~= 10 then stop, lone_cr = cell_end(i) end
      text = sub(s, i, stop - 1)
      local q = find(text, '"', 1, true)
      if q then
        flaw(line, column + (q - 1), "a quote inside a cell that does not start with one (quote the whole cell)")
      end
      is_quoted, bad = false, q ~= nil or lone_cr
      i = stop
    end
    count = count + 1
    texts[count], quoted[count], lines[count], columns[count], flawed[count] = text, is_quoted, cell_line, column,
      bad or false
    local sep = sub(s, i, i)
    if sep == "," then
      i = i + 1
    else
      -- the end of a record: CRLF (a CR alone was kept in its cell), LF or
      -- the end of the text
      local last = i - 1
      if sep == "\r" then i = i + 1 end
      -- a blank line is no record
      if not (count == 1 and text == "" and not is_quoted) then
        on_row(count, texts, quoted, lines, columns, first, last, flawed)
      end
      if pending[1] then problems:flush() end
      count = 0
      i = i + 1
      line = line + 1
      line_start = i
      first = i
      if i > n then break end
    end
  end
  return line
end

-- The cells of one record read again from its own text (a CSV entry read
-- without a resource, typed later): { texts, quoted, lines, columns, at =
-- { [field] = k } }, or nil and a message. names: the header's.
local function cells_again(path, names, record, line)
  local cells
  local problems = problems_of(path)
  records(problems, record, function(count, texts, quoted, lines, columns)
    cells = { texts = {}, quoted = {}, lines = {}, columns = {}, at = {} }
    for k = 1, count do
      cells.texts[k], cells.quoted[k], cells.lines[k], cells.columns[k] = texts[k], quoted[k], lines[k], columns[k]
      if names[k] then cells.at[names[k]] = k end
    end
  end, line, false)
  -- it was read whole once: it reads so again
  if not problems:none() then return nil, problems:message() end
  return cells
end

-- Where a text may be cut into pieces that each hold whole records: at
-- the last line break outside quotes. Told as records tells quotes, also
-- in a file that breaks the rules, since reading goes on past them: a
-- quote opens a quoted cell only at a cell's start (the file's first
-- byte, or after a comma or a line break), and inside one ends it unless
-- doubled. state, carried from one text to the next: quoted (inside a
-- quoted cell), last (the byte before this text), quote_last (inside, the
-- last text ended on a quote: doubled or closing, as this one begins),
-- bom (the file's first text: a byte order mark is no part of its first
-- cell). The position of that line break, or nil.
local function last_cut(s, state)
  local cut, at, n = nil, 1, #s
  local find, byte = string.find, string.byte
  local quoted, first = state.quoted, 0
  if state.bom then
    state.bom = false
    if s:sub(1, 3) == BOM then at = 4 end
    first = at
  end
  if state.quote_last then
    state.quote_last = false
    if byte(s, 1) == 34 then at = 2 else quoted = false end
  end
  while at <= n do
    if quoted then
      local k = find(s, '"', at, true)
      if not k then break end
      if k == n then
        state.quote_last = true
        break
      elseif byte(s, k + 1) == 34 then
        at = k + 2
      else
        quoted, at = false, k + 1
      end
    else
      -- only line breaks and quotes are looked at: most cells hold neither
      local k = find(s, '[\n"]', at)
      if not k then break end
      if byte(s, k) == 10 then
        cut = k
      else
        local b = k > 1 and byte(s, k - 1) or state.last
        quoted = k == first or b == 44 or b == 10
      end
      at = k + 1
    end
  end
  state.quoted, state.last = quoted, byte(s, n)
  return cut
end

-- The pieces of a CSV file, read CHUNK bytes at a time, each cut after a
-- line break outside quotes: a function that gives the next piece, nil
-- after the last, or false and why the file cannot be read.
local CHUNK = 64 * 1024
local function pieces_of(f)
  local carry, done = "", false
  local state = { quoted = false, quote_last = false, bom = true }
  return function()
    while not done do
      local chunk, why = f:read(CHUNK)
      if chunk == nil and why then return false, why end
      if chunk == nil then
        done = true
        return carry
      end
      -- the carry holds no line break outside quotes: only the new chunk
      -- is read for one, from the state the carry left
      local cut = last_cut(chunk, state)
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
-- said as a whole reading would: text that is not UTF-8 (anywhere: said
-- alone, as no cell of it can be trusted), else every problem (see
-- Problems) in file order: the quoting rules broken, a header that is not
-- field names, a row of the wrong length, a cell not of its field's kind;
-- with desc, also a field the resource lacks (once, at the first cell
-- that gives it a value: an empty column is no matter, as plan takes it)
-- and a value its create body refuses (an enum, a length, a range), as
-- plan would say them one at a time. next_piece: gives the text in pieces
-- of whole records (a piece, nil after the last, or false and why it
-- cannot be read: then nil, why and true); large: begin with a collection
-- (entries.tidier).
local function read_csv(path, next_piece, desc, large)
  local fields = desc and desc.entry and desc.entry.fields
  local file = { path = path }
  local header, width, list, skip_rows = nil, 0, {}, false
  local dashboard_format, unnamed, unknown_said = nil, {}, {}
  -- each column's name, once the header is read, for records to name a
  -- cell's problem by
  local names = {}
  local problems = problems_of(path)
  local pending = problems.pending
  local tidy = entries.tidier(large)
  local piece

  -- A dashboard file's row: every cell read as its column means it.
  local function dashboard_row(count, texts, lines, columns)
    local cells = {}
    for k = 1, count do
      cells[k] = texts[k]
      if (unnamed[k] or k > width) and texts[k]:find("%S") then
        problems:at(lines[k], columns[k], format("'%s' is in a column with no name in the header: "
          .. "the dashboard's file has no such column", texts[k]))
        -- said: not said again as a row longer than its header
        cells[k] = ""
      end
    end
    local e, wrong = dashboard.read_row(dashboard_format, cells)
    -- each at its cell; a cell the row lacks, at the row's start
    local function at(k, why)
      if k > count then k = 1 end
      problems:at(lines[k], columns[k], why)
    end
    for _, w in ipairs(wrong or {}) do at(w.column, w.why) end
    if e and desc then
      for k, col in ipairs(dashboard_format.columns) do
        if col and e[col.field] ~= nil then
          local what, why = refused(desc, col.field, e[col.field])
          if why then at(k, format("%s (%s): %s", col.name, what, why)) end
        end
      end
    end
    if e and problems:none() then
      origin_file[e], origin_at[e] = file, lines[1]
      list[#list + 1] = e
    end
  end

  local function on_row(count, texts, quoted, lines, columns, first, last, flawed)
    tidy(#list + 1)
    if not header then
      header = {}
      -- the dashboard's own columns (sync/dashboard.lua), known by the
      -- header: its rows are read as the dashboard means them
      local cells = {}
      for k = 1, count do cells[k] = texts[k] end
      dashboard_format = dashboard.recognise(cells)
      if dashboard_format then
        -- the columns with no name: nothing may be written under them
        for k = 1, count do if not texts[k]:find("%S") then unnamed[k] = true end end
        for k, col in ipairs(dashboard_format.columns) do names[k] = col and col.name or nil end
        if desc and desc.name and dashboard_format.resource ~= desc.name then
          problems:at(lines[1], 1, format("this is %s's file, for %s, not %s", dashboard_format.title,
            dashboard_format.resource, desc.name))
          -- its rows are another resource's: not read
          skip_rows = true
        end
        width = count
        return
      end
      local seen = {}
      for k = 1, count do
        local name = texts[k]
        -- a cell that broke the quoting rules is said already; a bad name
        -- leaves its column unread (header[k] false), the others are read
        if flawed[k] then
          header[k] = false
        elseif not name:find("^[%a_][%w_]*$") then
          problems:at(lines[k], columns[k], format("header cell %d ('%s') is not a field name", k, name))
          header[k] = false
        elseif seen[name] then
          problems:at(lines[k], columns[k], "field " .. name .. " appears twice in the header")
          header[k] = false
        else
          seen[name] = true
          header[k] = name
          names[k] = name
        end
      end
      width = count
      return
    end
    if skip_rows then return end
    if dashboard_format then return dashboard_row(count, texts, lines, columns) end
    -- a row of another length: its cells cannot be told apart by column
    if count ~= width then
      problems:at(lines[1], 1, format("has %d cells where the header has %d", count, width))
      return
    end
    local e = {}
    for k = 1, count do
      local name = header[k]
      if name and not flawed[k] then
        local v, why = typed(fields and fields[name], texts[k], quoted[k])
        local what = name
        if not why and v ~= nil and desc and not unknown_said[name] then
          local unknown
          what, why, unknown = refused(desc, name, v)
          if unknown then unknown_said[name] = true end
        end
        if why then
          problems:at(lines[k], columns[k], what .. ": " .. why)
        else
          e[name] = v
        end
      end
    end
    -- once anything is wrong no list is returned: none is made
    if problems.count > 0 or pending[1] then return end
    origin_file[e], origin_at[e] = file, lines[1]
    -- without a resource, plan types the cells later: the record's text
    if not desc then origin_record[e] = piece:sub(first, last) end
    list[#list + 1] = e
  end
  local line, first, broken = 1, true, false
  while true do
    local why
    piece, why = next_piece()
    if piece == false then return nil, why, true end
    if piece == nil then break end
    if not validate.utf8_length(piece) then return nil, path .. ": is not valid UTF-8" end
    -- past a quoted cell that is never closed, the rest is only read for UTF-8
    if not broken then
      local after = records(problems, piece, on_row, line, first, names)
      if after then line = after else broken = true end
    end
    first = false
  end
  piece = nil
  if not problems:none() then return nil, problems:message() end
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

-- The fields of a JSON entry in the description's order (the table's
-- own order changes from run to run), those it does not know after them
-- by name.
local function fields_in_order(desc, e)
  local rank = {}
  for i, name in ipairs(desc.entry.order or {}) do rank[name] = i end
  local names = {}
  for name in next, e do names[#names + 1] = tostring(name) end
  table.sort(names, function(a, b)
    local ra, rb = rank[a] or math.huge, rank[b] or math.huge
    if ra ~= rb then return ra < rb end
    return a < b
  end)
  return names
end

-- A JSON file is decoded whole: one that is not JSON is named at its one
-- place (lua-cjson stops there). Its entries are then checked one by one,
-- every problem gathered (see Problems): one that is no object, and with
-- desc, a field the resource lacks or a value its create body refuses,
-- named by the entry's index and the field ("x.json: entry 3:
-- lookback_hops: must be at most 20"): what is decoded keeps no lines.
local function read_json(path, text, desc)
  -- a UTF-8 byte order mark, as some editors write, is no part of the JSON
  if text:sub(1, 3) == BOM then text = text:sub(4) end
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
  local problems = problems_of(path)
  for i, e in ipairs(value) do
    if type(e) ~= "table" or array.kind(e) == "array" then
      problems:say(format("%s: entry %d is not an object", path, i))
    else
      origin_file[e], origin_at[e] = file, i
      if desc and desc.entry then
        for _, name in ipairs(fields_in_order(desc, e)) do
          local what, why = refused(desc, name, e[name])
          if why then problems:say(format("%s: entry %d: %s: %s", path, i, what, why)) end
        end
      end
    end
  end
  if not problems:none() then return nil, problems:message() end
  return value
end

--- The entries a file holds, read as kind says ("csv" or "json"), else
--- by its name's ending (.csv or .json); desc, the compiled description,
--- types CSV cells and checks every value against the resource (optional).
--- nil and a message on a bad file: a line per problem (see Problems).
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
  if kind == "json" then return read_json(path, text, desc) end
  return nil, path .. ": neither .csv nor .json: say which by the file's name"
end

--- The same for a text in memory; kind: "csv" or "json".
function entries.parse(text, kind, desc, name)
  if kind == "json" then return read_json(name or "json", text, desc) end
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

-- What the command-line tool prints: an aligned table fitted to the
-- terminal, one entry as "field  value" lines, CSV (sync/entries.lua
-- writes it), JSON (the module's JSON writer, schema/body.lua, led by the
-- description, since a decoded empty list and an empty object are the
-- same Lua table) and YAML (cli_yaml.lua, read from that same JSON); and
-- how it reaches the terminal (its size, a pager). Nothing printed may
-- drive a terminal: the table escapes what it shows, JSON and YAML escape
-- every control character, and CSV is escaped when it goes to a terminal
-- (to a file it must stay byte for byte, to read back).

local core = require("cloudflare.email_security.core")
local array = require("cloudflare.email_security.array")
local errors = require("cloudflare.email_security.errors")
local entries = require("cloudflare.email_security.sync.entries")
local keys = require("cloudflare.email_security.sync.keys")
local json = require("cloudflare.email_security.schema.body").json
local validate = require("cloudflare.email_security.schema.validate")
local number_text = require("cloudflare.email_security.numbers").text
local yaml = require("cloudflare.email_security.cli_yaml")

local null = core.null
local printable = errors.printable
local concat, find, format, rep, sub, type = table.concat, string.find, string.format, string.rep, string.sub, type

local output = {}

local escape_unicode_controls = errors.escape_unicode_controls

--- CSV text as a terminal can show it: every control character but the
--- line breaks (a cell's, and the "\r\n" that ends a row) as \xNN, and
--- those above as \uNNNN. A backslash stays as it is: this is to be read,
--- not read back.
function output.for_terminal(text)
  text = text:gsub("[%z\1-\9\11-\31\127]\n?", function(c)
    if c == "\r\n" then return c end
    return format("\\x%02x", c:byte()) .. c:sub(2)
  end)
  return escape_unicode_controls(text)
end

-- What is_terminal found, by descriptor: the tool asks about stdout in
-- several places (colour, the table's width, CSV's escaping, the pager),
-- each question costs a shell, and the answer cannot change during a run.
local terminal_answers = {}

--- Is file descriptor fd a terminal? (A shell's `test -t`: Lua has no
--- isatty.) Asked once per descriptor and process.
function output.is_terminal(fd)
  local known = terminal_answers[fd]
  if known == nil then
    local ok, how, code = os.execute("test -t " .. fd)
    if type(ok) == "number" then
      known = ok == 0                 -- Lua 5.1
    else
      known = ok == true and how == "exit" and code == 0
    end
    terminal_answers[fd] = known
  end
  return known
end

--- The columns a resource's entries show: id first, then the current
--- fields in the description's order (desc: compiled); a table leaves out
--- the timestamps.
function output.columns(desc, for_table)
  local out = { "id" }
  for _, name in ipairs(desc.entry.order) do
    local f = desc.entry.fields[name]
    if name ~= "id" and not f.deprecated and not (for_table and f.format == "date-time") then
      out[#out + 1] = name
    end
  end
  return out
end

-- A value as a table cell: one line, no control character (what the
-- server sent could hold a terminal's escape sequence).
local function text_of(v)
  if v == nil then return "" end
  if v == null then return "null" end
  if type(v) == "table" then return printable((entries.cell(v):gsub('^"(.*)"$', "%1"))) end
  return printable(tostring(v))
end
output.text_of = text_of

-- The width a cell takes: characters, not bytes (a valid UTF-8 text; two
-- columns per character of the wide scripts are not counted).
local function width(text)
  return validate.utf8_length(text) or #text
end

---------------------------------------------------------------------------
-- Cells: a value as a person reads it in one short line
---------------------------------------------------------------------------

local function is_list(v, n)
  if n and n.type then return n.type == "array" end
  return array.kind(v) ~= "object"
end

-- An object's field names: the node's order, then the others sorted (as
-- the JSON writer orders them).
local function names_of(v, n)
  local out, known = {}, n and n.fields
  if known then
    for _, name in ipairs(n.order) do if v[name] ~= nil then out[#out + 1] = name end end
  end
  local rest = {}
  for name in next, v do
    if not (known and known[name]) then rest[#rest + 1] = name end
  end
  table.sort(rest, function(a, b) return tostring(a) < tostring(b) end)
  for _, name in ipairs(rest) do out[#out + 1] = name end
  return out
end

local summary

-- A scalar as shown; nil for a table.
local function scalar(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return number_text(v) end
  if t == "table" then return nil end
  return tostring(v)
end

-- A list or an object in one line, unescaped: a list of plain values as
-- its items ("US, DE"), a list of objects by its count; an object as
-- name=value pairs in its node's order, its null fields left out (and
-- its timestamps, but in a wide view); what nests deeper as [N] or {…}.
function summary(v, n, wide)
  if is_list(v, n) then
    local parts = {}
    for i = 1, #v do
      local text = v[i] ~= null and scalar(v[i])
      if text == nil then return #v == 1 and "1 item" or #v .. " items" end
      parts[i] = text or ""
    end
    return concat(parts, ", ")
  end
  local parts, fields = {}, n and n.fields
  for _, name in ipairs(names_of(v, n)) do
    local item, f = v[name], fields and fields[name]
    if item ~= null and (wide or not (f and f.format == "date-time")) then
      local text = scalar(item)
      if text == nil then text = is_list(item, f) and "[" .. #item .. "]" or "{…}" end
      parts[#parts + 1] = tostring(name) .. "=" .. text
    end
  end
  return concat(parts, ", ")
end

-- A field's value as a cell: null and absent are empty, a list or an
-- object summarised; escaped, so that it drives no terminal. n: the
-- field's node (or nil); wide: keep the timestamps of an object.
local function cell(v, n, wide)
  if v == nil or v == null then return "" end
  local text = scalar(v) or summary(v, n, wide)
  return printable(text)
end

---------------------------------------------------------------------------
-- Which fields, in which order
---------------------------------------------------------------------------

-- The key fields of a resource the description has (keys.of is nil for
-- a resource the overlay does not know).
local function key_fields(name, node)
  local key = name and keys.of(name)
  local out = {}
  if key then
    for _, field in ipairs(key.fields) do
      if node.fields[field] then out[#out + 1] = field end
    end
  end
  return out
end

-- The columns a person reads: the natural key first, then id, then the
-- rest in the description's order; no deprecated field; the timestamps
-- only if with_times.
local function reading_order(node, name, with_times)
  local out, taken = {}, {}
  local function take(field)
    if not taken[field] then out[#out + 1], taken[field] = field, true end
  end
  for _, field in ipairs(key_fields(name, node)) do take(field) end
  if node.fields.id then take("id") end
  for _, field in ipairs(node.order) do
    local f = node.fields[field]
    if not f.deprecated and (with_times or f.format ~= "date-time") then take(field) end
  end
  return out
end

-- The columns CSV writes by default: id first, then every current field
-- (output.columns' choice, for any object node: a verification has no id).
local function csv_columns(node)
  local out = {}
  if node.fields.id then out[1] = "id" end
  for _, field in ipairs(node.order) do
    if field ~= "id" and not node.fields[field].deprecated then out[#out + 1] = field end
  end
  return out
end

--- The fields a description knows: any of them may be asked for.
function output.known_fields(node)
  local out = {}
  for i, field in ipairs(node.order) do out[i] = field end
  return out
end

--- The columns `fields` asks for (a list of names, or one text of them
--- separated by commas), each once, in its order: a list, or nil and a
--- message naming the first unknown one and the fields there are.
function output.pick(node, fields)
  if type(fields) == "string" then
    local list = {}
    for field in fields:gmatch("[^,]+") do list[#list + 1] = field:match("^%s*(.-)%s*$") end
    fields = list
  end
  local out, seen = {}, {}
  for _, field in ipairs(fields) do
    if not node.fields[field] then
      local known = output.known_fields(node)
      local near = validate.suggest(field, known)
      local hint = near:find("did you mean", 1, true) and " (" .. near:gsub("^: ", "") .. ")" or ""
      return nil, printable(format("unknown field '%s'%s; the fields are: %s", field, hint, concat(known, ", ")))
    end
    if not seen[field] then out[#out + 1], seen[field] = field, true end
  end
  if #out == 0 then return nil, "no field named: give one or more, separated by commas" end
  return out
end

---------------------------------------------------------------------------
-- Tables
---------------------------------------------------------------------------

-- the marker of a cut cell: one column
local ELLIPSIS = "\226\128\166"
-- a cut column keeps at least this many columns (five characters and the
-- ellipsis); one narrower than that is never cut
local MIN_COLUMN = 6
local GAP = "  "

-- text cut to at most `room` columns, its last one an ellipsis.
local function cut(text, room)
  if width(text) <= room then return text end
  local kept, count = 0, 0
  -- whole UTF-8 characters (a byte of text that is not UTF-8 is one)
  for at, ch in text:gmatch("()([%z\1-\127\192-\255][\128-\191]*)") do
    if count == room - 1 then break end
    kept, count = at + #ch - 1, count + 1
  end
  return sub(text, 1, kept) .. ELLIPSIS
end

-- The widths that make the columns fit in `room` columns: the widest are
-- cut, all to the same width (the largest that fits; what is left over
-- goes a column each to the first of them), never below MIN_COLUMN. A
-- column `whole` names (by position) is never cut: the key fields and id,
-- which a person copies into get, update and delete, and which tell two
-- entries apart ("alice@…" would be alice@example.com and
-- alice@example.org alike). If even that does not fit, the line is let
-- run over: the whole columns are kept whole, the others at MIN_COLUMN.
local function fitted(widths, room, whole)
  local n = #widths
  local avail = room - #GAP * (n - 1)
  local function total(cap)
    local sum = 0
    for i = 1, n do sum = sum + (whole[i] and widths[i] or math.min(widths[i], cap)) end
    return sum
  end
  local widest = 0
  for i = 1, n do if not whole[i] and widths[i] > widest then widest = widths[i] end end
  if total(widest) <= avail then return widths end
  -- the largest cap that fits, by halving (MIN_COLUMN when none does)
  local low, high = MIN_COLUMN, widest
  while low < high do
    local mid = math.floor((low + high + 1) / 2)
    if total(mid) <= avail then low = mid else high = mid - 1 end
  end
  local cap = low
  local spare = avail - total(cap)
  local out = {}
  for i = 1, n do
    if whole[i] then
      out[i] = widths[i]
    else
      out[i] = math.min(widths[i], cap)
      if widths[i] > cap and spare > 0 then out[i], spare = out[i] + 1, spare - 1 end
    end
  end
  return out
end

-- Rows of cells as aligned lines: each column as wide as its widest
-- cell (header included), or as `room` leaves it (whole: the columns,
-- by position, never cut); no trailing spaces.
local function aligned(header, rows, room, whole)
  local widths = {}
  local n = #(header or rows[1] or {})
  for i = 1, n do widths[i] = header and width(header[i]) or 0 end
  for _, row in ipairs(rows) do
    for i = 1, n do
      local w = width(row[i])
      if w > widths[i] then widths[i] = w end
    end
  end
  local cuts = room and fitted(widths, room, whole or {}) or widths
  local out = {}
  local function line(cells)
    local parts = {}
    for i = 1, n do
      local text = cells[i]
      if cuts[i] < widths[i] then text = cut(text, cuts[i]) end
      parts[i] = i < n and text .. rep(" ", cuts[i] - width(text)) or text
    end
    -- empty cells at the end leave no spaces behind
    out[#out + 1] = (concat(parts, GAP):gsub(" +$", ""))
  end
  if header then line(header) end
  for _, row in ipairs(rows) do line(row) end
  if #out == 0 then return "" end
  return concat(out, "\n") .. "\n"
end

-- name: the resource's, for its key fields (nil: only id is kept whole).
local function list_table(list, cols, node, name, wide, room, no_headers)
  local fields = node and node.fields or {}
  local rows = {}
  for r, e in ipairs(list) do
    local row = {}
    for i, field in ipairs(cols) do row[i] = cell(e[field], fields[field], wide) end
    rows[r] = row
  end
  local whole = {}
  if room then
    local keep = { id = true }
    if node then
      for _, field in ipairs(key_fields(name, node)) do keep[field] = true end
    end
    for i, field in ipairs(cols) do whole[i] = keep[field] end
  end
  return aligned(not no_headers and cols or nil, rows, room, whole)
end

--- Entries as an aligned table, a header row first (null and absent
--- fields empty, lists and objects summarised); room: the terminal's
--- width to fit in, an id column never cut (nil: none); no_headers:
--- leave the header row out.
function output.table_text(list, cols, room, no_headers)
  return list_table(list, cols, nil, nil, false, room, no_headers)
end

-- One entry as "field  value" lines (values as cells; whole, as
-- one-line JSON, for a list or object in a wide view); all_lines: a line
-- even for a field the entry lacks.
local function entry_lines(e, cols, node, wide, all_lines)
  local fields = node and node.fields or {}
  local out, name_width = {}, 0
  for _, name in ipairs(cols) do if #name > name_width then name_width = #name end end
  for _, name in ipairs(cols) do
    local v = e[name]
    if v ~= nil or all_lines then
      local text
      if wide and type(v) == "table" then text = json(v, fields[name]) else text = cell(v, fields[name], true) end
      -- padded by hand: string.format takes no width past 99
      out[#out + 1] = (printable(name) .. rep(" ", name_width - #name + 2) .. text):gsub("%s+$", "")
    end
  end
  if #out == 0 then return "" end
  return concat(out, "\n") .. "\n"
end

--- One entry, a "field  value" line for each field it has (null as
--- empty).
function output.entry_text(e, cols)
  return entry_lines(e, cols, nil, false, false)
end

---------------------------------------------------------------------------
-- JSON
---------------------------------------------------------------------------

local LIST = { type = "array" }

--- v as one line of JSON; node: its schema node, or output.LIST for a
--- list of what item describes.
function output.json_text(v, node, item)
  if node == LIST then node = { type = "array", items = item } end
  return json(v, node) .. "\n"
end
output.LIST = LIST

-- one indentation per depth, made once
local indents = setmetatable({}, { __index = function(t, depth)
  local v = "\n" .. rep("  ", depth)
  t[depth] = v
  return v
end })

--- The one-line JSON the writer makes (schema/body.lua) indented by two
--- spaces a level, for a person: the same JSON, read the same way. Only
--- the text between strings changes: a string is copied as it is (its
--- escapes with it), and [] and {} stay empty on their line.
function output.indent_json(s)
  local out, n, depth, i, len = {}, 0, 0, 1, #s
  while i <= len do
    local k = find(s, '[][{},:"]', i)
    if not k then
      n = n + 1
      out[n] = sub(s, i)
      break
    end
    if k > i then
      n = n + 1
      out[n] = sub(s, i, k - 1)
    end
    local c = sub(s, k, k)
    n = n + 1
    if c == '"' then
      -- to the closing quote: one that no backslash escapes
      local j = k + 1
      while true do
        local q = find(s, '["\\]', j)
        if not q then error("indent_json: a string that does not end at byte " .. k, 2) end
        if sub(s, q, q) == '"' then
          j = q
          break
        end
        j = q + 2
      end
      out[n] = sub(s, k, j)
      i = j + 1
    elseif c == "{" or c == "[" then
      local close = c == "{" and "}" or "]"
      if sub(s, k + 1, k + 1) == close then
        out[n] = c .. close
        i = k + 2
      else
        depth = depth + 1
        out[n] = c .. indents[depth]
        i = k + 1
      end
    elseif c == "}" or c == "]" then
      depth = depth - 1
      out[n] = indents[depth] .. c
      i = k + 1
    elseif c == "," then
      out[n] = "," .. indents[depth]
      i = k + 1
    else
      out[n] = ": "
      i = k + 1
    end
  end
  return concat(out, "", 1, n)
end

-- An object node with only the picked fields, in their order (the JSON
-- writer orders an object's fields by position).
local function picked_node(node, cols)
  local position = {}
  for i, field in ipairs(cols) do position[field] = i end
  return { type = "object", fields = node.fields, order = cols, position = position }
end

local function only(e, cols)
  local out = {}
  for _, field in ipairs(cols) do out[field] = e[field] end
  return out
end

---------------------------------------------------------------------------
-- One entry point for every format
---------------------------------------------------------------------------

local FORMATS = { table = true, wide = true, json = true, yaml = true, csv = true }

--- Entries (or one entry) as text in one of the tool's formats: text, or
--- nil and a message for the caller to give as a usage error (an unknown
--- field or format).
---
--- how: {
---   format = "table" (default) | "wide" | "json" | "yaml" | "csv",
---   desc = the resource's compiled description (its entry node and name),
---   node = an object node to use instead of desc.entry (a verification),
---   name = the resource's name, for its key fields (default desc.name),
---   one = true: data is one entry, not a list of them,
---   fields = names (a list, or one text with commas): only these, in
---     this order, in every format,
---   no_headers = true: no header row (table, wide, csv),
---   indent = true: JSON indented (for a terminal; else one line),
---   width = the terminal's width: a table fits in it (nil: no fitting),
--- }
---
--- table: the key fields, id, then the rest in the description's order,
--- without deprecated fields and timestamps; null empty, lists and
--- objects in one short cell, cells cut with "…" to fit `width`, but
--- never the key fields' and id's (past what fits, the line runs over).
--- wide: every current field with the timestamps, nothing cut. One entry:
--- "field  value" lines in the same order (timestamps included); wide
--- adds the deprecated fields and those the description does not know,
--- and gives lists and objects whole, as JSON. json and yaml: every field
--- the entries hold, in the description's order. csv: id, then every
--- current field (sync/entries.lua's CSV, which reads back).
function output.render(data, how)
  local kind = how.format or "table"
  if not FORMATS[kind] then
    return nil, printable(format("unknown output format '%s' (table, wide, json, yaml or csv)", tostring(kind)))
  end
  local node = how.node or (how.desc and how.desc.entry)
  assert(node and node.fields, "output.render: how.desc or how.node gives the entries' object node")
  local name = how.name or (how.desc and how.desc.name)
  local cols
  if how.fields then
    local why
    cols, why = output.pick(node, how.fields)
    if not cols then return nil, why end
  end

  if kind == "json" or kind == "yaml" then
    local n, v = node, data
    if cols then
      n = picked_node(node, cols)
      if how.one then
        v = only(data, cols)
      else
        v = {}
        for i, e in ipairs(data) do v[i] = only(e, cols) end
      end
    end
    local text = json(v, how.one and n or { type = "array", items = n })
    if kind == "yaml" then return yaml.from_json(text) end
    if how.indent then text = output.indent_json(text) end
    return text .. "\n"
  end

  if kind == "csv" then
    local text = entries.csv(how.one and { data } or data, cols or csv_columns(node))
    if how.no_headers then text = text:sub((text:find("\r\n", 1, true)) + 2) end
    return text
  end

  local wide = kind == "wide"
  if how.one then
    if cols then return entry_lines(data, cols, node, wide, true) end
    cols = reading_order(node, name, true)
    if wide then
      -- every field: the deprecated ones, and any the description lacks
      local taken = {}
      for _, field in ipairs(cols) do taken[field] = true end
      for _, field in ipairs(names_of(data, node)) do
        if not taken[field] then cols[#cols + 1] = field end
      end
    end
    return entry_lines(data, cols, node, wide, false)
  end
  cols = cols or reading_order(node, name, wide)
  return list_table(data, cols, node, name, wide, not wide and how.width or nil, how.no_headers)
end

---------------------------------------------------------------------------
-- The terminal: its size, and a pager
---------------------------------------------------------------------------

local function positive(text)
  local n = tonumber(type(text) == "string" and text:match("^%s*(%d+)%s*$") or nil)
  if n and n > 0 then return n end
  return nil
end

local function stty_size()
  local ok, text = pcall(function()
    local p = io.popen("stty size < /dev/tty 2>/dev/null", "r")
    if not p then return nil end
    local answer = p:read("*a")
    p:close()
    return answer
  end)
  return ok and text or nil
end

--- The terminal's width and height (either nil where unknown): COLUMNS
--- and LINES from the environment first (a shell sets them, and a user
--- may, to choose), else what `stty size` says of the terminal when
--- standard output is one; nil when it is not (a pipe, a file: nothing
--- to fit). opts (optional, for tests): getenv (os.getenv), terminal
--- (whether stdout is a terminal; asked when needed), stty (a function
--- giving `stty size`'s answer, "rows columns").
function output.terminal_size(opts)
  opts = opts or {}
  local getenv = opts.getenv or os.getenv
  local columns, lines = positive(getenv("COLUMNS")), positive(getenv("LINES"))
  if columns and lines then return columns, lines end
  local terminal = opts.terminal
  if terminal == nil then terminal = output.is_terminal(1) end
  if not terminal then return columns, lines end
  local rows, cols = ((opts.stty or stty_size)() or ""):match("^%s*(%d+)%s+(%d+)")
  return columns or positive(cols), lines or positive(rows)
end

local DEFAULT_PAGER = "less -FRX"

-- Does text have more than `limit` lines? (Counted only as far as needed:
-- a long listing is not gone through twice.)
local function more_lines_than(text, limit)
  local count, at = 0, 1
  while true do
    local k = find(text, "\n", at, true)
    if not k then
      if at <= #text then count = count + 1 end
      return count > limit
    end
    count = count + 1
    if count > limit then return true end
    at = k + 1
  end
end

--- The pager to show text through, or nil to write it directly: only on
--- a terminal (facts.terminal) whose height is known (facts.height), for
--- a text of more lines than that; facts.pager: $PAGER (nil when unset:
--- less -FRX; empty or "cat": none).
function output.pager(text, facts)
  if not facts.terminal or not facts.height then return nil end
  local command = facts.pager
  if command == nil then command = DEFAULT_PAGER end
  command = command:match("^%s*(.-)%s*$")
  if command == "" or command == "cat" then return nil end
  if not more_lines_than(text, facts.height) then return nil end
  return command
end

-- Can the shell start the command's program? Its first word, past any
-- NAME=value before it, looked up as the shell would; a command that
-- starts otherwise (a quote, a parenthesis) is left to the shell.
local function can_start(command)
  local rest = command
  while true do
    local after = rest:match("^[%a_][%w_]*=%S*%s+(.*)$")
    if not after then break end
    rest = after
  end
  local program = rest:match("^([%w_./+-]+)")
  if not program then return true end
  local ok, how, code = os.execute("command -v '" .. program .. "' >/dev/null 2>&1")
  if type(ok) == "number" then return ok == 0 end   -- Lua 5.1
  return ok == true and how == "exit" and code == 0
end

-- A text as one shell word: in single quotes, each quote in it closed,
-- escaped and reopened; the shell reads it back byte for byte, whatever
-- it holds.
local function shell_word(text)
  return "'" .. text:gsub("'", "'\\''") .. "'"
end

-- The script the pager runs in, always this same text: $PAGER reaches it
-- as a variable, and only the inner `sh -c` reads it as a command. A
-- command the shell cannot read (an unmatched quote) fails in there, and
-- this script still goes on: it reads what the pager left (a user who
-- quits less early, or a pager that fails, must not kill the tool with
-- SIGPIPE) and gives the pager's status, in a file too (ES_PAGER_STATUS)
-- where the Lua does not tell a command's status (5.1, LuaJIT). Ctrl-C
-- reaches this shell as it reaches the pager: the trap keeps it alive to
-- read the rest and tell the status (else the tool's write could meet a
-- closed pipe once less quits), and, a trapped signal being reset in the
-- commands it runs (an ignored one would stay ignored), the pager still
-- gets Ctrl-C as it always does.
local PAGER_SCRIPT = 'trap : INT\nsh -c "$ES_PAGER"\ns=$?\n'
  .. 'if [ -n "$ES_PAGER_STATUS" ]; then echo "$s" > "$ES_PAGER_STATUS"; fi\n'
  .. 'cat > /dev/null\nexit "$s"'

-- The pager's status once it has ended: the status file's number, else
-- what the closed pipe tells (Lua 5.2 and later; a signal as a shell
-- gives it, 128 and its number); nil when neither tells.
local function pager_status(path, how, code)
  if path then
    local f = io.open(path, "r")
    local status = f and tonumber(f:read("*l") or "")
    if f then f:close() end
    os.remove(path)
    if status then return status end
  end
  if how == "exit" then return code end
  if how == "signal" then return 128 + code end
  return nil
end

--- Writes text to out, through the pager output.pager chooses if any
--- (facts as there). The pager runs inside a fixed shell script
--- (PAGER_SCRIPT), which reads all that is left once it ends. When the
--- pager cannot start (not found), cannot even be read as a command, or
--- fails (PAGER=false shows nothing and says so with its status: 1 to
--- 128), the text is written directly: a listing is never lost. A pager
--- ended by a signal (the user's Ctrl-C) showed it. Gives true when the
--- pager showed it.
function output.page(text, out, facts)
  local command = output.pager(text, facts)
  if command and can_start(command) then
    out:flush()
    -- a status file only where the closed pipe does not tell it (Lua 5.1
    -- and LuaJIT): a second Ctrl-C in the pager ends the tool before it
    -- could remove the file. None made (no temporary file can be made):
    -- the status is unknown there.
    local path
    if _VERSION == "Lua 5.1" then
      local made, name = pcall(os.tmpname)
      path = made and name or nil
    end
    local p = io.popen("ES_PAGER=" .. shell_word(command) .. "\nES_PAGER_STATUS=" .. shell_word(path or "")
                       .. "\n" .. PAGER_SCRIPT, "w")
    if p then
      p:write(text)
      local _, how, code = p:close()
      local status = pager_status(path, how, code)
      -- Shown: 0; and past 128, a pager a signal ended, which the user
      -- sent (Ctrl-C in more; less ignores it, but the shell would not
      -- without the trap): the listing written then would come after
      -- they stopped it. Unknown (Lua 5.1 with no status file): most
      -- likely shown.
      if status == nil or status == 0 or status > 128 then return true end
    elseif path then
      os.remove(path)
    end
  end
  out:write(text)
  return false
end

return output

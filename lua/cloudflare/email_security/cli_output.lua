-- What the command-line tool prints: an aligned table, one entry as
-- "field  value" lines, CSV (sync/entries.lua writes it), and JSON (the
-- module's JSON writer, schema/body.lua, led by the description, since a
-- decoded empty list and an empty object are the same Lua table). Nothing
-- printed may drive a terminal: the table escapes what it shows, JSON
-- escapes every control character, and CSV is escaped when it goes to a
-- terminal (to a file it must stay byte for byte, to read back).

local core = require("cloudflare.email_security.core")
local errors = require("cloudflare.email_security.errors")
local entries = require("cloudflare.email_security.sync.entries")
local json = require("cloudflare.email_security.schema.body").json
local validate = require("cloudflare.email_security.schema.validate")

local null = core.null
local concat, format, type = table.concat, string.format, type

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

--- Is file descriptor fd a terminal? (A shell's `test -t`: Lua has no isatty.)
function output.is_terminal(fd)
  local ok, how, code = os.execute("test -t " .. fd)
  if type(ok) == "number" then return ok == 0 end   -- Lua 5.1
  return ok == true and how == "exit" and code == 0
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
  if type(v) == "table" then return errors.printable((entries.cell(v):gsub('^"(.*)"$', "%1"))) end
  return errors.printable(tostring(v))
end
output.text_of = text_of

-- The width a cell takes: characters, not bytes (a valid UTF-8 text; two
-- columns per character of the wide scripts are not counted).
local function width(text)
  return validate.utf8_length(text) or #text
end

--- Entries as an aligned table, a header row first.
function output.table_text(list, cols)
  local widths, rows = {}, {}
  for i, name in ipairs(cols) do widths[i] = #name end
  for r, e in ipairs(list) do
    local row = {}
    for i, name in ipairs(cols) do
      row[i] = text_of(e[name])
      if width(row[i]) > widths[i] then widths[i] = width(row[i]) end
    end
    rows[r] = row
  end
  local out = {}
  local function line(cells)
    local parts = {}
    for i, cell in ipairs(cells) do parts[i] = i < #cells and cell .. (" "):rep(widths[i] - width(cell)) or cell end
    out[#out + 1] = concat(parts, "  ")
  end
  line(cols)
  for _, row in ipairs(rows) do line(row) end
  return concat(out, "\n") .. "\n"
end

--- One entry, a "field  value" line for each field it has.
function output.entry_text(e, cols)
  local out, name_width = {}, 0
  for _, name in ipairs(cols) do if #name > name_width then name_width = #name end end
  for _, name in ipairs(cols) do
    if e[name] ~= nil then out[#out + 1] = format("%-" .. name_width .. "s  %s", name, text_of(e[name])) end
  end
  return concat(out, "\n") .. "\n"
end

local LIST = { type = "array" }

--- v as one line of JSON; node: its schema node, or output.LIST for a
--- list of what item describes.
function output.json_text(v, node, item)
  if node == LIST then node = { type = "array", items = item } end
  return json(v, node) .. "\n"
end
output.LIST = LIST

return output

-- Puts the tables of a `make bench` (or `make bench-peers`) run into
-- doc/performance.md: each block the run printed between
-- `<!-- bench: KIND KEY -->` and `<!-- /bench -->` (bench/doc.lua) takes
-- the place of the doc's block of that name; a block for a Lua the doc has
-- no table of yet goes after the doc's last block of its kind. A block
-- whose kind the doc has nowhere changes nothing: the doc is written only
-- when every block found its place. The text around the blocks is the
-- doc's own, written by hand.
--
--   lua5.4 bench/write_doc.lua [RUN_OUTPUT [DOC]]
--
-- RUN_OUTPUT: a saved run (`make bench | tee build/bench.txt`), or - or
-- nothing for standard input; DOC: default doc/performance.md.
-- `make bench-doc` runs make bench and this.

local output_path, doc_path = arg[1], arg[2] or "doc/performance.md"

local function fail(message)
  io.stderr:write("write_doc: ", message, " (", doc_path, " is unchanged)\n")
  os.exit(1)
end

-- path: a file, or standard input for nil or "-"
local function read(path)
  local stdin = path == nil or path == "-"
  local f = stdin and io.stdin or io.open(path, "rb")
  if not f then fail("cannot read " .. tostring(path)) end
  local text = f:read("*a")
  if not stdin then f:close() end
  return text
end

local OPEN, CLOSE = "<!%-%- bench: ([%w_%.%- ]-) %-%->", "<!%-%- /bench %-%->"

-- The blocks of a text, in order: { name, kind, first, last, text } with
-- first and last the block's bytes, markers included. A marker counts at
-- the start of a line only (the doc names them in its text too).
local function blocks(text, where)
  local out, at, lined = {}, 1, "\n" .. text
  while true do
    local first, open_end, name = lined:find("\n" .. OPEN, at)
    if not first then break end
    local close_first, last = lined:find("\n" .. CLOSE, open_end + 1)
    local next_open = lined:find("\n" .. OPEN, open_end + 1)
    if not close_first or (next_open and next_open < close_first) then
      fail(where .. ": the block " .. name .. " has no end marker")
    end
    -- in text's own positions: lined has one byte more in front
    out[#out + 1] = { name = name, kind = name:match("^%S+"), first = first, last = last - 1,
                      text = text:sub(first, last - 1) }
    at = last + 1
  end
  return out
end

local doc = read(doc_path)
local run = read(output_path):gsub("\r\n", "\n")
local found = blocks(run, (output_path == nil or output_path == "-") and "the run" or output_path)
if #found == 0 then fail("the run printed no table (no <!-- bench: ... --> marker)") end

local names = {}
for _, b in ipairs(found) do
  local in_doc = blocks(doc, doc_path)
  local same, last_of_kind
  for _, d in ipairs(in_doc) do
    if d.name == b.name then same = d end
    if d.kind == b.kind then last_of_kind = d end
  end
  if same then
    doc = doc:sub(1, same.first - 1) .. b.text .. doc:sub(same.last + 1)
  elseif last_of_kind then
    doc = doc:sub(1, last_of_kind.last) .. "\n\n" .. b.text .. doc:sub(last_of_kind.last + 1)
  else
    fail(("the doc has no place for the table %q: add a block of kind %q by hand once"):format(b.name, b.kind))
  end
  names[#names + 1] = b.name
end

local tmp = doc_path .. ".tmp"
local f = io.open(tmp, "wb")
if not f then fail("cannot write " .. tmp) end
f:write(doc)
f:close()
local ok, why = os.rename(tmp, doc_path)
if not ok then fail("cannot replace it: " .. tostring(why)) end
print(("write_doc: %d tables written to %s (%s)"):format(#names, doc_path, table.concat(names, ", ")))

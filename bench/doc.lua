-- The tables `make bench` prints are doc/performance.md's own Markdown:
-- each between two markers, `<!-- bench: KIND KEY -->` and
-- `<!-- /bench -->`, that bench/write_doc.lua finds in a run's output and
-- in the doc, and swaps. KIND names the table (calls, creates, memory,
-- instructions, bulk, nginx, peers), KEY the Lua it was measured on
-- (lua5.4, luajit; none for nginx, whose own LuaJIT runs the module), so
-- that a run on one Lua rewrites that Lua's tables and leaves the other's.
local doc = {}

--- The running Lua as a block's key (lua5.4, luajit) and as a reader
--- would name it (Lua 5.4, LuaJIT 2.1).
function doc.lua_key()
  if jit then return "luajit" end
  return (_VERSION:gsub("^Lua ", "lua"))
end

function doc.lua_name()
  if jit then return jit.version:match("^LuaJIT %d+%.%d+") or jit.version end
  return _VERSION
end

local function first_line(cmd)
  local p = io.popen(cmd)
  local line = p and p:read("*l")
  if p then p:close() end
  return line or "?"
end

--- What a caption says of the run: the Lua (or what runs the module:
--- `host`), the libcurl the module loaded, the machine and the day, so that
--- a reader sees when a table has aged.
function doc.run_facts(host)
  local ok, core = pcall(require, "cloudflare.email_security.core")
  local libcurl = ok and type(core) == "table" and core.libcurl_version
    or first_line("pkg-config --modversion libcurl 2>/dev/null")
  return ("%s, libcurl %s, %s, %s"):format(host or doc.lua_name(), libcurl, first_line("uname -m"),
    os.date("%Y-%m-%d"))
end

--- 29348248 -> "29,348,248"
function doc.count(n)
  local digits = ("%.0f"):format(n)
  local sign, rest = digits:match("^(%-?)(%d+)$")
  return sign .. rest:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", "")
end

--- A Markdown table: its header cells, "l" or "r" per column, its rows.
function doc.table(header, align, rows)
  local rule = {}
  for i = 1, #header do rule[i] = align:sub(i, i) == "r" and "---:" or "---" end
  local lines = { "| " .. table.concat(header, " | ") .. " |", "| " .. table.concat(rule, " | ") .. " |" }
  for _, row in ipairs(rows) do lines[#lines + 1] = "| " .. table.concat(row, " | ") .. " |" end
  return table.concat(lines, "\n")
end

--- One block as the doc holds it: the marker, a caption, the table, what
--- follows it (notes: text or nil), the end marker.
function doc.block(name, caption, markdown_table, notes)
  local parts = { "<!-- bench: " .. name .. " -->", caption, "", markdown_table, "" }
  if notes then
    parts[#parts + 1] = notes
    parts[#parts + 1] = ""
  end
  parts[#parts + 1] = "<!-- /bench -->"
  return table.concat(parts, "\n")
end

return doc

-- Reading files and command output, for the spec helpers that start
-- servers and read what they leave behind. Lua 5.1 compatible.
local files = {}

--- The whole file, or nil when it cannot be opened.
function files.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  return text
end

function files.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

--- A shell command's standard output, without its trailing white space.
function files.command_output(cmd)
  local p = io.popen(cmd)
  local out = p:read("*a")
  p:close()
  return (out:gsub("%s+$", ""))
end

return files

-- The emulator's debug lines, on stderr, with --verbose only (main.lua
-- sets `verbose` before the other files are loaded).

local log = { verbose = false }

function log.say(...)
  if log.verbose then io.stderr:write(string.format(...), "\n") end
end

return log

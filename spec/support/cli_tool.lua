-- bin/cloudflare-email-security run as a subprocess, for the specs of the
-- tool: tool.new(env) gives run (exit code, stdout, stderr), command (the
-- shell command, without redirections), execute, start_in_background and
-- on_terminal, in a scratch folder (tool.dir) removed by tool.cleanup().
local files = require("spec.support.files")

local LUA = os.getenv("LUA") or "lua5.4"

local cli_tool = { LUA = LUA }

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
cli_tool.quote = q

--- os.execute's exit code, on every Lua.
function cli_tool.execute(cmd)
  local ok, _, code = os.execute(cmd)
  if type(ok) == "number" then code = ok / 256 end    -- Lua 5.1: the wait status
  return code
end
local execute = cli_tool.execute

--- env: the environment's assignments (a shell word list, "env -u X Y=z").
function cli_tool.new(env)
  local tool = { env = env }
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. q(dir)))
  tool.dir = dir

  --- The shell command that runs the tool, without redirections; opts.env
  --- in place of the tool's environment.
  function tool.command(args, opts)
    opts = opts or {}
    return ("%s LUA_PATH=%s LUA_CPATH=%s %s bin/cloudflare-email-security %s"):format(
      opts.env or tool.env, q("./lua/?.lua;./lua/?/init.lua;" .. package.path), q(package.cpath), LUA, args)
  end

  --- Runs the tool; answers exit code, stdout, stderr. opts.stdin: a file.
  function tool.run(args, opts)
    opts = opts or {}
    local out, err = dir .. "/out", dir .. "/err"
    local code = execute(("%s < %s > %s 2> %s"):format(tool.command(args, opts), opts.stdin or "/dev/null", out, err))
    return code, files.read(out) or "", files.read(err) or ""
  end

  --- Starts the tool in the background (its stdout and stderr to dir/out
  --- and dir/err); answers its pid, and a function(seconds) -> its exit
  --- code, or nil when it has not ended within that long.
  function tool.start_in_background(args)
    local socket = require("socket")
    local out, err, pid_file, code_file = dir .. "/out", dir .. "/err", dir .. "/pid", dir .. "/code"
    os.remove(pid_file)
    os.remove(code_file)
    execute(("sh -c %s 2>/dev/null &"):format(q(("%s < /dev/null > %s 2> %s & echo $! > %s; wait $!; echo $? > %s")
      :format(tool.command(args), out, err, pid_file, code_file))))
    local pid
    for _ = 1, 100 do
      pid = tonumber(files.read(pid_file) or "")
      if pid then break end
      socket.sleep(0.05)
    end
    assert(pid, "the tool did not start")
    return pid, function(seconds)
      local deadline = socket.gettime() + seconds
      repeat
        local code = tonumber(files.read(code_file) or "")
        if code then return code end
        socket.sleep(0.05)
      until socket.gettime() > deadline
    end
  end

  --- Runs a shell command inside a pseudo-terminal (util-linux's
  --- `script`, in Debian's essential set): its stdin (at its end at once),
  --- and whatever of its output it does not redirect, is a terminal.
  --- Answers the exit code and what the terminal was sent (which writes
  --- "\n" as "\r\n").
  function tool.on_terminal(shell)
    local shown = dir .. "/terminal"
    local code = execute(("script -qec %s /dev/null < /dev/null > %s 2>&1"):format(q(shell), shown))
    return code, files.read(shown) or ""
  end

  function tool.cleanup() os.execute("rm -rf " .. q(dir)) end

  return tool
end

return cli_tool

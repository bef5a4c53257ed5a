-- CI: every command the README shows in a ```sh block is accounted for,
-- so that the README cannot drift from what works. Each is either
--   run here, as written (the build and install commands, make demo);
--   run by .ci/run itself (make test and the checks): its text must be there;
--   the command-line tool's forms: run against the emulator, ID and the
--     file filled in, [--yes] kept and the other [options] left out;
--   the quickstart ("Try it locally"): make emulator started as written,
--     then its other commands (export, ./bin/..., a lua5.4 line) run as
--     written in one shell, so that the export reaches the rest;
--   or named below as not run here, with the reason.
-- A command that is none of these fails the run: add it to one of them.
--
--   lua5.4 .ci/readme_commands.lua      (from the top of the checkout, as root)

package.path = "./?.lua;./lua/?.lua;" .. package.path

local RUN_HERE = {
  ["make"] = true,
  ["make demo"] = true,
  ["make install"] = true,
  ["make install LUA_VERSION=5.3"] = true,
  ["make install LUA_VERSION=5.1 LUA=luajit LUA_PC=luajit"] = true,
  ["make nginx-install"] = true,
  -- its stdout is not a terminal here, so it stops right after its requests (IDLE=0), and
  -- fails when one of them does
  ["make nginx-demo"] = true,
}
local NOT_HERE = {
  ["make bench"] = "timings: a benchmark, not a check (it runs by hand)",
  ["make bench LUA_VERSION=5.1 LUA=luajit LUA_PC=luajit"] = "timings: make bench on LuaJIT, by hand",
  ["make bench-peers"] = "timings: the module beside Cloudflare's Node SDK, a benchmark run by hand",
  ["make bench-doc"] = "timings: make bench, its tables written into doc/performance.md, by hand",
  -- the same install as make install's: run by .ci/run into a tree of its own, which it also checks
  ["LUAROCKS_CONFIG=rockspec/debian.lua luarocks --lua-version=5.4 make --deps-mode=none "
    .. "rockspec/cloudflare-email-security-0.1.0-1.rockspec"] = ".ci/run runs it with --tree in a throwaway"
    .. " directory, as make install has put the same files in /usr/local",
}

local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

-- The commands of the README's sh blocks: comments cut, continued lines
-- joined, "a  |  b" (the README's "or") split.
local function commands(text)
  local out, in_block, pending = {}, false, nil
  local n = 0
  for line in (text .. "\n"):gmatch("(.-)\n") do
    n = n + 1
    if in_block then
      if line:find("^```") then
        in_block = false
      else
        line = line:gsub("%s+#.*$", "")
        if pending then line, pending = pending .. " " .. line:gsub("^%s+", ""), nil end
        if line:find("\\$") then
          pending = line:gsub("%s*\\$", "")
        elseif line:find("%S") then
          for part in (line .. "  |  "):gmatch("(.-)  |  ") do
            out[#out + 1] = { line = n, text = part:gsub("^%s+", ""):gsub("%s+$", "") }
          end
        end
      end
    elseif line:find("^```sh%s*$") or line:find("^```bash%s*$") or line:find("^```shell%s*$") then
      in_block = true
    end
  end
  return out
end

local function sh(cmd)
  io.stdout:write("$ ", cmd, "\n")
  io.stdout:flush()
  local ok, _, code = os.execute(cmd)
  if type(ok) == "number" then code = ok end
  return ok == true or code == 0, code
end

local readme = read("README.md")
-- .ci/run's make commands as a person would type them
local ci = read(".ci/run"):gsub("make %-%-no%-print%-directory ", "make ")
-- Is the command in .ci/run as a whole command (not a prefix of a longer
-- word: `make tes` is not `make test`), with at most more arguments?
local function runs_in_ci(command)
  local at = 1
  while true do
    local start, stop = ci:find(command, at, true)
    if not start then return false end
    local before, after = ci:sub(start - 1, start - 1), ci:sub(stop + 1, stop + 1)
    if (start == 1 or before:find("[%s;&|(]")) and (after == "" or after:find("[%s;&|)>]")) then return true end
    at = stop + 1
  end
end

-- The quickstart's commands: the emulator, then what a user pastes into
-- a second shell.
local function in_quickstart(text)
  return text == "make emulator" or text:find("^export CLOUDFLARE_")
    or text:find("^%./bin/cloudflare%-email%-security ") or text:find("^LUA_PATH=.* lua5%.4 %-e ")
end

local run_here, in_ci, cli, skipped, unknown, quickstart = {}, {}, {}, {}, {}, {}
for _, c in ipairs(commands(readme)) do
  if in_quickstart(c.text) then quickstart[#quickstart + 1] = c
  elseif RUN_HERE[c.text] then run_here[#run_here + 1] = c
  elseif NOT_HERE[c.text] then skipped[#skipped + 1] = c
  elseif c.text:find("^cloudflare%-email%-security") then cli[#cli + 1] = c
  elseif c.text:find("^make ") and runs_in_ci(c.text) then in_ci[#in_ci + 1] = c
  else unknown[#unknown + 1] = c end
end
for _, c in ipairs(unknown) do
  io.stderr:write(("README.md line %d: `%s` is not run by CI: run it in .ci/readme_commands.lua or .ci/run,"
    .. " or say there why not\n"):format(c.line, c.text))
end
if #unknown > 0 then os.exit(1) end

local failed = 0
for _, c in ipairs(run_here) do
  if not sh(c.text .. " >/dev/null") then
    io.stderr:write(("README.md line %d: `%s` failed\n"):format(c.line, c.text))
    failed = failed + 1
  end
end

-- The quickstart, as a user runs it: `make emulator` in the background (a
-- short idle time, so that it ends by itself whatever happens here), and
-- once it listens, the rest in one shell, as written, in order.
do
  local socket = require("socket")
  local pasted = {}
  local emulator_given = false
  for _, c in ipairs(quickstart) do
    if c.text == "make emulator" then emulator_given = true else pasted[#pasted + 1] = c.text end
  end
  if #quickstart > 0 then
    assert(emulator_given and #pasted > 0, "README.md: the quickstart has no `make emulator`, or nothing after it")
    local function read_log(path)
      local f = io.open(path, "rb")
      local text = f and f:read("*a") or ""
      if f then f:close() end
      return text
    end
    -- something else on the port would answer in its place (and be shut
    -- down below): the quickstart is then not run, and that is a failure
    local taken = socket.connect("127.0.0.1", 8787)
    local log = os.tmpname()
    local up
    if taken then
      taken:close()
    else
      sh("IDLE=20 make emulator > " .. log .. " 2>&1 &")
      -- up: this emulator says it listens (its banner), and the port answers
      for _ = 1, 100 do
        local conn = read_log(log):find("listening on http://127.0.0.1:8787", 1, true)
          and socket.connect("127.0.0.1", 8787)
        if conn then
          conn:close()
          up = true
          break
        end
        socket.sleep(0.1)
      end
    end
    local ok = up and sh("sh -e <<'QUICKSTART'\n" .. table.concat(pasted, "\n") .. "\nQUICKSTART\n")
    if not ok then
      io.stderr:write(("README.md line %d: the quickstart failed%s\n"):format(quickstart[1].line,
        taken and " (127.0.0.1:8787 was taken before make emulator ran)"
        or not up and " (make emulator did not listen on 127.0.0.1:8787)" or ""))
      failed = failed + 1
    end
    -- ours stopped at once, as Ctrl-C would
    local conn = up and socket.connect("127.0.0.1", 8787)
    if conn then
      conn:send("POST /__emulator/shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}")
      conn:receive("*l")
      conn:close()
    end
    os.remove(log)
  end
end

-- The tool's forms, with the tool `make install` put on the PATH, against
-- the emulator.
local emu = require("emulator.process").start({ token = "readme-token" })
local account = "023e105f4ecef8ad9ca31a8372d0c353"
local seeded = emu.seed(account, { { pattern = "seed@example.com", pattern_type = "EMAIL", is_regex = false,
  is_trusted_sender = true, is_exempt_recipient = false, is_acceptable_sender = false, verify_sender = true } },
  "allow_policies")
local env = ("env -u CLOUDFLARE_EMAIL -u CLOUDFLARE_API_KEY CLOUDFLARE_API_TOKEN=%s CLOUDFLARE_ACCOUNT_ID=%s "
  .. "CLOUDFLARE_BASE_URL=%s "):format(emu.token, account, emu.base_url)
-- in the README's order: get and update find the seeded entry, delete
-- removes it, then plan and apply work on what is left
-- A form as commands to run: every [option] left out, then each option
-- (each alternative of [a | b]) on its own; [--yes] always kept (apply has
-- no terminal to ask on here), [ID...] never expanded.
local function variants(form)
  local base = form:gsub("%[%-%-yes%]", "--yes"):gsub("%s*%.%.%.$", "")
  local out = { (base:gsub("%s*%[[^%]]*%]", "")) }
  for group in base:gmatch("%[([^%]]*)%]") do
    if not group:find("...", 1, true) then
      for alternative in (group .. " | "):gmatch("%s*(.-)%s+|%s") do
        local one = base:gsub("%[" .. group:gsub("%p", "%%%0") .. "%]", alternative, 1):gsub("%s*%[[^%]]*%]", "")
        out[#out + 1] = one
      end
    end
  end
  return out
end

-- the folder commands' files, in a scratch folder: settings/ (export
-- writes it), plan.json (plan --out), customers.txt (the account above)
local scratch = os.tmpname()
os.remove(scratch)
assert(os.execute("mkdir -p " .. scratch))
do
  local f = assert(io.open(scratch .. "/customers.txt", "wb"))
  f:write("# the emulator's account\n" .. account .. "  Readme Ltd\n")
  f:close()
end
local function in_scratch(cmd)
  return (cmd:gsub(" settings/", " " .. scratch .. "/settings/"):gsub(" plan%.json", " " .. scratch .. "/plan.json")
    :gsub(" customers%.txt", " " .. scratch .. "/customers.txt"))
end

local forms = 0
for _, c in ipairs(cli) do
  for _, variant in ipairs(variants(c.text)) do
    forms = forms + 1
    local cmd = in_scratch(variant:gsub(" ID", " " .. seeded[1].id):gsub("partners%.csv", "examples/partners.csv"))
    -- plan exits 2 when it finds changes
    local ok, code = sh(env .. cmd .. " >/dev/null")
    if not ok and not (cmd:find(" plan ") and code == 2) then
      io.stderr:write(("README.md line %d: `%s` failed (exit %s)\n"):format(c.line, cmd, tostring(code)))
      failed = failed + 1
    end
  end
end
emu.stop()
os.execute("rm -rf " .. scratch)

print(("README commands: %d run here, %d of the quickstart, %d forms of the tool run (%d commands), %d run by"
  .. " .ci/run, %d not run here (%s); %d failed"):format(#run_here, #quickstart, #cli, forms, #in_ci, #skipped,
  (function()
    local why = {}
    for _, c in ipairs(skipped) do why[#why + 1] = c.text .. ": " .. NOT_HERE[c.text] end
    return table.concat(why, "; ")
  end)(), failed))
os.exit(failed == 0 and 0 or 1)

-- The server and its scheduler: one listening socket on 127.0.0.1, one
-- coroutine per connection, and a select() loop that resumes each one when
-- its socket is ready or its pause is over, so that a delayed answer on
-- one connection never holds up another. Each request goes to the control
-- routes (control.lua) or, after the standing latency (latency.lua) and
-- through the faults that match it (faults.lua), to the API (api.lua),
-- counted while it is in flight (in_flight.lua). It stops on
-- /__emulator/shutdown, after --idle-exit seconds without traffic, or
-- when the --parent process is gone.

local socket = require("socket")
local http = require("emulator.http")
local log = require("emulator.log")
local store = require("emulator.store")
local faults = require("emulator.faults")
local answers = require("emulator.answers")
local api = require("emulator.api")
local control = require("emulator.control")
local latency = require("emulator.latency")
local in_flight = require("emulator.in_flight")

local server = {}

local running = true

-- The listening socket, closed for a while by the refuse_ms fault; the
-- scheduler opens it again on the same port.
local listener
local listen_again_at

local function pause_listening(ms)
  if listener then
    listener:close()
    listener = nil
  end
  listen_again_at = socket.gettime() + ms / 1000
end

local function redact(headers)
  local copy = {}
  for k, v in pairs(headers) do
    copy[k] = (k == "authorization" or k == "x-auth-key") and "<redacted>" or v
  end
  return copy
end

-- One API request, start to end; false when the connection must close.
-- served: how many requests this connection answered before this one.
local function serve_api(sock, conn_id, req, path, query, served)
  -- logged before it waits or any fault acts, so a spec sees every request that arrived
  store.remember({ method = req.method, path = path, query = query, headers = redact(req.headers),
                   auth = (api.authenticate(req.headers)), body = req.body, connection = conn_id,
                   at = socket.gettime() })
  -- faults go to requests in the order they arrived, whatever their latency
  local fault = faults.take(req.method, path, served > 0)
  latency.wait(req.method)
  local ctx = {}
  faults.run("before", fault, ctx)
  if ctx.refuse_ms then pause_listening(ctx.refuse_ms) end
  if ctx.drop then
    if fault.reset then sock:setoption("linger", { on = true, timeout = 0 }) end
    return false
  end
  if not ctx.answer then
    ctx.answer = api.answer(req.method, path, query, req.headers, req.body)
    faults.run("after", fault, ctx)
  end
  local reply = http.reply(ctx.answer)
  reply.keep = req.keep
  faults.run("shape", fault, reply)
  return http.write(sock, reply)
end

-- One request, start to end; false when the connection must close.
local function serve_request(sock, conn_id, req, served)
  local path, query = req.target:match("^([^?#]*)%??([^#]*)")
  local control_name = path:match("^/__emulator/([%w_]+)$")
  if control_name then
    local answer = control.answer(req.method, control_name, query, req.body)
    local reply = http.reply(answer)
    reply.keep = req.keep
    local keep = http.write(sock, reply)
    if answer.stop then running = false end
    return keep
  end
  -- in flight until its reply is written or its connection dropped, even
  -- when serving it fails
  in_flight.enter()
  local ok, keep = pcall(serve_api, sock, conn_id, req, path, query, served)
  in_flight.leave()
  if not ok then error(keep, 0) end
  return keep
end

-- A request the server cannot read: answered, then the connection closes.
local function refuse(sock, status, message)
  local reply = http.reply(answers.error(status, status, message))
  reply.keep = false
  http.write(sock, reply)
  -- unread bytes at close() would make the kernel send a reset, which can
  -- destroy the answer before the client reads it: take what has arrived
  sock:shutdown("send")
  for _ = 1, 64 do
    local data, _, partial = sock:receive(8192)
    if not data and (partial or "") == "" then break end
  end
  return false
end

local function serve_connection(sock, conn_id)
  local reader = http.reader(sock)
  local served = 0
  while running do
    local req, status, message = http.read_request(reader)
    if req == false then return end
    if not req then return refuse(sock, status, message) end
    if not serve_request(sock, conn_id, req, served) then return end
    served = served + 1
  end
end

-- --parent: the process that started it (a REPL, a spec run). However
-- that one ends (os.exit, Ctrl-C, a crash), the emulator goes with it.
-- Linux's /proc tells; where there is none, only --idle-exit applies.
local function parent_gone(parent)
  if not parent then return false end
  local f = io.open("/proc/" .. string.format("%d", parent) .. "/stat", "r")
  if not f then
    local self = io.open("/proc/self/stat", "r")
    if self then self:close() end
    return self ~= nil
  end
  local stat = f:read("*l") or ""
  f:close()
  -- "pid (name) S ...": a zombie (Z) has ended, its parent has not yet reaped it
  -- the name may itself hold ") ": the state follows the last one
  return stat:match(".*%) (%a)") == "Z"
end

--- Listens as opts say (host, port, port_file, banner, idle_exit, parent)
--- and serves until it stops; nil and the reason when it cannot listen.
function server.run(opts)
  local bind_err
  listener, bind_err = socket.bind(opts.host, opts.port, 128)
  if not listener then return nil, ("cannot listen on %s:%d: %s"):format(opts.host, opts.port, tostring(bind_err)) end
  listener:settimeout(0)
  local _, port = listener:getsockname()
  if opts.port_file then
    -- written whole and renamed, so a reader never sees half a number
    local tmp = opts.port_file .. ".tmp"
    local f = assert(io.open(tmp, "w"))
    f:write(port, "\n")
    f:close()
    assert(os.rename(tmp, opts.port_file))
  end
  io.stdout:write("listening on http://127.0.0.1:", port, "\n")
  -- --banner (make emulator): what a person needs to point a client at it
  if opts.banner then
    io.stdout:write(("  base_url = \"http://127.0.0.1:%d/client/v4\", api_token = \"%s\",\n"
      .. "  account_id = any 1 to 32 of [A-Za-z0-9_-], e.g. \"023e105f4ecef8ad9ca31a8372d0c353\"\n"
      .. "  stops by itself after %s idle seconds (Ctrl-C stops it now); PORT=N picks the port,\n"
      .. "  IDLE=S the idle seconds; DELETE /__emulator/faults clears pending faults, POST\n"
      .. "  /__emulator/reset everything. For the tool and es.new(), paste into a shell:\n"
      .. "export CLOUDFLARE_BASE_URL=http://127.0.0.1:%d/client/v4 CLOUDFLARE_API_TOKEN=%s"
      .. " CLOUDFLARE_ACCOUNT_ID=023e105f4ecef8ad9ca31a8372d0c353\n")
      :format(port, opts.token, tostring(opts.idle_exit), port, opts.token))
  end
  io.stdout:flush()

  local next_parent_check = 0
  local tasks = {}           -- { id, sock, co, wait = "read"|"write"|"sleep", wake }
  local connections = 0
  local last_activity = socket.gettime()

  local function step(task)
    local ok, wait, what = coroutine.resume(task.co)
    if not ok then log.say("connection %d: scheduler error: %s", task.id, tostring(wait)) end
    if not ok or coroutine.status(task.co) == "dead" then
      task.sock:close()
      task.done = true
      return
    end
    task.wait, task.wake = wait, wait == "sleep" and what or nil
  end

  local function accept_all()
    -- a request served below may close the listener (refuse_ms)
    while listener do
      local client = listener:accept()
      if not client then return end
      client:settimeout(0)
      client:setoption("tcp-nodelay", true)
      connections = connections + 1
      local id = connections
      local task = { id = id, sock = client }
      task.co = coroutine.create(function()
        -- a peer that vanishes mid-way, or a bug here, ends this connection only
        local ok, err = pcall(serve_connection, client, id)
        if not ok then log.say("connection %d failed: %s", id, tostring(err)) end
      end)
      log.say("connection %d opened", id)
      tasks[#tasks + 1] = task
      step(task)
    end
  end

  while running do
    local now = socket.gettime()
    if not listener and now >= listen_again_at then
      listener = socket.bind(opts.host, port, 128)
      if listener then listener:settimeout(0) else listen_again_at = now + 0.05 end
    end
    local readers, writers = { listener }, {}
    local timeout = listener and 1 or math.max(0, math.min(1, listen_again_at - now))
    for _, t in ipairs(tasks) do
      if t.wait == "read" then readers[#readers + 1] = t.sock
      elseif t.wait == "write" then writers[#writers + 1] = t.sock
      elseif t.wait == "sleep" then timeout = math.max(0, math.min(timeout, t.wake - now)) end
    end
    local readable, writable = socket.select(readers, writers, timeout)
    now = socket.gettime()
    if #readable > 0 or #writable > 0 then last_activity = now end

    if listener and readable[listener] then accept_all() end
    for _, t in ipairs(tasks) do
      if not t.done and ((t.wait == "read" and readable[t.sock]) or (t.wait == "write" and writable[t.sock])
                         or (t.wait == "sleep" and now >= t.wake)) then
        last_activity = now
        step(t)
      end
    end
    local alive = {}
    for _, t in ipairs(tasks) do
      if not t.done then alive[#alive + 1] = t end
    end
    tasks = alive
    if now >= next_parent_check then
      next_parent_check = now + 0.5
      if parent_gone(opts.parent) then
        log.say("the process that started it is gone: exiting")
        running = false
      end
    end
    if now - last_activity > opts.idle_exit then
      log.say("idle for %s s: exiting", tostring(opts.idle_exit))
      if opts.banner then io.stdout:write("stopped: idle for ", tostring(opts.idle_exit), " s\n") end
      running = false
    end
  end

  for _, t in ipairs(tasks) do t.sock:close() end
  if listener then listener:close() end
  log.say("stopped")
  return true
end

return server

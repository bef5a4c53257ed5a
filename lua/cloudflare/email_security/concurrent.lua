-- Calls in flight at once: each piece of work (a page to fetch, a change to
-- send, a function of the caller's) runs as a task, a coroutine whose
-- calls on the client are not sent where they are made but handed here
-- (scheduler.call yields the request), sent with the others' by the
-- scheduler, up to the client's `concurrency` in flight, and answered by
-- resuming the task. So every call keeps its own checks, retries and
-- errors, exactly as when made alone.
--
--   concurrent.spawn(state, on_end, fn, ...) -> task   starts fn(...) as a task
--   concurrent.spawn_later(state, fn, ...) -> task     one whose answers are
--                                                      read when it is joined
--   concurrent.join(state, task) -> fn's results  waits for it
--   concurrent.map(state, n, fn, stop) -> results, started
--       fn(i) for i = 1..n, `concurrency` at a time; results[i]: what
--       fn(i) returned, packed (n = its count). stop(i, ...) (optional),
--       given each result, says to start nothing more; what is in flight
--       then finishes. started: how many were started.

local scheduler = require("cloudflare.email_security.scheduler")

local unpack = table.unpack or rawget(_G, "unpack")
local create, resume, status = coroutine.create, coroutine.resume, coroutine.status

local concurrent = {}

local function pack(...)
  return { n = select("#", ...), ... }
end

-- The tasks of a client, by coroutine: scheduler.call asks whether the
-- code calling it runs in one.
local function tasks_of(state)
  local tasks = state.tasks
  if not tasks then
    tasks = setmetatable({}, { __mode = "k" })
    state.tasks = tasks
  end
  return tasks
end

-- Runs the task on from where it waits (args: the answer it waits for);
-- it either waits for another request, or ends.
local function continue(state, task, ...)
  local out = pack(resume(task.co, ...))
  if out[1] and status(task.co) == "suspended" then
    local req = out[2]
    if type(req) ~= "table" or req.on_done ~= nil or type(req[1]) ~= "string" then
      out = { false, "a function run by cloudflare.email_security's concurrently yielded: it may make calls on"
        .. " the client, but not yield itself", n = 2 }
    else
      req.later = task.later
      task.waiting = req
      return scheduler.submit(state, req, function(result, err, envelope)
        task.waiting = nil
        if task.cancelled then return end
        return continue(state, task, result, err, envelope)
      end)
    end
  end
  state.tasks[task.co] = nil
  task.done = true
  if out[1] then
    task.results = pack(unpack(out, 2, out.n))
  else
    -- where the error was raised, in the task's own stack
    task.raised = debug.traceback(task.co, tostring(out[2]))
  end
  if task.on_end then task.on_end(task) end
end

-- Runs fn(...) as the task `task` (a table: its fields are added).
local function launch(state, task, fn, ...)
  task.co = create(fn)
  tasks_of(state)[task.co] = true
  continue(state, task, ...)
  return task
end

--- Starts fn(...) as a task, now: it runs until its first call. on_end
--- (optional) is called with the task when it ends.
function concurrent.spawn(state, on_end, fn, ...)
  return launch(state, { on_end = on_end }, fn, ...)
end

--- The same, for work whose answers are read when it is joined, in the
--- order of the joins (a listing's pages ahead): see scheduler.submit. Its
--- request starts now, as far as the limit and the pacer allow.
function concurrent.spawn_later(state, fn, ...)
  local task = launch(state, { later = true }, fn, ...)
  scheduler.send(state)
  return task
end

--- The task's work is not needed any more: what it waits for is not sent
--- if it has not started, and its answer, if it comes, is let go by the
--- next step; the task never ends. Only marks: it may run in a finalizer.
function concurrent.cancel(task)
  local req = task.waiting
  if not req or task.done then return end
  task.cancelled = true
  scheduler.cancel(req)
end

--- What cancel marked is let go at once: a request the transport still
--- holds back never goes out. Not from a finalizer (cancel is for those).
function concurrent.let_go(state)
  scheduler.let_go(state)
end

--- Waits for the task to end; its results, or raises what it raised.
function concurrent.join(state, task)
  while not task.done do
    local req = task.waiting
    if req and req.arrived then scheduler.take(state, req) else scheduler.step(state) end
  end
  if task.raised then error(task.raised, 0) end
  return unpack(task.results, 1, task.results.n)
end

function concurrent.map(state, n, fn, stop)
  local tasks, live, started, stopped = {}, 0, 0, false
  local limit = state.config.concurrency
  local function ended(task)
    live = live - 1
    if not stopped and (task.raised or (stop and stop(task.index, unpack(task.results, 1, task.results.n)))) then
      stopped = true
    end
  end
  while true do
    while not stopped and live < limit and started < n do
      started = started + 1
      live = live + 1
      -- the index is set before the task runs: it may end at once
      tasks[started] = launch(state, { index = started, on_end = ended }, fn, started)
    end
    if live == 0 then break end
    scheduler.step(state)
  end
  local results = {}
  for i = 1, started do
    if tasks[i].raised then error(tasks[i].raised, 0) end
    results[i] = tasks[i].results
  end
  return results, started
end

return concurrent

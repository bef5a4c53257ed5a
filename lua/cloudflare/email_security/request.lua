-- One request: what is sent, and what each answer means for it. No I/O and
-- no sleep here: the request loop (scheduler.lua) sends, waits and sleeps.
--
--   request.new(method, path, query, body, opts, gone_id) -> req
--     A list, its fields at the places named below: METHOD, PATH (no base URL), QUERY ("" or "?a=b"),
--     BODY (a JSON string or nil), ONCE (sent at most once: a create, a
--     batch with posts), COMPRESSED (ask for a gzip answer), OPTS (the op's
--     options: permissions, what the token needs, for a 401 or 403 to say),
--     GONE_ID (the id a DELETE removes), ATTEMPT (tries sent so far), ACTED
--     (an earlier try may have acted).
--   request.outcome(req, result, err, envelope, cfg) -> verdict, ...
--     DONE, result, err, envelope: the call's answer (err made final: its
--       attempts, may_exist, and the rest);
--     AGAIN, seconds: send it again after that long;
--     GONE, result: a DELETE's 404 after a try that may have acted: that
--       try did the work, and result is { id = gone_id }.

local errors = require("cloudflare.email_security.errors")
local retry = require("cloudflare.email_security.retry")

local request = {}

-- where each field of a request is
request.METHOD, request.PATH, request.QUERY, request.BODY, request.ONCE, request.COMPRESSED, request.OPTS,
  request.GONE_ID, request.ATTEMPT, request.ACTED = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
local METHOD, PATH, ONCE, OPTS, GONE_ID, ATTEMPT, ACTED = request.METHOD, request.PATH, request.ONCE, request.OPTS,
  request.GONE_ID, request.ATTEMPT, request.ACTED

request.DONE, request.AGAIN, request.GONE = "done", "again", "gone"
local DONE, AGAIN, GONE = request.DONE, request.AGAIN, request.GONE

-- Cloudflare's codes for a 404 that names no entry: the route or the
-- account is unknown.
local ROUTE_NOT_FOUND = { [7000] = true, [7003] = true }

--- Whether err says the entry is not there (a 404 for the entry itself,
--- not for an unknown route or account).
function request.is_gone(err)
  return err.status == 404 and not ROUTE_NOT_FOUND[err.code]
end
local is_gone = request.is_gone

--- opts (or nil): once, compressed, permissions, as resource.lua makes them
--- once per op; gone_id: the id a DELETE removes (an argument of its own,
--- so that the options of an op are made once).
function request.new(method, path, query, body, opts, gone_id)
  if not opts then return { method, path, query, body, nil, nil, nil, gone_id, 0, false } end
  return { method, path, query, body, opts.once, opts.compressed, opts, gone_id, 0, false }
end

--- cfg: the client's configuration (max_retries, max_retry_wait,
--- credential_source).
function request.outcome(req, result, err, envelope, cfg)
  if not err then return DONE, result, nil, envelope end
  local once, acted, attempt, gone_id = req[ONCE], req[ACTED], req[ATTEMPT], req[GONE_ID]
  -- an earlier try may have deleted it: that try did the work. Not a 404
  -- for the path itself (no such route or account): that one never acted.
  if acted and gone_id and is_gone(err) then
    return GONE, { id = gone_id }
  end
  local delay, asked
  if attempt <= cfg.max_retries and retry.retryable(once, err, acted) then
    delay, asked = retry.delay(err, attempt, cfg.max_retry_wait, os.time(), math.random)
  end
  if delay then
    req[ACTED] = acted or retry.may_have_acted(err)
    return AGAIN, delay
  end
  err.attempts = attempt
  -- the API asked for a longer wait than max_retry_wait: not retried,
  -- and the error says when it may be
  err.retry_after = asked
  -- what a person needs to act on it: a create that may have happened,
  -- the credential in use (its source, never its value) and what the
  -- call needs
  if once and (acted or retry.may_have_acted(err)) then err.may_exist = true end
  -- an earlier try of this call may have done its work, whatever this
  -- last one says: a report of what was done must not count it undone
  err.acted_before = acted or nil
  if err.status == 401 or err.status == 403 then
    err.credential = cfg.credential_source
    err.permissions = req[OPTS] and req[OPTS].permissions
  end
  return DONE, nil, errors.wrap(err, req[METHOD], req[PATH]), envelope
end

return request

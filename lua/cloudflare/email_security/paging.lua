-- Walks every page of a list, one entry at a time, by page number: the
-- pages are counted here, from the one asked for, never taken from the
-- answers. The walk ends only where the answers agree that the listing is
-- whole: an empty page or one short of per_page (and then total_count, when
-- given, reached), or a full page that reaches total_count. Where the
-- answers contradict the request or each other, it fails with an http
-- error that says how, since a listing cut short must never pass for the
-- whole of it (plan would create again what exists, and could not delete
-- what it never saw): a page number other than the one asked for, a
-- per_page other than the one asked for, a page holding the entries of one
-- already walked (a server that ignores `page`), more entries on a page
-- than per_page, and a total_count the pages do not bear out. A
-- total_count that changes between pages, or an entry of one page shown
-- again on the next, says that entries came or went during the walk:
-- err.listing_moved = true, for a caller that would list again.
--
-- Pages ahead: once the first page says how many there are (total_count,
-- with no filter), the pages after it are fetched `window` at a time
-- (prefetch: the client's concurrency, concurrent.lua's tasks) while the
-- walk goes on in page order, every check above made as each page's turn
-- comes; at most `window` pages wait to be walked.
--
-- The OpenAPI file describes total_count as the count "without any search
-- parameters": with a filter given, a total_count above what the pages
-- hold is no contradiction, and a short or empty page ends the walk.

local errors = require("cloudflare.email_security.errors")
local snapshot = require("cloudflare.email_security.snapshot")

local ceil, floor, min, next, tonumber, tostring, type = math.ceil, math.floor, math.min, next, tonumber, tostring,
  type

local DEFAULT_PER_PAGE = 20     -- the API's default, when neither side says

-- The list parameters that choose no entries; any other is a filter.
local NOT_FILTERS = { page = true, per_page = true, order = true, direction = true }

-- An entry's id as a key, or nil when it has none to go by.
local function id_of(entry)
  local id = type(entry) == "table" and entry.id
  if type(id) == "string" or type(id) == "number" then return id end
end

-- An entry without an id as text: its fields in name order, one level
-- deep (enough to tell pages apart; nested tables count by their size).
local function entry_text(e)
  if type(e) ~= "table" then return tostring(e) end
  local names = {}
  for k in next, e do names[#names + 1] = tostring(k) end
  table.sort(names)
  for i, k in ipairs(names) do
    local v = e[k]
    names[i] = k .. "=" .. (type(v) == "table" and ("#" .. #v) or tostring(v))
  end
  return table.concat(names, "\0")
end

-- Identifies a page by what it holds, for servers that send the same page
-- again whatever `page` asks for: by the ids of its first and last
-- entries, or by their fields where they have none (else such a server,
-- with no result_info, would make the walk endless).
local function fingerprint(items)
  local first, last = id_of(items[1]), id_of(items[#items])
  if first == nil or last == nil then
    return #items .. ":" .. entry_text(items[1]) .. "\1" .. entry_text(items[#items])
  end
  return #items .. ":" .. tostring(first) .. ":" .. tostring(last)
end

-- A count the answer gives (per_page, total_count), or nil when it gives
-- none that is one.
local function count_of(v)
  v = tonumber(v)
  if v and v >= 0 and floor(v) == v then return v end
end

--- list(params) -> result, err, envelope; params: the caller's list
--- parameters, read once, raw (snapshot), and never changed; method and
--- path (optional): the request, for the errors the walk makes; prefetch
--- (optional): { window = n, start = function(params) -> handle,
--- finish = function(handle) -> what list(params) returns, cancel =
--- function(handle), let_go = function() (optional: what cancel marked is
--- let go now, where the walk is not given up by a finalizer) }, to fetch
--- pages ahead; by_page (optional): the iterator gives each page's
--- entries as one list (never empty), not an entry at a time. Returns a for-in iterator
--- (and, with prefetch, the value that closes the walk: see give_up).
return function(list, params, method, path, prefetch, by_page)
  local query = snapshot(params)
  local filtered = false
  for name in next, query do filtered = filtered or not NOT_FILTERS[name] end
  local page = query.page or 1
  local asked = query.per_page
  local items, index = nil, 0
  local finished = false
  local walked = 0               -- entries handed out so far
  local per_page, total, first_page
  local seen_contents = {}       -- fingerprint -> the page that held it
  local previous_last            -- the id of the last entry walked
  local ahead, started_up_to = {}, 0  -- page -> its fetch, started ahead

  -- Starts the pages up to `window` after the page walked (`from`), and
  -- not past the last one total_count makes: the walk holds that page and
  -- at most `window` after it. Called once the first page has said how
  -- many, then as the walk asks for each page, before its answer is
  -- awaited (the one before it is let go by then).
  local function fetch_ahead(from)
    if not (prefetch and total and not filtered) then return end
    local last = min(ceil(total / per_page), from + prefetch.window)
    for k = (started_up_to > from and started_up_to or from) + 1, last do
      local q = {}
      for name, v in next, query do q[name] = v end
      q.page = k
      ahead[k] = prefetch.start(q)
      started_up_to = k
    end
  end

  local function contradiction(message, moved)
    local err = errors.new("http", ("%s (%d entries were walked before it: the listing is not whole)")
      :format(message, walked), { listing_moved = moved or nil })
    if method and path then errors.wrap(err, method, path) end
    return err
  end

  -- The page size the walk counts by, from the first answer: the one
  -- asked for, which the answer may only repeat; the answer's own when
  -- none was asked for.
  local function page_size(info)
    local says = info.per_page
    if asked ~= nil then
      if says ~= nil and tonumber(says) ~= asked then
        return nil, contradiction(("asked for per_page %s, the answer says per_page %s")
          :format(tostring(asked), tostring(says)))
      end
      return asked
    end
    if says == nil then return per_page or DEFAULT_PER_PAGE end
    local n = count_of(says)
    if not n or n < 1 or (per_page and n ~= per_page) then
      return nil, contradiction(("page %s says per_page %s, %s"):format(tostring(page), tostring(says),
        per_page and ("where the pages before said " .. per_page) or "which is no page size"))
    end
    return n
  end

  local function fetch()
    fetch_ahead(page)
    query.page = page
    local result, err, envelope
    local handle = ahead[page]
    if handle then
      ahead[page] = nil
      result, err, envelope = prefetch.finish(handle)
    else
      result, err, envelope = list(query)
    end
    if not result then return err end
    local info = type(envelope) == "table" and type(envelope.result_info) == "table"
      and envelope.result_info or {}
    if info.page ~= nil and tonumber(info.page) ~= tonumber(page) then
      return contradiction(("asked for page %s, the answer says page %s"):format(tostring(page), tostring(info.page)))
    end
    per_page, err = page_size(info)
    if not per_page then return err end
    local n = #result
    if n > per_page then
      return contradiction(("page %s holds %d entries, more than per_page %d"):format(tostring(page), n, per_page))
    end

    -- first what says the listing moved: a page repeated because entries
    -- were made ahead of the walk is a moving listing, not a server that
    -- ignores `page`
    local says_total = count_of(info.total_count)
    if says_total and total and says_total ~= total then
      return contradiction(("page %s said total_count %d, page %s says %d: entries came or went during the walk")
        :format(tostring(first_page), total, tostring(page), says_total), true)
    end
    local content = n > 0 and fingerprint(result)
    if content and seen_contents[content] then
      return contradiction(("page %s holds the entries of page %s: the server does not page")
        :format(tostring(page), tostring(seen_contents[content])))
    end
    -- an entry made ahead of the walk's place pushes the last ones of a
    -- page onto the next: the last entry walked shows again. (One id, not
    -- the page's: the walk holds no more than one page.)
    if previous_last ~= nil then
      for i = 1, n do
        -- (id_of, inlined: previous_last is a string or a number)
        local e = result[i]
        if type(e) == "table" and e.id == previous_last then
          return contradiction(("entry %s is on page %s and on page %s: entries came or went during the walk")
            :format(tostring(previous_last), tostring(page - 1), tostring(page)), true)
        end
      end
    end

    if says_total and not total then total, first_page = says_total, page end
    -- the place of this page's entries in the whole listing
    local before = (page - 1) * per_page
    if total and n > 0 and before + n > total then
      return contradiction(("page %s holds entries %d to %d, past total_count %d")
        :format(tostring(page), before + 1, before + n, total))
    end
    if n < per_page and total and before + n < total and not filtered then
      return contradiction(("page %s holds %d entries of per_page %d, but total_count %d says %d more")
        :format(tostring(page), n, per_page, total, total - before - n))
    end

    if content then seen_contents[content] = page end
    previous_last = n > 0 and id_of(result[n]) or nil
    items, index = result, 0
    walked = walked + n
    -- an empty or short page is the last; a full one is, when it reaches
    -- total_count
    if n < per_page or (total and before + n >= total) then finished = true end
    if not finished then fetch_ahead(page) end
    page = page + 1
  end

  -- The pages ahead are given up when the walk is: nothing more of them is
  -- sent, and the answers that come are let go. Marks only (it may run in
  -- a finalizer).
  local function give_up()
    for k, handle in next, ahead do
      ahead[k] = nil
      prefetch.cancel(handle)
    end
  end

  -- Given up where the walk's own code runs (not a finalizer): what was
  -- marked is let go at once.
  local function give_up_now()
    give_up()
    if prefetch.let_go then prefetch.let_go() end
  end

  -- The generic for's fourth value: Lua 5.4 closes it when the loop ends,
  -- by break or error too; elsewhere the collector's finalizer does, later
  -- (LuaJIT and 5.1 finalize no table, but a newproxy).
  local closer
  if prefetch then
    local newproxy = rawget(_G, "newproxy")
    if _VERSION == "Lua 5.1" and newproxy then
      closer = newproxy(true)
      getmetatable(closer).__gc = give_up
    else
      closer = setmetatable({}, { __close = give_up_now, __gc = give_up })
    end
  end

  return function()
    while true do
      if items and index < #items then
        if by_page then
          index = #items
          return items
        end
        index = index + 1
        return items[index]
      end
      -- the page walked is let go before the next one arrives, so that a
      -- walk holds one page at a time (peak memory, make bench)
      items = nil
      -- (the closer lives as long as the iterator does: a walk called by
      -- hand, without a for, keeps its pages ahead while it is held)
      if finished then
        closer = nil
        return nil
      end
      local err = fetch()
      if err then
        finished, items = true, nil
        -- the pages ahead will not be walked
        if prefetch then give_up_now() end
        -- false, not nil: a generic for ends on nil before its body could
        -- see the error
        return false, err
      end
    end
  end, nil, nil, closer
end

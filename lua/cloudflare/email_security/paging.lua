-- Walks every page of a list, one entry at a time. Page-number paging with
-- no total_pages, so it stops on whichever comes first: an empty or short
-- page, page * per_page reaching total_count, or a page it has already seen
-- (a server that ignores `page` must not make it loop forever). The pages
-- are counted here, from the one asked for; what the answer says of its
-- page and per_page is believed only where it cannot make the walk endless.

local snapshot = require("cloudflare.email_security.snapshot")

local DEFAULT_PER_PAGE = 20     -- the API's default, when neither side says

-- Identifies a page by what it holds, for servers that echo no page number.
local function fingerprint(items)
  local first, last = items[1], items[#items]
  return #items .. ":" .. tostring(type(first) == "table" and first.id)
    .. ":" .. tostring(type(last) == "table" and last.id)
end

--- list(params) -> result, err, envelope; params: the caller's list
--- parameters, read once, raw (snapshot), and never changed. Returns a
--- for-in iterator.
return function(list, params)
  local query = snapshot(params)
  local page = query.page or 1
  local asked = query.per_page or DEFAULT_PER_PAGE
  local items, index = nil, 0
  local finished = false
  local seen_pages, seen_contents = {}, {}

  local function fetch()
    query.page = page
    local result, err, envelope = list(query)
    if not result then return err end
    local info = type(envelope) == "table" and type(envelope.result_info) == "table"
      and envelope.result_info or {}
    -- the page number the server says it sent, to notice one that ignores
    -- `page` and sends the same page again
    local number = tonumber(info.page) or page
    local content = fingerprint(result)
    if #result == 0 or seen_pages[number] or seen_contents[content] then
      finished = true
      return
    end
    seen_pages[number], seen_contents[content] = true, true
    items, index = result, 0

    -- a per_page that is absent, not positive or larger than asked would
    -- make no page count as short: the one asked for is used instead
    local per_page = tonumber(info.per_page)
    if not per_page or per_page < 1 or per_page > asked then per_page = asked end
    local total = tonumber(info.total_count)
    if #result < per_page or (total and page * per_page >= total) then
      finished = true
    end
    page = page + 1
  end

  return function()
    while true do
      if items and index < #items then
        index = index + 1
        return items[index]
      end
      -- the page walked is let go before the next one arrives, so that a
      -- walk holds one page at a time (peak memory, make bench)
      items = nil
      if finished then return nil end
      local err = fetch()
      if err then
        finished, items = true, nil
        -- false, not nil: a generic for ends on nil before its body could
        -- see the error
        return false, err
      end
    end
  end
end

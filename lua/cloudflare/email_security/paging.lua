-- Walks every page of a list, one entry at a time. Page-number paging with
-- no total_pages, so it stops on whichever comes first: a short or empty
-- page, page * per_page reaching total_count, or a page it has already seen
-- (a server that ignores `page` must not make it loop forever).

local DEFAULT_PER_PAGE = 20     -- the API's default, when neither side says

-- Identifies a page by what it holds, for servers that echo no page number.
local function fingerprint(items)
  local first, last = items[1], items[#items]
  return #items .. ":" .. tostring(type(first) == "table" and first.id)
    .. ":" .. tostring(type(last) == "table" and last.id)
end

--- list(params) -> result, err, envelope; params: the caller's list
--- parameters (copied, not changed). Returns a for-in iterator.
return function(list, params)
  local query = {}
  for k, v in pairs(params) do query[k] = v end
  local page = query.page or 1
  local items, index = nil, 0
  local finished = false
  local seen_pages, seen_contents = {}, {}

  local function fetch()
    query.page = page
    local result, err, envelope = list(query)
    if not result then return err end
    local info = type(envelope) == "table" and type(envelope.result_info) == "table"
      and envelope.result_info or {}
    local number = tonumber(info.page) or page
    local content = fingerprint(result)
    if seen_pages[number] or (#result > 0 and seen_contents[content]) then
      finished = true
      return
    end
    seen_pages[number], seen_contents[content] = true, true
    items, index = result, 0

    local per_page = tonumber(info.per_page) or query.per_page or DEFAULT_PER_PAGE
    local total = tonumber(info.total_count)
    if #result < per_page or (total and number * per_page >= total) then
      finished = true
    end
    page = number + 1
  end

  return function()
    while true do
      if items and index < #items then
        index = index + 1
        return items[index]
      end
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

local paging = require("cloudflare.email_security.paging")

-- A list function over `n` fake entries, page-number paged like the API.
-- opts: fail_on (a page that fails), stuck_page (the page always sent),
-- echo_page (the page number always said), no_page (no page number said),
-- no_total, total (page -> the total_count said), says_per_page, serves
-- (the per_page the server pages by, whatever was asked), empty_from (the
-- first page sent empty), extra (page -> entries appended to it), shift
-- (page -> how far its entries are moved along the listing).
local function fake_list(n, opts)
  opts = opts or {}
  local calls = {}
  local function list(query)
    calls[#calls + 1] = query.page
    if opts.fail_on == query.page then return nil, { kind = "http", message = "boom" } end
    -- a test server that pages forever must still end the spec
    if #calls > 50 then return nil, { kind = "http", message = "the walk never ended" } end
    local per_page = opts.serves or query.per_page or 20
    local page = opts.stuck_page or query.page
    local items = {}
    local shift = opts.shift and opts.shift[page] or 0
    if not (opts.empty_from and page >= opts.empty_from) then
      for i = (page - 1) * per_page + 1 + shift, math.min(page * per_page + shift, n) do
        items[#items + 1] = { id = "e" .. i }
      end
    end
    for _, id in ipairs(opts.extra and opts.extra[page] or {}) do items[#items + 1] = { id = id } end
    local info = { page = opts.echo_page or page, per_page = per_page, count = #items,
                   total_count = not opts.no_total and n or nil }
    if opts.no_page then info.page = nil end
    if opts.total then info.total_count = opts.total(page) end
    if opts.says_per_page == "absent" then info.per_page = nil
    elseif opts.says_per_page then info.per_page = opts.says_per_page end
    return items, nil, { success = true, result = items, result_info = info }
  end
  return list, calls
end

local function collect(list, params)
  local got, errs = {}, {}
  for entry, err in paging(list, params) do
    if entry then got[#got + 1] = entry.id else errs[#errs + 1] = err end
  end
  return got, errs
end

describe("paging", function()
  it("lets go of a page it has walked before the next one arrives (one page in memory at a time)", function()
    local pages = setmetatable({}, { __mode = "v" })
    local held_while_fetching = {}
    local function list(query)
      -- what is still reachable of the pages walked so far, as this one is asked for
      collectgarbage()
      collectgarbage()
      local held = 0
      for _ in pairs(pages) do held = held + 1 end
      held_while_fetching[#held_while_fetching + 1] = held
      local items = {}
      for i = 1, 10 do items[i] = { id = ("p%d-%d"):format(query.page, i) } end
      pages[query.page] = items
      return items, nil, { result_info = { page = query.page, per_page = 10, total_count = 30 } }
    end
    local walked = 0
    for entry in paging(list, { per_page = 10 }) do
      assert.is_truthy(entry.id)
      walked = walked + 1
    end
    assert.are.equal(30, walked)
    assert.are.same({ 0, 0, 0 }, held_while_fetching)
  end)

  it("walks every page and stops when page * per_page reaches total_count", function()
    local list, calls = fake_list(25)
    local got = collect(list, { per_page = 10 })
    assert.are.equal(25, #got)
    assert.are.equal("e25", got[25])
    assert.are.same({ 1, 2, 3 }, calls)
  end)

  it("asks no empty page after an exact last page", function()
    local list, calls = fake_list(20)
    assert.are.equal(20, #collect(list, { per_page = 10 }))
    assert.are.same({ 1, 2 }, calls)
  end)

  it("stops on a short page when no total is given", function()
    local list, calls = fake_list(15, { no_total = true })
    assert.are.equal(15, #collect(list, { per_page = 10 }))
    assert.are.same({ 1, 2 }, calls)
  end)

  it("stops on an empty first page", function()
    local list, calls = fake_list(0, { no_total = true })
    assert.are.equal(0, #collect(list, { per_page = 10 }))
    assert.are.same({ 1 }, calls)
  end)

  it("fails, not ends, on a page that holds the entries of one already walked", function()
    local list, calls = fake_list(100, { stuck_page = 1, no_total = true, no_page = true })
    local got, errs = collect(list, { per_page = 10 })
    assert.are.equal(10, #got, "page 1's entries, once")
    assert.are.equal(1, #errs)
    assert.are.equal("http", errs[1].kind)
    assert.matches("page 2 holds the entries of page 1", errs[1].message, 1, true)
    assert.are.same({ 1, 2 }, calls)
  end)

  it("fails, not ends, when the answer says another page than the one asked for", function()
    -- the server echoes page=1 for every page while the entries are new:
    -- 20 of 50 walked must not pass for all of them
    local list, calls = fake_list(50, { echo_page = 1 })
    local got, errs = collect(list, {})
    assert.are.equal(20, #got)
    assert.are.equal(1, #errs)
    assert.are.equal("http", errs[1].kind)
    assert.matches("asked for page 2, the answer says page 1", errs[1].message, 1, true)
    assert.matches("20 entries were walked", errs[1].message, 1, true)
    assert.are.same({ 1, 2 }, calls)
  end)

  it("fails when total_count says more entries than the pages hold", function()
    -- an empty page, and a short one, before total_count is reached
    for _, opts in ipairs({ { empty_from = 3 }, { total = function() return 60 end } }) do
      local list = fake_list(50, opts)
      local got, errs = collect(list, { per_page = 20 })
      assert.are.equal(1, #errs)
      assert.are.equal("http", errs[1].kind)
      assert.matches("total_count", errs[1].message, 1, true)
      assert.is_true(#got < 60)
    end
  end)

  it("ends on a short page of a filtered listing, whose total_count may count every entry", function()
    -- the OpenAPI file: total_count counts "without any search parameters"
    local list, calls = fake_list(25, { total = function() return 400 end })
    local got, errs = collect(list, { per_page = 10, search = "x" })
    assert.are.same({}, errs)
    assert.are.equal(25, #got)
    assert.are.same({ 1, 2, 3 }, calls)
  end)

  it("fails when a page holds entries past total_count, or more than per_page", function()
    local list = fake_list(50, { total = function() return 45 end })
    local _, errs = collect(list, { per_page = 20 })
    assert.are.equal(1, #errs)
    assert.matches("total_count", errs[1].message, 1, true)
    list = fake_list(50, { extra = { [1] = { "x1" } } })
    _, errs = collect(list, { per_page = 20 })
    assert.are.equal(1, #errs)
    assert.matches("21 entries, more than per_page 20", errs[1].message, 1, true)
  end)

  it("fails, saying the listing moved, when total_count changes between pages", function()
    local list = fake_list(1001, { total = function(page) return page == 1 and 1001 or 1000 end })
    local got, errs = collect(list, { per_page = 1000 })
    assert.are.equal(1000, #got)
    assert.are.equal(1, #errs)
    assert.are.equal("http", errs[1].kind)
    assert.is_true(errs[1].listing_moved)
    assert.matches("total_count 1001, page 2 says 1000", errs[1].message, 1, true)
  end)

  it("fails, saying the listing moved, when an entry of one page shows again on the next", function()
    -- an entry created before e10 while the walk was between pages pushes
    -- e10 onto page 2
    local list = fake_list(30, { no_total = true, shift = { [2] = -1 } })
    local _, errs = collect(list, { per_page = 10 })
    assert.are.equal(1, #errs)
    assert.is_true(errs[1].listing_moved)
    assert.matches("e10", errs[1].message, 1, true)
  end)

  it("walks by the server's per_page when none was asked for", function()
    local list, calls = fake_list(60, { serves = 25 })
    local got, errs = collect(list, {})
    assert.are.same({}, errs)
    assert.are.equal(60, #got)
    assert.are.same({ 1, 2, 3 }, calls)
  end)

  it("starts at the given page and leaves the caller's table alone", function()
    local list, calls = fake_list(30)
    local params = { per_page = 10, page = 2 }
    assert.are.equal(20, #collect(list, params))
    assert.are.same({ 2, 3 }, calls)
    assert.are.equal(2, params.page)
  end)

  it("ends with nothing, and no error, when it starts past the last page", function()
    local list, calls = fake_list(30)
    local got, errs = collect(list, { per_page = 10, page = 5 })
    assert.are.same({}, errs)
    assert.are.same({}, got)
    assert.are.same({ 5 }, calls)
  end)

  it("gives a failure once, as false and the error, then ends", function()
    local list, calls = fake_list(50, { fail_on = 2 })
    local got, errs = collect(list, { per_page = 10 })
    assert.are.equal(10, #got)
    assert.are.equal(1, #errs)
    assert.are.equal("boom", errs[1].message)
    assert.are.same({ 1, 2 }, calls)
  end)

  it("ends, with the per_page it asked for, when the answer says none", function()
    local list, calls = fake_list(25, { no_total = true, says_per_page = "absent" })
    local got, errs = collect(list, { per_page = 10 })
    assert.are.same({}, errs)
    assert.are.equal(25, #got)
    assert.are.same({ 1, 2, 3 }, calls, "three pages given, three requests")
  end)

  for _, says in ipairs({ 0, -5, 1000, "ten" }) do
    it(("fails when the answer's per_page is %s where 10 was asked for"):format(says), function()
      local list, calls = fake_list(25, { no_total = true, says_per_page = says })
      local got, errs = collect(list, { per_page = 10 })
      assert.are.equal(0, #got)
      assert.are.equal(1, #errs)
      assert.are.equal("http", errs[1].kind)
      assert.matches("per_page", errs[1].message, 1, true)
      assert.are.same({ 1 }, calls)
    end)
  end

  it("fails, not endless, on a server that ignores page and sends entries without ids and no result_info", function()
    local calls = 0
    local function list()
      calls = calls + 1
      if calls > 20 then return nil, { kind = "http", message = "the walk never ended" } end
      local items = { { name = "x" }, { name = "y" } }
      return items, nil, { success = true, result = items }
    end
    local walked, errs = 0, {}
    for entry, err in paging(list, { per_page = 2 }) do
      if entry then walked = walked + 1 else errs[#errs + 1] = err end
    end
    assert.are.equal(2, walked)
    assert.are.equal(1, #errs)
    assert.matches("holds the entries of page 1", errs[1].message, 1, true)
    assert.are.equal(2, calls)
  end)

  it("a page repeated because entries were made ahead of the walk is a moving listing", function()
    -- one entry made at the front between the pages: page 2 is page 1 again,
    -- and total_count went from 3 to 4
    local function list(query)
      local items = { { id = "A" } }
      return items, nil, { success = true, result = items,
                           result_info = { page = query.page, per_page = 1, total_count = query.page == 1 and 3 or 4 } }
    end
    local got, errs = collect(list, { per_page = 1 })
    assert.are.equal(1, #got)
    assert.is_true(errs[1].listing_moved, errs[1].message)
  end)

  it("returns nothing more after the end", function()
    local list = fake_list(3)
    local it = paging(list, {})
    for _ = 1, 3 do assert.is_table(it()) end
    assert.is_nil(it())
    assert.is_nil(it())
  end)
end)

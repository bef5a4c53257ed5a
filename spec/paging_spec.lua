local paging = require("cloudflare.email_security.paging")

-- A list function over `n` fake entries, page-number paged like the API.
local function fake_list(n, opts)
  opts = opts or {}
  local calls = {}
  local function list(query)
    calls[#calls + 1] = query.page
    if opts.fail_on == query.page then return nil, { kind = "http", message = "boom" } end
    -- a test server that pages forever must still end the spec
    if #calls > 50 then return nil, { kind = "http", message = "the walk never ended" } end
    local per_page = query.per_page or 20
    local page = opts.stuck_page or query.page
    local items = {}
    for i = (page - 1) * per_page + 1, math.min(page * per_page, n) do
      items[#items + 1] = { id = "e" .. i }
    end
    local info = { page = page, per_page = per_page, count = #items,
                   total_count = not opts.no_total and n or nil }
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

  it("stops on a page it has already seen, without repeating its entries", function()
    local list, calls = fake_list(100, { stuck_page = 1, no_total = true })
    local got = collect(list, { per_page = 10 })
    assert.are.equal(10, #got)
    assert.are.same({ 1, 2 }, calls)
  end)

  it("starts at the given page and leaves the caller's table alone", function()
    local list, calls = fake_list(30)
    local params = { per_page = 10, page = 2 }
    assert.are.equal(20, #collect(list, params))
    assert.are.same({ 2, 3 }, calls)
    assert.are.equal(2, params.page)
  end)

  it("gives a failure once, as false and the error, then ends", function()
    local list, calls = fake_list(50, { fail_on = 2 })
    local got, errs = collect(list, { per_page = 10 })
    assert.are.equal(10, #got)
    assert.are.equal(1, #errs)
    assert.are.equal("boom", errs[1].message)
    assert.are.same({ 1, 2 }, calls)
  end)

  for _, says in ipairs({ 0, -5, "absent" }) do
    it(("ends, with the per_page it asked for, when the answer's per_page is %s"):format(says), function()
      local list, calls = fake_list(25, { no_total = true, says_per_page = says })
      local got, errs = collect(list, { per_page = 10 })
      assert.are.same({}, errs)
      assert.are.equal(25, #got)
      assert.are.same({ 1, 2, 3 }, calls, "three pages given, three requests")
    end)
  end

  it("ends on an empty page even when the answer's per_page is 0", function()
    local list, calls = fake_list(20, { no_total = true, says_per_page = 0 })
    local got, errs = collect(list, { per_page = 10 })
    assert.are.same({}, errs)
    assert.are.equal(20, #got)
    assert.are.same({ 1, 2, 3 }, calls)
  end)

  it("uses the per_page it asked for when the answer claims a larger one", function()
    local list, calls = fake_list(25, { no_total = true, says_per_page = 1000 })
    assert.are.equal(25, #collect(list, { per_page = 10 }))
    assert.are.same({ 1, 2, 3 }, calls)
  end)

  it("returns nothing more after the end", function()
    local list = fake_list(3)
    local it = paging(list, {})
    for _ = 1, 3 do assert.is_table(it()) end
    assert.is_nil(it())
    assert.is_nil(it())
  end)
end)

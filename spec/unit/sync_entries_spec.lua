-- es.read_entries: CSV (RFC 4180 quoting, typed by a resource's fields or
-- later by plan) and JSON files, bad files named by line and column, and
-- CSV written by the CLI read back as the same entries.
local es = require("cloudflare.email_security")
local entries = require("cloudflare.email_security.sync.entries")
local compile = require("cloudflare.email_security.schema.compile")

local function compiled(name) return compile.resource(require("cloudflare.email_security.resources." .. name)) end

local function file_with(text, ending)
  local path = os.tmpname() .. (ending or ".csv")
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

local function read(text, resource, ending)
  local path = file_with(text, ending)
  local list, err = es.read_entries(path, resource)
  os.remove(path)
  os.remove((path:gsub("%.%a+$", "")))
  return list, err and err:gsub("^.-:(%d+:%d+:)", "%1")
end

describe("es.read_entries", function()
  it("reads a header of field names and typed cells", function()
    local list = assert(read("domain,regions,integration_id,lookback_hops\r\n"
      .. "a.example.com,GLOBAL;EU,null,2\r\n"
      .. "b.example.com,\"\",,\n", "domains"))
    assert.are.same({ domain = "a.example.com", regions = { "GLOBAL", "EU" }, integration_id = es.null,
                      lookback_hops = 2 }, list[1])
    -- quoted and empty: an empty list
    assert.are.same({}, list[2].regions)
    -- an unquoted empty cell is no value at all
    assert.is_nil(list[2].integration_id)
    assert.is_nil(list[2].lookback_hops)
    local restrictions = assert(read("domain,exclude\na.example.com,x.example.com;y.example.com\nb.example.com,\"\"\n",
                                     "sending_domain_restrictions"))
    assert.are.same({ "x.example.com", "y.example.com" }, restrictions[1].exclude)
    assert.are.same({}, restrictions[2].exclude)
  end)

  it("follows RFC 4180 quoting: commas, doubled quotes and line breaks inside quotes", function()
    local list = assert(read('pattern,comments\n"a,b.example.com","say ""hi""\nand bye"\nc.example.com,"null"\n',
                             "url_ignore_patterns"))
    assert.are.equal("a,b.example.com", list[1].pattern)
    assert.are.equal('say "hi"\nand bye', list[1].comments)
    -- quoted, null is the word
    assert.are.equal("null", list[2].comments)
  end)

  it("skips a byte order mark and blank lines; without a resource, keeps text for plan to type", function()
    local list = assert(read("\239\187\191pattern,is_regex,comments\n\np1,true,null\n\n"))
    assert.are.equal(1, #list)
    assert.are.same({ pattern = "p1", is_regex = true, comments = es.null }, list[1])
    local typed = assert(entries.typed(compiled("domains"), assert(read("domain,lookback_hops\nd.example.com,4\n"))))
    assert.are.equal(4, typed[1].lookback_hops)
  end)

  it("names the line and column of what is wrong", function()
    local _, err = read("pattern,comments\np1,\"open\n", "url_ignore_patterns")
    assert.are.equal("2:4: a quoted cell is not closed", err)
    _, err = read("pattern,comments\np1,ab\"c\n")
    assert.are.equal("2:6: a quote inside a cell that does not start with one (quote the whole cell)", err)
    _, err = read("pattern,comments\np1\n")
    assert.are.equal("2:1: has 1 cells where the header has 2", err)
    _, err = read("domain,lookback_hops\nd.example.com,two\n", "domains")
    assert.are.equal("2:15: lookback_hops: must be an integer, got 'two'", err)
    _, err = read("pattern,is_regex\n\"multi\nline\",maybe\n", "trusted_domains")
    assert.are.equal("3:7: is_regex: must be true or false, got 'maybe'", err)
    _, err = read("pattern,pattern\nx,y\n")
    assert.are.equal("1:9: field pattern appears twice in the header", err)
    _, err = read("pattern\n\"x\"y\n")
    assert.are.equal("2:4: text after a quoted cell's closing quote", err)
    _, err = read("pattern\n\255\n")
    assert.truthy(err:find("is not valid UTF-8", 1, true))
    _, err = read("")
    assert.truthy(err:find("is empty", 1, true))
  end)

  it("reads JSON: an array of objects; a bad file names its line and column", function()
    local list = assert(read('[{"pattern": "a", "comments": null}, {"pattern": "b"}]', nil, ".json"))
    assert.are.same({ { pattern = "a", comments = es.null }, { pattern = "b" } }, list)
    local _, err = read('[\n  {"pattern": "a",\n   "comments" nul}\n]', nil, ".json")
    assert.truthy(err:find("^3:%d+: "), err)
    _, err = read('{"pattern": "a"}', nil, ".json")
    assert.truthy(err:find("must hold a JSON array of entries", 1, true))
    _, err = read('[1]', nil, ".json")
    assert.truthy(err:find("entry 1 is not an object", 1, true))
  end)

  it("refuses a file that is neither .csv nor .json, and a bad resource name", function()
    local _, err = read("x", nil, ".txt")
    assert.truthy(err:find("neither .csv nor .json", 1, true))
    assert.has_error(function() es.read_entries("x.csv", "no_such") end,
      "bad argument #2 to 'read_entries' (a resource name such as 'allow_policies' expected, got no_such)")
  end)

  it("writes CSV that reads back as the same entries", function()
    local c = compiled("domains")
    local list = {
      { id = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415", domain = "a.example.com", folder = es.null, lookback_hops = 2,
        regions = { "GLOBAL", "EU" }, ip_restrictions = {}, require_tls_inbound = false,
        transport = 'say "hi", then\r\nbye', integration_id = "" },
      { id = "0f1e2d3c-4b5a-4697-8877-665544332211", domain = "null", folder = "Inbox", lookback_hops = 9007199254740991,
        regions = { "US" }, ip_restrictions = { "192.0.2.0/24" }, transport = "true" },
    }
    local fields = { "id", "domain", "folder", "lookback_hops", "regions", "ip_restrictions", "require_tls_inbound",
                     "transport", "integration_id" }
    local text = entries.csv(list, fields)
    local back = assert(entries.parse(text, "csv", c))
    assert.are.same(list, back)
  end)

  it("refuses a JSON object where a list belongs, and a directory, with a message", function()
    local _, err = read("{}", nil, ".json")
    assert.truthy(err:find("must hold a JSON array of entries", 1, true))
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. dir .. ".csv"))
    local list
    list, err = es.read_entries(dir .. ".csv")
    os.execute("rmdir " .. dir .. ".csv")
    assert.is_nil(list)
    assert.truthy(err:find("cannot be read (is it a directory?)", 1, true))
  end)

  it("names the cell's own line when plan types the cells later", function()
    local list = assert(read('name,notes,enabled\n"two\nlines",x,maybe\n'))
    local _, err = entries.typed(compiled("content_policies"), list)
    assert.truthy(err:find(":3:", 1, true), err)
  end)

  it("refuses a whole number a double cannot hold, on every Lua, rather than round it", function()
    local _, err = read("directory_id\n9007199254740993\n", "impersonation_registry")
    assert.truthy(err:find("cannot be held exactly", 1, true), err)
    local list = assert(read("directory_id\n9007199254740992\n", "impersonation_registry"))
    assert.are.equal(2 ^ 53, list[1].directory_id)
  end)

  it("writes lists that read back the same whatever their items hold", function()
    local c = compiled("sending_domain_restrictions")
    local list = {
      { domain = "a", exclude = { "a,b", 'say "hi"' } }, { domain = "b", exclude = { "null" } },
      { domain = "c", exclude = { "x;y", "z" } }, { domain = "d", exclude = { "" } },
      { domain = "e", exclude = { "[x]" } }, { domain = "f", exclude = {} },
    }
    local back = assert(entries.parse(entries.csv(list, { "domain", "exclude" }), "csv", c))
    assert.are.same(list, back)
  end)

  it("reads JSON files with the core's own lua-cjson, whatever the host set on its cjson", function()
    local host_cjson = require("cjson")
    host_cjson.decode_invalid_numbers(true)
    local list, err = read('[{"pattern": "a", "comments": NaN}]', nil, ".json")
    host_cjson.decode_invalid_numbers(false)
    assert.is_nil(list)
    assert.truthy(err:find("invalid token at character 31", 1, true), err)
  end)

  it("writes an object in a CSV cell with its keys sorted, the same file every run", function()
    local v = {}
    for _, k in ipairs({ "kilo", "alpha", "juliet", "bravo", "india", "charlie", "hotel", "delta", "golf", "echo" }) do
      v[k] = { z = 1, a = 2 }
    end
    local cell = entries.cell(v)
    assert.are.equal('"{""alpha"":{""a"":2,""z"":1},""bravo"":{""a"":2,""z"":1},""charlie"":{""a"":2,""z"":1},'
      .. '""delta"":{""a"":2,""z"":1},""echo"":{""a"":2,""z"":1},""golf"":{""a"":2,""z"":1},'
      .. '""hotel"":{""a"":2,""z"":1},""india"":{""a"":2,""z"":1},""juliet"":{""a"":2,""z"":1},'
      .. '""kilo"":{""a"":2,""z"":1}}"', cell)
  end)

  -- a large file is read in pieces of whole records (64 KiB at a time):
  -- one that crosses them reads as the same text read whole
  describe("a file larger than the pieces it is read in", function()
    local function big(rows)
      local parts = { "pattern,comments\r\n" }
      for i = 1, rows do
        -- quoted cells with commas, doubled quotes and line breaks, some
        -- of them across the pieces' edges
        parts[#parts + 1] = ('p%d.example.com,"line one, of %d\r\nsaid ""hi"" %s"\r\n'):format(i, i, ("x"):rep(i % 97))
      end
      return table.concat(parts)
    end

    it("reads the same entries, from the same lines, as the text read whole", function()
      local text = big(3000)
      assert.is_true(#text > 3 * 64 * 1024)
      local path = file_with(text)
      local from_file = assert(es.read_entries(path, "url_ignore_patterns"))
      local whole = assert(entries.parse(text, "csv", compiled("url_ignore_patterns"), path))
      os.remove(path)
      assert.are.equal(3000, #from_file)
      assert.are.same(whole, from_file)
      for i = 1, #from_file, 311 do
        assert.are.equal(entries.origin(whole[i]), entries.origin(from_file[i]))
        assert.are.equal(("%s line %d"):format(path, 2 * i), entries.origin(from_file[i]))
      end
    end)

    it("says what a whole reading would: UTF-8 first, then a record that cannot be read, then a wrong cell",
      function()
      local text = big(3000)
      local wrong_cell = "pattern,comments,is_regex\nx,y,maybe\n" .. text:gsub("^[^\n]*\n", ""):gsub("\r\n", ",true\r\n")
      local _, err = read(wrong_cell .. "p,\"open\n", "trusted_domains")
      assert.are.equal(("%d:3: a quoted cell is not closed"):format(2 + 2 * 3000 + 1), err)
      _, err = read(wrong_cell .. "p,\"open\n\255", "trusted_domains")
      assert.truthy(err:find("is not valid UTF-8", 1, true), err)
      _, err = read(wrong_cell, "trusted_domains")
      assert.are.equal("2:5: is_regex: must be true or false, got 'maybe'", err)
    end)

    it("types later, without a resource, naming the cell's own line and column", function()
      local parts = { "pattern,comments,is_regex\n" }
      for i = 1, 3000 do parts[#parts + 1] = ('p%d.example.com,"two\nlines %s",false\n'):format(i, ("x"):rep(i % 97)) end
      parts[#parts + 1] = 'p3001.example.com,"two\nlines",oops\n'
      local list = assert(read(table.concat(parts)))
      local _, err = entries.typed(compiled("trusted_domains"), list)
      assert.truthy(err:find(":6003:8: is_regex: must be true or false, got 'oops'", 1, true), err)
    end)
  end)
end)

-- plan reads the entries it is given one at a time, and keeps no copy of
-- them: what it holds of a hundred thousand is their keys (the listing is
-- stubbed here: no server)
describe("plan of entries read from a file", function()
  local cf, methods, saved, listing, during
  before_each(function()
    cf = es.new({ account_id = "023e105f4ecef8ad9ca31a8372d0c353", api_token = "t",
                  base_url = "http://127.0.0.1:9/client/v4" })
    methods = getmetatable(cf.url_ignore_patterns).__index
    saved = methods.each
    methods.each = function()
      local i = 0
      return function()
        i = i + 1
        if during then during(i) end
        return listing[i]
      end
    end
  end)
  after_each(function()
    methods.each = saved
    during = nil
    cf:close()
  end)

  it("counts the entries it leaves as they are by their ids", function()
    listing = { { id = "id-1", pattern = "p1", comments = "same" }, { id = "id-2", pattern = "p2", comments = "old" } }
    local desired = assert(read("pattern,comments\np1,same\np2,new\np3,\n", "url_ignore_patterns"))
    local p = assert(cf.url_ignore_patterns:plan(desired))
    assert.are.same({ "id-1" }, p.unchanged)
    assert.are.equal(1, #p.updates)
    assert.are.equal("p3", p.creates[1].fields.pattern)
    assert.truthy(tostring(p):find("1 to create, 1 to update, 0 to delete, 1 unchanged", 1, true), tostring(p))
  end)

  it("refuses an entry whose key changed while the listing was walked", function()
    listing = { { id = "id-1", pattern = "p1", comments = "old" } }
    local desired = assert(read("pattern,comments\np1,new\n", "url_ignore_patterns"))
    during = function(i) if i == 1 then desired[1].pattern = "elsewhere" end end
    local p, err = cf.url_ignore_patterns:plan(desired)
    assert.is_nil(p)
    assert.truthy(tostring(err):find("desired[1]", 1, true), tostring(err))
    assert.truthy(tostring(err):find("changed while the plan was made", 1, true), tostring(err))
    assert.truthy(tostring(err):find(" line 2", 1, true), tostring(err))
  end)
end)

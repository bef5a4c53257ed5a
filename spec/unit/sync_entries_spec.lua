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
    local list = assert(read("domain,regions,integration_id,lookback_hops,ip_restrictions\r\n"
      .. "a.example.com,GLOBAL;DE,null,2,\r\n"
      .. "b.example.com,,,,\"\"\n", "domains"))
    assert.are.same({ domain = "a.example.com", regions = { "GLOBAL", "DE" }, integration_id = es.null,
                      lookback_hops = 2 }, list[1])
    -- quoted and empty: an empty list
    assert.are.same({}, list[2].ip_restrictions)
    assert.is_nil(list[2].regions)
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
    assert.are.equal("2:4: comments: a quoted cell is not closed", err)
    _, err = read("pattern,comments\np1,ab\"c\n")
    assert.are.equal("2:6: comments: a quote inside a cell that does not start with one (quote the whole cell)", err)
    _, err = read("pattern,comments\np1\n")
    assert.are.equal("2:1: has 1 cells where the header has 2", err)
    _, err = read("domain,lookback_hops\nd.example.com,two\n", "domains")
    assert.are.equal("2:15: lookback_hops: must be an integer, got 'two'", err)
    _, err = read("pattern,is_regex\n\"multi\nline\",maybe\n", "trusted_domains")
    assert.are.equal("3:7: is_regex: must be true or false, got 'maybe'", err)
    _, err = read("pattern,pattern\nx,y\n")
    assert.are.equal("1:9: field pattern appears twice in the header", err)
    _, err = read("pattern\n\"x\"y\n")
    assert.are.equal("2:4: pattern: text after a quoted cell's closing quote", err)
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
    -- typed later (as plan types a file read without a resource): the
    -- cells' kinds only, so that values the API refuses (an empty uuid, a
    -- hop count past 20, a region it does not have) are written and read
    -- back all the same
    local back = assert(entries.typed(c, assert(entries.parse(text, "csv"))))
    assert.are.same(list, back)
    -- read with the resource, they are refused: every one at once
    local _, err = entries.parse(text, "csv", c)
    assert.are.equal("csv:2:59: regions[2]: must be one of GLOBAL, AU, DE, IN, US\n"
      .. "csv:3:6: integration_id: must be a uuid (8-4-4-4-12 hex digits)\n"
      .. "csv:4:51: lookback_hops: must be at most 20", err)
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

    it("says what a whole reading would: text that is not UTF-8 alone, else every problem in file order",
      function()
      local text = big(3000)
      local wrong_cell = "pattern,comments,is_regex\nx,y,maybe\n" .. text:gsub("^[^\n]*\n", ""):gsub("\r\n", ",true\r\n")
      -- each problem in file order, the wrong cell first
      local _, err = read(wrong_cell .. "p,\"open\n", "trusted_domains")
      assert.are.equal(("2:5: is_regex: must be true or false, got 'maybe'\nPATH:%d:3: comments: a quoted cell is not closed")
        :format(2 + 2 * 3000 + 1), (err:gsub("\n[^\n]-:(%d+:%d+:)", "\nPATH:%1")))
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

-- A file with many bad cells names them all in one message: a line per
-- problem, PATH:LINE:COLUMN: field: why (LINE where the cell starts,
-- COLUMN its first character), in file order, the first SHOWN and then a
-- count.
describe("every problem of a file at once", function()
  local domains = compiled("domains")

  local function parse(text, desc, name)
    local list, err = entries.parse(text, name and name:match("json$") and "json" or "csv", desc, name or "d.csv")
    assert.is_nil(list)
    return err
  end

  it("names every bad cell of a CSV file, in file order, by its line, column and field", function()
    local err = parse(table.concat({
      "domain,lookback_hops,regions,require_tls_inbound,nmae,transport",
      -- a wrong kind, a bad boolean
      "a.example.com,two,GLOBAL,maybe,,x",
      -- a quoted cell over two lines: the row's other cells are on line 4
      '"multi',
      'line",3,XX;GLOBAL,true,oops,y',
      "short,1",
      -- the quoting rules broken: read on past them
      'b.example.com,ab"c,GLOBAL,true,again,"t"junk',
      "c.example.com,30,GLOBAL,false,,z\rq",
      "",
    }, "\n"), domains)
    assert.are.equal(table.concat({
      "d.csv:2:15: lookback_hops: must be an integer, got 'two'",
      "d.csv:2:26: require_tls_inbound: must be true or false, got 'maybe'",
      "d.csv:4:9: regions[1]: must be one of GLOBAL, AU, DE, IN, US",
      -- a column the resource lacks: once, at its first cell with a value
      "d.csv:4:24: nmae: is not a field of domains (there are: allowed_delivery_modes, domain, drop_dispositions, "
        .. "folder, integration_id, ip_restrictions, lookback_hops, regions, require_tls_inbound, "
        .. "require_tls_outbound, transport)",
      "d.csv:5:1: has 2 cells where the header has 6",
      "d.csv:6:17: lookback_hops: a quote inside a cell that does not start with one (quote the whole cell)",
      "d.csv:6:41: transport: text after a quoted cell's closing quote",
      "d.csv:7:15: lookback_hops: must be at most 20",
      "d.csv:7:33: transport: a CR without LF",
    }, "\n"), err)
  end)

  it("says the first problem first, as when it is the only one", function()
    local one = parse("domain,lookback_hops\nd.example.com,x\n", domains)
    local two = parse("domain,lookback_hops\nd.example.com,x\ne.example.com,y\n", domains)
    assert.are.equal("d.csv:2:15: lookback_hops: must be an integer, got 'x'", one)
    assert.are.equal(one, two:match("^[^\n]*"))
    assert.are.equal("d.csv:3:15: lookback_hops: must be an integer, got 'y'", two:match("\n(.*)"))
  end)

  it("writes the first " .. entries.SHOWN .. " problems, then how many more", function()
    local function rows(n)
      local parts = { "domain,lookback_hops" }
      for i = 1, n do parts[#parts + 1] = ("d%d.example.com,x%d"):format(i, i) end
      return table.concat(parts, "\n")
    end
    local err = parse(rows(entries.SHOWN + 5), domains)
    local lines = {}
    for line in err:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.are.equal(entries.SHOWN + 1, #lines)
    assert.are.equal("d.csv:2:16: lookback_hops: must be an integer, got 'x1'", lines[1])
    assert.are.equal(("d.csv:%d:%d: lookback_hops: must be an integer, got 'x%d'"):format(entries.SHOWN + 1,
      #("d%d.example.com,"):format(entries.SHOWN) + 1, entries.SHOWN), lines[entries.SHOWN])
    assert.are.equal("... and 5 more", lines[entries.SHOWN + 1])
    -- exactly as many as are shown: no count
    err = parse(rows(entries.SHOWN), domains)
    assert.is_nil(err:find("more", 1, true))
    assert.are.equal(entries.SHOWN - 1, select(2, err:gsub("\n", "")))
  end)

  it("takes a column the resource lacks when it is empty, as plan does", function()
    local list = assert(entries.parse("domain,nmae\na.example.com,\nb.example.com,\n", "csv", domains, "d.csv"))
    assert.are.equal(2, #list)
    assert.are.equal("d.csv:3:15: nmae: is not a field of impersonation_registry: did you mean `name`?",
      parse("email,nmae\na@example.com,\nb@example.com,x\nc@example.com,y\n", compiled("impersonation_registry")))
  end)

  it("reads the rows under a header with bad names, naming every problem", function()
    local err = parse("pattern,pat tern,pattern,comments\np1,x,y,\"open\n")
    assert.are.equal(table.concat({
      "d.csv:1:9: header cell 2 ('pat tern') is not a field name",
      "d.csv:1:18: field pattern appears twice in the header",
      "d.csv:2:8: comments: a quoted cell is not closed",
    }, "\n"), err)
  end)

  it("types later every cell of every entry read without a resource", function()
    local list = assert(entries.parse("domain,lookback_hops,require_tls_inbound\na,x,maybe\nb,2,true\nc,3.5,1\n",
                                      "csv", nil, "t.csv"))
    local _, err = entries.typed(domains, list)
    assert.are.equal(table.concat({
      "t.csv:2:3: lookback_hops: must be an integer, got 'x'",
      "t.csv:2:5: require_tls_inbound: must be true or false, got 'maybe'",
      "t.csv:4:3: lookback_hops: must be an integer, got '3.5'",
      "t.csv:4:7: require_tls_inbound: must be true or false, got '1'",
    }, "\n"), err)
  end)

  it("names every bad cell of a folder's file", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. dir))
    local f = assert(io.open(dir .. "/block_senders.csv", "wb"))
    f:write("pattern_type,pattern,is_regex\nMAIL,a@example.com,false\nEMAIL,b@example.com,no\n")
    f:close()
    local source, err = es.read_folder(dir)
    os.remove(dir .. "/block_senders.csv")
    os.remove(dir)
    assert.is_nil(source)
    assert.are.equal(table.concat({
      dir .. "/block_senders.csv:2:1: pattern_type: must be one of EMAIL, DOMAIN, IP, UNKNOWN",
      dir .. "/block_senders.csv:3:21: is_regex: must be true or false, got 'no'",
    }, "\n"), err)
  end)

  it("names every bad entry of a JSON file by its index and field", function()
    local text = '[1, {"domain": "a", "lookback_hops": 30, "nmae": 1}, "x", {"regions": ["XX"], "domain": 5}]'
    assert.are.equal(table.concat({
      "j.json: entry 1 is not an object",
      "j.json: entry 2: lookback_hops: must be at most 20",
      "j.json: entry 2: nmae: is not a field of domains (there are: allowed_delivery_modes, domain, "
        .. "drop_dispositions, folder, integration_id, ip_restrictions, lookback_hops, regions, "
        .. "require_tls_inbound, require_tls_outbound, transport)",
      "j.json: entry 3 is not an object",
      -- the fields of an entry in the description's order
      "j.json: entry 4: domain: must be a string, got number",
      "j.json: entry 4: regions[1]: must be one of GLOBAL, AU, DE, IN, US",
    }, "\n"), parse(text, domains, "j.json"))
    -- without a resource, only what is no entry at all
    assert.are.equal("j.json: entry 1 is not an object\nj.json: entry 3 is not an object", parse(text, nil, "j.json"))
  end)

  it("names every bad cell of a dashboard file, by the dashboard's column names", function()
    local err = parse("Blocked Sender, Blocked Sender Type, Is Regex, Notes,\n"
      .. "x.example, DOMAN, maybe, , IMPORTANT\n"
      .. ", EMAIL, false\n"
      .. ("y"):rep(2000) .. ".example, DOMAIN, false,\n", compiled("block_senders"), "b.csv")
    assert.are.equal(table.concat({
      "b.csv:2:11: Blocked Sender Type: 'DOMAN' is not EMAIL, DOMAIN, IP or UNKNOWN",
      "b.csv:2:18: Is Regex: 'maybe' is not true or false",
      "b.csv:2:27: ' IMPORTANT' is in a column with no name in the header: the dashboard's file has no such column",
      "b.csv:3:1: Blocked Sender: empty: it needs a value",
      -- what the dashboard reads, checked against the resource as plan would
      "b.csv:4:1: Blocked Sender (pattern): must be at most 1024 characters (got 2008)",
    }, "\n"), err)
  end)

  -- A large file is read in pieces cut at line breaks outside quotes, told
  -- as the reader tells them: a quote inside a cell that does not start
  -- with one opens nothing, or the pieces after it would be cut inside
  -- quoted cells and read as problems that are not there.
  it("says the same of a large file read in pieces as of its text read whole", function()
    local parts = { "\239\187\191\"pattern\",comments,is_regex\n", 'p0.example.com,stray"quote,false\n' }
    for i = 1, 3000 do
      parts[#parts + 1] = ('p%d.example.com,"two\nlines, ""%s""",%s\n'):format(i, ("x"):rep(i % 97),
        i % 1000 == 0 and "maybe" or "false")
    end
    local text = table.concat(parts)
    assert.is_true(#text > 3 * 64 * 1024)
    local path = file_with(text)
    local _, from_file = es.read_entries(path, "trusted_domains")
    local _, whole = entries.parse(text, "csv", compiled("trusted_domains"), path)
    os.remove(path)
    assert.are.equal(whole, from_file)
    -- row i starts on line 2i + 1; its is_regex cell is on the next, past
    -- 'lines, ""', i % 97 x's and '""",'
    local want = { path .. ":2:21: comments: a quote inside a cell that does not start with one (quote the whole cell)" }
    for i = 1000, 3000, 1000 do
      want[#want + 1] = ("%s:%d:%d: is_regex: must be true or false, got 'maybe'"):format(path, 2 * i + 2, 14 + i % 97)
    end
    assert.are.equal(table.concat(want, "\n"), from_file)
  end)

  it("cuts no piece inside a quoted cell whose doubled quote spans two of the file's reads", function()
    -- the first quote of a "" pair is the last byte of the first 64 KiB:
    -- rows of some 500 bytes, then one as long as it takes
    local parts, size = { "pattern,comments\n" }, #"pattern,comments\n"
    local last = 'q.example.com,"a'
    while 64 * 1024 - size - #last - 1 > 600 do
      parts[#parts + 1] = ("p%d.example.com,%s\n"):format(#parts, ("x"):rep(480))
      size = size + #parts[#parts]
    end
    local prefix = ("p%d.example.com,"):format(#parts)
    parts[#parts + 1] = prefix .. ("x"):rep(64 * 1024 - size - #last - 1 - #prefix - 1) .. "\n"
    parts[#parts + 1] = last
    local before = table.concat(parts)
    assert.are.equal(64 * 1024, #before + 1)
    -- a line break inside the quotes after the pair, and no line end after
    -- the last record: a cut there would leave the cell open
    local path = file_with(before .. '""b\nc"')
    local list, err = es.read_entries(path, "url_ignore_patterns")
    os.remove(path)
    assert.is_nil(err)
    assert.are.equal('a"b\nc', list[#list].comments)
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

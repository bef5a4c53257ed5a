-- sync/dashboard.lua: the dashboard's own CSV files (their headers told
-- apart, each column read as its API field, bad cells named by column,
-- rows written that read back as the same entry), from fixtures written
-- in the headers Cloudflare documents.
local dashboard = require("cloudflare.email_security.sync.dashboard")
local overlay = require("cloudflare.email_security.resources.overlay")

local FIXTURES = "spec/fixtures/dashboard/"

-- RFC 4180 records of a text: a list of rows, each a list of cell texts
-- (quotes taken off). Enough for the fixtures; the tool has its own.
local function records(text)
  local rows, row, cell, i, n, quoted = {}, {}, {}, 1, #text, false
  local function finish_cell()
    row[#row + 1] = table.concat(cell)
    cell = {}
  end
  while i <= n do
    local c = text:sub(i, i)
    if quoted then
      if c == '"' and text:sub(i + 1, i + 1) == '"' then
        cell[#cell + 1] = '"'
        i = i + 1
      elseif c == '"' then
        quoted = false
      else
        cell[#cell + 1] = c
      end
    elseif c == '"' then
      quoted = true
    elseif c == "," then
      finish_cell()
    elseif c == "\n" or c == "\r" then
      if c == "\r" and text:sub(i + 1, i + 1) == "\n" then i = i + 1 end
      finish_cell()
      rows[#rows + 1] = row
      row = {}
    else
      cell[#cell + 1] = c
    end
    i = i + 1
  end
  if #cell > 0 or #row > 0 then
    finish_cell()
    rows[#rows + 1] = row
  end
  return rows
end

-- A fixture as its format and its entries (the caller drops the BOM).
local function read_fixture(name)
  local f = assert(io.open(FIXTURES .. name, "rb"))
  local text = f:read("*a")
  f:close()
  text = text:gsub("^\239\187\191", "")
  local rows = records(text)
  local fmt = dashboard.recognise(rows[1])
  if not fmt then return nil, "not recognised" end
  local list = {}
  for r = 2, #rows do
    list[#list + 1] = assert(dashboard.entry(fmt, rows[r]))
  end
  return fmt, list
end

local function allow(pattern, pattern_type, verify, trusted, exempt, acceptable, comments)
  return { pattern = pattern, pattern_type = pattern_type, is_regex = false, verify_sender = verify,
           is_trusted_sender = trusted, is_exempt_recipient = exempt, is_acceptable_sender = acceptable,
           comments = comments }
end

-- every fixture: the format it is, and the entries it holds
local FILES = {
  ["allow_policies.csv"] = {
    title = "Cloudflare dashboard: allow policies", current = true,
    entries = {
      allow("news@partner.example", "EMAIL", true, false, false, true, "partner newsletter"),
      allow("partner.example", "DOMAIN", true, false, false, true, "invoices, statements and the portal"),
      allow("198.51.100.24", "IP", false, true, false, false, nil),
      allow("phish-reports@corp.example", "EMAIL", false, false, true, false, nil),
    },
  },
  ["allow_policies_2025.csv"] = {
    title = "Cloudflare dashboard: allow policies (2025 columns)",
    entries = {
      allow("alerts@monitoring.example", "EMAIL", true, false, false, true, "uptime alerts"),
      allow("simulations.example", "DOMAIN", false, true, false, false, "phishing drills, quarterly"),
      allow("192.0.2.7", "IP", false, false, false, true, nil),
    },
  },
  ["allow_policies_area1.csv"] = {
    title = "Area 1 dashboard: allowed patterns",
    entries = {
      allow("billing@supplier.example", "EMAIL", true, false, false, true, "supplier invoices"),
      allow("203.0.113.9", "IP", false, true, false, false, "scanner, 3rd floor"),
      allow("security@corp.example", "EMAIL", false, false, true, false, nil),
    },
  },
  ["block_senders.csv"] = {
    title = "Cloudflare dashboard: blocked senders", current = true,
    entries = {
      { pattern = "offers@spam-source.example", pattern_type = "EMAIL", is_regex = false,
        comments = "repeated lottery mail" },
      { pattern = "bad-domain.example", pattern_type = "DOMAIN", is_regex = false,
        comments = "seen in two campaigns, March" },
      { pattern = "198.51.100.66", pattern_type = "IP", is_regex = false },
      { pattern = ".*@bulk-mailer\\.example", pattern_type = "EMAIL", is_regex = true },
    },
  },
  ["block_senders_2025.csv"] = {
    title = "Cloudflare dashboard: blocked senders (2025 columns)",
    entries = {
      { pattern = "ceo.payroll@lookalike.example", pattern_type = "EMAIL", is_regex = false, comments = "payroll fraud" },
      { pattern = "lookalike.example", pattern_type = "DOMAIN", is_regex = false,
        comments = "registered last week, typo of ours" },
      { pattern = "192.0.2.200", pattern_type = "IP", is_regex = false },
    },
  },
  ["block_senders_area1.csv"] = {
    title = "Area 1 dashboard: blocked senders",
    entries = {
      { pattern = "invoice@fake-vendor.example", pattern_type = "EMAIL", is_regex = false, comments = "fake invoices" },
      { pattern = "fake-vendor.example", pattern_type = "DOMAIN", is_regex = false,
        comments = "the whole domain, not only invoices" },
      { pattern = "203.0.113.250", pattern_type = "IP", is_regex = false },
    },
  },
  ["trusted_domains.csv"] = {
    title = "Cloudflare dashboard: trusted domains", current = true,
    entries = {
      { pattern = "corp-example.com", is_similarity = true, is_recent = false, is_regex = false,
        comments = "our own lookalike registration" },
      { pattern = "newly-acquired.example", is_similarity = false, is_recent = true, is_regex = false,
        comments = "bought in 2025, still moving mail" },
      { pattern = "partner-mail.example", is_similarity = true, is_recent = true, is_regex = false },
    },
  },
  ["trusted_domains_area1.csv"] = {
    title = "Area 1 dashboard: trusted domains",
    entries = {
      { pattern = "corpexample.net", is_similarity = true, is_recent = false, is_regex = false,
        comments = "typo domain we own" },
      { pattern = "launch.example", is_similarity = false, is_recent = true, is_regex = false,
        comments = "campaign site, short-lived" },
      { pattern = "sister-company.example", is_similarity = true, is_recent = true, is_regex = false },
    },
  },
  ["impersonation_registry.csv"] = {
    title = "Cloudflare dashboard: impersonation registry", current = true,
    entries = {
      { name = "Ada Lovelace", email = "ada.lovelace@corp.example", is_email_regex = false },
      { name = "Hopper, Grace", email = "grace.hopper@corp.example", is_email_regex = false },
      { name = "Finance Desk", email = "finance@corp.example", is_email_regex = false },
    },
  },
  ["impersonation_registry_area1.csv"] = {
    title = "Cloudflare dashboard: impersonation registry", current = true,
    entries = {
      { name = "Alan Turing", email = "alan.turing@corp.example", is_email_regex = false },
      { name = "Franklin, Rosalind", email = "rosalind.franklin@corp.example", is_email_regex = false },
    },
  },
}

-- the fixtures in a fixed order
local NAMES = {}
for name in pairs(FILES) do NAMES[#NAMES + 1] = name end
table.sort(NAMES)

-- an entry as the API answers it, for each resource
local API = {
  allow_policies = {
    id = "3e2b6a0e-3f4f-4a3b-9a59-0b6f6c1d2e3f", created_at = "2025-03-01T10:00:00Z",
    pattern = "partner.example", pattern_type = "DOMAIN", is_regex = false, verify_sender = true,
    is_trusted_sender = false, is_exempt_recipient = false, is_acceptable_sender = true,
    comments = "marketing, via their ESP",
  },
  block_senders = {
    id = "9c1d3f70-1b2c-4d5e-8f90-a1b2c3d4e5f6", pattern = ".*@bad\\.example", pattern_type = "EMAIL",
    is_regex = true, comments = 'say "no"',
  },
  trusted_domains = {
    id = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", pattern = "corp-example.net", is_regex = false,
    is_similarity = true, is_recent = false,
  },
  impersonation_registry = {
    id = "5f6e7d8c-9b0a-4c1d-8e2f-3a4b5c6d7e8f", name = "Grace Hopper", email = "grace@corp.example",
    is_email_regex = false, comments = "CFO", provenance = "A1S_INTERNAL",
  },
}

-- the fields of e a format gives a value (columns, fixed, derived)
local function fields_of(fmt, e)
  local out = {}
  for _, col in ipairs(fmt.columns) do
    if col then out[col.field] = e[col.field] end
  end
  for field in pairs(fmt.fixed) do out[field] = e[field] end
  for field in pairs(fmt.derived) do out[field] = e[field] end
  return out
end

-- a list in another order: last first
local function reversed(list)
  local out = {}
  for i = #list, 1, -1 do out[#out + 1] = list[i] end
  return out
end

describe("dashboard.recognise", function()
  for _, name in ipairs(NAMES) do
    local want = FILES[name]
    it("knows " .. name .. " and reads each of its columns as its API field", function()
      local fmt, list = read_fixture(name)
      assert.is_table(fmt, list)
      assert.are.equal(want.title, fmt.title)
      assert.are.equal((name:gsub("_area1", ""):gsub("_2025", ""):gsub("%.csv$", "")), fmt.resource)
      assert.are.equal(want.current == true, fmt.current)
      assert.are.same(want.entries, list)
    end)
  end

  it("knows every format's header in another order, case and spacing, with _ for a space", function()
    local n = 0
    for _, resource in ipairs(dashboard.resources) do
      for _, fmt in ipairs(dashboard.formats(resource)) do
        local names = {}
        for i, h in ipairs(reversed(fmt.header)) do
          -- SHOUTED, "  spaced  ", "Under_Scored" in turn
          if i % 3 == 1 then names[i] = h:upper()
          elseif i % 3 == 2 then names[i] = "  " .. h:lower():gsub(" ", "   ") .. "\t"
          else names[i] = h:gsub(" ", "_") end
        end
        local got = dashboard.recognise(names)
        assert.is_table(got, fmt.title)
        assert.are.equal(fmt.title, got.title)
        assert.are.equal(resource, got.resource)
        -- each column is the field of its documented name, at the file's place
        for i = 1, #names do
          local documented = fmt.header[#names - i + 1]
          assert.are.equal(documented, got.columns[i].name)
          assert.are.equal(fmt.columns[#names - i + 1].field, got.columns[i].field)
        end
        -- the header as the file has it, trimmed
        for i = 1, #names do
          assert.are.equal((names[i]:gsub("^%s+", ""):gsub("%s+$", "")), got.header[i])
        end
        n = n + 1
      end
    end
    assert.are.equal(9, n)
  end)

  it("maps each documented column name to the API field the brief and the pages give it", function()
    local want = {
      ["values"] = "pattern", ["pattern"] = "pattern", ["rule type"] = "pattern_type",
      ["pattern type"] = "pattern_type", ["sender verification"] = "verify_sender",
      ["verify email"] = "verify_sender", ["trusted sender"] = "is_trusted_sender",
      ["exempt recipient"] = "is_exempt_recipient", ["acceptable sender"] = "is_acceptable_sender",
      ["notes"] = "comments", ["blocked sender"] = "pattern", ["blocked sender type"] = "pattern_type",
      ["is regex"] = "is_regex", ["domain"] = "pattern", ["proximity"] = "is_similarity",
      ["new"] = "is_recent", ["recent"] = "is_recent", ["display name"] = "name", ["email"] = "email",
    }
    local seen = 0
    for _, resource in ipairs(dashboard.resources) do
      for _, fmt in ipairs(dashboard.formats(resource)) do
        for _, col in ipairs(fmt.columns) do
          assert.are.equal(want[dashboard.normalise(col.name)], col.field, fmt.title .. ": " .. col.name)
          seen = seen + 1
        end
      end
    end
    assert.are.equal(39, seen)
  end)

  it("gives nil for a header that is no dashboard file's", function()
    -- the module's own CSV, of API field names
    assert.is_nil(dashboard.recognise({ "pattern", "pattern_type", "is_regex", "comments" }))
    assert.is_nil(dashboard.recognise({ "name", "email", "is_email_regex" }))
    assert.is_nil(dashboard.recognise({ "name", "email" }))
    -- a column less, a column more, a name twice, an unknown name
    assert.is_nil(dashboard.recognise({ "Blocked Sender", "Blocked Sender Type", "Is Regex" }))
    assert.is_nil(dashboard.recognise({ "Domain", "Proximity", "New", "Notes", "Owner" }))
    assert.is_nil(dashboard.recognise({ "Display Name", "Email", "Email" }))
    assert.is_nil(dashboard.recognise({ "Display_Name", "E-mail" }))
    assert.is_nil(dashboard.recognise({}))
    assert.is_nil(dashboard.recognise({ "", " " }))
  end)

  it("allows a blank header cell, a column of no field", function()
    local fmt = assert(dashboard.recognise({ "Display_Name", "", "Email", " " }))
    assert.are.same({ false, false }, { fmt.columns[2], fmt.columns[4] })
    assert.are.same({ name = "A B", email = "a@b.example", is_email_regex = false },
                    dashboard.entry(fmt, { "A B", "anything", "a@b.example", "" }))
    assert.are.same({ "Display_Name", "", "Email", "" }, fmt.header)
  end)

  it("says what it assumes for every field the file has no column for", function()
    for _, resource in ipairs(dashboard.resources) do
      for _, fmt in ipairs(dashboard.formats(resource)) do
        local told = {}
        for _, sentence in ipairs(fmt.assumed) do told[sentence:match("^([%w_]+):")] = true end
        for field in pairs(fmt.fixed) do assert.is_true(told[field], fmt.title .. ": " .. field) end
        for field in pairs(fmt.derived) do assert.is_true(told[field], fmt.title .. ": " .. field) end
      end
    end
    local fmt = dashboard.recognise({ "Pattern", "Pattern Type", "Verify Email", "Trusted Sender",
                                      "Exempt Recipient", "Acceptable Sender", "Notes" })
    assert.are.same({ is_regex = false }, fmt.fixed)
    assert.are.equal("is_regex: the dashboard's file has no column for it: read as false (a regular expression"
                     .. " goes in the module's own CSV)", fmt.assumed[1])
    -- a format with a column for every field assumes nothing
    assert.are.same({}, dashboard.recognise({ "Blocked Sender", "Blocked Sender Type", "Is Regex", "Notes" }).assumed)
  end)

  it("gives every natural key field of the resource a value, in every format", function()
    for _, resource in ipairs(dashboard.resources) do
      for _, fmt in ipairs(dashboard.formats(resource)) do
        local gives = fields_of(fmt, setmetatable({}, { __index = function() return true end }))
        for _, field in ipairs(overlay[resource].key) do
          assert.is_true(gives[field], fmt.title .. ": " .. field)
        end
      end
    end
  end)

  it("refuses a header that is not a list of texts, as a misuse", function()
    assert.has_error(function() dashboard.recognise("Domain,Notes") end,
                     "bad argument #1 to 'recognise' (a list of header names expected, got string)")
    assert.has_error(function() dashboard.recognise({ "Domain", 4 }) end,
                     "bad argument #1 to 'recognise' (header name 2 is a number, not text)")
  end)
end)

describe("a column's read", function()
  local policies = assert(dashboard.recognise({ "Pattern", "Pattern Type", "Verify Email", "Trusted Sender",
                                                "Exempt Recipient", "Acceptable Sender", "Notes" }))
  local function read(fmt, i, text) return fmt.columns[i].read(text) end

  it("trims, takes true and false in any case, and pattern types in any case", function()
    assert.are.equal("a@b.example", read(policies, 1, "  a@b.example \t"))
    assert.are.equal(true, read(policies, 3, " TRUE"))
    assert.are.equal(false, read(policies, 3, "False "))
    assert.are.equal("DOMAIN", read(policies, 2, " domain "))
    assert.are.equal("UNKNOWN", read(policies, 2, "Unknown"))
    assert.are.equal("a, b", read(policies, 7, " a, b "))
  end)

  it("reads an empty Notes cell, or one the row lacks, as no comment at all", function()
    assert.is_nil(read(policies, 7, ""))
    assert.is_nil(read(policies, 7, "   "))
    assert.is_nil(read(policies, 7, nil))
    -- absent, not bad: no why
    assert.is_nil(select(2, read(policies, 7, "")))
  end)

  it("says why a cell is bad, naming the column", function()
    assert.are.same({ nil, "Verify Email: 'maybe' is not true or false" }, { read(policies, 3, " maybe ") })
    assert.are.same({ nil, "Acceptable Sender: 'yes' is not true or false" }, { read(policies, 6, "yes") })
    assert.are.same({ nil, "Trusted Sender: '1' is not true or false" }, { read(policies, 4, "1") })
    assert.are.same({ nil, "Exempt Recipient: empty: write true or false" }, { read(policies, 5, " ") })
    assert.are.same({ nil, "Pattern Type: 'REGEX' is not EMAIL, DOMAIN, IP or UNKNOWN" }, { read(policies, 2, "REGEX") })
    assert.are.same({ nil, "Pattern Type: empty: write EMAIL, DOMAIN, IP or UNKNOWN" }, { read(policies, 2, "") })
    assert.are.same({ nil, "Pattern: empty: it needs a value" }, { read(policies, 1, nil) })
    -- a control character is shown, never written raw
    assert.are.same({ nil, "Verify Email: 'tr\\x1Bue' is not true or false" }, { read(policies, 3, "tr\27ue") })
  end)

  it("names the column in every format's bad boolean", function()
    for _, resource in ipairs(dashboard.resources) do
      for _, fmt in ipairs(dashboard.formats(resource)) do
        for _, col in ipairs(fmt.columns) do
          if col.field:find("^is_") or col.field == "verify_sender" then
            assert.are.same({ nil, col.name .. ": 'maybe' is not true or false" }, { col.read("maybe") })
          end
        end
      end
    end
  end)
end)

describe("dashboard.entry", function()
  it("reads a row as an entry, with fixed fields, and says why for a bad cell", function()
    local fmt = assert(dashboard.recognise({ "Domain", "Proximity", "New", "Notes" }))
    assert.are.same({ pattern = "a.example", is_similarity = true, is_recent = false, is_regex = false },
                    dashboard.entry(fmt, { "a.example", "true", "false", "" }))
    assert.are.same({ nil, "New: 'soon' is not true or false" }, { dashboard.entry(fmt, { "a.example", "true", "soon" }) })
    -- cells past the header: blank ones are nothing, others a mistake
    assert.is_table(dashboard.entry(fmt, { "a.example", "true", "false", "", " " }))
    assert.are.same({ nil, "has 5 cells where the header has 4" },
                    { dashboard.entry(fmt, { "a.example", "true", "false", "", "x" }) })
  end)

  it("read_row names every bad cell of a row, in column order, and entry the first of them", function()
    local fmt = assert(dashboard.recognise({ "Pattern", "Pattern Type", "Verify Email", "Trusted Sender",
                                             "Exempt Recipient", "Acceptable Sender", "Notes" }))
    local row = { "", "REGEX", "maybe", "true", "false", "yes", "", "x" }
    local e, problems = dashboard.read_row(fmt, row)
    assert.is_nil(e)
    assert.are.same({
      { column = 1, why = "Pattern: empty: it needs a value" },
      { column = 2, why = "Pattern Type: 'REGEX' is not EMAIL, DOMAIN, IP or UNKNOWN" },
      { column = 3, why = "Verify Email: 'maybe' is not true or false" },
      { column = 6, why = "Acceptable Sender: 'yes' is not true or false" },
      { column = 8, why = "has 8 cells where the header has 7" },
    }, problems)
    assert.are.same({ nil, "Pattern: empty: it needs a value" }, { dashboard.entry(fmt, row) })
    -- cells the row lacks are named by their columns
    e, problems = dashboard.read_row(fmt, { "a@example.com", "EMAIL", "true" })
    assert.is_nil(e)
    assert.are.same({ 4, 5, 6 }, { problems[1].column, problems[2].column, problems[3].column })
    assert.are.equal(3, #problems)
    -- a good row: the entry, as entry gives it
    row = { "a@example.com", "email", "true", "false", "false", "true", "" }
    assert.are.same(dashboard.entry(fmt, row), (dashboard.read_row(fmt, row)))
    assert.are.equal("EMAIL", dashboard.read_row(fmt, row).pattern_type)
  end)

  it("takes a pattern type from the pattern's shape where the file has no column for it", function()
    local fmt = assert(dashboard.recognise({ "Blocked_Sender", "Notes" }))
    local function kind(p) return dashboard.entry(fmt, { p, "" }).pattern_type end
    assert.are.equal("IP", kind("192.0.2.1"))
    assert.are.equal("IP", kind("255.255.255.255"))
    assert.are.equal("DOMAIN", kind("256.1.1.1"))
    assert.are.equal("DOMAIN", kind("0001.2.3.4"))
    assert.are.equal("DOMAIN", kind("1.2.3"))
    assert.are.equal("EMAIL", kind("x@y.example"))
    assert.are.equal("DOMAIN", kind("y.example"))
  end)
end)

describe("dashboard.resources, formats and header", function()
  it("lists the four resources, sorted", function()
    assert.are.same({ "allow_policies", "block_senders", "impersonation_registry", "trusted_domains" },
                    dashboard.resources)
  end)

  it("writes the header of each resource's current example file", function()
    assert.are.same({ "Values", "Rule Type", "Sender Verification", "Trusted Sender", "Exempt Recipient",
                      "Acceptable Sender", "Notes" }, dashboard.header("allow_policies"))
    assert.are.same({ "Blocked Sender", "Blocked Sender Type", "Is Regex", "Notes" }, dashboard.header("block_senders"))
    assert.are.same({ "Domain", "Proximity", "New", "Notes" }, dashboard.header("trusted_domains"))
    assert.are.same({ "Display Name", "Email" }, dashboard.header("impersonation_registry"))
    assert.is_nil(dashboard.header("domains"))
    assert.is_nil(dashboard.formats("domains"))
  end)

  it("gives every format with its source page, the current one first", function()
    for _, resource in ipairs(dashboard.resources) do
      local list = dashboard.formats(resource)
      assert.is_true(list[1].current)
      assert.are.same(dashboard.header(resource), list[1].header)
      for i, fmt in ipairs(list) do
        assert.are.equal(i == 1, fmt.current)
        assert.matches("^https://developers%.cloudflare%.com/.+/$", fmt.source)
      end
    end
  end)
end)

describe("dashboard.row", function()
  for _, resource in ipairs(dashboard.resources) do
    it("writes a " .. resource .. " entry that reads back as the same entry, in every format it fits", function()
      local e = API[resource]
      local cells = assert(dashboard.row(resource, e))
      local fmt = assert(dashboard.recognise(dashboard.header(resource)))
      local back = assert(dashboard.entry(fmt, cells))
      assert.are.same(fields_of(fmt, e), back)
      -- and through a file's own order
      local shuffled = assert(dashboard.recognise(reversed(dashboard.header(resource))))
      local cells2 = assert(dashboard.row(resource, e, shuffled))
      assert.are.same(reversed(cells), cells2)
      assert.are.same(back, dashboard.entry(shuffled, cells2))
    end)
  end

  it("writes booleans as true and false, and no comment (absent or null) as an empty cell", function()
    local e = {}
    for k, v in pairs(API.allow_policies) do e[k] = v end
    assert.are.same({ "partner.example", "DOMAIN", "true", "false", "false", "true", "marketing, via their ESP" },
                    dashboard.row("allow_policies", e))
    e.comments = nil
    assert.are.equal("", dashboard.row("allow_policies", e)[7])
    -- lua-cjson's null is a light userdata: any userdata stands for it here
    e.comments = io.stdout
    assert.are.equal("", dashboard.row("allow_policies", e)[7])
  end)

  it("writes every fixture's entries back to rows that read as the same entries", function()
    for _, name in ipairs(NAMES) do
      local fmt, list = read_fixture(name)
      for _, e in ipairs(list) do
        local cells = assert(dashboard.row(fmt.resource, e, fmt))
        assert.are.same(e, dashboard.entry(fmt, cells))
      end
    end
  end)

  it("refuses a regular expression where the format has no column for one", function()
    local e = {}
    for k, v in pairs(API.allow_policies) do e[k] = v end
    e.is_regex = true
    assert.are.same({ nil, "is_regex is true, but the file has no column for it and reads it as false"
                           .. " (Cloudflare dashboard: allow policies)" }, { dashboard.row("allow_policies", e) })
    assert.are.same({ nil, "is_regex is true, but the file has no column for it and reads it as false"
                           .. " (Cloudflare dashboard: trusted domains)" },
                    { dashboard.row("trusted_domains", { pattern = ".*\\.example", is_regex = true,
                                                         is_similarity = false, is_recent = true }) })
    assert.are.same({ nil, "is_email_regex is true, but the file has no column for it and reads it as false"
                           .. " (Cloudflare dashboard: impersonation registry)" },
                    { dashboard.row("impersonation_registry", { name = "A", email = ".*@x", is_email_regex = true }) })
    -- the 2025 blocked-senders columns too; the current ones hold it
    local old = dashboard.formats("block_senders")[2]
    assert.is_nil((dashboard.row("block_senders", API.block_senders, old)))
    assert.are.same({ ".*@bad\\.example", "EMAIL", "true", 'say "no"' }, dashboard.row("block_senders", API.block_senders))
  end)

  it("refuses what would read back otherwise, or a field the format needs that the entry lacks", function()
    local function blocked(changes)
      local e = { pattern = "x@y.example", pattern_type = "EMAIL", is_regex = false }
      for k, v in pairs(changes) do e[k] = v end
      return { dashboard.row("block_senders", e) }
    end
    assert.are.same({ nil, "pattern ' x@y.example' would read back as 'x@y.example' (a cell is read trimmed)" },
                    blocked({ pattern = " x@y.example" }))
    assert.are.same({ nil, "comments 'note ' would read back as 'note' (a cell is read trimmed)" },
                    blocked({ comments = "note " }))
    assert.are.same({ nil, "pattern_type 'email' would read back as 'EMAIL' (a pattern type is read in capitals)" },
                    blocked({ pattern_type = "email" }))
    assert.are.same({ nil, "is_regex is missing: the Is Regex column needs a value" },
                    { dashboard.row("block_senders", { pattern = "x@y.example", pattern_type = "EMAIL" }) })
    assert.are.same({ nil, "is_regex is null: the Is Regex column needs a value" }, blocked({ is_regex = io.stdout }))
    assert.are.same({ nil, "pattern_type 'REGEX' cannot be written: Blocked Sender Type: 'REGEX' is not EMAIL,"
                           .. " DOMAIN, IP or UNKNOWN" }, blocked({ pattern_type = "REGEX" }))
    assert.are.same({ nil, "is_regex is not true or false" }, blocked({ is_regex = "false" }))
    assert.are.same({ nil, "pattern is not text" }, blocked({ pattern = 42 }))
    assert.are.same({ nil, "pattern is '': the Blocked Sender column needs a value" }, blocked({ pattern = "" }))
    -- a pattern type the Area 1 file would take otherwise from the pattern
    local area1 = dashboard.formats("block_senders")[3]
    assert.are.same({ nil, "pattern_type is 'DOMAIN', but the file has no column for it and takes 'EMAIL' from"
                           .. " the pattern (Area 1 dashboard: blocked senders)" },
                    { dashboard.row("block_senders", { pattern = "x@y.example", pattern_type = "DOMAIN",
                                                       is_regex = false }, area1) })
    assert.are.same({ "x@y.example", "" }, dashboard.row("block_senders", { pattern = "x@y.example",
                                                        pattern_type = "EMAIL", is_regex = false }, area1))
  end)

  it("leaves out the registry's comments and server-made fields, which the file has no column for", function()
    assert.are.same({ "Grace Hopper", "grace@corp.example" }, dashboard.row("impersonation_registry",
                                                                           API.impersonation_registry))
  end)

  it("says so for a resource with no dashboard format, or another resource's format", function()
    assert.are.same({ nil, "domains has no dashboard CSV format" }, { dashboard.row("domains", {}) })
    local fmt = dashboard.formats("trusted_domains")[1]
    assert.are.same({ nil, "Cloudflare dashboard: trusted domains is a format for trusted_domains, not block_senders" },
                    { dashboard.row("block_senders", API.block_senders, fmt) })
    assert.has_error(function() dashboard.row("block_senders", "x") end,
                     "bad argument #2 to 'row' (an entry table expected, got string)")
  end)
end)

describe("the dashboard module", function()
  it("loads without the C core", function()
    local saved_core, saved_preload = package.loaded["cloudflare.email_security.core"],
      package.preload["cloudflare.email_security.core"]
    package.loaded["cloudflare.email_security.core"] = nil
    package.preload["cloudflare.email_security.core"] = function() error("the C core was loaded") end
    local ok, fresh = pcall(dofile, "lua/cloudflare/email_security/sync/dashboard.lua")
    package.loaded["cloudflare.email_security.core"] = saved_core
    package.preload["cloudflare.email_security.core"] = saved_preload
    assert.is_true(ok, fresh)
    assert.are.same(dashboard.resources, fresh.resources)
  end)
end)

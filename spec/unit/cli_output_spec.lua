-- What the command-line tool prints (cli_output.lua, cli_yaml.lua): tables
-- a person reads (key fields first, fitted to the terminal, nothing that
-- drives it), JSON (one line, or indented), YAML that reads back as the
-- JSON does, CSV, --fields, and the terminal's size and pager, decided
-- without a terminal.
local output = require("cloudflare.email_security.cli_output")
local yaml = require("cloudflare.email_security.cli_yaml")
local compile = require("cloudflare.email_security.schema.compile")
local entries = require("cloudflare.email_security.sync.entries")
local keys = require("cloudflare.email_security.sync.keys")
local utf8_length = require("cloudflare.email_security.schema.validate").utf8_length
local cjson = require("cjson")
local es = require("cloudflare.email_security")

local null = es.null
local ID = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"
local TIME = "2024-05-06T07:08:09Z"
-- a title change, a colour, a CSI in C1 form, a direction override, an
-- isolate, a line separator, the Arabic letter mark
local HOSTILE = "\27]0;owned\7 \27[31mred \194\155 \226\128\174 \226\129\166 \226\128\168 \216\156 end"

local function described(name) return compile.resource(require("cloudflare.email_security.resources." .. name)) end
local NAMES = require("cloudflare.email_security.resources.names")

local function lines_of(text)
  local out = {}
  for line in text:gmatch("([^\n]*)\n") do out[#out + 1] = line end
  return out
end

local function words_of(line)
  local out = {}
  for w in line:gmatch("%S+") do out[#out + 1] = w end
  return out
end

-- Nothing a terminal obeys: no C0 control but the line break, no DEL, no
-- C1 control, no direction or zero-width mark.
local function assert_inert(text)
  assert.is_nil(text:find("[%z\1-\9\11-\31\127]"), text)
  assert.are.equal(text, require("cloudflare.email_security.errors").escape_unicode_controls(text))
end

local POLICY = {
  id = ID, pattern = "ceo@example.com", pattern_type = "EMAIL", is_regex = false, comments = null,
  is_acceptable_sender = true, is_exempt_recipient = false, is_trusted_sender = false, verify_sender = true,
  created_at = TIME, modified_at = TIME, last_modified = TIME, is_spoof = false,
}

local DOMAIN = {
  id = ID, domain = "example.com", allowed_delivery_modes = { "DIRECT", "BCC" }, drop_dispositions = {},
  authorization = { authorized = true, status_message = null, timestamp = TIME },
  emails_processed = { timestamp = TIME, total_emails_processed = 5, total_emails_processed_previous = 3 },
  folder = null, lookback_hops = 2, regions = { "US" }, transport = "smtp.example.com", created_at = TIME,
  ip_restrictions = {},
}

describe("the tool's table", function()
  local policies = described("allow_policies")

  it("puts the key fields first, then id, then the rest in the description's order; no deprecated "
    .. "field, no timestamp", function()
    assert.are.same({ "pattern_type", "pattern", "is_regex" }, keys.of("allow_policies").fields)
    local text = assert(output.render({ POLICY }, { desc = policies }))
    local header = words_of(lines_of(text)[1])
    assert.are.same({ "pattern_type", "pattern", "is_regex", "id", "comments", "is_acceptable_sender",
                      "is_exempt_recipient", "is_trusted_sender", "verify_sender" }, header)
    assert.are.same({ "EMAIL", "ceo@example.com", "false", ID, "true", "false", "false", "true" },
                    words_of(lines_of(text)[2]))
  end)

  it("has id first for a resource the overlay has no key for", function()
    assert.is_nil(keys.of("no_such_resource"))
    local text = assert(output.render({ POLICY }, { desc = policies, name = "no_such_resource" }))
    local header = words_of(lines_of(text)[1])
    assert.are.same({ "id", "comments", "is_acceptable_sender" }, { header[1], header[2], header[3] })
  end)

  it("shows null and absent fields empty, and lists and objects in one short cell", function()
    local other = { id = "b", domain = "b.example", authorization = { authorized = false },
                    allowed_delivery_modes = { { x = 1 }, { x = 2 } } }
    local text = assert(output.render({ DOMAIN, other }, { desc = described("domains"), fields =
      { "domain", "folder", "allowed_delivery_modes", "drop_dispositions", "authorization", "emails_processed",
        "transport" } }))
    local lines = lines_of(text)
    assert.are.equal(3, #lines)
    local function column(line, name)
      local at = lines[1]:find(name, 1, true)
      local after = lines[1]:find("%S", lines[1]:find(" ", at, true) or #lines[1] + 1)
      return (line:sub(at, after and after - 1 or -1):gsub("%s+$", ""))
    end
    assert.are.equal("", column(lines[2], "folder"))
    assert.are.equal("DIRECT, BCC", column(lines[2], "allowed_delivery_modes"))
    assert.are.equal("", column(lines[2], "drop_dispositions"))
    -- an object's null fields and timestamps are left out of the table
    assert.are.equal("authorized=true", column(lines[2], "authorization"))
    assert.are.equal("total_emails_processed=5, total_emails_processed_previous=3",
                     column(lines[2], "emails_processed"))
    assert.are.equal("2 items", column(lines[3], "allowed_delivery_modes"))
    assert.are.equal("authorized=false", column(lines[3], "authorization"))
    assert.are.equal("", column(lines[3], "transport"))
    -- no spaces are left at the end of a line
    for _, line in ipairs(lines) do assert.is_nil(line:find(" $"), line) end
  end)

  it("escapes what would drive a terminal, in cells and in summaries, and aligns by characters", function()
    local e = { id = "x", pattern = HOSTILE, pattern_type = "EMAIL", is_regex = false, comments = "Zürich\nline" }
    local list = { e, { id = "y", pattern = "plain", pattern_type = "DOMAIN", comments = "plain" } }
    for _, kind in ipairs({ "table", "wide" }) do
      local text = assert(output.render(list, { desc = policies, format = kind }))
      assert_inert(text)
      assert.truthy(text:find("\\x1b]0;owned\\x07 \\x1b[31mred \\u009b \\u202e \\u2066 \\u2028 \\u061c end", 1, true),
                    text)
      assert.truthy(text:find("Zürich line", 1, true), text)
      local lines = lines_of(text)
      local at = utf8_length(lines[1]:sub(1, lines[1]:find("comments", 1, true) - 1))
      assert.are.equal(at, utf8_length(lines[2]:sub(1, lines[2]:find("Zürich", 1, true) - 1)))
      assert.are.equal(at, utf8_length(lines[3]:sub(1, lines[3]:find("plain$") - 1)))
    end
    local nested = assert(output.render({ { id = "z", domain = "d", regions = { HOSTILE },
      authorization = { status_message = HOSTILE } } }, { desc = described("domains"), fields = "regions,authorization" }))
    assert_inert(nested)
    assert.truthy(nested:find("status_message=\\x1b]0;owned", 1, true), nested)
  end)

  it("fits the terminal's width: the widest columns are cut alike with an ellipsis of one column", function()
    -- the key fields (email, is_email_regex) and id are never cut: name
    -- and comments are
    local e = { id = "0123456789abcdef", email = "e@x.io", is_email_regex = true, name = ("n"):rep(40),
                comments = "ünïcödé " .. ("c"):rep(30) }
    local how = { desc = described("impersonation_registry"), fields = { "email", "name", "is_email_regex", "id",
                                                                         "comments" } }
    local natural = lines_of(assert(output.render({ e }, how)))
    assert.are.equal(6 + 2 + 40 + 2 + 14 + 2 + 16 + 2 + 38, utf8_length(natural[2]))
    how.width = 80
    local lines = lines_of(assert(output.render({ e }, how)))
    -- 80 columns: 8 of gaps, 6 + 14 + 16 for the whole ones, 36 for the two cut ones: 18 each
    assert.are.equal(80, utf8_length(lines[2]))
    local cells = words_of(lines[2])
    assert.are.equal("e@x.io", cells[1])
    assert.are.equal(("n"):rep(17) .. "…", cells[2])
    assert.are.equal("true", cells[3])
    assert.are.equal("0123456789abcdef", cells[4])
    assert.are.equal("ünïcödé", cells[5])
    assert.are.equal(("c"):rep(9) .. "…", cells[6])
    for _, line in ipairs(lines) do assert.truthy(utf8_length(line) <= 80, line) end
    -- a header wider than its column is cut too: 14 columns for the two, 7 each
    how.width = 58
    lines = lines_of(assert(output.render({ e }, how)))
    assert.are.same({ "email", "name", "is_email_regex", "id", "commen…" }, words_of(lines[1]))
    assert.are.same({ "e@x.io", ("n"):rep(6) .. "…", "true", "0123456789abcdef", "ünïcöd…" }, words_of(lines[2]))
    assert.are.equal(58, utf8_length(lines[2]))
    -- 15 columns: the one left over goes to the first cut one
    how.width = 59
    lines = lines_of(assert(output.render({ e }, how)))
    assert.are.same({ "e@x.io", ("n"):rep(7) .. "…", "true", "0123456789abcdef", "ünïcöd…" }, words_of(lines[2]))
    assert.are.equal(59, utf8_length(lines[2]))
    -- a table of a resource the module has no key for, or output.table_text's: only id is kept whole
    lines = lines_of(output.table_text({ e }, { "email", "name", "id", "comments" }, 40))
    assert.are.same({ "e@x.io", "nnnnn…", "0123456789abcdef", "ünïcö…" }, words_of(lines[2]))
  end)

  it("never cuts the key fields or id: two entries whose keys differ late stay told apart, ids whole", function()
    -- the review's case: the default table of two policies on an 80-column terminal
    local a = { id = "2d655a41-8b7e-4a5c-9d3f-0e1f2a3b4c5d", pattern = "alice@example.com", pattern_type = "EMAIL",
                is_regex = false, comments = null, is_acceptable_sender = true, is_exempt_recipient = false,
                is_trusted_sender = false, verify_sender = true }
    local b = {}
    for k, v in pairs(a) do b[k] = v end
    b.id, b.pattern = "bab0ee12-3c4d-4e5f-8a9b-0c1d2e3f4a5b", "alice@example.org"
    local lines = lines_of(assert(output.render({ a, b }, { desc = policies, width = 80 })))
    local first, second = words_of(lines[2]), words_of(lines[3])
    assert.are.same({ "EMAIL", "alice@example.com", "false", a.id }, { first[1], first[2], first[3], first[4] })
    assert.are.same({ "EMAIL", "alice@example.org", "false", b.id }, { second[1], second[2], second[3], second[4] })
    assert.are.same({ "pattern_type", "pattern", "is_regex", "id", "comme…", "is_ac…", "is_ex…", "is_tr…",
                      "verif…" }, words_of(lines[1]))
    -- the others at six columns, and the line runs over
    assert.are.equal(12 + 17 + 8 + 36 + 5 * 6 + 8 * 2, utf8_length(lines[1]))
  end)

  it("never cuts a column below six columns: a terminal too narrow gets every column, running over", function()
    local e = { id = ("i"):rep(30), pattern = ("p"):rep(30), pattern_type = "EMAIL", is_regex = true,
                comments = ("c"):rep(30), is_trusted_sender = false }
    local lines = lines_of(assert(output.render({ e }, { desc = policies, width = 10,
      fields = { "pattern_type", "pattern", "is_regex", "id", "comments", "is_trusted_sender" } })))
    assert.are.same({ "pattern_type", "pattern", "is_regex", "id", "comme…", "is_tr…" }, words_of(lines[1]))
    assert.are.same({ "EMAIL", ("p"):rep(30), "true", ("i"):rep(30), "ccccc…", "false" }, words_of(lines[2]))
  end)

  it("wide: every current column with the timestamps, nothing cut, whatever the width", function()
    local text = assert(output.render({ POLICY }, { desc = policies, format = "wide", width = 20 }))
    local header = words_of(lines_of(text)[1])
    assert.are.same({ "pattern_type", "pattern", "is_regex", "id", "comments", "created_at", "is_acceptable_sender",
                      "is_exempt_recipient", "is_trusted_sender", "modified_at", "verify_sender" }, header)
    assert.is_nil(text:find("…", 1, true), text)
    assert.truthy(text:find(TIME .. "  true", 1, true), text)
    -- an object's timestamp too
    text = assert(output.render({ DOMAIN }, { desc = described("domains"), format = "wide" }))
    assert.truthy(text:find("authorized=true, timestamp=" .. TIME, 1, true), text)
  end)

  it("leaves the header row out with no_headers, and an empty list with no header is no text", function()
    local text = assert(output.render({ POLICY }, { desc = policies, no_headers = true }))
    assert.are.equal(1, #lines_of(text))
    assert.are.equal("EMAIL", words_of(text)[1])
    assert.are.equal("", assert(output.render({}, { desc = policies, no_headers = true })))
    assert.are.equal(1, #lines_of(assert(output.render({}, { desc = policies }))))
  end)

  it("fields picks and orders the columns (a timestamp too), each once", function()
    local text = assert(output.render({ POLICY }, { desc = policies, fields = { "modified_at", "id", "modified_at" } }))
    assert.are.equal("modified_at           id\n" .. TIME .. "  " .. ID .. "\n", text)
    assert.are.same(lines_of(text), lines_of(assert(output.render({ POLICY }, { desc = policies,
      fields = " modified_at , id" }))))
  end)

  it("an unknown field is an error naming it and the known ones (with a near miss suggested)", function()
    local text, err = output.render({ POLICY }, { desc = policies, fields = { "id", "patern" } })
    assert.is_nil(text)
    assert.truthy(err:find("unknown field 'patern'", 1, true), err)
    assert.truthy(err:find("did you mean `pattern`", 1, true), err)
    assert.truthy(err:find("comments, created_at, id, is_acceptable_sender", 1, true), err)
    for _, kind in ipairs({ "table", "wide", "json", "yaml", "csv" }) do
      text, err = output.render({ POLICY }, { desc = policies, format = kind, fields = { "\27[2Jx" } })
      assert.is_nil(text)
      assert.truthy(err:find("unknown field '\\x1b[2Jx'", 1, true), err)
      assert.is_nil(err:find("did you mean", 1, true), err)
    end
    text, err = output.render({ POLICY }, { desc = policies, fields = {} })
    assert.is_nil(text)
    assert.truthy(err:find("no field", 1, true), err)
    text, err = output.render({ POLICY }, { desc = policies, format = "xml" })
    assert.is_nil(text)
    assert.truthy(err:find("unknown output format 'xml'", 1, true), err)
  end)
end)

describe("the tool's single entry", function()
  local policies = described("allow_policies")

  it("is field  value lines, the key first, timestamps kept, null empty, absent fields left out", function()
    local e = {}
    for k, v in pairs(POLICY) do e[k] = v end
    e.verify_sender = nil
    local text = assert(output.render(e, { desc = policies, one = true }))
    assert.are.equal(table.concat({
      "pattern_type          EMAIL",
      "pattern               ceo@example.com",
      "is_regex              false",
      "id                    " .. ID,
      "comments",
      "created_at            " .. TIME,
      "is_acceptable_sender  true",
      "is_exempt_recipient   false",
      "is_trusted_sender     false",
      "modified_at           " .. TIME,
    }, "\n") .. "\n", text)
  end)

  it("wide adds the deprecated fields and those the description lacks, lists and objects whole", function()
    local e = {}
    for k, v in pairs(DOMAIN) do e[k] = v end
    e.zz_new = HOSTILE
    local text = assert(output.render(e, { desc = described("domains"), one = true, format = "wide" }))
    assert_inert(text)
    local lines = lines_of(text)
    assert.are.equal("domain                  example.com", lines[1])
    assert.truthy(text:find('\nauthorization           {"authorized":true,"status_message":null,"timestamp":"'
      .. TIME .. '"}\n', 1, true), text)
    assert.truthy(text:find('\ndrop_dispositions       []\n', 1, true), text)
    assert.truthy(lines[#lines]:find("^zz_new  +\\x1b]0;owned"), lines[#lines])
    local policy = assert(output.render(POLICY, { desc = policies, one = true, format = "wide" }))
    assert.truthy(policy:find("\nis_spoof              false\n", 1, true), policy)
    assert.truthy(policy:find("\nlast_modified         " .. TIME .. "\n", 1, true), policy)
    assert.is_nil(assert(output.render(POLICY, { desc = policies, one = true })):find("is_spoof", 1, true))
    -- a name longer than string.format pads
    local long = assert(output.render({ id = "x", [("f"):rep(120)] = "v" }, { desc = policies, one = true,
                                                                              format = "wide" }))
    assert.are.equal("id" .. (" "):rep(120) .. "x\n" .. ("f"):rep(120) .. "  v\n", long)
  end)

  it("fields picks its lines, in that order, absent ones empty", function()
    local text = assert(output.render({ id = "x", pattern = "p" }, { desc = policies, one = true,
      fields = { "pattern", "comments", "id" } }))
    assert.are.equal("pattern   p\ncomments\nid        x\n", text)
  end)

  it("the older helpers still work: entry_text shows null empty, table_text aligns", function()
    assert.are.equal("id        x\ncomments\n", output.entry_text({ id = "x", comments = null }, { "id", "comments",
      "pattern" }))
    assert.are.equal("id  pattern\nx   p\n", output.table_text({ { id = "x", pattern = "p" } }, { "id", "pattern" }))
    assert.are.equal("null", output.text_of(null))
    assert.are.equal("\\x1b[31m", output.text_of("\27[31m"))
  end)
end)

describe("the tool's JSON", function()
  local domains = described("domains")

  it("is one line from the description's writer (an empty list stays []), or indented by two spaces", function()
    local text = assert(output.render({ DOMAIN }, { desc = domains, format = "json" }))
    assert.are.equal(1, #lines_of(text))
    assert.are.equal(output.json_text({ DOMAIN }, output.LIST, domains.entry), text)
    assert.truthy(text:find('"drop_dispositions":[]', 1, true), text)
    local indented = assert(output.render({ DOMAIN }, { desc = domains, format = "json", indent = true }))
    assert.are.same(cjson.decode(text), cjson.decode(indented))
    assert.truthy(indented:find('^%[\n  {\n    "allowed_delivery_modes": %[\n      "DIRECT",\n      "BCC"\n    %],\n'),
                  indented)
    assert.truthy(indented:find('\n    "drop_dispositions": [],\n', 1, true), indented)
    assert.truthy(indented:find('\n    "authorization": {\n      "authorized": true,\n', 1, true), indented)
    assert.truthy(indented:find('\n  }\n]\n$'), indented)
    assert.are.equal("[]\n", assert(output.render({}, { desc = domains, format = "json", indent = true })))
  end)

  it("indents only outside strings: brackets, commas, colons and escaped quotes in text stay", function()
    local tricky = 'a,b:{c}[d] \\"e\\" ,"f":' .. "\\"
    local text = assert(output.render({ id = "x", comments = tricky, exclude = {} },
      { desc = described("sending_domain_restrictions"), format = "json", one = true, indent = true }))
    assert.are.equal(tricky, cjson.decode(text).comments)
    assert.are.equal('{\n  "comments": "a,b:{c}[d] \\\\\\"e\\\\\\" ,\\"f\\":\\\\",\n  "exclude": [],\n  "id": "x"\n}\n',
                     text)
  end)

  it("fields keeps only those keys, in that order, in a list and in one entry", function()
    local text = assert(output.render({ DOMAIN }, { desc = domains, format = "json",
      fields = { "regions", "id", "folder", "integration_id" } }))
    assert.are.equal('[{"regions":["US"],"id":"' .. ID .. '","folder":null}]\n', text)
    text = assert(output.render(DOMAIN, { desc = domains, format = "json", one = true, fields = "drop_dispositions,id" }))
    assert.are.equal('{"drop_dispositions":[],"id":"' .. ID .. '"}\n', text)
  end)

  it("escapes what would drive a terminal, losing nothing", function()
    local text = assert(output.render({ id = "x", comments = HOSTILE }, { desc = described("url_ignore_patterns"),
      format = "json", one = true, indent = true }))
    assert_inert(text)
    assert.are.equal(HOSTILE, cjson.decode(text).comments)
  end)
end)

describe("the tool's YAML", function()
  it("quotes a string only where a plain one would read as something else", function()
    for _, plain in ipairs({ "example.com", "ceo@example.com", "a:b", "a#b", "Zürich", "it's", "a, b", "k=v",
                             "x - y", ".x", "\194\160nbsp", "http://x.example/a?b" }) do
      assert.are.equal(plain, yaml.string(plain))
    end
    for _, word in ipairs({ "", "true", "False", "yes", "NO", "on", "Off", "y", "n", "null", "~", "123", "-1",
                            "1.5", ".5", "0x1F", "1e3", "_1", "1_000", "1:20", ".inf", "-.Inf", ".NaN", "<<", "=",
                            " lead", "trail ", "a: b", "a #b", "a:", "#x", "-x", "- x", "?x", ":x", "[x", "]x",
                            "{x", "}x", ",x", "!x", "&x", "*x", "|x", ">x", "'x", '"x', "%x", "@x", "`x", "...",
                            "---" }) do
      assert.are.equal('"' .. word:gsub('"', '\\"') .. '"', yaml.string(word))
    end
    assert.are.equal('"a\\nb\\tc\\r\\x1b\\x7f\\x00\\\\ \\"q\\""', yaml.string('a\nb\tc\r\27\127\0\\ "q"'))
    assert.are.equal('"\\u009b \\u202e \\ufeff \\ufffe"', yaml.string("\194\155 \226\128\174 \239\187\191 \239\191\190"))
    -- not UTF-8: each byte beyond ASCII escaped (YAML must be text)
    assert.are.equal('"a\\xff\\xc3"', yaml.string("a\255\195"))
  end)

  it("is block style in the JSON's order, with [] and {} and null", function()
    local text = assert(output.render({ DOMAIN, { id = "y", domain = "true", regions = {}, authorization = {} } },
      { desc = described("domains"), format = "yaml", fields = "domain,id,regions,authorization,folder" }))
    assert.are.equal(table.concat({
      "- domain: example.com",
      "  id: " .. ID,
      "  regions:",
      "    - US",
      "  authorization:",
      "    authorized: true",
      "    status_message: null",
      '    timestamp: "' .. TIME .. '"',
      "  folder: null",
      '- domain: "true"',
      -- a YAML 1.1 boolean to some readers
      '  id: "y"',

      "  regions: []",
      "  authorization: {}",
    }, "\n") .. "\n", text)
    assert.are.equal("[]\n", assert(output.render({}, { desc = described("domains"), format = "yaml" })))
    -- numbers as the JSON has them, but a float that YAML 1.1 reads only with a point
    assert.are.equal("- 2\n- -0.5\n- 1.0e+17\n- -1.5e-07\n- 1.25E+300\n",
                     yaml.from_json("[2,-0.5,1e+17,-1.5e-07,1.25E+300]"))
    assert.are.equal("id: x\nlist:\n  - - 1\n    - 2\n  - []\n  - a: 1\n    b:\n      - c\n",
                     yaml.from_json('{"id":"x","list":[[1,2],[],{"a":1,"b":["c"]}]}'))
  end)

  it("orders an entry's keys as the JSON does", function()
    for _, name in ipairs(NAMES) do
      local desc = described(name)
      local e = { id = ID, zz_unknown = 1, aa_unknown = 2 }
      for _, field in ipairs(desc.entry.order) do e[field] = e[field] or "v" end
      local json_keys, yaml_keys = {}, {}
      for key in assert(output.render(e, { desc = desc, format = "json", one = true })):gmatch('"([%w_]+)":') do
        json_keys[#json_keys + 1] = key
      end
      for key in assert(output.render(e, { desc = desc, format = "yaml", one = true })):gmatch("([%w_]+):") do
        yaml_keys[#yaml_keys + 1] = key
      end
      assert.are.same(json_keys, yaml_keys)
      assert.are.equal(#desc.entry.order + 3 - (desc.entry.fields.id and 1 or 0), #yaml_keys)
    end
  end)

  it("writes a key past 1024 characters in the explicit form (? key, then : value): YAML's implicit keys stop there",
     function()
    local ok, lyaml = pcall(require, "lyaml")
    if not ok then
      pending("lyaml (Debian lua-yaml) is not installed: the YAML is not read back")
      return
    end
    local long, longest = ("k"):rep(1025), ("é"):rep(600) .. "\27 x: y"
    -- the review's case: a field the description does not know, as a server could send it
    local e = { id = "1", pattern = "x", [long] = true }
    local text = assert(output.render({ e }, { format = "yaml", desc = described("allow_policies") }))
    assert.truthy(text:find("\n  ? " .. long .. "\n  : true\n", 1, true), text)
    assert.are.same({ { id = "1", pattern = "x", [long] = true } }, lyaml.load(text))
    -- the first key of a list's item, a quoted one, values that nest, in an object of one entry
    local nested = { [long] = { 1, { [longest] = "v", short = {} } }, [longest] = { a = 1 }, z = "w" }
    text = assert(output.render(nested, { format = "yaml", desc = described("allow_policies"), one = true }))
    assert_inert(text)
    local back = lyaml.load(text)
    assert.are.same({ 1, { [longest] = "v" } }, { back[long][1], { [longest] = back[long][2][longest] } })
    assert.are.equal("w", back.z)
    assert.are.equal(1, back[longest].a)
    text = yaml.from_json('[{"' .. long .. '":[1,2]},{"' .. long .. '":{}}]')
    assert.are.equal("- ? " .. long .. "\n  :\n    - 1\n    - 2\n- ? " .. long .. "\n  : {}\n", text)
    assert.are.same({ { [long] = { 1, 2 } }, { [long] = {} } }, lyaml.load(text))
    -- up to 1024 the usual form, which reads back
    local most = ("k"):rep(1024)
    text = yaml.from_json('{"' .. most .. '":1}')
    assert.are.equal(most .. ": 1\n", text)
    assert.are.same({ [most] = 1 }, lyaml.load(text))
  end)

  it("reads back with lyaml as the JSON does with lua-cjson, for every resource's entries", function()
    local ok, lyaml = pcall(require, "lyaml")
    if not ok then
      pending("lyaml (Debian lua-yaml) is not installed: the YAML is not read back")
      return
    end
    local TRICKY = { "true", "False", "yes", "no", "on", "off", "null", "~", "", " lead", "trail ", "a: b", "a #b",
                     "#x", "- x", "[x]", "{x}", "'x'", '"x"', "123", "1.5", "0x1F", "1e3", ".5", "_1", "1:20",
                     ".inf", "<<", "...", "---", "a:", "x\ny", "tab\there", "\27[31m", "\127", HOSTILE, "Zürich",
                     "\240\159\152\128 four bytes", "\\back\\slash", 'say "hi", twice', "it's", "\239\187\191bom",
                     "\239\191\191", ("long "):rep(40) }
    -- a value for every field of the description: tricky text in turn,
    -- an empty list and null where the entry is the second one
    local turn = 0
    local function value_for(n, second)
      if second and n.nullable then return null end
      if n.type == "object" then
        local out = {}
        for _, field in ipairs(n.order) do out[field] = value_for(n.fields[field], second) end
        return out
      end
      if n.type == "array" then
        if second then return {} end
        return { value_for(n.items), value_for(n.items) }
      end
      if n.type == "boolean" then return not second end
      if n.type == "integer" then return second and -(2 ^ 53) or 42 end
      if n.type == "number" then return second and 1e17 or 0.1 end
      if n.format == "date-time" then return TIME end
      turn = turn % #TRICKY + 1
      return TRICKY[turn]
    end
    local function normal(v)
      if v == null or v == lyaml.null then return "<null>" end
      if type(v) ~= "table" then return v end
      local out = {}
      for k, item in pairs(v) do out[k] = normal(item) end
      return out
    end
    local count = 0
    for _, name in ipairs(NAMES) do
      local desc = described(name)
      local list = { value_for(desc.entry), value_for(desc.entry, true), { id = ID, [TRICKY[1]] = TRICKY[12] } }
      -- strings in keys the description does not know
      for i = 1, 6 do list[3][TRICKY[i + 5]] = i end
      -- every tricky string once, whatever the description's fields
      local extra = {}
      for i, s in ipairs(TRICKY) do extra[i] = s end
      list[1].zz_tricky = extra
      local text = assert(output.render(list, { desc = desc, format = "yaml" }))
      assert_inert(text)
      local want = cjson.decode((assert(output.render(list, { desc = desc, format = "json" }))))
      assert.are.same(normal(want), normal(lyaml.load(text)))
      -- one entry, and --fields
      text = assert(output.render(list[2], { desc = desc, format = "yaml", one = true, fields = desc.entry.order }))
      want = cjson.decode((assert(output.render(list[2], { desc = desc, format = "json", one = true,
                                                           fields = desc.entry.order }))))
      assert.are.same(normal(want), normal(lyaml.load(text)))
      count = count + 1
    end
    assert.are.equal(#NAMES, count)
  end)
end)

describe("the tool's CSV", function()
  local policies = described("allow_policies")

  it("is sync/entries.lua's CSV (id first, every current field), its header left out with no_headers", function()
    local text = assert(output.render({ POLICY }, { desc = policies, format = "csv" }))
    assert.are.equal(entries.csv({ POLICY }, output.columns(policies)), text)
    local headless = assert(output.render({ POLICY }, { desc = policies, format = "csv", no_headers = true }))
    assert.are.equal(text:match("\r\n(.*)$"), headless)
    assert.are.equal("", assert(output.render({}, { desc = policies, format = "csv", no_headers = true })))
  end)

  it("fields picks and orders its columns; one entry is one row", function()
    local text = assert(output.render(POLICY, { desc = policies, format = "csv", one = true,
                                                fields = { "pattern", "comments", "id" } }))
    assert.are.equal("pattern,comments,id\r\nceo@example.com,null," .. ID .. "\r\n", text)
  end)
end)

describe("the terminal", function()
  local function env(t) return function(name) return t[name] end end
  local function no_stty() error("stty asked when it should not be") end

  it("takes COLUMNS and LINES first, then stty when stdout is a terminal, else nothing", function()
    local w, h = output.terminal_size({ getenv = env({ COLUMNS = "132", LINES = "50" }), stty = no_stty })
    assert.are.same({ 132, 50 }, { w, h })
    w, h = output.terminal_size({ getenv = env({}), terminal = true, stty = function() return "40 100\n" end })
    assert.are.same({ 100, 40 }, { w, h })
    -- one from each
    w, h = output.terminal_size({ getenv = env({ COLUMNS = "90" }), terminal = true,
                                  stty = function() return "40 100\n" end })
    assert.are.same({ 90, 40 }, { w, h })
    -- not a terminal: nothing to fit
    w, h = output.terminal_size({ getenv = env({}), terminal = false, stty = no_stty })
    assert.is_nil(w)
    assert.is_nil(h)
    -- what is no size is ignored
    w, h = output.terminal_size({ getenv = env({ COLUMNS = "wide", LINES = "0" }), terminal = true,
                                  stty = function() return "" end })
    assert.is_nil(w)
    assert.is_nil(h)
    w = output.terminal_size({ getenv = env({ COLUMNS = "-5" }), terminal = true, stty = function() return "0 0" end })
    assert.is_nil(w)
  end)

  it("asks whether a descriptor is a terminal once per process (each question is a shell)", function()
    -- a fresh copy of the module: the one loaded above may have asked
    local name = "cloudflare.email_security.cli_output"
    local loaded, execute = package.loaded[name], os.execute
    package.loaded[name] = nil
    local asked = {}
    local ok, err = pcall(function()
      local fresh = require(name)
      os.execute = function(cmd) -- luacheck: ignore 122
        asked[#asked + 1] = cmd
        local fd = tonumber(cmd:match("^test %-t (%d)$"))
        -- stdout a terminal, stderr not; as each Lua reports it
        if _VERSION == "Lua 5.1" and not rawget(_G, "jit") then return fd == 1 and 0 or 256 end
        if fd == 1 then return true, "exit", 0 end
        return nil, "exit", 1
      end
      local answers = { fresh.is_terminal(1), fresh.is_terminal(2), fresh.is_terminal(1), fresh.is_terminal(2),
                        fresh.is_terminal(1) }
      os.execute = execute -- luacheck: ignore 122
      assert.are.same({ true, false, true, false, true }, answers)
      assert.are.same({ "test -t 1", "test -t 2" }, asked)
    end)
    os.execute = execute -- luacheck: ignore 122
    package.loaded[name] = loaded
    assert(ok, err)
  end)

  it("pages only on a terminal, through $PAGER or less -FRX, a text longer than the terminal", function()
    local long, short = ("line\n"):rep(30), ("line\n"):rep(24)
    local facts = { terminal = true, height = 24 }
    assert.are.equal("less -FRX", output.pager(long, facts))
    assert.is_nil(output.pager(short, facts))
    -- a last line without its line break counts
    assert.are.equal("less -FRX", output.pager(short .. "more", facts))
    assert.is_nil(output.pager(long, { terminal = false, height = 24 }))
    assert.is_nil(output.pager(long, { terminal = true }))
    assert.are.equal("more", output.pager(long, { terminal = true, height = 24, pager = " more " }))
    assert.is_nil(output.pager(long, { terminal = true, height = 24, pager = "" }))
    assert.is_nil(output.pager(long, { terminal = true, height = 24, pager = "cat" }))
  end)

  local function tmp_out()
    local path = os.tmpname()
    return path, assert(io.open(path, "w+b"))
  end
  local function read_all(path)
    local f = assert(io.open(path, "rb"))
    local text = f:read("*a")
    f:close()
    return text
  end

  it("writes through the pager, or directly when it is not wanted or cannot start", function()
    local text = ("line\n"):rep(30)
    local got_path = os.tmpname()
    local path, out = tmp_out()
    assert.is_true(output.page(text, out, { terminal = true, height = 10, pager = "cat > '" .. got_path .. "'" }))
    out:close()
    assert.are.equal(text, read_all(got_path))
    assert.are.equal("", read_all(path))
    -- not needed: directly
    path, out = tmp_out()
    assert.is_false(output.page(text, out, { terminal = true, height = 40, pager = "cat > '" .. got_path .. "'" }))
    out:close()
    assert.are.equal(text, read_all(path))
    -- a pager that is not there
    path, out = tmp_out()
    assert.is_false(output.page(text, out, { terminal = true, height = 10, pager = "/nonexistent/pager -R" }))
    out:close()
    assert.are.equal(text, read_all(path))
    -- NAME=value before the program: the program is what is looked for
    path, out = tmp_out()
    assert.is_true(output.page(text, out, { terminal = true, height = 10,
                                            pager = "LESS=x cat > '" .. got_path .. "'" }))
    out:close()
    assert.are.equal("", read_all(path))
    os.remove(got_path)
    os.remove(path)
  end)

  it("writes directly when the pager fails, as every Lua tells (its status through a file, where 5.1 gives none)",
     function()
    -- a pager that is not found, and ones that exit non-zero without
    -- showing anything (the review's PAGER=false and sh -c 'exit 3'): the
    -- listing must not be lost
    local text = ("line\n"):rep(30)
    for _, pager in ipairs({ "sh -c 'exit 127'", "false", "sh -c 'exit 3'" }) do
      local path, out = tmp_out()
      assert.is_false(output.page(text, out, { terminal = true, height = 10, pager = pager }), pager)
      out:close()
      assert.are.equal(text, read_all(path), pager)
      os.remove(path)
    end
  end)

  it("writes nothing more when a signal ended the pager: the user stopped it (Ctrl-C in more)", function()
    local path, out = tmp_out()
    assert.is_true(output.page(("line\n"):rep(30), out, { terminal = true, height = 10,
                                                          pager = "sh -c 'kill -INT $$'" }))
    out:close()
    assert.are.equal("", read_all(path))
    os.remove(path)
  end)

  -- Runs output.page on `text_code` (Lua text that makes the listing) with
  -- pager, in a Lua of its own (SIGPIPE would end the process that
  -- writes), its out a file: what that Lua said, and the file's text.
  local function page_elsewhere(text_code, pager)
    local out_path, script = os.tmpname(), os.tmpname()
    local q = function(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
    local f = assert(io.open(script, "w"))
    f:write(([[
      local output = require("cloudflare.email_security.cli_output")
      local text = %s
      local out = assert(io.open(%q, "wb"))
      local shown = output.page(text, out, { terminal = true, height = 10, pager = %q })
      out:close()
      io.write("paged ", tostring(shown))
    ]]):format(text_code, out_path, pager))
    f:close()
    local p = io.popen(("LUA_PATH=%s LUA_CPATH=%s %s %s 2>/dev/null; echo \" exit $?\""):format(q(package.path),
      q(package.cpath), os.getenv("LUA") or "lua5.4", q(script)))
    local said = p:read("*a")
    p:close()
    local written = read_all(out_path)
    os.remove(out_path)
    os.remove(script)
    return said, written
  end

  it("writes directly, whole and alive, when the shell cannot even read $PAGER (an unmatched quote)", function()
    -- the review's PAGER="less -P'x" with a listing far over a pipe's
    -- 64 KiB: the shell must still read all of it, then the text is
    -- written directly
    local BIG = '(("x"):rep(99) .. "\\n"):rep(2000)'
    local want = (("x"):rep(99) .. "\n"):rep(2000)
    for _, pager in ipairs({ "less -P'x", "cat 'x", 'cat "x', "cat (" }) do
      local said, written = page_elsewhere(BIG, pager)
      assert.are.equal("paged false exit 0\n", said, pager)
      assert.are.equal(want, written, pager)
    end
  end)

  it("survives a pager that stops reading early (the user quit)", function()
    -- in a Lua of its own: SIGPIPE would end the process that writes
    local got_path, script = os.tmpname(), os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(([[
      local output = require("cloudflare.email_security.cli_output")
      -- far more than a pipe holds
      local text = (("x"):rep(99) .. "\n"):rep(10000)
      local out = assert(io.open("/dev/null", "w"))
      assert(output.page(text, out, { terminal = true, height = 10, pager = "head -n 1 > '%s'" }))
      io.write("paged")
    ]]):format(got_path))
    f:close()
    local q = function(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
    local p = io.popen(("LUA_PATH=%s LUA_CPATH=%s %s %s 2>&1"):format(q(package.path), q(package.cpath),
                                                                   os.getenv("LUA") or "lua5.4", q(script)))
    local said = p:read("*a")
    p:close()
    assert.are.equal("paged", said)
    assert.are.equal(("x"):rep(99) .. "\n", read_all(got_path))
    os.remove(got_path)
    os.remove(script)
  end)
end)

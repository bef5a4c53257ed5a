-- The descriptions of the settings resources (lua/cloudflare/email_security/
-- resources/*.lua) are generated from Cloudflare's OpenAPI file by
-- tools/gen_resources.lua and committed. They must be what the generator
-- makes from the file (an upstream change shows as a failing spec), cover
-- every operation in it, and agree with it where the generator could err.
local openapi = require("spec.support.openapi")
local compile = require("cloudflare.email_security.schema.compile")
local files = require("spec.support.files")
local es = require("cloudflare.email_security")

local DIR = "lua/cloudflare/email_security/resources"
local doc, why = openapi.load()

local function described(name)
  return require("cloudflare.email_security.resources." .. name)
end

describe("the resource descriptions", function()
  it("are listed in order in names.lua, which es.resources copies", function()
    local names = described("names")
    local sorted = {}
    for i, n in ipairs(names) do sorted[i] = n end
    table.sort(sorted)
    assert.are.same(sorted, names)
    assert.are.same(names, es.resources)
    assert.are.equal(8, #names)
  end)

  it("each compile, and the engine refuses what it does not know", function()
    for _, name in ipairs(es.resources) do
      assert.are.equal(name, compile.resource(described(name)).name)
    end
    local bad = { name = "x", path = "/x", ops = {}, bodies = {}, entry = { type = "object", properties = {
      { name = "when", type = "timestamp" } } } }
    assert.has_error(function() compile.resource(bad) end, "resource x.entry.when: unknown type 'timestamp'")
    bad.entry.properties[1] = { name = "when", type = "string", format = "ipv4" }
    assert.has_error(function() compile.resource(bad) end, "resource x.entry.when: unknown format 'ipv4'")
    bad.entry.properties[1] = { name = "when", type = "string", pattern = "^a" }
    assert.has_error(function() compile.resource(bad) end, "resource x.entry.when: unknown description key 'pattern'")
    bad.entry.properties[1] = { name = "n", type = "integer", enum = { 1, 2 } }
    assert.has_error(function() compile.resource(bad) end,
      "resource x.entry.n: 'enum' on a integer is a check this engine does not make")
  end)

  it("are what doc/resources.md describes (tools/gen_reference.lua)", function()
    local out = os.tmpname()
    local lua = os.getenv("LUA") or "lua5.4"
    if lua:find("5%.1") or lua:find("jit") then lua = "lua5.4" end
    local log = files.command_output(("%s tools/gen_reference.lua %q 2>&1"):format(lua, out))
    local made = files.read(out)
    os.remove(out)
    assert.matches("8 resources written", log, 1, true)
    assert.is_true(made == files.read("doc/resources.md"), "run `make resources` and commit doc/resources.md")
  end)

  if not doc then
    it("need the OpenAPI file", function() openapi.require_or_skip(why, pending) end)
    return
  end

  it("are what tools/gen_resources.lua makes from the OpenAPI file", function()
    local out = files.command_output("mktemp -d")
    local lua = os.getenv("LUA") or "lua5.4"
    -- the generator runs on Lua 5.3+ (math.type); the suite may run on 5.1
    if lua:find("5%.1") or lua:find("jit") then lua = "lua5.4" end
    local log = files.command_output(("%s tools/gen_resources.lua %q %q 2>&1"):format(lua, openapi.PATH, out))
    local made = files.command_output("ls " .. out)
    local differ = {}
    for name in made:gmatch("[^\n]+") do
      if files.read(out .. "/" .. name) ~= files.read(DIR .. "/" .. name) then differ[#differ + 1] = name end
    end
    os.execute("rm -rf " .. out)
    assert.matches("8 resources written", log, 1, true)
    assert.are.same({}, differ, "run `make resources` and commit what changed")
    -- but the overlay, written by hand beside them
    assert.are.equal(files.command_output("ls " .. DIR .. " | grep -vx overlay.lua"), made,
      "the committed files are the generated ones")
  end)

  it("stop the generator on a parameter keyword it would drop", function()
    local copy = os.tmpname()
    local text = files.read(openapi.PATH):gsub('"name": "pattern_type"', '"explode": false, "name": "pattern_type"', 1)
    local f = assert(io.open(copy, "wb"))
    f:write(text)
    f:close()
    local out = files.command_output("mktemp -d")
    local log = files.command_output(("lua5.4 tools/gen_resources.lua %q %q 2>&1; echo \" exit=$?\""):format(copy, out))
    os.remove(copy)
    os.execute("rm -rf " .. out)
    assert.matches("unknown parameter keyword explode", log, 1, true)
    assert.matches("exit=1$", log)
  end)

  it("cover every operation of the OpenAPI file, and no other", function()
    local theirs, ours = {}, {}
    for path, item in pairs(doc.paths) do
      for method, op in pairs(item) do
        if method ~= "parameters" then theirs[#theirs + 1] = method:upper() .. " " .. path .. " " .. op.operationId end
      end
    end
    for _, name in ipairs(es.resources) do
      local d = described(name)
      for _, op in pairs(d.ops) do
        local path = "/accounts/{account_id}" .. d.path .. op.suffix:gsub("{id}", "{" .. (d.id and d.id.param or "") .. "}")
        ours[#ours + 1] = op.method .. " " .. path .. " " .. op.operation_id
      end
    end
    table.sort(theirs)
    table.sort(ours)
    assert.are.same(theirs, ours)
    assert.are.equal(50, #ours)
  end)

  it("describe the registry's fields as the OpenAPI file does", function()
    local props = doc.components.schemas["email-security_ImpersonationRegistry"].properties
    local ours = {}
    for _, f in ipairs(described("impersonation_registry").entry.properties) do ours[f.name] = f end
    for name, raw in pairs(props) do
      local prop = raw.allOf and openapi.resolve(doc, raw.allOf[1]) or openapi.resolve(doc, raw)
      local f = ours[name]
      assert.is_table(f, "field " .. name .. " is missing")
      assert.are.equal(prop.type, f.type, name .. " type")
      assert.are.equal(prop.nullable == true, f.nullable == true, name .. " nullable")
      assert.are.equal(raw.readOnly == true, f.read_only == true, name .. " read-only")
      assert.are.equal(prop.maxLength, f.max_length, name .. " maxLength")
      assert.are.same(prop.enum, f.enum, name .. " enum")
      ours[name] = nil
    end
    assert.are.same({}, ours, "fields the schema does not have")
    local create = described("impersonation_registry").bodies.create
    local required = {}
    for _, n in ipairs(create.required) do required[n] = true end
    assert.are.same({ name = true, email = true, is_email_regex = true }, required)
  end)
end)

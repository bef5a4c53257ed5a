-- The generated descriptions (lua/cloudflare/email_security/resources/)
-- write each distinct field node once, in a table F, and refer to it
-- wherever the field is that same node (tools/gen_resources.lua). What
-- the engine loads must be what the generator's --inline form, one nested
-- table per use as the files were once written, loads; and the engine must
-- never write to a node it is given, since one node now stands in several
-- places.
local openapi = require("spec.support.openapi")
local compile = require("cloudflare.email_security.schema.compile")
local files = require("spec.support.files")

local DIR = "lua/cloudflare/email_security/resources"
local names = require("cloudflare.email_security.resources.names")

local function load_description(path)
  local chunk = assert(loadfile(path))
  return chunk()
end

-- every field node of a description (an element of an object's
-- properties, or of list_params), with the path it was met at
local function field_nodes(d)
  local out = {}
  local function walk(t, where)
    for k, v in pairs(t) do
      if type(v) == "table" then
        if k == "properties" or k == "list_params" then
          for i, p in ipairs(v) do
            local at = where .. "." .. k .. "[" .. i .. "]"
            out[#out + 1] = { node = p, where = at }
            walk(p, at)
          end
        else
          walk(v, where .. "." .. tostring(k))
        end
      end
    end
  end
  walk(d, d.name)
  return out
end

-- a node's content as text: keys sorted, so equal content is equal text
local function text_of(v)
  if type(v) ~= "table" then return type(v) == "string" and ("%q"):format(v) or tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = tostring(k) .. "=" .. text_of(v[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = deep_copy(x) end
  return out
end

describe("the generated descriptions", function()
  it("write each distinct field node once, and share it wherever it is the same", function()
    for _, name in ipairs(names) do
      local d = load_description(DIR .. "/" .. name .. ".lua")
      local by_text, uses = {}, 0
      for _, f in ipairs(field_nodes(d)) do
        uses = uses + 1
        local text = text_of(f.node)
        local first = by_text[text]
        if first then
          assert.is_true(first.node == f.node,
            name .. ": " .. f.where .. " is a copy of " .. first.where .. " where it could refer to it")
        else
          by_text[text] = f
        end
      end
      local distinct = 0
      for _ in pairs(by_text) do distinct = distinct + 1 end
      assert.is_true(distinct < uses, name .. ": no field is shared")
    end
  end)

  it("leave a node given to the engine as it was, and compile each use apart", function()
    for _, name in ipairs(names) do
      local d = load_description(DIR .. "/" .. name .. ".lua")
      local before = deep_copy(d)
      local c = compile.resource(d)
      assert.are.same(before, d, name .. ": compile wrote to its description")
      -- one shared node, compiled once per place it stands in
      local seen = {}
      local function walk(n)
        if type(n) ~= "table" then return end
        assert.is_nil(seen[n], name .. ": a compiled node stands in two places")
        seen[n] = true
        for _, field in pairs(n.fields or {}) do walk(field) end
        walk(n.items)
      end
      for _, body in pairs(c.bodies) do walk(body) end
      walk(c.entry)
      walk(c.verification)
      for _, p in pairs(c.params) do walk(p) end
    end
  end)

  local doc, why = openapi.load()
  if not doc then
    it("need the OpenAPI file", function() openapi.require_or_skip(why, pending) end)
    return
  end

  it("load as what the generator writes with each node inline", function()
    -- the generator runs on Lua 5.3+ (math.type); the suite may run on 5.1
    local lua = os.getenv("LUA") or "lua5.4"
    if lua:find("5%.1") or lua:find("jit") then lua = "lua5.4" end
    local out = files.command_output("mktemp -d")
    finally(function() os.execute("rm -rf " .. out) end)
    local log = files.command_output(("%s tools/gen_resources.lua --inline %q %q 2>&1"):format(lua, openapi.PATH, out))
    assert.matches("8 resources written", log, 1, true)
    for _, name in ipairs(names) do
      local inline_text = files.read(out .. "/" .. name .. ".lua")
      assert.is_nil(inline_text:find("\nlocal F", 1, true), name .. ": --inline wrote a field table")
      assert.are.same(load_description(out .. "/" .. name .. ".lua"), load_description(DIR .. "/" .. name .. ".lua"),
        name .. ": the shared form loads as something else than the inline one")
    end
  end)
end)

-- The project's own facts about the impersonation registry must agree with
-- Cloudflare's OpenAPI file, field by field.
local openapi = require("spec.support.openapi")
local schema = require("cloudflare.email_security.schema.impersonation_registry")

local doc, why = openapi.load()
local BASE = "/accounts/{account_id}" .. schema.path

local function component(name)
  return doc.components.schemas["email-security_" .. name]
end

local function set_of(list)
  local s = {}
  for _, v in ipairs(list or {}) do s[v] = true end
  return s
end

describe("schema facts against the OpenAPI file", function()
  if not doc then
    it("needs the OpenAPI file", function() openapi.require_or_skip(why, pending) end)
    return
  end

  it("has the paths and methods the resource uses", function()
    local collection, item = doc.paths[BASE], doc.paths[BASE .. "/{" .. schema.id_param .. "}"]
    assert.is_table(collection.get)
    assert.is_table(collection.post)
    assert.is_table(item.get)
    assert.is_table(item.patch)
    assert.is_table(item.delete)
    assert.is_table(collection.post.responses["201"], "create answers 201")
  end)

  it("describes every field with the schema's type, nullability, limits and read-only flag", function()
    local props = component("ImpersonationRegistry").properties
    local ours = {}
    for _, f in ipairs(schema.fields) do ours[f.name] = f end
    for name, raw in pairs(props) do
      local prop = raw
      if raw.allOf then prop = openapi.resolve(doc, raw.allOf[1]) end
      prop = openapi.resolve(doc, prop)
      local f = ours[name]
      assert.is_table(f, "field " .. name .. " is missing from the facts")
      assert.are.equal(prop.type, f.type, name .. " type")
      assert.are.equal(prop.nullable == true, f.nullable == true, name .. " nullable")
      assert.are.equal(raw.readOnly == true, f.read_only == true, name .. " read-only")
      assert.are.equal(prop.maxLength, f.max_length, name .. " maxLength")
      assert.are.same(prop.enum, f.enum, name .. " enum")
      ours[name] = nil
    end
    assert.are.same({}, ours, "facts name fields the schema does not have")
  end)

  it("requires what create requires and needs a field to update", function()
    assert.are.same(set_of(component("CreateImpersonationRegistry").required),
                    set_of(schema.create_requires))
    assert.are.equal(component("UpdateImpersonationRegistry").minProperties, schema.update_min_fields)
  end)

  it("has a uuid id", function()
    local id = component("ImpersonationRegistryId")
    assert.are.same({ "string", "uuid" }, { id.type, id.format })
    assert.are.equal("uuid", schema.id_format)
  end)

  it("lists the list operation's parameters with their enums and ranges", function()
    local params = {}
    for _, p in ipairs(doc.paths[BASE].get.parameters) do
      p = openapi.resolve(doc, p)
      params[p.name] = openapi.resolve(doc, p.schema)
    end
    for _, ours in ipairs(schema.list_params) do
      local theirs = params[ours.name]
      assert.is_table(theirs, "parameter " .. ours.name)
      assert.are.equal(theirs.type, ours.type, ours.name)
      assert.are.same(theirs.enum, ours.enum, ours.name)
      assert.are.equal(theirs.minimum, ours.minimum, ours.name)
      assert.are.equal(theirs.maximum, ours.maximum, ours.name)
      params[ours.name] = nil
    end
    assert.are.same({}, params, "parameters the facts do not know")
  end)
end)

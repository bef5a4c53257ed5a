-- tools/gen_resources.lua carries into the descriptions every part of the
-- OpenAPI file that changes what a request must carry, or stops with a
-- message naming the operation and the part, writing nothing; and it ends
-- by compiling what it would write. It is fed small doctored OpenAPI files
-- written here: nothing beside the clone is needed.
local cjson = require("cjson")
local files = require("spec.support.files")
local compile = require("cloudflare.email_security.schema.compile")

local PREFIX = "/accounts/{account_id}/email-security/settings/things"

local function ref(name) return { ["$ref"] = "#/components/" .. name } end

local function answer(result)
  return { content = { ["application/json"] = { schema = {
    allOf = { ref("schemas/envelope"), { type = "object", properties = { result = result } } } } } } }
end

-- One resource, "things", with a list, a create, and get, update and delete
-- of one entry: the least the generator takes.
local function base_doc()
  local security = { { api_token = {} }, { api_email = {}, api_key = {} } }
  local function op(id, responses, extra)
    local o = { operationId = id, summary = id, tags = { "things" }, security = security, responses = responses,
                ["x-api-token-group"] = { "Things: Write" } }
    for k, v in pairs(extra or {}) do o[k] = v end
    return o
  end
  local body = { required = true, content = { ["application/json"] = { schema = ref("schemas/ThingInput") } } }
  return {
    openapi = "3.0.3",
    info = { title = "things", version = "1" },
    servers = { { url = "https://api.cloudflare.com/client/v4" } },
    security = security,
    paths = {
      [PREFIX] = {
        parameters = { ref("parameters/account_id") },
        get = op("list_things", { ["200"] = answer({ type = "array", items = ref("schemas/Thing") }) },
                 { parameters = { ref("parameters/page"), ref("parameters/per_page") } }),
        post = op("create_thing", { ["201"] = answer(ref("schemas/Thing")) }, { requestBody = body }),
      },
      [PREFIX .. "/{thing_id}"] = {
        parameters = { ref("parameters/account_id"),
                       { name = "thing_id", ["in"] = "path", required = true, schema = ref("schemas/ThingId") } },
        get = op("get_thing", { ["200"] = answer(ref("schemas/Thing")) }),
        patch = op("update_thing", { ["200"] = answer(ref("schemas/Thing")) }, { requestBody = body }),
        delete = op("delete_thing", { ["200"] = answer({ type = "object", properties = {
          id = ref("schemas/ThingId") }, required = { "id" } }) }),
      },
    },
    components = {
      parameters = {
        account_id = { name = "account_id", ["in"] = "path", required = true,
                       schema = { type = "string", maxLength = 32 } },
        page = { name = "page", ["in"] = "query", schema = { type = "integer", minimum = 1 } },
        per_page = { name = "per_page", ["in"] = "query", schema = { type = "integer", minimum = 1, maximum = 1000 } },
      },
      schemas = {
        envelope = { type = "object", properties = { success = { type = "boolean" } } },
        ThingId = { type = "string", format = "uuid" },
        ThingInput = { type = "object", properties = { name = { type = "string", maxLength = 10 },
                                                        address = { type = "string" } },
                       required = { "name" } },
        Thing = { type = "object", properties = { id = ref("schemas/ThingId"), name = { type = "string" },
                                                  address = { type = "string" } } },
      },
      securitySchemes = {
        api_token = { type = "http", scheme = "bearer" },
        api_email = { type = "apiKey", ["in"] = "header", name = "X-Auth-Email" },
        api_key = { type = "apiKey", ["in"] = "header", name = "X-Auth-Key" },
      },
    },
  }
end

local tmp
setup(function() tmp = files.command_output("mktemp -d") end)
teardown(function() os.execute("rm -rf '" .. tmp .. "'") end)

-- Runs the generator on doc; returns its output (stdout and stderr), its
-- exit status and the names of the files it wrote.
local function generate(doc)
  local path, out = tmp .. "/openapi.json", tmp .. "/out"
  os.execute("rm -rf '" .. out .. "' && mkdir '" .. out .. "'")
  local f = assert(io.open(path, "wb"))
  f:write(cjson.encode(doc))
  f:close()
  local log = files.command_output(("lua5.4 tools/gen_resources.lua '%s' '%s' 2>&1; echo \" exit=$?\""):format(path, out))
  local status = tonumber(log:match(" exit=(%d+)$"))
  local written = files.command_output("ls '" .. out .. "'")
  return log, status, written, out
end

-- The generator stops: non-zero, each of `names` in its message, nothing
-- written.
local function assert_stops(doc, ...)
  local log, status, written = generate(doc)
  assert.are_not.equal(0, status, log)
  for _, name in ipairs({ ... }) do assert.matches(name, log, 1, true) end
  assert.are.equal("", written, "nothing is written when the generator stops")
end

describe("tools/gen_resources.lua", function()
  it("writes a description that compiles from a file it carries whole", function()
    local log, status, written, out = generate(base_doc())
    assert.are.equal(0, status, log)
    assert.are.equal("names.lua\nthings.lua", written)
    local d = dofile(out .. "/things.lua")
    local c = compile.resource(d)
    assert.are.same({ "page", "per_page" }, c.param_order)
    assert.are.same({ "create", "delete", "get", "list", "update" }, (function()
      local ops = {}
      for name in pairs(d.ops) do ops[#ops + 1] = name end
      table.sort(ops)
      return ops
    end)())
  end)

  it("stops on a query parameter declared on the path item of a call that takes none", function()
    local doc = base_doc()
    local item = doc.paths[PREFIX]
    item.parameters[#item.parameters + 1] = { name = "dry_run", ["in"] = "query", schema = { type = "boolean" } }
    assert_stops(doc, "things.create", "dry_run", "path item")
  end)

  it("carries a query parameter declared on the path item of a list", function()
    local doc = base_doc()
    local item = doc.paths[PREFIX]
    item.post = nil
    item.parameters[#item.parameters + 1] = { name = "search", ["in"] = "query", schema = { type = "string" } }
    local log, status, _, out = generate(doc)
    assert.are.equal(0, status, log)
    local c = compile.resource(dofile(out .. "/things.lua"))
    assert.are.same({ "page", "per_page", "search" }, c.param_order)
  end)

  it("stops on a header parameter, required or not", function()
    for _, required in ipairs({ true, false }) do
      local doc = base_doc()
      doc.paths[PREFIX .. "/{thing_id}"].get.parameters = {
        { name = "X-Mode", ["in"] = "header", required = required, schema = { type = "string" } } }
      assert_stops(doc, "things.get", "X-Mode", "header")
    end
  end)

  it("stops on a cookie parameter", function()
    local doc = base_doc()
    doc.paths[PREFIX].get.parameters[3] = { name = "session", ["in"] = "cookie", schema = { type = "string" } }
    assert_stops(doc, "things.list", "session", "cookie")
  end)

  it("stops on a query parameter, required or not, of a call other than list", function()
    for _, required in ipairs({ true, false }) do
      local doc = base_doc()
      doc.paths[PREFIX .. "/{thing_id}"].patch.parameters = {
        { name = "mode", ["in"] = "query", required = required, schema = { type = "string" } } }
      assert_stops(doc, "things.update", "mode")
    end
  end)

  it("stops on a required list parameter, which the engine would not require", function()
    local doc = base_doc()
    doc.paths[PREFIX].get.parameters[3] = { name = "q", ["in"] = "query", required = true, schema = { type = "string" } }
    assert_stops(doc, "things.list", "q", "required")
  end)

  it("stops on a path parameter the path does not hold", function()
    local doc = base_doc()
    doc.paths[PREFIX .. "/{thing_id}"].delete.parameters = {
      { name = "zone_id", ["in"] = "path", required = true, schema = { type = "string" } } }
    assert_stops(doc, "things.delete", "zone_id")
  end)

  it("stops on a call whose credentials are not the client's", function()
    local doc = base_doc()
    doc.paths[PREFIX .. "/{thing_id}"].get.security = { { user_service_key = {} } }
    assert_stops(doc, "things.get", "security")
  end)

  it("stops on a call that goes to a server of its own", function()
    local doc = base_doc()
    doc.paths[PREFIX .. "/{thing_id}"].get.servers = { { url = "https://elsewhere.example" } }
    assert_stops(doc, "things.get", "servers")
  end)

  it("stops on a server other than the one the client sends to (config.DEFAULT_BASE_URL)", function()
    local doc = base_doc()
    doc.servers = { { url = "https://api.cloudflare.com/client/v5" } }
    assert_stops(doc, "servers", "client/v5")
  end)

  it("stops on a success answer whose result is not the one the engine checks for", function()
    local doc = base_doc()
    doc.paths[PREFIX .. "/{thing_id}"].get.responses["200"] = answer({ type = "array", items = ref("schemas/Thing") })
    assert_stops(doc, "things.get", "result")
  end)

  it("stops, by compiling what it would write, on a format the engine lacks", function()
    local doc = base_doc()
    doc.components.schemas.Thing.properties.address.format = "ipv4"
    assert_stops(doc, "things", "unknown format 'ipv4'", "address")
    doc = base_doc()
    doc.paths[PREFIX].get.parameters[3] = { name = "near", ["in"] = "query", schema = { type = "string",
                                                                                       format = "hostname" } }
    assert_stops(doc, "things", "unknown format 'hostname'", "near")
  end)
end)

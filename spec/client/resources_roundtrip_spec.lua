-- Every resource through the module against the emulator, which serves
-- all eight from their descriptions: a full round trip, paging with each,
-- a body the server refuses, and for each batch endpoint a mixed batch and
-- one the server refuses with nothing applied.
local es = require("cloudflare.email_security")
local emulator_process = require("emulator.process")
local examples = require("spec.support.examples")

local ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
local UNKNOWN = "00000000-0000-4000-8000-000000000000"

local function described(name)
  return require("cloudflare.email_security.resources." .. name)
end

-- The first field an update may change to any text (no enum, no format),
-- and a new value for it.
local function change(d)
  for _, p in ipairs(d.bodies.update.properties) do
    if p.type == "string" and not (p.enum or p.format or p.read_only or p.deprecated) then
      return p.name, "changed-" .. p.name
    end
  end
  error(d.name .. " has no text field to change")
end

describe("every resource against the emulator", function()
  local emu, cf

  lazy_setup(function() emu = emulator_process.start() end)
  lazy_teardown(function() if emu then emu.stop() end end)
  before_each(function()
    emu.reset()
    cf = es.new({ account_id = ACCOUNT, api_token = emu.token, base_url = emu.base_url, max_retries = 0 })
  end)
  after_each(function() cf:close() end)

  for _, name in ipairs(es.resources) do
    local d = described(name)

    it(name .. ": create, list, get, update, delete, then 404", function()
      local r = cf[name]
      local made = assert(r:create(examples.required(d.bodies.create)))
      assert.is_string(made.id)
      local page = assert(r:list())
      assert.are.same({ made.id }, { page[1] and page[1].id })
      assert.are.equal(made.id, assert(r:get(made.id)).id)
      local field, value = change(d)
      local updated = assert(r:update(made.id, { [field] = value }))
      assert.are.same(value, updated[field])
      assert.are.same({ made.id }, { assert(r:delete(made.id)).id })
      local gone, err = r:get(made.id)
      assert.is_nil(gone)
      assert.are.same({ "api", 404 }, { err.kind, err.status })
      assert.are.same({}, emu.state(ACCOUNT, name))
    end)

    it(name .. ": each walks every page", function()
      local r = cf[name]
      for _ = 1, 3 do assert(r:create(examples.required(d.bodies.create))) end
      local n = 0
      for entry, err in r:each({ per_page = 1 }) do
        assert(entry, tostring(err))
        n = n + 1
      end
      assert.are.equal(3, n)
    end)

    it(name .. ": a body the server refuses changes nothing", function()
      local r = cf[name]
      local made = assert(r:create(examples.required(d.bodies.create)))
      local field = change(d)
      emu.fault({ method = "PATCH", status = 422, headers = { ["Content-Type"] = "application/json" },
                  body = '{"success":false,"errors":[{"code":1002,"message":"' .. field .. ': refused"}],'
                    .. '"messages":[],"result":null}' })
      local updated, err = r:update(made.id, { [field] = select(2, change(d)) })
      assert.is_nil(updated)
      assert.are.same({ "api", 422, 1002 }, { err.kind, err.status, err.code })
      assert.are.same(made[field], emu.state(ACCOUNT, name)[1][field])
    end)

    if d.ops.batch then
      it(name .. ": a mixed batch is applied whole", function()
        local r = cf[name]
        local keep = assert(r:create(examples.required(d.bodies.create)))
        local drop = assert(r:create(examples.required(d.bodies.create)))
        local spec = examples.batch(d, keep.id)
        spec.deletes = { drop.id }
        local done = assert(r:batch(spec))
        assert.are.same({ { id = drop.id } }, done.deletes)
        local ids = {}
        for _, e in ipairs(emu.state(ACCOUNT, name)) do ids[e.id] = true end
        assert.is_nil(ids[drop.id], "the deleted entry is gone")
        assert.is_true(ids[keep.id], "the patched entry is there")
        if spec.posts then assert.are.equal(1, #done.posts) end
      end)

      it(name .. ": a batch the server refuses applies nothing", function()
        local r = cf[name]
        local keep = assert(r:create(examples.required(d.bodies.create)))
        local before = emu.state(ACCOUNT, name)
        local spec = examples.batch(d, keep.id)
        spec.deletes = { keep.id, UNKNOWN }     -- an id it does not have
        local done, err = r:batch(spec)
        assert.is_nil(done)
        assert.are.equal("api", err.kind)
        assert.are.same(before, emu.state(ACCOUNT, name))
      end)
    end
  end

  it("domains: replace, verification (200 and 204) and the collection DELETE", function()
    local d = described("domains")
    local r = cf.domains
    local made = assert(r:create(examples.required(d.bodies.create)))
    local replaced = assert(r:replace(made.id, examples.value(d.bodies.replace)))
    assert.are.equal(made.domain, replaced.domain, "the name cannot change")
    local info = assert(r:verification(made.id))
    assert.is_string(info.txt_record_name)
    local other = emu.seed(ACCOUNT, { { domain = "verified.example", _verified_otherwise = true } }, "domains")[1]
    assert.are.same({ verified = true }, assert(r:verification(other.id)))
    local gone = assert(r:delete_many({ made.id, other.id }))
    assert.are.equal(2, #gone)
    assert.are.same({}, emu.state(ACCOUNT, "domains"))
  end)
end)

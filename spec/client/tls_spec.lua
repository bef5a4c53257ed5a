-- TLS is always verified: a server with a self-signed certificate is refused
-- unless that certificate is given as ca_bundle. The server is openssl's own
-- s_server on loopback, which serves a status page (no envelope), so a
-- verified handshake shows as an `http` error and a refused one as `transport`.
local es = require("cloudflare.email_security")
local process = require("spec.support.process")

local function run(cmd)
  local r = os.execute(cmd)
  return r == true or r == 0
end

describe("TLS verification", function()
  local dir, port, pid

  lazy_setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(run(("mkdir -p %q"):format(dir)))
    assert(run(("openssl req -x509 -newkey rsa:2048 -nodes -keyout %q/key.pem -out %q/cert.pem"
      .. " -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -days 1 >/dev/null 2>&1"):format(dir, dir)),
      "openssl could not make a certificate")
    port = process.free_port()
    -- -naccept and timeout: it stops by itself
    os.execute(("timeout 60 openssl s_server -quiet -www -naccept 5 -accept 127.0.0.1:%d -cert %q/cert.pem"
      .. " -key %q/key.pem >/dev/null 2>&1 & echo $! > %q/pid"):format(port, dir, dir, dir))
    local f = io.open(dir .. "/pid")
    pid = tonumber(f:read("*a"))
    f:close()
    assert(process.wait_for_port(port, 10), "openssl s_server did not start")
  end)

  lazy_teardown(function()
    process.stop(pid)
    os.execute(("rm -rf %q"):format(dir))
  end)

  local function list(extra)
    local opts = { account_id = "023e105f4ecef8ad9ca31a8372d0c353", api_token = "t",
                   base_url = "https://127.0.0.1:" .. port }
    for k, v in pairs(extra or {}) do opts[k] = v end
    local cf = es.new(opts)
    local result, err = cf.impersonation_registry:list()
    cf:close()
    return result, err
  end

  it("refuses a certificate it cannot verify", function()
    local result, err = list()
    assert.is_nil(result)
    assert.are.equal("transport", err.kind)
    assert.matches("certificate", err.message)
  end)

  it("trusts the certificate given as ca_bundle", function()
    local result, err = list({ ca_bundle = dir .. "/cert.pem" })
    assert.is_nil(result)
    assert.are.equal("http", err.kind, tostring(err))
    assert.are.equal(200, err.status)
  end)
end)

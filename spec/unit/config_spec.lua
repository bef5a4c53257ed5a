local config = require("cloudflare.email_security.config")

-- A stand-in environment, so that specs never depend on the real one.
local function env(vars)
  return function(name) return vars[name] end
end

local ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"

describe("config.resolve", function()
  it("takes the account id and token from options", function()
    local c = assert(config.resolve({ account_id = ACCOUNT, api_token = "tok" }, env({})))
    assert.are.equal(ACCOUNT, c.account_id)
    assert.are.same({ "Authorization: Bearer tok" }, c.auth_headers)
    assert.are.equal("https://api.cloudflare.com/client/v4", c.base_url)
    assert.are.equal(60000, c.timeout_ms)
  end)

  it("falls back to the environment for every option that is absent", function()
    local c = assert(config.resolve({}, env({
      CLOUDFLARE_ACCOUNT_ID = ACCOUNT,
      CLOUDFLARE_API_TOKEN = "envtok",
      CLOUDFLARE_BASE_URL = "http://127.0.0.1:9/client/v4/",
    })))
    assert.are.equal(ACCOUNT, c.account_id)
    assert.are.same({ "Authorization: Bearer envtok" }, c.auth_headers)
    assert.are.equal("http://127.0.0.1:9/client/v4", c.base_url, "trailing slash dropped")
  end)

  it("sends the email and key pair when no token is given", function()
    local c = assert(config.resolve({ account_id = ACCOUNT }, env({
      CLOUDFLARE_EMAIL = "me@example.com", CLOUDFLARE_API_KEY = "k1",
    })))
    assert.are.same({ "X-Auth-Email: me@example.com", "X-Auth-Key: k1" }, c.auth_headers)
  end)

  describe("sends exactly one credential, by precedence", function()
    it("option token before option pair", function()
      local c = assert(config.resolve({ account_id = ACCOUNT, api_token = "t",
                                        api_email = "e@x", api_key = "k" }, env({})))
      assert.are.same({ "Authorization: Bearer t" }, c.auth_headers)
    end)
    it("option pair before environment token", function()
      local c = assert(config.resolve({ account_id = ACCOUNT, api_email = "e@x", api_key = "k" },
                                      env({ CLOUDFLARE_API_TOKEN = "envtok" })))
      assert.are.same({ "X-Auth-Email: e@x", "X-Auth-Key: k" }, c.auth_headers)
    end)
    it("environment token before environment pair", function()
      local c = assert(config.resolve({ account_id = ACCOUNT }, env({
        CLOUDFLARE_API_TOKEN = "envtok", CLOUDFLARE_EMAIL = "e@x", CLOUDFLARE_API_KEY = "k",
      })))
      assert.are.same({ "Authorization: Bearer envtok" }, c.auth_headers)
    end)
    it("an empty variable counts as unset", function()
      local c = assert(config.resolve({ account_id = ACCOUNT }, env({
        CLOUDFLARE_API_TOKEN = "", CLOUDFLARE_EMAIL = "e@x", CLOUDFLARE_API_KEY = "k",
      })))
      assert.are.same({ "X-Auth-Email: e@x", "X-Auth-Key: k" }, c.auth_headers)
    end)
  end)

  describe("refuses, naming the options and variables", function()
    it("a missing account id", function()
      local c, why = config.resolve({ api_token = "t" }, env({}))
      assert.is_nil(c)
      assert.matches("account_id", why, 1, true)
      assert.matches("CLOUDFLARE_ACCOUNT_ID", why, 1, true)
    end)

    it("a missing credential", function()
      local _, why = config.resolve({ account_id = ACCOUNT }, env({}))
      for _, name in ipairs({ "api_token", "api_email", "api_key", "CLOUDFLARE_API_TOKEN",
                              "CLOUDFLARE_EMAIL", "CLOUDFLARE_API_KEY" }) do
        assert.matches(name, why, 1, true)
      end
    end)

    it("half a pair in options, even beside a token", function()
      local _, why = config.resolve({ account_id = ACCOUNT, api_email = "e@x" }, env({}))
      assert.matches("api_email and api_key go together", why, 1, true)
      _, why = config.resolve({ account_id = ACCOUNT, api_key = "k", api_token = "t" }, env({}))
      assert.matches("api_email and api_key go together", why, 1, true)
    end)

    it("half a pair in the environment when nothing else is set", function()
      local _, why = config.resolve({ account_id = ACCOUNT }, env({ CLOUDFLARE_API_KEY = "k" }))
      assert.matches("CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY go together", why, 1, true)
    end)

    it("an account id that cannot be one", function()
      for _, bad in ipairs({ "", "a/b", "../x", string.rep("a", 33), "a b", 42 }) do
        local c, why = config.resolve({ account_id = bad, api_token = "t" }, env({}))
        assert.is_nil(c, tostring(bad))
        assert.matches("account_id", why, 1, true)
      end
    end)

    it("a credential with a line break, without echoing it", function()
      local c, why = config.resolve({ account_id = ACCOUNT, api_token = "sec\r\nX-Evil: 1" }, env({}))
      assert.is_nil(c)
      assert.matches("API token", why, 1, true)
      assert.not_matches("sec", why, 1, true)
    end)

    it("a base URL that is not http(s), or carries a query or user info", function()
      for _, bad in ipairs({ "ftp://x", "file:///etc/passwd", "api.cloudflare.com",
                             "https://x/?a=1", "https://u:p@x/", "https://x/a b" }) do
        local c, why = config.resolve({ account_id = ACCOUNT, api_token = "t", base_url = bad }, env({}))
        assert.is_nil(c, bad)
        assert.matches("base_url", why, 1, true)
      end
    end)

    it("timeouts that are not positive numbers", function()
      for _, bad in ipairs({ 0, -1, "5", 0 / 0, math.huge }) do
        local c, why = config.resolve({ account_id = ACCOUNT, api_token = "t", timeout = bad }, env({}))
        assert.is_nil(c)
        assert.matches("timeout", why, 1, true)
      end
    end)

    it("a timeout or a size past what libcurl takes, by the option's own name", function()
      for _, opts in ipairs({ { timeout = 1e300 }, { connect_timeout = 2147484 },
                              { max_response_size = 2 ^ 31 } }) do
        local name = next(opts)
        opts.account_id, opts.api_token = ACCOUNT, "t"
        local c, why = config.resolve(opts, env({}))
        assert.is_nil(c, name)
        assert.matches("^" .. name .. " must", why)
        assert.is_nil(why:find("_ms", 1, true), why)
      end
    end)

    it("an unreadable ca_bundle", function()
      local _, why = config.resolve({ account_id = ACCOUNT, api_token = "t",
                                      ca_bundle = "/nonexistent/ca.pem" }, env({}))
      assert.matches("ca_bundle", why, 1, true)
    end)

    it("an unknown option (a typo)", function()
      local _, why = config.resolve({ account_id = ACCOUNT, api_tokne = "t" }, env({}))
      assert.matches("unknown option 'api_tokne': did you mean `api_token`?", why, 1, true)
    end)

    it("an option of rate_limit it does not know (a burst it would not keep)", function()
      local _, why = config.resolve({ account_id = ACCOUNT, api_token = "t",
                                      rate_limit = { requests = 10, per = 1, burst = 5 } }, env({}))
      assert.matches("rate_limit.burst is not an option of rate_limit", why, 1, true)
    end)
  end)
end)

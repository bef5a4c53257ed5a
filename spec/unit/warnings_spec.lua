-- sync/warnings.lua: the cautions Cloudflare documents about a setting's
-- value, checked on one desired entry: each rule fires when it should and
-- not on the near misses, messages name the field and escape control
-- characters, the order is stable, and the module loads without the core.
local warnings = require("cloudflare.email_security.sync.warnings")
local null = require("cloudflare.email_security.core").null

local TODAY = "2026-01-15"

-- the codes of check's answer, in order
local function codes(resource, entry, today)
  local out = {}
  for i, w in ipairs(warnings.check(resource, entry, today or TODAY)) do out[i] = w.code end
  return out
end

-- the warnings of one code
local function only(code, resource, entry, today)
  local out = {}
  for _, w in ipairs(warnings.check(resource, entry, today or TODAY)) do
    if w.code == code then out[#out + 1] = w end
  end
  return out
end

local function fires(code, resource, entry, today)
  return #only(code, resource, entry, today) > 0
end

local function merged(base, over)
  local out = {}
  for k, v in pairs(base) do out[k] = v end
  for k, v in pairs(over or {}) do out[k] = v end
  return out
end

-- an allow policy the dashboard's defaults would make: no warning
local POLICY = { pattern = "news@partner.example", pattern_type = "EMAIL", is_regex = false,
                 is_trusted_sender = false, is_exempt_recipient = false, is_acceptable_sender = true,
                 verify_sender = true }
local function policy(over) return merged(POLICY, over) end

describe("warnings", function()
  describe("codes", function()
    it("lists each code once with a one-line description", function()
      local seen = {}
      assert.is_true(#warnings.codes >= 10)
      for _, c in ipairs(warnings.codes) do
        assert.is_string(c.code)
        assert.matches("^[a-z_0-9]+$", c.code)
        assert.is_nil(seen[c.code], c.code)
        seen[c.code] = true
        assert.is_string(c.description)
        assert.is_true(#c.description > 10 and #c.description <= 110, c.code)
        assert.is_nil(c.description:find("[\r\n]"))
      end
    end)
  end)

  it("finds nothing in ordinary entries", function()
    assert.are.same({}, codes("allow_policies", POLICY))
    assert.are.same({}, codes("allow_policies", { pattern = ".*@mail\\.asana\\.com", pattern_type = "EMAIL",
      is_regex = true, is_acceptable_sender = true, verify_sender = true }))
    assert.are.same({}, codes("block_senders", { pattern = "203.0.113.7", pattern_type = "IP", is_regex = false }))
    assert.are.same({}, codes("trusted_domains", { pattern = "example.com", is_regex = false, is_recent = true,
      is_similarity = false }))
    assert.are.same({}, codes("impersonation_registry", { name = "Jo", email = "jo@example.com",
      is_email_regex = false }))
    assert.are.same({}, codes("url_ignore_patterns", { pattern = "https://example\\.com/.*" }))
    assert.are.same({}, codes("content_policies", { name = "x", pattern = "urgent.*verify.*account",
      targets = { "SUBJECT" }, enabled = true }))
    assert.are.same({}, codes("sending_domain_restrictions", { domain = "example.com",
      exclude = { "legacy.example.com" } }))
    assert.are.same({}, codes("domains", { domain = "example.com" }))
    assert.are.same({}, codes("allow_policies", {}))
  end)

  describe("acceptable_unverified", function()
    it("fires for an accepted sender by address, domain or regex with verify_sender false", function()
      local w = only("acceptable_unverified", "allow_policies", policy({ verify_sender = false }))
      assert.are.equal(1, #w)
      assert.are.equal("verify_sender", w[1].field)
      assert.matches("verify_sender", w[1].message, 1, true)
      assert.matches("`news@partner.example`", w[1].message, 1, true)
      assert.is_true(fires("acceptable_unverified", "allow_policies",
        policy({ verify_sender = false, pattern_type = "DOMAIN", pattern = "partner.example" })))
      assert.is_true(fires("acceptable_unverified", "allow_policies",
        policy({ verify_sender = false, is_regex = true, pattern = ".*@partner\\.example" })))
    end)
    it("reads the deprecated is_spoof when is_acceptable_sender is absent, not over it", function()
      local e = policy({ verify_sender = false })
      e.is_acceptable_sender = nil
      e.is_spoof = true
      assert.is_true(fires("acceptable_unverified", "allow_policies", e))
      e.is_acceptable_sender = false
      assert.is_false(fires("acceptable_unverified", "allow_policies", e))
    end)
    it("does not fire when verified, left out, null, on an IP address, or not accepting", function()
      assert.is_false(fires("acceptable_unverified", "allow_policies", policy()))
      assert.is_false(fires("acceptable_unverified", "allow_policies", policy({ verify_sender = null })))
      local absent = policy()
      absent.verify_sender = nil
      assert.is_false(fires("acceptable_unverified", "allow_policies", absent))
      -- Cloudflare's use case 3: accept sender on a static IP you own, unverified
      assert.is_false(fires("acceptable_unverified", "allow_policies",
        policy({ verify_sender = false, pattern_type = "IP", pattern = "203.0.113.7" })))
      assert.is_false(fires("acceptable_unverified", "allow_policies",
        policy({ verify_sender = false, is_acceptable_sender = false, is_exempt_recipient = true })))
      -- not a field of blocked senders
      assert.is_false(fires("acceptable_unverified", "block_senders",
        policy({ verify_sender = false })))
    end)
  end)

  describe("trusted_unverified", function()
    it("fires for a trusted sender by address or domain with verify_sender false", function()
      local w = only("trusted_unverified", "allow_policies",
        policy({ is_acceptable_sender = false, is_trusted_sender = true, verify_sender = false }))
      assert.are.equal(1, #w)
      assert.are.equal("verify_sender", w[1].field)
      assert.matches("verify_sender", w[1].message, 1, true)
      local old = policy({ is_acceptable_sender = false, verify_sender = false })
      old.is_trusted_sender, old.is_sender = nil, true
      assert.is_true(fires("trusted_unverified", "allow_policies", old))
    end)
    it("does not fire when verified, on an IP address, or not trusting", function()
      assert.is_false(fires("trusted_unverified", "allow_policies",
        policy({ is_trusted_sender = true, verify_sender = true })))
      assert.is_false(fires("trusted_unverified", "allow_policies",
        policy({ is_trusted_sender = true, verify_sender = false, pattern_type = "IP", pattern = "203.0.113.7" })))
      assert.is_false(fires("trusted_unverified", "allow_policies", policy({ verify_sender = false })))
    end)
  end)

  describe("exempt_recipient_pattern", function()
    local base = { pattern = "example.com", pattern_type = "DOMAIN", is_regex = false, is_exempt_recipient = true,
                   is_trusted_sender = false, is_acceptable_sender = false, verify_sender = false }
    it("fires for an exempt recipient by a plain domain or IP", function()
      local w = only("exempt_recipient_pattern", "allow_policies", base)
      assert.are.equal(1, #w)
      assert.are.equal("pattern_type", w[1].field)
      assert.matches("pattern_type is DOMAIN", w[1].message, 1, true)
      assert.is_true(fires("exempt_recipient_pattern", "allow_policies",
        merged(base, { pattern_type = "IP", pattern = "203.0.113.7" })))
      local old = merged(base)
      old.is_exempt_recipient, old.is_recipient = nil, true
      assert.is_true(fires("exempt_recipient_pattern", "allow_policies", old))
    end)
    it("does not fire for an address, a regular expression, or another action", function()
      assert.is_false(fires("exempt_recipient_pattern", "allow_policies",
        merged(base, { pattern_type = "EMAIL", pattern = "phish@example.com" })))
      assert.is_false(fires("exempt_recipient_pattern", "allow_policies",
        merged(base, { is_regex = true, pattern = ".*@example\\.com" })))
      assert.is_false(fires("exempt_recipient_pattern", "allow_policies",
        merged(base, { is_exempt_recipient = false, is_acceptable_sender = true, verify_sender = true })))
    end)
  end)

  describe("allow_policy_no_action", function()
    local none = policy({ is_acceptable_sender = false })
    it("fires when all three actions are false, also under their deprecated names", function()
      local w = only("allow_policy_no_action", "allow_policies", none)
      assert.are.equal(1, #w)
      assert.are.equal("is_trusted_sender", w[1].field)
      assert.matches("is_acceptable_sender", w[1].message, 1, true)
      local old = { pattern = "a@example.com", pattern_type = "EMAIL", is_regex = false, verify_sender = true,
                    is_sender = false, is_recipient = false, is_spoof = false }
      assert.is_true(fires("allow_policy_no_action", "allow_policies", old))
    end)
    it("does not fire when one is true or one is left out", function()
      assert.is_false(fires("allow_policy_no_action", "allow_policies", merged(none, { is_exempt_recipient = true })))
      local partial = merged(none)
      partial.is_trusted_sender = nil
      assert.is_false(fires("allow_policy_no_action", "allow_policies", partial))
    end)
  end)

  describe("trusted_domain_no_effect", function()
    it("fires when is_recent and is_similarity are both false", function()
      local w = only("trusted_domain_no_effect", "trusted_domains",
        { pattern = "example.com", is_regex = false, is_recent = false, is_similarity = false })
      assert.are.equal(1, #w)
      assert.are.equal("is_recent", w[1].field)
      assert.matches("is_similarity", w[1].message, 1, true)
    end)
    it("does not fire when either is true or left out", function()
      assert.is_false(fires("trusted_domain_no_effect", "trusted_domains",
        { pattern = "example.com", is_recent = false, is_similarity = true }))
      assert.is_false(fires("trusted_domain_no_effect", "trusted_domains",
        { pattern = "example.com", is_recent = false }))
    end)
  end)

  describe("pattern_type_unknown", function()
    it("fires for UNKNOWN on allow policies and blocked senders only", function()
      local w = only("pattern_type_unknown", "block_senders", { pattern = "x@example.com", pattern_type = "UNKNOWN" })
      assert.are.equal(1, #w)
      assert.are.equal("pattern_type", w[1].field)
      assert.matches("pattern_type is UNKNOWN", w[1].message, 1, true)
      assert.is_true(fires("pattern_type_unknown", "allow_policies", policy({ pattern_type = "UNKNOWN" })))
      assert.is_false(fires("pattern_type_unknown", "allow_policies", policy()))
    end)
  end)

  describe("ip_rejected", function()
    local function ip(pattern, over)
      return merged({ pattern = pattern, pattern_type = "IP", is_regex = false }, over)
    end
    it("fires for private, loopback, link-local and unspecified addresses", function()
      for _, case in ipairs({
        { "10.1.2.3", "private" }, { "172.16.0.0/12", "private" }, { "172.31.255.1", "private" },
        { "192.168.1.1", "private" }, { "127.0.0.1", "loopback" }, { "169.254.10.1", "link-local" },
        { "0.0.0.0", "unspecified" }, { "0.0.0.0/0", "unspecified" },
      }) do
        local w = only("ip_rejected", "block_senders", ip(case[1]))
        assert.are.equal(1, #w, case[1])
        assert.are.equal("pattern", w[1].field)
        assert.matches("a " .. case[2] .. " address", w[1].message, 1, true)
        assert.matches("`" .. case[1] .. "`", w[1].message, 1, true)
      end
    end)
    it("fires for what is not a plain IPv4 address or CIDR block", function()
      for _, p in ipairs({ "1.2.3.256", "2001:db8::1", "1.2.3.4/33", "1.2.3", " 1.2.3.4", "1.2.3.4/", "01234.1.1.1" }) do
        local w = only("ip_rejected", "allow_policies", policy(ip(p)))
        assert.are.equal(1, #w, p)
        assert.matches("not a plain IPv4 address", w[1].message, 1, true)
      end
    end)
    it("does not fire for global addresses, regular expressions, or other pattern types", function()
      for _, p in ipairs({ "8.8.8.8", "203.0.113.0/24", "172.32.0.1", "172.15.0.1", "192.169.0.1", "169.253.0.1",
                           "11.0.0.1", "1.0.0.0/8" }) do
        assert.is_false(fires("ip_rejected", "block_senders", ip(p)), p)
      end
      assert.is_false(fires("ip_rejected", "block_senders", ip("10\\.0\\.0\\..*", { is_regex = true })))
      assert.is_false(fires("ip_rejected", "block_senders", { pattern = "10.0.0.1", pattern_type = "DOMAIN" }))
    end)
  end)

  describe("regex_matches_all", function()
    local function regex(pattern) return { pattern = pattern, pattern_type = "EMAIL", is_regex = true } end
    it("fires for patterns that match every value", function()
      for _, p in ipairs({ "", ".*", "^.*$", "(.*)", "[\\s\\S]*", "[\\w\\W]*", "a|.*", ".*|a", "(?i).*", "(?s:.*)",
                           "(.*)(.*)", "(?:.*)+", "(.)*", "(.+)?", "\\S*", "[^\\s]*", "(?<all>.*)", ".*.*",
                           "|.+", "a|.+|" }) do
        local w = only("regex_matches_all", "block_senders", regex(p))
        assert.are.equal(1, #w, p)
        assert.are.equal("pattern", w[1].field)
        assert.matches("matches every value", w[1].message, 1, true)
        assert.is_nil(w[1].message:find("or more characters", 1, true), p)
        assert.matches("mark all mail malicious", w[1].message, 1, true)
      end
    end)
    it("fires for patterns that match nearly every value", function()
      for _, p in ipairs({ ".+", "..*", ".{2,}", "^.+$", ".*@.*", ".+@.+", ".+@.+\\..+", ".*\\..*", "[^@]+@[^@]+",
                           "(.*)@(.*)", ".*[@].*", "\\S+@\\S+" }) do
        assert.is_true(fires("regex_matches_all", "block_senders", regex(p)), p)
      end
    end)
    it("fires for patterns that match the empty string, unless anchored at both ends", function()
      for _, p in ipairs({ "a?", "x*", "(foo)?", "(foo|)", "foo|", "|", "^a*", "a*$", "(?i)" }) do
        local w = only("regex_matches_all", "block_senders", regex(p))
        assert.are.equal(1, #w, p)
        assert.matches("empty string", w[1].message, 1, true)
      end
      assert.is_false(fires("regex_matches_all", "block_senders", regex("^a*$")))
      assert.is_false(fires("regex_matches_all", "block_senders", regex("^$")))
    end)
    it("does not fire for the near misses", function()
      for _, p in ipairs({ ".*\\.example\\.com", ".*@example\\.com", ".*@.*\\.apache\\.org", ".*@", "@.*", "@",
                           "\\w+@\\w+\\.\\w+", ".{20,}", "a.*", ".*a", "(.*)a", "a+", "[a-z]+@example\\.com",
                           "147\\.160\\.167\\.([1-5][0-9]|6[0-2]|[1-9])", "\\Q.*\\E", "(?=a).*", ".*\\b",
                           ".*@@.*", "[.]+", "x(", "[abc", "*a", "(a|.*)b" }) do
        assert.is_false(fires("regex_matches_all", "block_senders", regex(p)), p)
      end
    end)
    it("only where the pattern is a regular expression", function()
      assert.is_false(fires("regex_matches_all", "block_senders", { pattern = ".*", is_regex = false }))
      assert.is_false(fires("regex_matches_all", "block_senders", { pattern = ".*" }))
      assert.is_true(fires("regex_matches_all", "allow_policies", policy({ pattern = ".*", is_regex = true })))
      assert.is_true(fires("regex_matches_all", "trusted_domains", { pattern = ".*", is_regex = true }))
      -- URL ignore patterns and content policies are always regular expressions
      assert.is_true(fires("regex_matches_all", "url_ignore_patterns", { pattern = ".*" }))
      assert.is_true(fires("regex_matches_all", "content_policies", { name = "x", pattern = "a?" }))
      local w = only("regex_matches_all", "impersonation_registry", { email = ".+@.+", is_email_regex = true })
      assert.are.equal(1, #w)
      assert.are.equal("email", w[1].field)
      assert.matches("^email ", w[1].message)
      assert.is_false(fires("regex_matches_all", "impersonation_registry", { email = ".+@.+", is_email_regex = false }))
    end)
    it("sees past a scheme in URL ignore patterns", function()
      for _, p in ipairs({ "https?://.*", "^https://.+$", "(http|https)://.*\\..*", "(?:https?)://.*",
                           "https?:\\/\\/.*" }) do
        local w = only("regex_matches_all", "url_ignore_patterns", { pattern = p })
        assert.are.equal(1, #w, p)
        assert.matches("every URL", w[1].message, 1, true)
      end
      for _, p in ipairs({ "https://example\\.com/.*", "https?://.*\\.example\\.com/.*", "http://" }) do
        assert.is_false(fires("regex_matches_all", "url_ignore_patterns", { pattern = p }), p)
      end
      -- the scheme is only skipped for URLs
      assert.is_false(fires("regex_matches_all", "block_senders", regex("https?://.*")))
    end)
  end)

  describe("looks_like_regex", function()
    it("fires for regex syntax in a plain domain or address", function()
      local w = only("looks_like_regex", "allow_policies",
        policy({ pattern = "*.example.com", pattern_type = "DOMAIN" }))
      assert.are.equal(1, #w)
      assert.are.equal("pattern", w[1].field)
      assert.matches("holds `*`", w[1].message, 1, true)
      assert.matches("is_regex", w[1].message, 1, true)
      for _, p in ipairs({ ".*@example\\.com", "jo@example.com$", "jo@(a|b).com", "[a-z]+@example.com",
                           "\\w@example.com" }) do
        assert.is_true(fires("looks_like_regex", "block_senders",
          { pattern = p, pattern_type = "EMAIL", is_regex = false }), p)
      end
      assert.is_true(fires("looks_like_regex", "trusted_domains", { pattern = "*.example.com", is_regex = false }))
      local iw = only("looks_like_regex", "impersonation_registry", { email = ".*@example\\.com", is_email_regex = false })
      assert.are.equal("email", iw[1].field)
      assert.matches("is_email_regex", iw[1].message, 1, true)
    end)
    it("fires for a wildcard in a sending domain restriction's domain and excludes, in order", function()
      local w = only("looks_like_regex", "sending_domain_restrictions",
        { domain = "*.example.com", exclude = { "ok.example.com", "a*.example.com" } })
      assert.are.equal(2, #w)
      assert.are.same({ "domain", "exclude" }, { w[1].field, w[2].field })
      assert.matches("plain domain name", w[2].message, 1, true)
    end)
    it("does not fire for plain values, IP patterns, or regular expressions", function()
      for _, p in ipairs({ "jo+tag@example.com", "o'brien@example.com", "a*b@example.com", "jo@bücher.example" }) do
        assert.is_false(fires("looks_like_regex", "block_senders",
          { pattern = p, pattern_type = "EMAIL", is_regex = false }), p)
      end
      assert.is_false(fires("looks_like_regex", "block_senders",
        { pattern = "*.example.com", pattern_type = "DOMAIN", is_regex = true }))
      assert.is_false(fires("looks_like_regex", "block_senders",
        { pattern = "10.0.0.*", pattern_type = "IP", is_regex = false }))
      assert.is_false(fires("looks_like_regex", "impersonation_registry",
        { email = ".*@example\\.com", is_email_regex = true }))
    end)
  end)

  describe("quantifier_over_50", function()
    it("fires for a content policy quantifier above 50", function()
      local w = only("quantifier_over_50", "content_policies", { name = "x", pattern = "a{51}" })
      assert.are.equal(1, #w)
      assert.are.equal("pattern", w[1].field)
      assert.matches("quantifier of 51", w[1].message, 1, true)
      assert.is_true(fires("quantifier_over_50", "content_policies", { pattern = "\\d{2,99}" }))
      assert.is_true(fires("quantifier_over_50", "content_policies", { pattern = "x{60,}" }))
    end)
    it("does not fire at 50, escaped, in a class, or on other resources", function()
      for _, p in ipairs({ "a{0,50}", "a{50}", "\\{99}", "[{99}]", "[\\]{99}]", "a{x}" }) do
        assert.is_false(fires("quantifier_over_50", "content_policies", { pattern = p }), p)
      end
      assert.is_false(fires("quantifier_over_50", "url_ignore_patterns", { pattern = "a{99}" }))
    end)
  end)

  describe("exclude_not_subdomain", function()
    it("fires for excludes that are not subdomains, in the list's order", function()
      local w = only("exclude_not_subdomain", "sending_domain_restrictions", { domain = "Example.com.",
        exclude = { "MAIL.example.COM.", "example.com", "other.com", "badexample.com", ".example.com" } })
      assert.are.equal(4, #w)
      for _, x in ipairs(w) do assert.are.equal("exclude", x.field) end
      assert.matches("`example.com` is the restricted domain itself", w[1].message, 1, true)
      assert.matches("`other.com` is not a subdomain", w[2].message, 1, true)
      assert.matches("`badexample.com` is not a subdomain", w[3].message, 1, true)
      assert.matches("`.example.com` is not a subdomain", w[4].message, 1, true)
    end)
    it("does not fire without a domain or excludes", function()
      assert.are.same({}, codes("sending_domain_restrictions", { exclude = { "other.com" } }))
      assert.are.same({}, codes("sending_domain_restrictions", { domain = "example.com", exclude = null }))
    end)
  end)

  describe("deprecated fields", function()
    it("warns of a deprecated field before its end of life, naming the replacement", function()
      local w = only("deprecated_field", "allow_policies", policy({ is_sender = true }), "2026-06-30")
      assert.are.equal(1, #w)
      assert.are.equal("is_sender", w[1].field)
      assert.matches("2026-07-01", w[1].message, 1, true)
      assert.matches("is_trusted_sender", w[1].message, 1, true)
      assert.is_false(fires("past_end_of_life", "allow_policies", policy({ is_sender = true }), "2026-06-30"))
    end)
    it("says it is past its end of life on and after the day", function()
      for _, day in ipairs({ "2026-07-01", "2027-01-01" }) do
        local w = only("past_end_of_life", "allow_policies", policy({ is_spoof = false }), day)
        assert.are.equal(1, #w)
        assert.are.equal("is_spoof", w[1].field)
        assert.matches("is_acceptable_sender", w[1].message, 1, true)
        assert.is_false(fires("deprecated_field", "allow_policies", policy({ is_spoof = false }), day))
      end
    end)
    it("lists them in the description's order", function()
      local e = policy({ is_spoof = true, is_recipient = false, is_sender = true })
      local fields = {}
      for i, w in ipairs(only("past_end_of_life", "allow_policies", e, "2026-07-01")) do fields[i] = w.field end
      assert.are.same({ "is_recipient", "is_sender", "is_spoof" }, fields)
    end)
    it("knows a deprecated field without an end of life", function()
      local w = only("deprecated_field", "impersonation_registry",
        { email = "jo@example.com", is_email_regex = false, external_directory_node_id = "x" }, "2030-01-01")
      assert.are.equal(1, #w)
      assert.are.equal("external_directory_node_id", w[1].field)
    end)
    it("leaves alone read-only fields, null and absent ones", function()
      assert.are.same({}, codes("allow_policies", policy({ last_modified = "2026-01-01T00:00:00Z" }), "2027-01-01"))
      assert.are.same({}, codes("allow_policies", policy({ is_sender = null }), "2027-01-01"))
      assert.are.same({}, codes("allow_policies", policy({ is_sender = null }), "2026-01-01"))
    end)
  end)

  it("gives the rules in the order of the codes, the same each time", function()
    local e = { pattern = ".*", pattern_type = "UNKNOWN", is_regex = true, is_trusted_sender = true,
                is_acceptable_sender = true, is_exempt_recipient = false, verify_sender = false, is_sender = true }
    local want = { "acceptable_unverified", "trusted_unverified", "pattern_type_unknown", "regex_matches_all",
                   "past_end_of_life" }
    assert.are.same(want, codes("allow_policies", e, "2026-08-01"))
    assert.are.same(want, codes("allow_policies", e, "2026-08-01"))
    local order = {}
    for i, c in ipairs(warnings.codes) do order[c.code] = i end
    local last = 0
    for _, code in ipairs(want) do
      assert.is_true(order[code] > last, code)
      last = order[code]
    end
  end)

  it("writes control characters in quoted values as \\xNN and cuts long ones", function()
    local nasty = "evil\27[2J\r\n\0\127"
    local found = {}
    for _, w in ipairs(warnings.check("sending_domain_restrictions",
      { domain = "example.com", exclude = { nasty .. ".other.com" } }, TODAY)) do found[#found + 1] = w end
    for _, w in ipairs(warnings.check("block_senders",
      { pattern = nasty .. "|.*", pattern_type = "EMAIL", is_regex = true }, TODAY)) do found[#found + 1] = w end
    assert.are.equal(2, #found)
    for _, w in ipairs(found) do
      assert.is_nil(w.message:find("[%z\1-\31\127]"), w.message)
      assert.matches("evil\\x1b[2J\\x0d\\x0a\\x00\\x7f", w.message, 1, true)
    end
    local long = warnings.check("block_senders", { pattern = ("a"):rep(500) .. "|.*", is_regex = true }, TODAY)
    assert.is_true(#long[1].message < 400)
    assert.matches("...`", long[1].message, 1, true)
  end)

  it("writes the Unicode characters a terminal obeys as \\uNNNN", function()
    local w = warnings.check("block_senders", { pattern = "\226\128\174|.*", is_regex = true }, TODAY)
    assert.matches("\\u202e", w[1].message, 1, true)
    assert.is_nil(w[1].message:find("\226\128\174", 1, true))
  end)

  it("writes every message as one sentence that names its field", function()
    local samples = {
      { "allow_policies", { pattern = "*.x.example", pattern_type = "UNKNOWN", is_regex = false,
        is_trusted_sender = false, is_exempt_recipient = false, is_acceptable_sender = false, verify_sender = false,
        is_sender = false } },
      { "allow_policies", policy({ verify_sender = false, is_trusted_sender = true }) },
      { "allow_policies", policy({ pattern = "10.0.0.1", pattern_type = "IP", is_exempt_recipient = true }) },
      { "trusted_domains", { pattern = ".*", is_regex = true, is_recent = false, is_similarity = false } },
      { "content_policies", { pattern = "a{99}|" } },
      { "sending_domain_restrictions", { domain = "a.example", exclude = { "b.example" } } },
      { "impersonation_registry", { email = "x", external_directory_node_id = "1" } },
      { "allow_policies", policy({ verify_sender = false }) },
    }
    local seen = {}
    for _, s in ipairs(samples) do
      for _, w in ipairs(warnings.check(s[1], s[2], "2026-08-01")) do
        seen[w.code] = true
        assert.is_string(w.field)
        assert.is_truthy(w.message:find(w.field, 1, true), w.code .. ": " .. w.message)
        assert.is_nil(w.message:find("[%.!]%s"), w.message)
        assert.is_nil(w.message:find("\n"), w.message)
      end
    end
    -- and every code has been seen
    for _, c in ipairs(warnings.codes) do assert.is_true(seen[c.code], c.code) end
  end)

  it("refuses an unknown resource and a date not written YYYY-MM-DD", function()
    assert.has_error(function() warnings.check("allow_policy", {}, TODAY) end,
      "warnings.check: unknown resource `allow_policy`")
    assert.has_error(function() warnings.check("allow_policies", {}, "15/01/2026") end)
    assert.has_error(function() warnings.check("allow_policies", {}) end)
    assert.has_error(function() warnings.check("allow_policies", "x", TODAY) end)
  end)

  it("loads and checks without the C core", function()
    local names = { "cloudflare.email_security.core", "cloudflare.email_security.errors",
                    "cloudflare.email_security.sync.warnings" }
    local saved, preload = {}, package.preload["cloudflare.email_security.core"]
    for _, n in ipairs(names) do saved[n], package.loaded[n] = package.loaded[n], nil end
    package.preload["cloudflare.email_security.core"] = function() error("no C core here") end
    local ok, fresh = pcall(require, "cloudflare.email_security.sync.warnings")
    local result = ok and fresh.check("block_senders", { pattern = "a\27|.*", is_regex = true }, TODAY)
    package.preload["cloudflare.email_security.core"] = preload
    for _, n in ipairs(names) do package.loaded[n] = saved[n] end
    assert.is_true(ok, tostring(fresh))
    assert.are.equal("regex_matches_all", result[1].code)
    assert.matches("a\\x1b|.*", result[1].message, 1, true)
  end)
end)

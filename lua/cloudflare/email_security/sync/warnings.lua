-- Cautions Cloudflare's documentation and API schema give about a
-- setting's value, checked on one desired entry at plan time: an entry the
-- API accepts but that does something other than what was likely meant,
-- or that the API will refuse. Plan shows them as warnings (errors with
-- --strict); this module only finds them.
--
--   warnings.check(resource, entry, today) -> list
--     resource: a resource name ("allow_policies", ...); entry: a table of
--     API field names to values, typed (booleans are booleans; JSON null,
--     a light userdata, counts as absent); today: "YYYY-MM-DD", the date
--     the caller compares end-of-life dates with. Returns a list, maybe
--     empty, of { code = ..., field = ..., message = ... } in a stable
--     order: the rules in the order of warnings.codes, and within a rule
--     the fields in the resource's order. A message is one sentence that
--     names the field and says what to do; a value it quotes has its
--     control characters written as \xNN.
--   warnings.codes -> list of { code = ..., description = ... }, one line
--     each (for the README).
--
-- A field the entry does not hold is not guessed at: a change that leaves
-- verify_sender out keeps the server's value, which this cannot see (pass
-- the entry as it will be, desired fields over current, to have it
-- judged). Each rule says where Cloudflare documents it. No cross-entry
-- check: the same pattern allowed and blocked lives in two resources,
-- beyond one entry.
--
-- Plain Lua that loads without the C core.

local type, tostring, ipairs, pairs = type, tostring, ipairs, pairs
local format = string.format
local INF = math.huge

local warnings = {}

warnings.codes = {
  { code = "acceptable_unverified",
    description = "allow policy accepts a sender by address, domain or regex with verify_sender = false" },
  { code = "trusted_unverified",
    description = "allow policy trusts a sender by address, domain or regex with verify_sender = false" },
  { code = "exempt_recipient_pattern",
    description = "allow policy exempts a recipient by a plain domain or IP, which exempt recipient does not match" },
  { code = "allow_policy_no_action",
    description = "allow policy with is_trusted_sender, is_exempt_recipient and is_acceptable_sender all false" },
  { code = "trusted_domain_no_effect",
    description = "trusted domain with is_recent and is_similarity both false" },
  { code = "pattern_type_unknown",
    description = "pattern_type UNKNOWN, which the API refuses when creating or updating" },
  { code = "ip_rejected",
    description = "IP pattern that is not a globally reachable IPv4 address or CIDR block" },
  { code = "regex_matches_all",
    description = "regular expression that matches every value, nearly every value, or the empty string" },
  { code = "looks_like_regex",
    description = "plain (not regex) pattern holding regex syntax such as `*`, matched as written" },
  { code = "quantifier_over_50",
    description = "content policy pattern with a {n,m} quantifier above 50" },
  { code = "exclude_not_subdomain",
    description = "sending domain restriction exclude that is not a subdomain of its domain" },
  { code = "deprecated_field",
    description = "deprecated field set before its end of life (or with none announced)" },
  { code = "past_end_of_life",
    description = "deprecated field set on or after its end of life, when the API no longer takes it" },
}

---------------------------------------------------------------------------
-- Values
---------------------------------------------------------------------------

-- JSON null is lua-cjson's light userdata: tested by type, without the core
local function present(v) return v ~= nil and type(v) ~= "userdata" end

-- A flag that may be set under its deprecated name: the current name wins.
local function flag(e, name, old)
  local v = e[name]
  if type(v) == "boolean" then return v end
  if old then
    v = e[old]
    if type(v) == "boolean" then return v end
  end
  return nil
end

local function text(e, name)
  local v = e[name]
  if type(v) == "string" then return v end
  return nil
end

-- The errors module's escape of the Unicode characters a terminal obeys,
-- when it loads (it needs the C core); the bytes below are escaped always.
local unicode_escape
local function escape_unicode(s)
  if unicode_escape == nil then
    local ok, errors = pcall(require, "cloudflare.email_security.errors")
    unicode_escape = ok and type(errors) == "table" and errors.escape_unicode_controls or false
  end
  if unicode_escape then return unicode_escape(s) end
  return s
end

local SHOWN = 60

-- A value as a message quotes it: at most SHOWN bytes (cut before a whole
-- UTF-8 character), control bytes as \xNN.
local function shown(v)
  local s = tostring(v)
  if #s > SHOWN then
    s = s:sub(1, SHOWN):gsub("[\192-\255][\128-\191]*$", "") .. "..."
  end
  s = s:gsub("[%z\1-\31\127]", function(c) return format("\\x%02x", c:byte()) end)
  return "`" .. escape_unicode(s) .. "`"
end

---------------------------------------------------------------------------
-- Regular expressions that match everything
--
-- Not a regex engine: a parser for Java's syntax (what Cloudflare says its
-- patterns are) into a small tree, and three questions about it. A pattern
-- it cannot parse is not flagged.
--   cover: the least n such that the pattern matches every string at
--     least n long, if any: `.*`, `^.*$`, `(.*)`, `[\s\S]*`, `a|.*`,
--     `.+` (1), `(?i).*`; flagged for n up to 8 (NEARLY; `.{20,}` is not).
--     `.` and `\S` count as any character (the values are addresses,
--     domains, IP addresses and URLs: no line breaks). In URL ignore
--     patterns, also after a scheme: `https?://.*`.
--   skeleton: one alternative made only of runs of any character (or
--     of all but `@`, `.` and white space: `[^@]+`) around single `@` and
--     `.`: `.*@.*`, `.+@.+\..+`, `[^@]+@[^@]+`: every address has that
--     shape.
--   empty: one alternative that can match the empty string and is not
--     anchored at both ends (`a?`, `x*`, `(foo|)`, `^a*`): wherever the
--     pattern is searched for rather than matched whole (content policies
--     are: "pay" matches content containing it), it is found in every
--     value.
-- `.*\.example\.com` and `.*@example\.com` are none of these.
---------------------------------------------------------------------------

local WILD = { k = "wild" }
local OTHER = { k = "other" }
local MAX_DEPTH = 100

-- white space, as a negated class may list it
local SPACE = { [" "] = true, ["\t"] = true, ["\n"] = true, ["\r"] = true, ["\f"] = true,
                ["\\s"] = true, ["\\t"] = true, ["\\n"] = true, ["\\r"] = true, ["\\f"] = true }
local AT_DOT = { ["@"] = true, ["."] = true, ["\\@"] = true, ["\\."] = true }

-- A quantifier at i: min, max, the index after it (1, 1, i when none).
local function quantifier(s, i)
  local c, m, M = s:sub(i, i), nil, nil
  if c == "*" then m, M, i = 0, INF, i + 1
  elseif c == "+" then m, M, i = 1, INF, i + 1
  elseif c == "?" then m, M, i = 0, 1, i + 1
  elseif c == "{" then
    local a, comma, b, j = s:match("^{(%d+)(,?)(%d*)}()", i)
    if a then
      m = tonumber(a)
      if comma == "" then M = m elseif b == "" then M = INF else M = tonumber(b) end
      i = j
    end
  end
  if not m then return 1, 1, i end
  local lazy = s:sub(i, i)
  if lazy == "?" or lazy == "+" then i = i + 1 end
  return m, M, i
end

-- A character class at i ("["): its atom and the index after it, or nil.
local function class(s, i)
  local j, negated = i + 1, false
  if s:sub(j, j) == "^" then negated, j = true, j + 1 end
  local members, depth, first = {}, 0, true
  while true do
    local c = s:sub(j, j)
    if c == "" then return nil end
    if c == "\\" then
      local e = s:sub(j, j + 1)
      if #e < 2 then return nil end
      local after = (e == "\\p" or e == "\\P") and s:match("^{[^}]*}()", j + 2)
      members[#members + 1] = after and "other" or e
      j = after or j + 2
    elseif c == "[" and not first then
      depth, j = depth + 1, j + 1
      members[#members + 1] = "nested"
    elseif c == "]" and not first then
      j = j + 1
      if depth == 0 then break end
      depth = depth - 1
    elseif c == "&" and s:sub(j + 1, j + 1) == "&" then
      -- an intersection narrows the class: never any character
      members[#members + 1] = "nested"
      j = j + 2
    else
      members[#members + 1] = c
      j = j + 1
    end
    first = false
  end
  local has = {}
  for _, m in ipairs(members) do has[m] = true end
  if negated then
    if #members == 0 or has.nested then return OTHER, j end
    local spaces, at_dot = true, true
    for _, m in ipairs(members) do
      if not SPACE[m] then spaces = false end
      if not SPACE[m] and not AT_DOT[m] then at_dot = false end
    end
    if spaces then return WILD, j end
    if at_dot then return { k = "wildish" }, j end
    return OTHER, j
  end
  if has.nested then return OTHER, j end
  if (has["\\s"] and has["\\S"]) or (has["\\w"] and has["\\W"]) or (has["\\d"] and has["\\D"]) then
    return WILD, j
  end
  if #members == 1 and AT_DOT[members[1]] then return { k = "lit", ch = members[1]:sub(-1) }, j end
  return OTHER, j
end

-- An escape at i ("\"): its atom and the index after it, or nil.
local function escape(s, i)
  local c = s:sub(i + 1, i + 1)
  if c == "" then return nil end
  if c == "S" then return WILD, i + 2 end
  if c == "." or c == "@" then return { k = "lit", ch = c }, i + 2 end
  if c == "A" then return { k = "start" }, i + 2 end
  if c == "z" or c == "Z" then return { k = "end" }, i + 2 end
  if c == "b" or c == "B" or c == "G" then return { k = "opaque" }, i + 2 end
  if c == "Q" then
    local e = s:find("\\E", i + 2, true)
    return { k = "quoted", text = s:sub(i + 2, (e or #s + 1) - 1) }, e and e + 2 or #s + 1
  end
  local after
  if c == "p" or c == "P" then after = s:match("^{[^}]*}()", i + 2) or i + 3
  elseif c == "x" then after = s:match("^{%x+}()", i + 2) or s:match("^%x%x()", i + 2)
  elseif c == "u" then after = s:match("^%x%x%x%x()", i + 2)
  elseif c == "k" then after = s:match("^<%w+>()", i + 2)
  elseif c == "c" then after = i + 3
  elseif c == "0" then after = s:match("^[0-7]+()", i + 2)
  else after = i + 2
  end
  if not after then return nil end
  return OTHER, after
end

local parse_alt

-- A group at i ("("): its atom and the index after it, or nil.
local function group(s, i, depth)
  if s:sub(i + 1, i + 1) ~= "?" then
    local node, j = parse_alt(s, i + 1, depth + 1)
    return node and { k = "group", node = node }, j
  end
  local t = s:sub(i + 2, i + 2)
  if t == ":" or t == ">" then
    local node, j = parse_alt(s, i + 3, depth + 1)
    return node and { k = "group", node = node }, j
  end
  if t == "=" or t == "!" then
    local node, j = parse_alt(s, i + 3, depth + 1)
    return node and { k = "opaque" }, j
  end
  if t == "<" then
    local t2 = s:sub(i + 3, i + 3)
    if t2 == "=" or t2 == "!" then
      local node, j = parse_alt(s, i + 4, depth + 1)
      return node and { k = "opaque" }, j
    end
    local start = s:match("^<%a%w*>()", i + 2)
    if not start then return nil end
    local node, j = parse_alt(s, start, depth + 1)
    return node and { k = "group", node = node }, j
  end
  -- inline flags: (?i) changes nothing here; (?i:...) is a group
  local after = s:match("^[%a%-]*()", i + 2)
  local c = s:sub(after, after)
  if c == ")" then return { k = "flags" }, after + 1 end
  if c == ":" then
    local node, j = parse_alt(s, after + 1, depth + 1)
    return node and { k = "group", node = node }, j
  end
  return nil
end

local function atom_at(s, i, depth)
  local c = s:sub(i, i)
  if c == "." then return WILD, i + 1 end
  if c == "^" then return { k = "start" }, i + 1 end
  if c == "$" then return { k = "end" }, i + 1 end
  if c == "[" then return class(s, i) end
  if c == "\\" then return escape(s, i) end
  if c == "(" then return group(s, i, depth) end
  if c == "*" or c == "+" or c == "?" then return nil end
  if c == "@" then return { k = "lit", ch = "@" }, i + 1 end
  return OTHER, i + 1
end

-- The alternatives from i to the ")" that closes depth (or the end at
-- depth 0): { alts = { items, ... } }, each item { atom, min, max }; and
-- the index after; or nil.
function parse_alt(s, i, depth)
  if depth > MAX_DEPTH then return nil end
  local alts, items = {}, {}
  while true do
    local c = s:sub(i, i)
    if c == "" or c == ")" then
      if (c == "") ~= (depth == 0) then return nil end
      alts[#alts + 1] = items
      return { alts = alts }, i + 1
    elseif c == "|" then
      alts[#alts + 1] = items
      items, i = {}, i + 1
    else
      local atom, j = atom_at(s, i, depth)
      if not atom then return nil end
      local m, M, k = quantifier(s, j)
      if atom.k == "quoted" then
        -- \Q...\E: its characters one by one, the quantifier on the last
        local t = atom.text
        for n = 1, #t do
          local ch = t:sub(n, n)
          local a = (ch == "@" or ch == ".") and { k = "lit", ch = ch } or OTHER
          if n < #t then items[#items + 1] = { atom = a, min = 1, max = 1 }
          else items[#items + 1] = { atom = a, min = m, max = M } end
        end
      else
        items[#items + 1] = { atom = atom, min = m, max = M }
      end
      i = k
    end
  end
end

local function append_merged(out, it)
  local last = out[#out]
  if last and it.atom.k == "wild" and last.atom.k == "wild" then
    out[#out] = { atom = WILD, min = last.min + it.min, max = last.max + it.max }
  else
    out[#out + 1] = it
  end
end

-- Items with groups taken once spliced in, (.)* and (.*)+ made runs of
-- any character, inline flags dropped, and runs of any character side by
-- side (`..*`, `.?.*`) made one.
local function flatten(items, out)
  out = out or {}
  for _, it in ipairs(items) do
    local a = it.atom
    if a.k == "group" and it.min == 1 and it.max == 1 and #a.node.alts == 1 then
      flatten(a.node.alts[1], out)
    elseif a.k ~= "flags" then
      if a.k == "group" and it.max == INF and #a.node.alts == 1 then
        local inner = flatten(a.node.alts[1])
        local one = inner[1]
        if #inner == 1 and one.atom.k == "wild" and one.min <= 1 and one.max >= 1 then
          it = { atom = WILD, min = one.min * it.min, max = INF }
        end
      end
      append_merged(out, it)
    end
  end
  return out
end

-- flatten's items without anchors (for what a pattern matches whole)
local function unanchored(items)
  local out = {}
  for _, it in ipairs(flatten(items)) do
    local k = it.atom.k
    if k ~= "start" and k ~= "end" then append_merged(out, it) end
  end
  return out
end

local info_alt

-- Can the item match the empty string; the least n such that it matches
-- every string at least n long, or nil.
local function info_item(it)
  local a = it.atom
  if a.k == "wild" then return it.min == 0, it.max == INF and it.min or nil end
  if a.k == "group" then
    local inner_nullable, inner_cover = info_alt(a.node)
    local nullable = it.min == 0 or inner_nullable
    local cover
    if inner_cover and it.max >= 1 then
      cover = it.min <= 1 and inner_cover or it.min * inner_cover
      if nullable and cover == 1 then cover = 0 end
    end
    return nullable, cover
  end
  if a.k == "start" or a.k == "end" then return true, nil end
  return it.min == 0, nil
end

local function info_seq(items)
  local flat = unanchored(items)
  local nullable, covers, solid = {}, {}, 0
  for i, it in ipairs(flat) do
    nullable[i], covers[i] = info_item(it)
    if not nullable[i] then solid = solid + 1 end
  end
  -- one item that covers, every other one able to match nothing
  local cover
  for i = 1, #flat do
    local c = covers[i]
    if c and (cover == nil or c < cover) and solid - (nullable[i] and 0 or 1) == 0 then cover = c end
  end
  return solid == 0, cover
end

function info_alt(node)
  local nullable, cover = false, nil
  for _, items in ipairs(node.alts) do
    local n, c = info_seq(items)
    nullable = nullable or n
    if c and (cover == nil or c < cover) then cover = c end
  end
  if cover == 1 and nullable then cover = 0 end
  return nullable, cover
end

-- a run of any character: `.*`, `.+`, `[^@]+`, not `.{20,}`
local function run(it)
  return (it.atom.k == "wild" or it.atom.k == "wildish") and it.min <= 1 and it.max == INF
end
local function at_dot(it) return it.atom.k == "lit" and it.min == 1 and it.max == 1 end

local function skeleton(items)
  local flat = unanchored(items)
  local n = #flat
  if n == 0 or not run(flat[1]) or not run(flat[n]) then return false end
  for i, it in ipairs(flat) do
    if not run(it) and not (at_dot(it) and not at_dot(flat[i - 1])) then return false end
  end
  return true
end

local function empty_found(items)
  local flat = flatten(items)
  local n = #flat
  if n > 0 and flat[1].atom.k == "start" and flat[n].atom.k == "end" then return false end
  return (info_seq(items))
end

-- the longest a value may need to be for "every value at least n long" to
-- be every address, domain or IP address in practice
local NEARLY = 8

-- Why the regular expression matches every value, or nil. urls: strip a
-- scheme first too (`https?://.*` is every URL).
local function matches_all(pattern, urls)
  if pattern == "" then return "is empty and matches every value" end
  local root = parse_alt(pattern, 1, 0)
  if not root then return nil end
  local _, cover = info_alt(root)
  if cover == 0 then return "matches every value" end
  if cover and cover <= NEARLY then return format("matches every value of %d or more characters", cover) end
  for _, items in ipairs(root.alts) do
    if skeleton(items) then return "matches nearly every value" end
  end
  for _, items in ipairs(root.alts) do
    if empty_found(items) then return "matches the empty string, which a search finds in every value" end
  end
  if urls then
    local rest = warnings._after_scheme(pattern)
    local node = rest and rest ~= "" and parse_alt(rest, 1, 0)
    if node then
      local _, c = info_alt(node)
      local every = c and c <= NEARLY
      for _, items in ipairs(node.alts) do every = every or skeleton(items) end
      if every then return "matches every URL" end
    end
  end
  return nil
end

local SCHEMES = { "https?", "https", "http", "(https?)", "(?:https?)", "(http|https)", "(?:http|https)",
                  "(https|http)", "(?:https|http)", "[a-z]+", "[a-zA-Z]+", "\\w+" }
local SEPARATORS = { "://", ":\\/\\/" }

-- pattern after a leading ^ and a URL scheme, or nil
function warnings._after_scheme(pattern)
  local s = pattern:sub(1, 1) == "^" and pattern:sub(2) or pattern
  for _, scheme in ipairs(SCHEMES) do
    for _, sep in ipairs(SEPARATORS) do
      local prefix = scheme .. sep
      if s:sub(1, #prefix) == prefix then return s:sub(#prefix + 1) end
    end
  end
  return nil
end

-- exposed for the spec
warnings._matches_all = matches_all

---------------------------------------------------------------------------
-- Other values
---------------------------------------------------------------------------

-- Regex syntax a plain domain name never holds.
local function regex_char_in_domain(d)
  return d:match("[%*%?%+%^%$|%(%)%[%]{}\\]")
end

-- Regex syntax in a plain email address: anywhere in its domain part;
-- in the part before the @, what the address syntax allows unquoted
-- never (\ ( ) [ ]) or a leading .* or .+
local function regex_char_in_email(a)
  local at = a:match("^.*()@")
  local local_part, domain = a, ""
  if at then local_part, domain = a:sub(1, at - 1), a:sub(at + 1) end
  return regex_char_in_domain(domain) or local_part:match("[\\%(%)%[%]]") or local_part:match("^%.[%*%+]")
end

-- "private", "loopback", ... or nil for a global address; false when the
-- text is not an IPv4 address or CIDR block
local function ipv4_problem(s)
  local a, b, c, d, rest = s:match("^(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)(.*)$")
  if not a then return false end
  if rest ~= "" then
    local bits = rest:match("^/(%d%d?)$")
    if not bits or tonumber(bits) > 32 then return false end
  end
  a, b = tonumber(a), tonumber(b)
  if a > 255 or b > 255 or tonumber(c) > 255 or tonumber(d) > 255 then return false end
  if a == 0 then return "unspecified" end
  if a == 10 or (a == 172 and b >= 16 and b <= 31) or (a == 192 and b == 168) then return "private" end
  if a == 127 then return "loopback" end
  if a == 169 and b == 254 then return "link-local" end
  return nil
end

-- the largest number in a {n}, {n,} or {n,m} quantifier, outside classes
local function largest_quantifier(s)
  local i, n, largest = 1, #s, nil
  while i <= n do
    local c = s:sub(i, i)
    if c == "\\" then
      i = i + 2
    elseif c == "[" then
      i = i + 1
      if s:sub(i, i) == "^" then i = i + 1 end
      if s:sub(i, i) == "]" then i = i + 1 end
      while i <= n and s:sub(i, i) ~= "]" do
        i = i + (s:sub(i, i) == "\\" and 2 or 1)
      end
      i = i + 1
    elseif c == "{" then
      local a, b, j = s:match("^{(%d+),?(%d*)}()", i)
      if a then
        for _, v in ipairs({ tonumber(a), tonumber(b) }) do
          if v and (largest == nil or v > largest) then largest = v end
        end
        i = j
      else
        i = i + 1
      end
    else
      i = i + 1
    end
  end
  return largest
end

---------------------------------------------------------------------------
-- Deprecated fields, from the resource's description
---------------------------------------------------------------------------

local known
local deprecated_cache = {}

-- The deprecated fields an entry may send, in the description's order:
-- { name, end_of_life, replaced_by }. Read-only ones (last_modified) are
-- never sent: plan drops them.
local function deprecated_fields(resource)
  local cached = deprecated_cache[resource]
  if cached then return cached end
  local desc = require("cloudflare.email_security.resources." .. resource)
  local writable = {}
  for _, body in pairs(desc.bodies or {}) do
    for _, f in ipairs(body.properties or {}) do writable[f.name] = true end
  end
  local out = {}
  for _, f in ipairs(desc.entry and desc.entry.properties or {}) do
    if f.deprecated and not f.read_only and writable[f.name] then
      out[#out + 1] = { name = f.name, end_of_life = f.end_of_life, replaced_by = f.replaced_by }
    end
  end
  deprecated_cache[resource] = out
  return out
end

---------------------------------------------------------------------------
-- The rules
---------------------------------------------------------------------------

-- What a pattern matching everything would do, per resource.
local EVERYTHING = {
  allow_policies = "let all mail through this allow policy",
  block_senders = "mark all mail malicious",
  trusted_domains = "exempt every domain from these detections",
  impersonation_registry = "take every address as this person's own",
  url_ignore_patterns = "leave every link unrewritten",
  content_policies = "mark all mail malicious",
}

-- Each resource's regular expression: the field, and the flag that makes
-- it one (nil: always one).
local REGEX = {
  allow_policies = { field = "pattern", flag = "is_regex" },
  block_senders = { field = "pattern", flag = "is_regex" },
  trusted_domains = { field = "pattern", flag = "is_regex" },
  impersonation_registry = { field = "email", flag = "is_email_regex" },
  url_ignore_patterns = { field = "pattern" },
  content_policies = { field = "pattern" },
}

local rules = {}

-- Cloudflare, allow policies, "Accept sender" caution (cloudflare-docs PR
-- 23664, July 2025): with Accept sender on, keep Sender verification on,
-- else Email Security may "not recognize nefarious activities"; use case 3
-- of the same page allows it off only for an allow policy on "the static
-- IP you own": "Do not use email addresses or email domains for this
-- policy as they can be easily spoofed".
-- https://developers.cloudflare.com/cloudflare-one/email-security/settings/detection-settings/allow-policies/
-- Explicit false only: verify_sender has no documented default (the API
-- requires it on create) and an update that leaves it out keeps it.
function rules.acceptable_unverified(r, e, add)
  if r ~= "allow_policies" then return end
  if flag(e, "is_acceptable_sender", "is_spoof") == true and e.verify_sender == false
     and e.pattern_type ~= "IP" then
    add("verify_sender", format("verify_sender is false on allow policy %s, which accepts the sender by %s, "
      .. "so anyone forging it skips the Spam, Spoof and Bulk dispositions; set verify_sender to true, "
      .. "or match a static IP address you own instead",
      shown(e.pattern or ""), e.is_regex == true and "regular expression" or "address or domain"))
  end
end

-- Same page: "(Recommended) Sender verification"; Detection settings best
-- practices: "Always have Sender Verification (Recommended) enabled", and
-- a trusted sender bypasses "all detections and link following".
-- https://developers.cloudflare.com/cloudflare-one/email-security/settings/detection-settings/best-practices/
function rules.trusted_unverified(r, e, add)
  if r ~= "allow_policies" then return end
  if flag(e, "is_trusted_sender", "is_sender") == true and e.verify_sender == false
     and e.pattern_type ~= "IP" then
    add("verify_sender", format("verify_sender is false on allow policy %s, which trusts the sender by %s, "
      .. "so anyone forging it bypasses every detection; set verify_sender to true, "
      .. "or match a static IP address you own instead",
      shown(e.pattern or ""), e.is_regex == true and "regular expression" or "address or domain"))
  end
end

-- Exempt recipient matches "recipients matching this pattern (email
-- address or regular expression only)".
-- https://developers.cloudflare.com/learning-paths/secure-o365-email/configure-email-security/create-allow-policies/
function rules.exempt_recipient_pattern(r, e, add)
  if r ~= "allow_policies" then return end
  local t = e.pattern_type
  if flag(e, "is_exempt_recipient", "is_recipient") == true and e.is_regex ~= true
     and (t == "DOMAIN" or t == "IP") then
    add("pattern_type", format("pattern_type is %s on allow policy %s, which exempts a recipient, but Cloudflare "
      .. "documents exempt recipient for an email address or a regular expression only; use pattern_type EMAIL "
      .. "or a regular expression", t, shown(e.pattern or "")))
  end
end

-- The dashboard's Action: "Select one of the following" (trust sender,
-- exempt recipient, accept sender): with none, the policy does nothing.
-- https://developers.cloudflare.com/cloudflare-one/email-security/settings/detection-settings/allow-policies/
function rules.allow_policy_no_action(r, e, add)
  if r ~= "allow_policies" then return end
  if flag(e, "is_trusted_sender", "is_sender") == false and flag(e, "is_exempt_recipient", "is_recipient") == false
     and flag(e, "is_acceptable_sender", "is_spoof") == false then
    add("is_trusted_sender", format("is_trusted_sender, is_exempt_recipient and is_acceptable_sender are all false "
      .. "on allow policy %s, so it does nothing; set the one it is for to true, or delete it",
      shown(e.pattern or "")))
  end
end

-- Trusted domains' Domain type: "Select one or both options" (proximity,
-- recent).
-- https://developers.cloudflare.com/cloudflare-one/email-security/settings/detection-settings/trusted-domains/
function rules.trusted_domain_no_effect(r, e, add)
  if r ~= "trusted_domains" then return end
  if e.is_recent == false and e.is_similarity == false then
    add("is_recent", format("is_recent and is_similarity are both false on trusted domain %s, so it exempts "
      .. "nothing; set one or both to true, or delete it", shown(e.pattern or "")))
  end
end

-- OpenAPI components.schemas.email-security_PatternType: UNKNOWN is
-- "deprecated, cannot be used when creating or updating policies".
function rules.pattern_type_unknown(r, e, add)
  if r ~= "allow_policies" and r ~= "block_senders" then return end
  if e.pattern_type == "UNKNOWN" then
    add("pattern_type", "pattern_type is UNKNOWN, which is deprecated and refused when creating or updating; "
      .. "set EMAIL, DOMAIN or IP")
  end
end

-- OpenAPI email-security_AllowPolicy/BlockedSender.properties.pattern:
-- IP is "a plain IPv4 address ... or an IPv4 CIDR block ... Only globally
-- reachable addresses are accepted; private, loopback, link-local, and
-- unspecified addresses are rejected".
function rules.ip_rejected(r, e, add)
  if r ~= "allow_policies" and r ~= "block_senders" then return end
  local p = text(e, "pattern")
  if e.pattern_type ~= "IP" or e.is_regex == true or not p then return end
  local problem = ipv4_problem(p)
  if problem == false then
    add("pattern", format("pattern %s is not a plain IPv4 address or IPv4 CIDR block, which pattern_type IP "
      .. "needs; write it as 192.0.2.1 or 192.0.2.0/24, or set is_regex to true", shown(p)))
  elseif problem then
    add("pattern", format("pattern %s is a %s address, which the API rejects for pattern_type IP; give the "
      .. "sender's globally reachable IPv4 address", shown(p), problem))
  end
end

-- Regular expressions: "Must be valid Java expressions" (allow policies,
-- blocked senders, impersonation registry, trusted domains' regex); URL
-- ignore patterns and content policies are always one. No documented
-- caution names `.*`, but each of these settings exempts, blocks or
-- rewrites what its pattern matches, and the best practices ask for "the
-- narrowest possible scope".
function rules.regex_matches_all(r, e, add)
  local spec = REGEX[r]
  if not spec then return end
  local p = text(e, spec.field)
  if not p or (spec.flag and e[spec.flag] ~= true) then return end
  local why = matches_all(p, r == "url_ignore_patterns")
  if why then
    add(spec.field, format("%s %s is a regular expression that %s, so this entry would %s; narrow it to what "
      .. "it is meant for", spec.field, shown(p), why, EVERYTHING[r]))
  end
end

-- Patterns: EMAIL is "a valid email address", DOMAIN "a valid domain name"
-- (OpenAPI pattern descriptions); the dashboard: "Domains: Must be a valid
-- domain", regular expressions being a separate choice. A `*` in a plain
-- one is no wildcard.
function rules.looks_like_regex(r, e, add)
  local function say(field, value, char, regex_flag, address)
    if regex_flag then
      add(field, format("%s %s holds %s but %s is not true, so it is matched as written; set %s to true "
        .. "and write a regular expression (such as %s), or give a plain %s", field, shown(value), shown(char),
        regex_flag, regex_flag, address and ".*@example\\.com" or ".*\\.example\\.com",
        address and "address" or "name"))
    else
      add(field, format("%s %s holds %s, but this field takes a plain domain name, matched as written; "
        .. "give the domain name itself", field, shown(value), shown(char)))
    end
  end
  if r == "allow_policies" or r == "block_senders" or r == "trusted_domains" then
    local p = text(e, "pattern")
    if not p or e.is_regex == true or e.pattern_type == "IP" then return end
    local email = e.pattern_type == "EMAIL"
      or (e.pattern_type == nil and r ~= "trusted_domains" and p:find("@", 1, true))
    local char = email and regex_char_in_email(p) or (not email and regex_char_in_domain(p))
    if char then say("pattern", p, char, "is_regex", email) end
  elseif r == "impersonation_registry" then
    local a = text(e, "email")
    local char = a and e.is_email_regex ~= true and regex_char_in_email(a)
    if char then say("email", a, char, "is_email_regex", true) end
  elseif r == "sending_domain_restrictions" then
    local d = text(e, "domain")
    local char = d and regex_char_in_domain(d)
    if char then say("domain", d, char) end
    if type(e.exclude) == "table" then
      for _, x in ipairs(e.exclude) do
        char = type(x) == "string" and regex_char_in_domain(x)
        if char then say("exclude", x, char) end
      end
    end
  end
end

-- Blocked content: "{n,m} Quantifier (max 50)".
-- https://developers.cloudflare.com/cloudflare-one/email-security/policies/inbound/blocked-content/
function rules.quantifier_over_50(r, e, add)
  if r ~= "content_policies" then return end
  local p = text(e, "pattern")
  local n = p and largest_quantifier(p)
  if n and n > 50 then
    add("pattern", format("pattern %s has a quantifier of %s, above the 50 content policies allow; "
      .. "use at most {0,50}", shown(p), n < 1e15 and format("%d", n) or "more than 50"))
  end
end

-- OpenAPI email-security_SendingDomainRestriction.properties.exclude:
-- "Excluded subdomains that are exempt from TLS requirements".
function rules.exclude_not_subdomain(r, e, add)
  if r ~= "sending_domain_restrictions" or type(e.exclude) ~= "table" then return end
  local d = text(e, "domain")
  if not d then return end
  d = d:lower():gsub("%.$", "")
  for _, x in ipairs(e.exclude) do
    if type(x) == "string" then
      local lx = x:lower():gsub("%.$", "")
      if lx == d then
        add("exclude", format("exclude %s is the restricted domain itself, not a subdomain; remove it "
          .. "(to stop requiring TLS from %s, delete the restriction)", shown(x), shown(d)))
      elseif #lx <= #d + 1 or lx:sub(-(#d + 1)) ~= "." .. d then
        add("exclude", format("exclude %s is not a subdomain of %s, so it exempts nothing; list only "
          .. "subdomains of that domain", shown(x), shown(d)))
      end
    end
  end
end

-- OpenAPI: the deprecated fields, "Deprecated as of July 1, 2025. Use
-- `is_exempt_recipient` instead. End of life: July 1, 2026." and the like,
-- as tools/gen_resources.lua writes them into the descriptions
-- (deprecated, end_of_life, replaced_by).
function rules.deprecated_field(r, e, add, today)
  for _, f in ipairs(deprecated_fields(r)) do
    if present(e[f.name]) and not (f.end_of_life and f.end_of_life <= today) then
      local instead = f.replaced_by and ("; set " .. f.replaced_by .. " instead") or "; leave it out"
      if f.end_of_life then
        add(f.name, format("%s is deprecated and the API stops taking it on %s%s", f.name, f.end_of_life, instead))
      else
        add(f.name, format("%s is deprecated%s", f.name, instead))
      end
    end
  end
end

function rules.past_end_of_life(r, e, add, today)
  for _, f in ipairs(deprecated_fields(r)) do
    if present(e[f.name]) and f.end_of_life and f.end_of_life <= today then
      add(f.name, format("%s reached its end of life on %s and is not sent%s", f.name, f.end_of_life,
        f.replaced_by and ("; set " .. f.replaced_by .. " instead") or "; leave it out"))
    end
  end
end

---------------------------------------------------------------------------

local function is_known(resource)
  if not known then
    known = {}
    for _, name in ipairs(require("cloudflare.email_security.resources.names")) do known[name] = true end
  end
  return known[resource] == true
end

--- The warnings for one entry of a resource, given today's date.
function warnings.check(resource, entry, today)
  if type(resource) ~= "string" or not is_known(resource) then
    error("warnings.check: unknown resource " .. shown(resource), 2)
  end
  if type(entry) ~= "table" then error("warnings.check: entry must be a table, got " .. type(entry), 2) end
  if type(today) ~= "string" or not today:match("^%d%d%d%d%-%d%d%-%d%d$") then
    error("warnings.check: today must be YYYY-MM-DD, got " .. shown(today), 2)
  end
  local out = {}
  for _, c in ipairs(warnings.codes) do
    local code = c.code
    rules[code](resource, entry, function(field, message)
      out[#out + 1] = { code = code, field = field, message = message }
    end, today)
  end
  return out
end

-- every code has its rule, and every rule a code
for _, c in ipairs(warnings.codes) do assert(rules[c.code], c.code) end

return warnings

-- YAML as the command-line tool writes it (-o yaml): block style, read
-- from the JSON the module's own writer made (schema/body.lua). Going
-- through that text rather than the Lua value means the YAML can never
-- disagree with the JSON: an object's keys come in the same order, and
-- an empty list stays [] where the description says it is a list (a
-- decoded empty list and an empty object are the same Lua table).
--
-- Written here rather than with lyaml's emitter (Debian lua-yaml): that
-- binding always turns on libyaml's unicode output, so the direction
-- overrides and zero-width marks (U+202E, U+2066, U+200B...) would reach
-- the terminal as they are, where the JSON output escapes them; it folds
-- every scalar longer than 80 columns over several lines, which it gives
-- no way to turn off; and it would be a C library more for the tool to
-- need, for a few dozen lines.
--
-- What is written: a mapping's keys and a string as a plain scalar where
-- a YAML 1.1 or 1.2 reader takes it back as that same string, otherwise
-- in double quotes, where every control character, the characters a
-- terminal obeys or that reorder what it shows (errors.lua's list), and
-- U+FFFE/U+FFFF are escapes, which lose nothing: nothing written drives a
-- terminal, and a value is always one line. Numbers as the JSON has them
-- (an exponent gets a ".0", which YAML 1.1 needs to read a float), true,
-- false and null as they are, an empty list [] and an empty object {}.
-- A key over 1024 characters is written in the explicit form (? key).
-- Text that is not UTF-8 cannot be YAML: each byte of it beyond ASCII is
-- written as \xNN, which YAML reads as that code point.

local errors = require("cloudflare.email_security.errors")
local utf8_length = require("cloudflare.email_security.schema.validate").utf8_length

local byte, char, concat, find, format, gsub, lower, rep, sub =
  string.byte, string.char, table.concat, string.find, string.format, string.gsub, string.lower, string.rep,
  string.sub
local floor = math.floor

local yaml = {}

---------------------------------------------------------------------------
-- Scalars
---------------------------------------------------------------------------

-- Words a reader takes for something other than a string: null, the
-- YAML 1.1 booleans (y and n too, as some readers do), infinity and NaN,
-- and the merge and value keys. Compared in lower case: "TRUE" is one.
local WORDS = {}
for _, w in ipairs({ "", "~", "null", "true", "false", "yes", "no", "on", "off", "y", "n", ".inf", "+.inf",
                     "-.inf", ".nan", "<<", "=" }) do
  WORDS[w] = true
end

-- The escapes of a double-quoted scalar for the characters that have a
-- short one; the other C0 controls and DEL are \xNN.
local SHORT = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r" }

local function c0_escape(c)
  return SHORT[c] or format("\\x%02x", byte(c))
end

local function byte_escape(c)
  return format("\\x%02x", byte(c))
end

local function double_quoted(s)
  local valid = utf8_length(s) ~= nil
  s = gsub(s, '[%z\1-\31"\\\127]', c0_escape)
  if not valid then
    s = gsub(s, "[\128-\255]", byte_escape)
  else
    s = errors.escape_unicode_controls(s)
    -- the two noncharacters YAML does not allow even in quotes
    s = gsub(s, "\239\191[\190\191]", function(c)
      return format("\\u%04x", 0xFFC0 + byte(c, 3) - 0x80)
    end)
  end
  return '"' .. s .. '"'
end

-- Must s be quoted to read back as this same string?
local function needs_quotes(s)
  if WORDS[lower(s)] then return true end
  -- a control character, text that is not UTF-8, or a character a
  -- terminal would obey: only an escape shows it
  if find(s, "[%z\1-\31\127]") or not utf8_length(s) or errors.escape_unicode_controls(s) ~= s
     or find(s, "\239\191[\190\191]") then
    return true
  end
  -- white space at either end is lost; a leading indicator starts
  -- something else (a sequence, a flow collection, a comment, an anchor,
  -- a tag, a block scalar, a quoted scalar, a directive); ": " and " #"
  -- inside end the scalar; a trailing ":" makes it a key; "..." and "---"
  -- at the start of a line end or start a document
  if find(s, "^%s") or find(s, "%s$") or find(s, "^[-?:,%[%]{}#&*!|>'\"%%@`]") or find(s, ": ", 1, true)
     or find(s, " #", 1, true) or find(s, ":$") or find(s, "^%.%.%.") then
    return true
  end
  -- anything a reader could take for a number, in any base or form
  -- (readers skip underscores in numbers: "_1" is 1 to some)
  local bare = gsub(s, "_", "")
  return tonumber(bare) ~= nil or find(bare, "^[-+]?%.?%d") ~= nil
end

--- A string as a YAML scalar: plain where that reads back as the same
--- string, else double-quoted with escapes.
function yaml.string(s)
  if needs_quotes(s) then return double_quoted(s) end
  return s
end

-- A JSON number as YAML: YAML 1.1 reads a float only with a point, so
-- "1e+17" becomes "1.0e+17" (the same number in 1.2).
local function number(text)
  if find(text, "[eE]") and not find(text, ".", 1, true) then
    return (gsub(text, "([eE])", ".0%1", 1))
  end
  return text
end

---------------------------------------------------------------------------
-- Reading the JSON text
---------------------------------------------------------------------------

-- A code point as UTF-8 (no utf8 library in Lua 5.1 and LuaJIT).
local function utf8_char(code)
  if code < 0x80 then return char(code) end
  if code < 0x800 then return char(0xC0 + floor(code / 0x40), 0x80 + code % 0x40) end
  if code < 0x10000 then
    return char(0xE0 + floor(code / 0x1000), 0x80 + floor(code / 0x40) % 0x40, 0x80 + code % 0x40)
  end
  return char(0xF0 + floor(code / 0x40000), 0x80 + floor(code / 0x1000) % 0x40, 0x80 + floor(code / 0x40) % 0x40,
              0x80 + code % 0x40)
end

local JSON_ESCAPES = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

local function bad(s, i, what)
  error(format("not the JSON the writer makes at byte %d (%s): %q", i, what, sub(s, i, i + 20)), 0)
end

-- The string whose opening quote is at i: its text and the position
-- after its closing quote.
local function json_string(s, i)
  local parts, j = nil, i + 1
  while true do
    local k = find(s, '["\\]', j)
    if not k then bad(s, i, "a string that does not end") end
    if byte(s, k) == 34 then
      if not parts then return sub(s, j, k - 1), k + 1 end
      parts[#parts + 1] = sub(s, j, k - 1)
      return concat(parts), k + 1
    end
    parts = parts or {}
    parts[#parts + 1] = sub(s, j, k - 1)
    local e = sub(s, k + 1, k + 1)
    if e == "u" then
      local code = tonumber(sub(s, k + 2, k + 5), 16)
      if not code then bad(s, k, "a \\u escape without four hex digits") end
      j = k + 6
      -- a character beyond the BMP comes as a surrogate pair
      if code >= 0xD800 and code < 0xDC00 and sub(s, j, j + 1) == "\\u" then
        local low = tonumber(sub(s, j + 2, j + 5), 16)
        if low and low >= 0xDC00 and low < 0xE000 then
          code = 0x10000 + (code - 0xD800) * 0x400 + (low - 0xDC00)
          j = j + 6
        end
      end
      parts[#parts + 1] = utf8_char(code)
    else
      local c = JSON_ESCAPES[e]
      if not c then bad(s, k, "an unknown escape") end
      parts[#parts + 1] = c
      j = k + 2
    end
  end
end

-- The value at i as one YAML scalar ("[]" and "{}" for the empty
-- collections) and the position after it; nil for a list or an object
-- with something in it.
local function scalar_at(s, i)
  local c = sub(s, i, i)
  if c == '"' then
    local text, after = json_string(s, i)
    return yaml.string(text), after
  end
  if c == "{" or c == "[" then
    local close = c == "{" and "}" or "]"
    if sub(s, i + 1, i + 1) == close then return c .. close, i + 2 end
    return nil
  end
  local word = s:match("^[%w.+-]+", i)
  if word == "true" or word == "false" or word == "null" then return word, i + #word end
  if word and find(word, "^%-?%d") then return number(word), i + #word end
  bad(s, i, "no value")
end

local spaces = setmetatable({}, { __index = function(t, n)
  local v = rep(" ", n)
  t[n] = v
  return v
end })

-- The longest key written in the usual (implicit) form, "key: value":
-- YAML allows such a key 1024 characters at most (libyaml, and so lyaml,
-- refuses a longer one), counted here in bytes as written (quotes and
-- escapes too), which is never fewer. A longer key is written in the
-- explicit form, "? key" on a line and ": value" on the next, which has
-- no limit (a server may send a field of any name).
local IMPLICIT_KEY = 1024

-- Writes the value at i to out, a line at a time, and gives the position
-- after it. lead: what its first line begins with ("- " after the
-- indentation for a list's item; the indentation alone for a mapping's
-- value, which starts on the line after its key); col: the column its
-- block's lines start at.
local function block(s, i, lead, col, out)
  local text, after = scalar_at(s, i)
  if text then
    out[#out + 1] = lead .. text
    return after
  end
  local first = true
  if sub(s, i, i) == "[" then
    i = i + 1
    while true do
      local item_lead = (first and lead or spaces[col]) .. "- "
      first = false
      i = block(s, i, item_lead, col + 2, out)
      local c = sub(s, i, i)
      if c == "]" then return i + 1 end
      if c ~= "," then bad(s, i, "a list that does not go on") end
      i = i + 1
    end
  end
  i = i + 1
  while true do
    if sub(s, i, i) ~= '"' then bad(s, i, "an object key that is not a string") end
    local key
    key, i = json_string(s, i)
    if sub(s, i, i) ~= ":" then bad(s, i, "a key without its colon") end
    i = i + 1
    local written = yaml.string(key)
    local line
    if #written > IMPLICIT_KEY then
      -- "? key" on its line, then ":" and the value at the key's column
      out[#out + 1] = (first and lead or spaces[col]) .. "? " .. written
      line = spaces[col] .. ":"
    else
      line = (first and lead or spaces[col]) .. written .. ":"
    end
    first = false
    text, after = scalar_at(s, i)
    if text then
      out[#out + 1] = line .. " " .. text
      i = after
    else
      out[#out + 1] = line
      i = block(s, i, spaces[col + 2], col + 2, out)
    end
    local c = sub(s, i, i)
    if c == "}" then return i + 1 end
    if c ~= "," then bad(s, i, "an object that does not go on") end
    i = i + 1
  end
end

--- The YAML of a JSON text that schema/body.lua's json writer made (one
--- line, no white space outside strings): one document, ending with a
--- line break. Any other text is an error (a bug: it is never the
--- user's).
function yaml.from_json(s)
  local out = {}
  local after = block(s, 1, "", 0, out)
  if after <= #s and find(s, "%S", after) then bad(s, after, "more after the value") end
  return concat(out, "\n") .. "\n"
end

return yaml

-- README.md lists every `err.rule` the module can return, and nothing
-- else: the rules are read out of the code under lua/ (every rule given to
-- errors.invalid, directly or through a file's own wrapper of it, and every
-- rule schema/validate.lua returns), so that a new rule cannot go
-- unlisted.
local files = require("spec.support.files")

-- A small Lua lexer: names, strings (their values), numbers and
-- punctuation, comments dropped. Enough for the code of this repository.
local function tokens(src)
  local out, i, n = {}, 1, #src
  local function long_bracket(at)
    local eq = src:match("^%[(=*)%[", at)
    if not eq then return nil end
    local close = "]" .. eq .. "]"
    local stop = assert(src:find(close, at, true), "unfinished long bracket")
    return src:sub(at + #eq + 2, stop - 1), stop + #close
  end
  while i <= n do
    local c = src:sub(i, i)
    if c:find("%s") then
      i = i + 1
    elseif src:sub(i, i + 1) == "--" then
      local _, after = long_bracket(i + 2)
      i = after or ((src:find("\n", i, true) or n) + 1)
    elseif c == '"' or c == "'" then
      local j, buf = i + 1, {}
      while true do
        local d = src:sub(j, j)
        assert(d ~= "", "unfinished string")
        if d == "\\" then
          buf[#buf + 1] = src:sub(j, j + 1)
          j = j + 2
        elseif d == c then
          break
        else
          buf[#buf + 1] = d
          j = j + 1
        end
      end
      out[#out + 1] = { kind = "string", value = table.concat(buf) }
      i = j + 1
    elseif c == "[" and src:find("^%[=*%[", i) then
      local value, after = long_bracket(i)
      out[#out + 1] = { kind = "string", value = value }
      i = after
    elseif c:find("[%a_]") then
      local name = src:match("^[%w_]+", i)
      out[#out + 1] = { kind = "name", value = name }
      i = i + #name
    elseif c:find("%d") then
      local num = src:match("^[%w%.]+", i)
      out[#out + 1] = { kind = "number", value = num }
      i = i + #num
    else
      local p = src:match("^%.%.%.", i) or src:match("^[=~<>]=", i) or src:match("^%.%.", i)
        or src:match("^::", i) or c
      out[#out + 1] = { kind = "punct", value = p }
      i = i + #p
    end
  end
  return out
end

local OPEN = { ["("] = ")", ["{"] = "}", ["["] = "]" }
local BLOCK_OPEN = { ["function"] = true, ["do"] = true, ["if"] = true, ["repeat"] = true }
local BLOCK_CLOSE = { ["end"] = true, ["until"] = true }

-- The top-level comma-separated expressions from token i, up to the
-- closing bracket (call arguments) or, with `stop_words`, up to one of
-- those names at depth 0 (a return list). Each expression is a list of
-- tokens. Returns them and the index after.
local function expressions(t, i, stop_words)
  local list, current, depth = {}, {}, 0
  while t[i] do
    local tok = t[i]
    local v = tok.value
    if tok.kind == "punct" and OPEN[v] then
      depth = depth + 1
    elseif tok.kind == "punct" and (v == ")" or v == "}" or v == "]") then
      if depth == 0 then break end
      depth = depth - 1
    elseif tok.kind == "name" and BLOCK_OPEN[v] then
      depth = depth + 1
    elseif tok.kind == "name" and BLOCK_CLOSE[v] and depth > 0 then
      depth = depth - 1
    elseif depth == 0 and stop_words and ((tok.kind == "name" and stop_words[v]) or v == ";") then
      break
    end
    if depth == 0 and tok.kind == "punct" and v == "," then
      list[#list + 1] = current
      current = {}
    else
      current[#current + 1] = tok
    end
    i = i + 1
  end
  if #current > 0 then list[#list + 1] = current end
  return list, i
end

local RETURN_END = { ["end"] = true, ["else"] = true, ["elseif"] = true, ["until"] = true }

local function strings_in(expr, found, where)
  for _, tok in ipairs(expr) do
    if tok.kind == "string" then found[#found + 1] = { rule = tok.value, where = where } end
  end
end

local function is_single_string(expr)
  return expr and #expr == 1 and expr[1].kind == "string"
end

-- Every rule in one file: { rule, where } each.
local function rules_in(path)
  local t = tokens(assert(files.read(path)))
  local found = {}
  -- the file's own wrappers of errors.invalid: name -> position of the rule
  local wrappers = {}
  for i = 1, #t do
    if t[i].value == "function" and t[i + 1] and t[i + 1].kind == "name" and t[i + 2]
       and t[i + 2].value == "(" and (t[i - 1] == nil or t[i - 1].value ~= ".") then
      local params = expressions(t, i + 3)
      local body_end = i + 3
      -- the first errors.invalid call in its body, before its `end`
      local depth = 1
      for j = i + 3, #t do
        local v = t[j].value
        if t[j].kind == "name" and BLOCK_OPEN[v] then depth = depth + 1 end
        if t[j].kind == "name" and BLOCK_CLOSE[v] then
          depth = depth - 1
          if depth == 0 then body_end = j break end
        end
      end
      for j = i + 3, body_end do
        if t[j].value == "errors" and t[j + 1].value == "." and t[j + 2].value == "invalid" then
          local args = expressions(t, j + 4)
          local rule_arg = args[2]
          if rule_arg and #rule_arg == 1 and rule_arg[1].kind == "name" then
            for k, p in ipairs(params) do
              if p[1] and p[1].value == rule_arg[1].value then wrappers[t[i + 1].value] = k end
            end
          end
          break
        end
      end
    end
  end
  for i = 1, #t do
    local tok = t[i]
    -- errors.invalid(field, rule, ...)
    if tok.value == "errors" and t[i + 1] and t[i + 1].value == "." and t[i + 2] and t[i + 2].value == "invalid"
       and t[i + 3] and t[i + 3].value == "(" then
      local args = expressions(t, i + 4)
      if args[2] then strings_in(args[2], found, path .. ": errors.invalid") end
    -- a wrapper's call: invalid(r, field, rule, ...)
    elseif tok.kind == "name" and wrappers[tok.value] and t[i + 1] and t[i + 1].value == "("
       and t[i - 1] and t[i - 1].value ~= "." and t[i - 1].value ~= ":" and t[i - 1].value ~= "function" then
      local args = expressions(t, i + 2)
      local arg = args[wrappers[tok.value]]
      if arg then strings_in(arg, found, path .. ": " .. tok.value .. "()") end
    end
  end
  -- schema/validate.lua: its checks return `rule, message` or
  -- `field, rule, message`, or set `rule, message = ...`
  if path:find("schema/validate%.lua$") then
    for i = 1, #t do
      if t[i].value == "return" and t[i].kind == "name" then
        local list = expressions(t, i + 1, RETURN_END)
        if #list == 2 and is_single_string(list[1]) then
          strings_in(list[1], found, path .. ": return")
        elseif #list == 3 and not is_single_string(list[1]) and is_single_string(list[2]) then
          strings_in(list[2], found, path .. ": return")
        end
      elseif t[i].value == "rule" and t[i + 1] and t[i + 1].value == "," and t[i + 2].value == "message"
             and t[i + 3] and t[i + 3].value == "=" and t[i + 4] and t[i + 4].kind == "string" then
        strings_in({ t[i + 4] }, found, path .. ": rule, message =")
      end
    end
  end
  return found
end

local function code_rules()
  local rules, where = {}, {}
  local list = files.command_output("find lua -name '*.lua' | sort")
  for path in list:gmatch("[^\n]+") do
    for _, f in ipairs(rules_in(path)) do
      if not rules[f.rule] then
        rules[f.rule] = true
        where[f.rule] = f.where
      end
    end
  end
  return rules, where
end

-- The rules README.md's errors table names: the backquoted words after
-- `err.rule` in the row of `invalid`.
local function readme_rules()
  local text = assert(files.read("README.md"))
  local row = assert(text:match("\n| `invalid` |([^\n]*)"), "README.md's errors table has no row for `invalid`")
  local after = assert(row:match("`err%.rule`(.*)$"), "the row of `invalid` does not name `err.rule`")
  local rules = {}
  for word in after:gmatch("`([^`]+)`") do
    if word:find("^[a-z][a-z0-9_]*$") then rules[word] = true end
  end
  return rules
end

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

describe("err.rule", function()
  it("reads the rules out of the code, those of the schema and of plan and apply", function()
    local rules = code_rules()
    for _, known in ipairs({ "type", "enum", "max_length", "min_length", "min_items", "max_items", "unique_items",
                             "deprecated", "read_only", "required", "unknown", "nul", "utf8", "format",
                             "min_properties", "minimum", "maximum", "nullable", "duplicate" }) do
      assert.is_true(rules[known], known .. " was not found in lua/: the scan in this spec misses something")
    end
    for rule in pairs(rules) do
      assert.matches("^[a-z][a-z0-9_]*$", rule, 1, false)
    end
  end)

  it("is listed in README.md for every rule the module returns, and only those", function()
    local in_code, where = code_rules()
    local listed = readme_rules()
    local missing, stale = {}, {}
    for _, rule in ipairs(sorted_keys(in_code)) do
      if not listed[rule] then missing[#missing + 1] = ("`%s` (%s)"):format(rule, where[rule]) end
    end
    for _, rule in ipairs(sorted_keys(listed)) do
      if not in_code[rule] then stale[#stale + 1] = "`" .. rule .. "`" end
    end
    assert.are.same({}, missing, "README.md's errors table does not list: " .. table.concat(missing, ", "))
    assert.are.same({}, stale, "README.md's errors table lists rules the code no longer has: "
      .. table.concat(stale, ", "))
  end)
end)

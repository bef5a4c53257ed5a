-- The CSV files Cloudflare's dashboard imports and exports for four lists
-- (allow policies, blocked senders, trusted domains, the impersonation
-- registry), with the dashboard's own column names rather than the API's
-- field names. Plain Lua with no require: it loads without the C core.
--
-- dashboard.recognise(names) -> fmt, or nil
--   names: the header row's cells as read (the caller has dropped a UTF-8
--   byte order mark). A file is known by the set of its column names, in
--   any order, each compared trimmed, without regard to case, with "_" as
--   a space and runs of spaces as one (Cloudflare's pages spell the same
--   column both ways: Blocked_Sender and Blocked Sender, Display_Name and
--   Display Name). Blank header cells are allowed and map to no field.
--   The set must be exactly one format's: a column more or less, or a name
--   twice, and the file is not a dashboard file (nil).
--   fmt = {
--     resource = "block_senders",
--     title    = "Cloudflare dashboard: blocked senders",
--     source   = the address of the page that documents this header,
--     current  = true for the header the dashboard documents today,
--     header   = the names as the file has them, trimmed, in its order,
--     columns  = { [i] = { field = "pattern", name = "Blocked Sender",
--                          read = function(text) } or false },
--     fixed    = { is_regex = false, ... },   fields with no column: value
--     derived  = { pattern_type = function(entry) }, fields with no column
--                taken from the others (see assumed)
--     assumed  = { "is_regex: ...", ... },  one sentence per field the file
--                has no column for, for the tool to print
--   }
--   read(text) -> value; or nil (an empty optional cell: the field is
--   absent, so a plan does not compare it); or nil, why, where why names
--   the column ("Verify Email: 'maybe' is not true or false"). text is the
--   cell as read (nil for a cell the row lacks); it is trimmed first, as
--   the dashboard's examples put a space after each comma. A why holds the
--   cell's text with control characters written as \xNN.
--
-- dashboard.entry(fmt, cells) -> entry, or nil, why
--   One row (a list of cell texts) as an entry: every column read, then
--   fixed and derived fields filled in. why names the column.
--
-- dashboard.read_row(fmt, cells) -> entry, or nil, problems
--   The same, but with every bad cell of the row: problems is a list of
--   { column = i, why } in column order, i the column's index (also for
--   a cell the row lacks); a row with more cells than the header is one
--   problem, at its first extra cell that is not blank. entry's why is
--   problems[1].why.
--
-- dashboard.resources: the resources that have a dashboard format, sorted.
--
-- dashboard.normalise(name) -> a header name as recognise compares it.
--
-- dashboard.formats(resource) -> a list of fmt (current first, each with
--   its columns in the documented order), or nil.
--
-- dashboard.header(resource) -> the header the tool writes (the current
--   format's names, in the documented order), or nil.
--
-- dashboard.row(resource, entry[, fmt]) -> a list of cell texts, or nil, why
--   One entry as cells in the order of fmt's columns (the current format
--   when fmt is nil; a fmt from recognise writes in that file's order).
--   Booleans are written true/false, an absent or null comment as an
--   empty cell. A row is written only when reading it back gives the
--   entry's values for every field the format reads, fixes or derives;
--   otherwise nil and why: an allow policy, trusted domain or registry
--   entry that is a regular expression (those files have no regex column
--   and read every pattern as plain, so the entry would come back as
--   another entry, by its natural key, and a plan would delete the one and
--   create the other); text with spaces at either end, which reading
--   trims; a field the format needs that the entry lacks. Fields a format neither reads nor
--   fixes (the registry's comments; server-made fields) are not written:
--   read back, they are absent, and a plan leaves them as they are.
--
-- Where each header comes from. The current headers are the example files
-- on Cloudflare's "detection settings" pages (Email security > Settings):
--   https://developers.cloudflare.com/cloudflare-one/email-security/settings/detection-settings/<page>/
-- (cloudflare/cloudflare-docs, src/content/docs/..., as it stood when
-- this was written; the examples there changed after July 2025). Their
-- earlier examples (added in July 2025, cloudflare-docs pull request
-- 23387) stood at .../cloudflare-one/email-security/detection-settings/...
-- and at the address above before being changed; the oldest are Area 1's
-- (2022-2024), under https://developers.cloudflare.com/email-security/.
-- The pages' prose and examples disagree at times (the prose still lists
-- the earlier names); both are read. Each format below names its page.

local format, lower, upper, type = string.format, string.lower, string.upper, type

local dashboard = {}

local CURRENT = "https://developers.cloudflare.com/cloudflare-one/email-security/settings/detection-settings/"
local EARLIER = "https://developers.cloudflare.com/cloudflare-one/email-security/detection-settings/"
local AREA1 = "https://developers.cloudflare.com/email-security/email-configuration/"

---------------------------------------------------------------------------
-- Cells
---------------------------------------------------------------------------

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

--- A header name as compared: trimmed, lower case, "_" as a space, one
--- space between words.
local function normalise(name)
  return trim((lower(name):gsub("_", " "):gsub("%s+", " ")))
end
dashboard.normalise = normalise

-- a cell's text in a message: control characters as \xNN, never raw
local function shown(text)
  return "'" .. text:gsub("%c", function(c) return format("\\x%02X", c:byte()) end) .. "'"
end

-- JSON null is lua-cjson's light userdata, the one userdata an entry
-- holds: told by its type, since this file loads without the C core
local function none(v) return v == nil or type(v) == "userdata" or v == "" end

local PATTERN_TYPES = { EMAIL = true, DOMAIN = true, IP = true, UNKNOWN = true }

-- Each kind of cell: read(text) -> value, or nil (absent), or nil, why
-- (why without the column's name); write(value) -> text, or nil, why.
local KINDS = {}

-- text that must be there: the pattern, the domain, the name, the address
KINDS.text = {
  read = function(text)
    if text == "" then return nil, "empty: it needs a value" end
    return text
  end,
}

-- free text that may be left out: an empty cell is no comment at all
KINDS.notes = {
  read = function(text)
    if text == "" then return nil end
    return text
  end,
}

-- true or false, in any case (a spreadsheet saves them as TRUE and FALSE);
-- the pages' examples show no other words, so no other word is guessed at
KINDS.boolean = {
  read = function(text)
    local l = lower(text)
    if l == "true" then return true elseif l == "false" then return false end
    if text == "" then return nil, "empty: write true or false" end
    return nil, shown(text) .. " is not true or false"
  end,
  write = function(v)
    if type(v) ~= "boolean" then return nil, "is not true or false" end
    return v and "true" or "false"
  end,
}

-- the API's pattern types, in any case
KINDS.pattern_type = {
  read = function(text)
    local u = upper(text)
    if PATTERN_TYPES[u] then return u end
    if text == "" then return nil, "empty: write EMAIL, DOMAIN, IP or UNKNOWN" end
    return nil, shown(text) .. " is not EMAIL, DOMAIN, IP or UNKNOWN"
  end,
}

local function write_text(v)
  if type(v) ~= "string" then return nil, "is not text" end
  return v
end

-- The kind of each API field the formats hold.
local KIND_OF = {
  pattern = "text", email = "text", name = "text",
  comments = "notes",
  pattern_type = "pattern_type",
  is_regex = "boolean", is_email_regex = "boolean", verify_sender = "boolean",
  is_trusted_sender = "boolean", is_exempt_recipient = "boolean", is_acceptable_sender = "boolean",
  is_similarity = "boolean", is_recent = "boolean",
}

-- A pattern's type from its shape, for the files that have no column for
-- it: four numbers of at most 255 joined by dots is IP, text with an @ is
-- EMAIL, anything else DOMAIN.
local function pattern_type_of(e)
  local p = e.pattern
  if type(p) ~= "string" then return nil end
  local a, b, c, d = p:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if a and #a <= 3 and #b <= 3 and #c <= 3 and #d <= 3
     and tonumber(a) <= 255 and tonumber(b) <= 255 and tonumber(c) <= 255 and tonumber(d) <= 255 then
    return "IP"
  end
  if p:find("@", 1, true) then return "EMAIL" end
  return "DOMAIN"
end

---------------------------------------------------------------------------
-- The formats
---------------------------------------------------------------------------

-- Sentences for the fields a format has no column for.
local NO_REGEX = "the dashboard's file has no column for it: read as false (a regular expression"
  .. " goes in the module's own CSV)"
local TYPE_FROM_SHAPE = "pattern_type: the file has no column for it: taken from the pattern"
  .. " (four numbers joined by dots is IP, text with an @ is EMAIL, anything else DOMAIN)"

-- Per resource, current first. columns: { documented name, API field },
-- in the documented order.
local FORMATS = {
  allow_policies = {
    -- the example file on the current allow-policies page; its prose still
    -- names the earlier columns (next format)
    {
      title = "Cloudflare dashboard: allow policies",
      source = CURRENT .. "allow-policies/",
      columns = {
        { "Values", "pattern" }, { "Rule Type", "pattern_type" }, { "Sender Verification", "verify_sender" },
        { "Trusted Sender", "is_trusted_sender" }, { "Exempt Recipient", "is_exempt_recipient" },
        { "Acceptable Sender", "is_acceptable_sender" }, { "Notes", "comments" },
      },
      fixed = { is_regex = false },
      assumed = { "is_regex: " .. NO_REGEX },
    },
    -- the example file from July 2025 until the one above replaced it, and
    -- the field list the current page's prose gives
    {
      title = "Cloudflare dashboard: allow policies (2025 columns)",
      source = EARLIER .. "allow-policies/",
      columns = {
        { "Pattern", "pattern" }, { "Pattern Type", "pattern_type" }, { "Verify Email", "verify_sender" },
        { "Trusted Sender", "is_trusted_sender" }, { "Exempt Recipient", "is_exempt_recipient" },
        { "Acceptable Sender", "is_acceptable_sender" }, { "Notes", "comments" },
      },
      fixed = { is_regex = false },
      assumed = { "is_regex: " .. NO_REGEX },
    },
    -- Area 1's allowed patterns, and the same list on the 2024 Cloudflare
    -- One page (.../detection-settings/allow-policies/): no pattern type
    {
      title = "Area 1 dashboard: allowed patterns",
      source = AREA1 .. "lists/allowed-patterns/",
      columns = {
        { "Pattern", "pattern" }, { "Notes", "comments" }, { "Verify Email", "verify_sender" },
        { "Trusted Sender", "is_trusted_sender" }, { "Exempt Recipient", "is_exempt_recipient" },
        { "Acceptable Sender", "is_acceptable_sender" },
      },
      fixed = { is_regex = false },
      derived = { pattern_type = pattern_type_of },
      assumed = { TYPE_FROM_SHAPE, "is_regex: " .. NO_REGEX },
    },
  },
  block_senders = {
    -- the example file on the current blocked-senders page (its prose
    -- still names Blocked_Sender, Pattern Type and Notes: next format)
    {
      title = "Cloudflare dashboard: blocked senders",
      source = CURRENT .. "blocked-senders/",
      columns = {
        { "Blocked Sender", "pattern" }, { "Blocked Sender Type", "pattern_type" }, { "Is Regex", "is_regex" },
        { "Notes", "comments" },
      },
    },
    -- the example file from July 2025 until the one above replaced it
    {
      title = "Cloudflare dashboard: blocked senders (2025 columns)",
      source = EARLIER .. "blocked-senders/",
      columns = { { "Blocked Sender", "pattern" }, { "Pattern Type", "pattern_type" }, { "Notes", "comments" } },
      fixed = { is_regex = false },
      assumed = { "is_regex: " .. NO_REGEX },
    },
    -- Area 1's block list, and the 2024 Cloudflare One page's field list
    {
      title = "Area 1 dashboard: blocked senders",
      source = AREA1 .. "lists/block-list/",
      columns = { { "Blocked_Sender", "pattern" }, { "Notes", "comments" } },
      fixed = { is_regex = false },
      derived = { pattern_type = pattern_type_of },
      assumed = { TYPE_FROM_SHAPE, "is_regex: " .. NO_REGEX },
    },
  },
  impersonation_registry = {
    -- the current page's example writes Display Name, its prose and Area
    -- 1's example (enhanced-detections/business-email-compromise/)
    -- Display_Name: one format, as names are compared with "_" as a space
    {
      title = "Cloudflare dashboard: impersonation registry",
      source = CURRENT .. "impersonation-registry/",
      columns = { { "Display Name", "name" }, { "Email", "email" } },
      fixed = { is_email_regex = false },
      assumed = {
        "is_email_regex: the dashboard's file has no column for it: read as false (a regular expression"
          .. " goes in the module's own CSV)",
        "comments: the dashboard's file has no column for it: not read, so a plan leaves them as they are",
      },
    },
  },
  trusted_domains = {
    -- the example file on the current trusted-domains page (New is the
    -- page's "recent domain")
    {
      title = "Cloudflare dashboard: trusted domains",
      source = CURRENT .. "trusted-domains/",
      columns = {
        { "Domain", "pattern" }, { "Proximity", "is_similarity" }, { "New", "is_recent" }, { "Notes", "comments" },
      },
      fixed = { is_regex = false },
      assumed = { "is_regex: " .. NO_REGEX },
    },
    -- Area 1's trusted domains
    {
      title = "Area 1 dashboard: trusted domains",
      source = AREA1 .. "lists/trusted-domains/",
      columns = {
        { "Domain", "pattern" }, { "Notes", "comments" }, { "Proximity", "is_similarity" }, { "Recent", "is_recent" },
      },
      fixed = { is_regex = false },
      assumed = { "is_regex: " .. NO_REGEX },
    },
  },
}

dashboard.resources = {}
for name in pairs(FORMATS) do dashboard.resources[#dashboard.resources + 1] = name end
table.sort(dashboard.resources)

-- A column's reader: trims, reads by the field's kind, names the column.
local function reader(name, field)
  local kind = KINDS[KIND_OF[field]]
  return function(text)
    local v, why = kind.read(trim(text or ""))
    if why then return nil, name .. ": " .. why end
    return v
  end
end

local function copy(t)
  local c = {}
  for k, v in pairs(t or {}) do c[k] = v end
  return c
end

-- A fresh fmt of a format's definition; at: the file's position of each
-- documented column (by its index), and names, the file's header, when
-- recognised; else the documented order.
local function made(resource, def, at, names, width)
  local fmt = {
    resource = resource, title = def.title, source = def.source, current = def == FORMATS[resource][1],
    fixed = copy(def.fixed), derived = copy(def.derived), assumed = copy(def.assumed),
    columns = {}, header = {},
  }
  width = width or #def.columns
  for i = 1, width do
    fmt.columns[i] = false
    fmt.header[i] = names and trim(names[i]) or nil
  end
  for j, c in ipairs(def.columns) do
    local i = at and at[j] or j
    fmt.columns[i] = { field = c[2], name = c[1], read = reader(c[1], c[2]) }
    if not names then fmt.header[i] = c[1] end
  end
  return fmt
end

--- The format of a header row, or nil (see the top of the file).
function dashboard.recognise(names)
  if type(names) ~= "table" then
    error("bad argument #1 to 'recognise' (a list of header names expected, got " .. type(names) .. ")", 2)
  end
  local position, count = {}, 0
  for i, name in ipairs(names) do
    if type(name) ~= "string" then
      error(format("bad argument #1 to 'recognise' (header name %d is a %s, not text)", i, type(name)), 2)
    end
    local n = normalise(name)
    if n ~= "" then
      if position[n] then return nil end
      position[n], count = i, count + 1
    end
  end
  for _, resource in ipairs(dashboard.resources) do
    for _, def in ipairs(FORMATS[resource]) do
      if #def.columns == count then
        local at, found = {}, 0
        for j, c in ipairs(def.columns) do
          at[j] = position[normalise(c[1])]
          if at[j] then found = found + 1 end
        end
        -- every documented name found, and as many as the file has: the same set
        if found == count then return made(resource, def, at, names, #names) end
      end
    end
  end
  return nil
end

--- One row's cells (a list of texts) as an entry, or nil and every
--- problem, in column order: { { column = i, why = "..." }, ... }.
--- Every cell is read, so that a file's reader can name all of a row's
--- bad cells at once rather than one per run.
function dashboard.read_row(fmt, cells)
  local width, problems = #fmt.columns, {}
  local e = {}
  for i, col in ipairs(fmt.columns) do
    if col then
      local v, why = col.read(cells[i])
      if why then problems[#problems + 1] = { column = i, why = why } else e[col.field] = v end
    end
  end
  -- past the columns, in column order: one problem for the row, at the
  -- first cell that holds something
  for i = width + 1, #cells do
    if trim(cells[i] or "") ~= "" then
      problems[#problems + 1] = { column = i, why = format("has %d cells where the header has %d", #cells, width) }
      break
    end
  end
  if #problems > 0 then return nil, problems end
  for field, v in pairs(fmt.fixed) do e[field] = v end
  for field, derive in pairs(fmt.derived) do
    if e[field] == nil then e[field] = derive(e) end
  end
  return e
end

--- One row's cells (a list of texts) as an entry, or nil and why (the
--- first problem read_row finds).
function dashboard.entry(fmt, cells)
  local e, problems = dashboard.read_row(fmt, cells)
  if not e then return nil, problems[1].why end
  return e
end

--- Every format of a resource, current first, or nil.
function dashboard.formats(resource)
  local defs = FORMATS[resource]
  if not defs then return nil end
  local list = {}
  for i, def in ipairs(defs) do list[i] = made(resource, def) end
  return list
end

--- The header the tool writes for a resource, or nil.
function dashboard.header(resource)
  local defs = FORMATS[resource]
  if not defs then return nil end
  local names = {}
  for i, c in ipairs(defs[1].columns) do names[i] = c[1] end
  return names
end

local function show(v)
  if v == nil then return "missing" end
  if type(v) == "userdata" then return "null" end
  if type(v) == "string" then return shown(v) end
  return tostring(v)
end

local function same(want, got, field)
  if KIND_OF[field] == "notes" then return (none(want) and got == nil) or want == got end
  return want == got
end

--- One entry as a row of cell texts, or nil and why (see the top).
function dashboard.row(resource, entry, fmt)
  if type(entry) ~= "table" then
    error("bad argument #2 to 'row' (an entry table expected, got " .. type(entry) .. ")", 2)
  end
  if fmt == nil then
    if not FORMATS[resource] then return nil, tostring(resource) .. " has no dashboard CSV format" end
    fmt = made(resource, FORMATS[resource][1])
  elseif fmt.resource ~= resource then
    return nil, format("%s is a format for %s, not %s", fmt.title, fmt.resource, tostring(resource))
  end
  local cells = {}
  for i, col in ipairs(fmt.columns) do
    local text = ""
    if col then
      local v = entry[col.field]
      if none(v) then
        -- absent, null or empty: an empty cell (which reads back for notes only)
        if KIND_OF[col.field] ~= "notes" then
          return nil, format("%s is %s: the %s column needs a value", col.field, show(v), col.name)
        end
      else
        local kind = KINDS[KIND_OF[col.field]]
        local why
        text, why = (kind.write or write_text)(v)
        if not text then return nil, format("%s %s", col.field, why) end
      end
    end
    cells[i] = text
  end
  -- read back, and compare every field the format gives a value
  for i, col in ipairs(fmt.columns) do
    if col then
      local _, why = col.read(cells[i])
      if why then return nil, format("%s %s cannot be written: %s", col.field, show(entry[col.field]), why) end
    end
  end
  local back = dashboard.entry(fmt, cells)
  for _, col in ipairs(fmt.columns) do
    if col and not same(entry[col.field], back[col.field], col.field) then
      return nil, format("%s %s would read back as %s (%s)", col.field, show(entry[col.field]),
                         show(back[col.field]), KIND_OF[col.field] == "pattern_type"
                           and "a pattern type is read in capitals" or "a cell is read trimmed")
    end
  end
  for field, v in pairs(fmt.fixed) do
    if entry[field] ~= v then
      return nil, format("%s is %s, but the file has no column for it and reads it as %s (%s)",
                         field, show(entry[field]), show(v), fmt.title)
    end
  end
  for field in pairs(fmt.derived) do
    if entry[field] ~= back[field] then
      return nil, format("%s is %s, but the file has no column for it and takes %s from the pattern (%s)",
                         field, show(entry[field]), show(back[field]), fmt.title)
    end
  end
  return cells
end

return dashboard

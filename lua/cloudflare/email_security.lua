-- cloudflare.email_security: a client for Cloudflare's Email Security
-- settings API. new(opts) makes a client; null is JSON null (lua-cjson's),
-- to clear a nullable field; resources lists the settings resources, each a
-- field of a client (cf.allow_policies, ...).

local core = require("cloudflare.email_security.core")
local client = require("cloudflare.email_security.client")
local errors = require("cloudflare.email_security.errors")
local resource_internals = require("cloudflare.email_security.resource").internals

-- The resource names, in order: a copy, so that no caller can change the
-- module's own list.
local resources = {}
local RESOURCE_SET = {}
for i, name in ipairs(require("cloudflare.email_security.resources.names")) do
  resources[i] = name
  RESOURCE_SET[name] = true
end

--- The entries a CSV or JSON file holds (see sync/entries.lua), for
--- r:plan; resource (a name, optional) types CSV cells by its fields.
--- nil and a message naming the line and column on a bad file.
local function read_entries(path, resource)
  if type(path) ~= "string" then
    error("bad argument #1 to 'read_entries' (string expected, got " .. type(path) .. ")", 2)
  end
  local desc
  if resource ~= nil then
    if type(resource) == "table" and resource_internals(resource) then
      desc = resource_internals(resource)
    elseif type(resource) == "string" and RESOURCE_SET[resource] then
      desc = require("cloudflare.email_security.schema.compile").resource(
        require("cloudflare.email_security.resources." .. resource))
    else
      error("bad argument #2 to 'read_entries' (a resource name such as 'allow_policies' expected, got "
        .. tostring(resource) .. ")", 2)
    end
  end
  return require("cloudflare.email_security.sync.entries").read(path, desc)
end

--- A folder of files, one per resource (see sync/folder.lua): { dir,
--- settings, files }, for plan_folder; nil and a message on a bad file.
local function read_folder(dir)
  if type(dir) ~= "string" then
    error("bad argument #1 to 'read_folder' (string expected, got " .. type(dir) .. ")", 2)
  end
  return require("cloudflare.email_security.sync.folder").read(dir)
end

--- The plan of a folder (read_folder's) against accounts: a client, or a
--- list of { client = cf, name = "..." } (cf:account(id) for the others);
--- see sync/folder_plan.lua. opts: purge, delete_domains, strict, force.
local function plan_folder(accounts, source, opts)
  if type(accounts) == "table" and getmetatable(accounts) ~= nil then accounts = { { client = accounts } } end
  if type(accounts) ~= "table" then
    error("bad argument #1 to 'plan_folder' (a client or a list of { client = cf } expected)", 2)
  end
  if type(source) ~= "table" or type(source.files) ~= "table" then
    error("bad argument #2 to 'plan_folder' (what read_folder returned expected)", 2)
  end
  return require("cloudflare.email_security.sync.folder_plan").make(accounts, source, opts)
end

return {
  new = client.new,
  read_entries = read_entries,
  read_folder = read_folder,
  plan_folder = plan_folder,
  resources = resources,
  null = core.null,
  is_error = errors.is_error,
  VERSION = require("cloudflare.email_security.version"),
}

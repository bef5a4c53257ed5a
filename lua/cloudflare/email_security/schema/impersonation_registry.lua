-- Facts about the impersonation registry, taken from Cloudflare's OpenAPI
-- schema (email-security_ImpersonationRegistry and its Create/Update forms,
-- and the list operation's parameters). A spec checks this table against the
-- schema file, so a change upstream shows up as a failing spec.

local PROVENANCE = {
  "A1S_INTERNAL", "SNOOPY-CASB_OFFICE_365", "SNOOPY-OFFICE_365", "SNOOPY-GOOGLE_DIRECTORY",
}

return {
  name = "impersonation_registry",
  path = "/email-security/settings/impersonation_registry",
  id_param = "impersonation_registry_id",
  id_format = "uuid",

  -- In the order they are written to a request body.
  fields = {
    { name = "name", type = "string", max_length = 1024 },
    { name = "email", type = "string" },
    { name = "is_email_regex", type = "boolean" },
    { name = "comments", type = "string", nullable = true },
    { name = "provenance", type = "string", enum = PROVENANCE },
    { name = "directory_id", type = "integer", nullable = true },
    { name = "directory_node_id", type = "integer", nullable = true },
    { name = "external_directory_node_id", type = "string", nullable = true, deprecated = true },
    { name = "id", type = "string", read_only = true },
    { name = "created_at", type = "string", read_only = true },
    { name = "modified_at", type = "string", read_only = true },
    { name = "last_modified", type = "string", read_only = true, deprecated = true },
  },

  create_requires = { "name", "email", "is_email_regex" },
  update_min_fields = 1,

  list_params = {
    { name = "page", type = "integer", minimum = 1 },
    { name = "per_page", type = "integer", minimum = 1, maximum = 1000 },
    { name = "search", type = "string" },
    { name = "order", type = "string", enum = { "name", "email", "created_at" } },
    { name = "direction", type = "string", enum = { "asc", "desc" } },
    { name = "provenance", type = "string", enum = PROVENANCE },
  },
}

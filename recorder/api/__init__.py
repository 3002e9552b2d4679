"""Finding and hearing calls: the HTTP API, users and roles, and the access log.

Layout: `routes` (thin handlers), `service` (scoped SQL, archive files), `search` / `params`
(query parsing and SQL building, pure), `scope` (a user's calls as a SQL condition), `auth` /
`users` (permissions, credentials), `access_log`, `errors` (the one error
middleware), `openapi` (the document), `server` (wiring, TLS, `verbatim serve`).
"""

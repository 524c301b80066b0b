"""Who may do what: roles and the permissions table with login sessions (`auth`), password hashes
(`passwords`). Every command and acknowledgement is recorded with a name from here."""
